"""The bundle file: writing, signing, and what reading refuses or reports."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from proxy.bundle import (
    BlobChanged,
    BundleError,
    BundleWriter,
    Entry,
    VerifiedBlob,
    load_private_key,
    load_public_key,
    open_bundle,
)

DATA = b"tarball bytes"
SHA = hashlib.sha256(DATA).hexdigest()


def write(path: Path, key: Ed25519PrivateKey | None = None, *, data: bytes = DATA) -> Entry:
    entry = Entry("npm", "", "a", "1.0.0", 0.0, [{"name": "a-1.0.0.tgz", "size": len(DATA), "sha256": SHA}])
    writer = BundleWriter(path)
    writer.add_blob(SHA, io.BytesIO(data), len(data))
    writer.add_blob(SHA, io.BytesIO(data), len(data))  # the same content is stored once
    writer.finish("dev", "2026-12-04T00:00:00+00:00", [entry], key)
    return entry


def test_round_trip_signed(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "b.bundle"
    write(path, key)
    with tarfile.open(path) as tar:
        assert sorted(tar.getnames()) == [f"blobs/{SHA}", "manifest.json", "manifest.sig"]
    with open_bundle(path, key.public_key()) as bundle:
        (entry,) = bundle.entries
        assert bundle.repository == "dev" and entry.label == "npm a@1.0.0"
        assert bundle.broken(entry) == [] and b"".join(bundle.open_blob(SHA)) == DATA


def test_refusals(tmp_path: Path) -> None:
    unsigned = tmp_path / "unsigned.bundle"
    write(unsigned)
    with (
        pytest.raises(BundleError, match="not signed, and a trust key was given"),
        open_bundle(unsigned, Ed25519PrivateKey.generate().public_key()),
    ):
        pass
    signed = tmp_path / "signed.bundle"
    write(signed, Ed25519PrivateKey.generate())
    with (
        pytest.raises(BundleError, match="does not verify with the trust key"),
        open_bundle(signed, Ed25519PrivateKey.generate().public_key()),
    ):
        pass
    (tmp_path / "junk").write_bytes(b"not a tar file at all")
    with pytest.raises(BundleError, match="not a bundle"), open_bundle(tmp_path / "junk", None):
        pass


def test_a_damaged_blob_is_reported_for_its_entry(tmp_path: Path) -> None:
    path = tmp_path / "b.bundle"
    entry = write(path, data=b"tarball byteZ")  # same size, other content
    with open_bundle(path, None) as bundle:
        assert bundle.broken(bundle.entries[0]) == [entry.assets[0]["name"]]


def keys(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A new Ed25519 key pair in PEM files: (PKCS#8 private, SubjectPublicKeyInfo public)."""
    key = Ed25519PrivateKey.generate()
    private, public = tmp_path / f"{name}.pem", tmp_path / f"{name}.pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def test_keys(tmp_path: Path) -> None:
    private, public = keys(tmp_path, "k")
    assert load_private_key(private).public_key() == load_public_key(public)
    with pytest.raises(BundleError, match="not a PEM private key"):
        load_private_key(public)
    with pytest.raises(BundleError, match="not a PEM public key"):
        load_public_key(tmp_path / "missing")


def test_a_blob_is_read_in_pieces_and_its_last_piece_held_back_until_its_digest_matched() -> None:
    data = bytes(range(256)) * 4000  # about 1 MB: several pieces
    digest = hashlib.sha256(data).hexdigest()
    blob = VerifiedBlob(io.BytesIO(data), digest, len(data))
    assert blob.seek(0, io.SEEK_END) == len(data) and blob.tell() == 0  # the size, for a Content-Length
    pieces = []
    while piece := blob.read(64 * 1024):
        pieces.append(piece)
    assert b"".join(pieces) == data and max(map(len, pieces)) <= 64 * 1024
    blob.seek(0)  # as httpx rewinds a file before sending it
    assert b"".join(blob) == data

    changed = bytearray(data)
    changed[-1] ^= 1  # the bundle changed after it was checked
    blob = VerifiedBlob(io.BytesIO(bytes(changed)), digest, len(data))
    sent = bytearray()
    with pytest.raises(BlobChanged, match=digest):
        for piece in blob:
            sent += piece
    assert len(sent) < len(data)  # never a whole copy
    shorter = VerifiedBlob(io.BytesIO(data[:-1]), digest, len(data))
    with pytest.raises(BlobChanged):
        b"".join(shorter)
