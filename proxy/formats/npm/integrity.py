"""Checking a tarball against the digests its packument declares: ``dist.integrity`` (Subresource
Integrity, e.g. ``sha512-<base64>``) or, failing that, ``dist.shasum`` (sha1 hex). Pure functions."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

# Strongest first: as in SRI, only the strongest algorithm present counts.
_SRI_ALGORITHMS = ("sha512", "sha256", "sha1")


@dataclass(frozen=True)
class Digests:
    """Lowercase hex digests of the bytes received."""

    sha512: str
    sha256: str
    sha1: str

    def hex(self, algorithm: str) -> str:
        return str(getattr(self, algorithm))


def sri(algorithm: str, hex_digest: str) -> str:
    return f"{algorithm}-{base64.b64encode(bytes.fromhex(hex_digest)).decode()}"


def mismatch(integrity: str, shasum: str, got: Digests) -> str | None:
    """None when the bytes match what was declared (or nothing checkable was declared), else why not."""
    declared: dict[str, list[str]] = {}
    for token in integrity.split():
        algorithm, _, value = token.partition("-")
        hex_value = _sri_hex(value.split("?", 1)[0])
        if algorithm in _SRI_ALGORITHMS and hex_value is not None:
            declared.setdefault(algorithm, []).append(hex_value)
    for algorithm in _SRI_ALGORITHMS:
        if algorithm in declared:
            if got.hex(algorithm) in declared[algorithm]:
                return None
            return (
                f"{algorithm} is {sri(algorithm, got.hex(algorithm))} but dist.integrity declares "
                f"{' '.join(sri(algorithm, h) for h in declared[algorithm])}"
            )
    if shasum:
        if shasum.lower() == got.sha1:
            return None
        return f"sha1 is {got.sha1} but dist.shasum declares {shasum}"
    return None


def declares_digest(integrity: str, shasum: str) -> bool:
    """Whether ``mismatch`` has anything to check the bytes against."""
    checkable = any(
        algorithm in _SRI_ALGORITHMS and _sri_hex(value.split("?", 1)[0]) is not None
        for algorithm, _, value in (token.partition("-") for token in integrity.split())
    )
    return checkable or bool(shasum)


def _sri_hex(value: str) -> str | None:
    try:
        return base64.b64decode(value, validate=True).hex()
    except (binascii.Error, ValueError):
        return None
