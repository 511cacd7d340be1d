"""What the daemon keeps in memory is bounded by bytes: the asset locator's warm map
(proxy.formats.common.locator) weighs each remembered asset by what it takes."""

from __future__ import annotations

import hashlib

from proxy.formats.common.locator import KNOWN_OVERHEAD, AssetLocator
from proxy.store.catalog import AssetRecord


def _asset(i: int) -> AssetRecord:
    digest = hashlib.sha256(str(i).encode())
    hashes = {"sha256": digest.hexdigest(), "sha512": hashlib.sha512(digest.digest()).hexdigest()}
    return AssetRecord(f"package-{i}-1.0.0.tgz", 100, digest.hexdigest(), hashes)


def test_the_warm_map_keeps_what_its_bytes_allow_most_recent_first() -> None:
    one = KNOWN_OVERHEAD + len(_asset(0).name) + 64 + 64 + 128
    locator: AssetLocator[str] = AssetLocator(None, None, known=10 * one + one // 2, leases=None)  # type: ignore[arg-type]
    for i in range(100):
        locator.remember("dev", f"key-{i}", _asset(i))
    kept = [i for i in range(100) if ("dev", f"key-{i}") in locator._known]
    assert kept == list(range(90, 100))
