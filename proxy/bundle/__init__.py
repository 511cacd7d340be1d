"""Bundles: package versions of one repository in one file, to carry across an air gap.

A bundle is a tar archive (uncompressed: tarballs, wheels and jars are compressed already) holding

- ``manifest.json``: ``{"bundle": 1, "repository", "created", "entries": [ENTRY...]}``, an ENTRY being
  one package version: ``{"format", "namespace", "name", "version", "published_time", "metadata",
  "assets": [{"name", "size", "sha256"}]}`` (``metadata`` is what the format needs to publish it again:
  npm's version document; PyPI's ``requires_python``);
- ``manifest.sig``, when signed: the Ed25519 signature of ``manifest.json``'s bytes;
- ``blobs/SHA256``: each asset's bytes, once per distinct content.

Reading checks the signature (when a trust key is given) before anything else, and each blob against
the manifest's digest and size; an entry with a broken or missing blob is reported, the others stay
usable. A blob is then read as a stream (``Bundle.open_blob``), checked again while it is read: memory
stays a few pieces whatever the asset's size. Keys are PEM: PKCS#8 private, SubjectPublicKeyInfo public.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"


class BundleError(Exception):
    """A bundle (or key) that cannot be used at all; the message says why."""


@dataclass
class Entry:
    format: str
    namespace: str
    name: str
    version: str
    published_time: float
    assets: list[dict[str, Any]]  # {"name", "size", "sha256"}
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        if self.format == "npm":
            return f"npm {'@' + self.namespace + '/' if self.namespace else ''}{self.name}@{self.version}"
        if self.format == "maven":
            return f"maven {self.namespace}:{self.name}:{self.version}"
        return f"pypi {self.name}=={self.version}"

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise BundleError(f"{path}: not a PEM private key: {error}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError(f"{path}: not an Ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as error:
        raise BundleError(f"{path}: not a PEM public key: {error}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError(f"{path}: not an Ed25519 key")
    return key


class BundleWriter:
    """Writes a bundle: ``add_blob`` each asset (a file already hashed), then ``finish`` with the
    entries. Blobs with a digest already added are stored once."""

    def __init__(self, path: Path) -> None:
        self._tar = tarfile.open(path, "w")  # noqa: SIM115 - open across add_blob calls; finish closes it
        self._blobs: set[str] = set()

    def add_blob(self, sha256: str, file: IO[bytes], size: int) -> None:
        if sha256 in self._blobs:
            return
        info = tarfile.TarInfo(f"blobs/{sha256}")
        info.size = size
        self._tar.addfile(info, file)
        self._blobs.add(sha256)

    def finish(
        self, repository: str, created: str, entries: list[Entry], key: Ed25519PrivateKey | None
    ) -> None:
        manifest = json.dumps(
            {
                "bundle": VERSION,
                "repository": repository,
                "created": created,
                "entries": [e.to_json() for e in entries],
            },
            indent=1,
            sort_keys=True,
        ).encode()
        self._add(MANIFEST, manifest)
        if key is not None:
            self._add(SIGNATURE, key.sign(manifest))
        self._tar.close()

    def _add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        self._tar.addfile(info, io.BytesIO(data))

    def abort(self) -> None:
        self._tar.close()


@dataclass
class Bundle:
    """An opened bundle: its manifest's entries, and the blobs that match their digests."""

    repository: str
    created: str
    entries: list[Entry]
    tar: tarfile.TarFile
    intact: set[str]  # digests of the blobs that are there and match

    def broken(self, entry: Entry) -> list[str]:
        """Names of ``entry``'s assets whose blob is missing or damaged."""
        return [asset["name"] for asset in entry.assets if asset["sha256"] not in self.intact]

    def open_blob(self, sha256: str) -> VerifiedBlob:
        """The blob's bytes as a stream, checked against ``sha256`` while they are read (see
        VerifiedBlob); the blob must be intact (checked when the bundle was opened)."""
        member = self.tar.getmember(f"blobs/{sha256}")
        file = self.tar.extractfile(member)
        assert file is not None
        return VerifiedBlob(file, sha256, member.size)


class BlobChanged(Exception):
    """A blob's bytes no longer match its digest (the bundle changed since it was opened)."""


class VerifiedBlob:
    """A blob read in pieces, hashed as it is read: the read that reaches its end raises BlobChanged
    instead of returning the last piece when the digest or the size does not match, so whoever sends
    the pieces on never sends a complete wrong copy. Memory: a piece or two at a time."""

    PIECE = 256 * 1024

    def __init__(self, file: IO[bytes], sha256: str, size: int) -> None:
        self._file = file
        self.sha256 = sha256
        self.size = size
        self._restart()

    def _restart(self) -> None:
        self._hasher = hashlib.sha256()
        self._read = 0
        self._held = b""

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (a piece when -1); b"" at the end, once the digest matched."""
        want = self.PIECE if size is None or size < 0 else max(size, 1)
        while len(self._held) <= want:
            chunk = self._file.read(max(want, self.PIECE))
            if not chunk:
                self._check()
                out, self._held = self._held, b""
                return out
            self._hasher.update(chunk)
            self._read += len(chunk)
            self._held += chunk
        out, self._held = self._held[:want], self._held[want:]
        return out

    def _check(self) -> None:
        if self._read != self.size or self._hasher.hexdigest() != self.sha256:
            raise BlobChanged(f"blob {self.sha256} does not match its digest any more; nothing sent whole")

    def __iter__(self) -> Iterator[bytes]:
        while piece := self.read():
            yield piece

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Back to the start (``seek(0)``), or where it is; ``seek(0, SEEK_END)`` only tells the size
        (how httpx learns a file's length for a Content-Length), the position stays."""
        if whence == io.SEEK_END and offset == 0:
            return self.size
        if whence == io.SEEK_SET and offset == self.tell():
            return offset
        if (offset, whence) != (0, io.SEEK_SET):
            raise io.UnsupportedOperation("a verified blob is read from its start only")
        self._file.seek(0)
        self._restart()
        return 0

    def tell(self) -> int:
        return self._read - len(self._held)


def manifest_digests(path: Path) -> set[str]:
    """The asset digests a bundle's manifest lists (for ``export --since BUNDLE``)."""
    with open_bundle(path, None) as bundle:
        return {asset["sha256"] for entry in bundle.entries for asset in entry.assets}


@contextmanager
def open_bundle(path: Path, trust: Ed25519PublicKey | None) -> Iterator[Bundle]:
    """Open and check ``path``; raises ``BundleError`` when the bundle is unusable as a whole (not a
    bundle, no manifest, or, with ``trust``, a missing or wrong signature)."""
    try:
        tar = tarfile.open(path, "r")  # noqa: SIM115 - closed by the with block below
    except (OSError, tarfile.TarError) as error:
        raise BundleError(f"{path}: not a bundle: {error}") from None
    with tar:
        try:
            manifest_bytes = _read(tar, MANIFEST)
        except (KeyError, tarfile.TarError, OSError) as error:
            raise BundleError(f"{path}: no readable {MANIFEST}: {error}") from None
        if trust is not None:
            try:
                trust.verify(_read(tar, SIGNATURE), manifest_bytes)
            except KeyError:
                raise BundleError(
                    f"{path}: not signed, and a trust key was given; nothing imported"
                ) from None
            except InvalidSignature:
                raise BundleError(
                    f"{path}: the manifest's signature does not verify with the trust key; nothing imported"
                ) from None
        try:
            manifest = json.loads(manifest_bytes)
            if manifest.get("bundle") != VERSION:
                raise BundleError(f"{path}: bundle version {manifest.get('bundle')!r}, not {VERSION}")
            entries = [Entry(**entry) for entry in manifest["entries"]]
        except (ValueError, KeyError, TypeError) as error:
            raise BundleError(f"{path}: {MANIFEST} is not a bundle manifest: {error}") from None
        sizes = {a["sha256"]: a["size"] for e in entries for a in e.assets}
        intact = set()
        for member in tar.getmembers():
            digest = member.name.removeprefix("blobs/")
            blob = member.name.startswith("blobs/") and digest in sizes and member.size == sizes[digest]
            if blob and _sha256(tar, member) == digest:
                intact.add(digest)
        yield Bundle(manifest.get("repository", ""), manifest.get("created", ""), entries, tar, intact)


def _read(tar: tarfile.TarFile, name: str) -> bytes:
    member = tar.extractfile(name)
    if member is None:
        raise KeyError(name)
    return member.read()


def _sha256(tar: tarfile.TarFile, member: tarfile.TarInfo) -> str:
    hasher = hashlib.sha256()
    file = tar.extractfile(member)
    assert file is not None
    try:
        while chunk := file.read(1024 * 1024):
            hasher.update(chunk)
    except (tarfile.TarError, OSError):
        return ""
    return hasher.hexdigest()
