"""Checksum files (.md5 .sha1 .sha256 .sha512): reading an upstream's or a client's, and the proxy's own.

The proxy answers every checksum itself, from the digests the store computed while the bytes went
in (lowercase hex, as CodeArtifact serves them): an upstream's checksum files are only read to verify
what it sends. Reading follows Maven's own rules: the first non-empty line, either ``HEX`` or
``HEX  file name`` or the BSD form ``SHA1 (file) = HEX``.

Pure functions: safe from any thread.
"""

from __future__ import annotations

import hashlib
import re

from proxy.formats.maven.paths import HEX_LENGTHS, ChecksumAlgorithm
from proxy.store.protocols import AssetRecord, BlobInfo

# How AssetRecord.hashes (CodeArtifact's names) spells each algorithm.
RECORD_NAMES: dict[ChecksumAlgorithm, str] = {
    "md5": "MD5",
    "sha1": "SHA-1",
    "sha256": "SHA-256",
    "sha512": "SHA-512",
}
_BSD_FORM = re.compile(r".+= ([0-9A-Fa-f]+)")
_HEX = re.compile(r"[0-9a-f]+")


def parse_checksum(body: bytes, algorithm: ChecksumAlgorithm) -> str:
    """The lowercase hex digest a checksum file holds; ValueError when it holds none of that length."""
    text = body.decode("utf-8", "replace")
    line = next((stripped for raw in text.splitlines() if (stripped := raw.strip())), "")
    bsd = _BSD_FORM.fullmatch(line)
    value = (bsd[1] if bsd else line.split(maxsplit=1)[0] if line else "").lower()
    if len(value) != HEX_LENGTHS[algorithm] or not _HEX.fullmatch(value):
        raise ValueError(f"not a {algorithm} checksum file")
    return value


def of_asset(asset: AssetRecord, algorithm: ChecksumAlgorithm) -> str:
    return asset.hashes[RECORD_NAMES[algorithm]]


def of_blob(info: BlobInfo, algorithm: ChecksumAlgorithm) -> str:
    digest: str = getattr(info, algorithm)
    return digest


def of_bytes(body: bytes) -> dict[ChecksumAlgorithm, str]:
    """Every checksum of a small document (rendered metadata, a client's metadata upload)."""
    return {algorithm: hashlib.new(algorithm, body).hexdigest() for algorithm in HEX_LENGTHS}
