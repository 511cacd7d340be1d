"""The storage contract: what every backend (``tests/store_contract/backends.py``) must do, run
against each one through the ``backend`` fixture."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from proxy.store.blobs import BlobCorrupt, BlobMissing
from proxy.store.catalog import (
    AssetRecord,
    PackageCoordinate,
    PackageRecord,
    PackageVersionOrigin,
    PackageVersionRecord,
)
from proxy.store.metadata import CachedDocument
from tests.store_contract.backends import Backend

LEFTPAD = PackageCoordinate("npm", "", "left-pad-contract-suite")
SCOPED = PackageCoordinate("npm", "@contract-scope", "scoped-contract-suite")
WHEEL = PackageCoordinate("pypi", "", "contract-suite-wheel")


def add_version(version: str, blob_id: str = "0" * 64) -> object:
    def change(record: PackageRecord) -> None:
        record.versions[version] = PackageVersionRecord(
            version=version,
            origin=PackageVersionOrigin("EXTERNAL", "upstream-contract"),
            assets={f"pkg-{version}.tgz": AssetRecord(f"pkg-{version}.tgz", 3, blob_id, {"SHA-256": "ab"})},
        )

    return change


async def store_blob(backend: Backend, content: bytes, *, durable: bool = False) -> str:
    writer = backend.blobs.writer()
    for start in range(0, len(content), 64 * 1024):
        writer.write(content[start : start + 64 * 1024])
    return (await writer.commit(durable=durable)).blob_id


async def read_blob(backend: Backend, blob_id: str) -> bytes:
    source = await backend.blobs.reader(blob_id)
    chunks = [chunk async for chunk in source]
    assert source.size == sum(map(len, chunks))
    return b"".join(chunks)


# -- catalog ----------------------------------------------------------------------------------------
async def test_catalog_missing_package_is_none(backend: Backend) -> None:
    assert await backend.catalog.package("repo-a", LEFTPAD) is None
    assert await backend.catalog.packages("repo-a") == []


async def test_catalog_create_update_delete(backend: Backend) -> None:
    created = await backend.catalog.update_package("repo-a", LEFTPAD, add_version("1.0.0"))
    assert list(created.versions) == ["1.0.0"]
    await backend.catalog.update_package("repo-a", LEFTPAD, add_version("1.1.0"), commit=True)
    record = await backend.catalog.package("repo-a", LEFTPAD)
    assert record is not None and record.coordinate == LEFTPAD
    assert sorted(record.versions) == ["1.0.0", "1.1.0"]
    asset = record.versions["1.1.0"].assets["pkg-1.1.0.tgz"]
    assert (asset.size, asset.hashes) == (3, {"SHA-256": "ab"})
    assert record.versions["1.0.0"].origin == PackageVersionOrigin("EXTERNAL", "upstream-contract")

    await backend.catalog.delete_package("repo-a", LEFTPAD)
    assert await backend.catalog.package("repo-a", LEFTPAD) is None
    assert await backend.catalog.packages("repo-a") == []


async def test_catalog_lists_per_repository(backend: Backend) -> None:
    await backend.catalog.update_package("repo-a", LEFTPAD, add_version("1.0.0"))
    await backend.catalog.update_package("repo-a", SCOPED, add_version("2.0.0"))
    await backend.catalog.update_package("repo-b", WHEEL, add_version("3.0"))
    assert sorted(await backend.catalog.packages("repo-a"), key=str) == sorted([LEFTPAD, SCOPED], key=str)
    assert await backend.catalog.packages("repo-b") == [WHEEL]
    assert sorted(await backend.catalog.repositories()) == ["repo-a", "repo-b"]
    assert await backend.catalog.package("repo-b", LEFTPAD) is None
    records = sorted(
        [(repository, record.coordinate.name) async for repository, record in backend.catalog.records()]
    )
    assert records == [("repo-a", LEFTPAD.name), ("repo-a", SCOPED.name), ("repo-b", WHEEL.name)]


async def test_catalog_concurrent_updates_lose_nothing(backend: Backend) -> None:
    catalogs = [backend.catalog] if backend.peer is None else [backend.catalog, backend.peer]
    await asyncio.gather(
        *(
            catalogs[n % len(catalogs)].update_package("repo-a", LEFTPAD, add_version(f"1.0.{n}"))
            for n in range(40)
        )
    )
    record = await backend.catalog.package("repo-a", LEFTPAD)
    assert record is not None
    assert sorted(record.versions) == sorted(f"1.0.{n}" for n in range(40))
    assert await backend.catalog.packages("repo-a") == [LEFTPAD]


async def test_catalog_failed_change_stores_nothing(backend: Backend) -> None:
    def fail(record: PackageRecord) -> None:
        record.dist_tags["latest"] = "9.9.9"
        raise RuntimeError("change refused")

    with pytest.raises(RuntimeError):
        await backend.catalog.update_package("repo-a", LEFTPAD, fail)
    assert await backend.catalog.package("repo-a", LEFTPAD) is None
    assert await backend.catalog.packages("repo-a") == []


# -- ledger -----------------------------------------------------------------------------------------
async def test_ledger_records_sizes_and_pins(backend: Backend) -> None:
    ledger = backend.ledger
    await ledger.record("a" * 64, 100, pinned=False)
    await ledger.record("b" * 64, 50, pinned=True)
    assert (await ledger.cached_size(), await ledger.blob_count()) == (100, 2)
    await ledger.record("b" * 64, 50, pinned=False)  # a pin is sticky
    await ledger.record("a" * 64, 100, pinned=True)  # cached content published later is pinned
    assert await ledger.cached_size() == 0
    entries = await ledger.entries()
    assert {blob_id: (e.size, e.pinned) for blob_id, e in entries.items()} == {
        "a" * 64: (100, True),
        "b" * 64: (50, True),
    }
    await ledger.set_pins(["b" * 64])
    assert await ledger.cached_size() == 100
    await ledger.forget("a" * 64)
    assert (await ledger.cached_size(), await ledger.blob_count()) == (0, 1)


async def test_ledger_touch_is_saved_by_flush(backend: Backend) -> None:
    await backend.ledger.record("a" * 64, 10, pinned=False)
    before = (await backend.ledger.entries())["a" * 64].last_access
    await asyncio.sleep(0.01)  # time.time() must move on
    backend.ledger.touch("a" * 64)
    await backend.ledger.flush()
    assert (await backend.ledger.entries())["a" * 64].last_access > before


async def test_ledger_evicts_least_recently_used_unpinned(backend: Backend) -> None:
    ledger = backend.ledger
    for blob_id in ("a" * 64, "b" * 64, "c" * 64):
        await ledger.record(blob_id, 10, pinned=False)
        await asyncio.sleep(0.005)
    await ledger.record("d" * 64, 1000, pinned=True)
    ledger.touch("a" * 64)  # now the most recently used
    deleted: list[str] = []

    async def delete_blob(blob_id: str) -> None:
        deleted.append(blob_id)

    evicted = await ledger.evict(10, delete_blob)
    assert evicted == deleted == ["b" * 64, "c" * 64]
    assert sorted(await ledger.entries()) == ["a" * 64, "d" * 64]
    assert await ledger.cached_size() == 10
    assert await ledger.evict(10, delete_blob) == []


# -- metadata ---------------------------------------------------------------------------------------
async def test_metadata_round_trip(backend: Backend) -> None:
    metadata = backend.metadata
    assert await metadata.get("npm", "upstream-a", "left-pad") is None
    doc = CachedDocument(
        200,
        b'{"name": "left-pad"}',
        fetched_at=1000.0,
        etag='"v1"',
        last_modified="Mon",
        content_type="application/json",
    )
    await metadata.put(doc, "npm", "upstream-a", "left-pad")
    assert await metadata.get("npm", "upstream-a", "left-pad") == doc
    assert (await metadata.get("npm", "upstream-a", "left-pad")).age(now=1060.0) == 60.0
    assert await metadata.get("npm", "upstream-b", "left-pad") is None

    missing = CachedDocument(404, b"", fetched_at=2000.0)
    await metadata.put(missing, "npm", "upstream-a", "no-such-package")
    assert await metadata.get("npm", "upstream-a", "no-such-package") == missing

    replaced = CachedDocument(200, b"{}", fetched_at=3000.0)
    await metadata.put(replaced, "npm", "upstream-a", "left-pad")
    assert await metadata.get("npm", "upstream-a", "left-pad") == replaced

    names = await metadata.names()
    assert len(names) == 2
    assert all([await metadata.check(name) is None for name in names])
    assert await metadata.check("f" * 64) == "missing"

    await metadata.delete("npm", "upstream-a", "left-pad")
    assert await metadata.get("npm", "upstream-a", "left-pad") is None
    assert len(await metadata.names()) == 1


# -- blobs ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [0, 1000, 600 * 1024], ids=["empty", "small", "several-chunks"])
async def test_blob_write_commit_read(backend: Backend, size: int) -> None:
    content = os.urandom(size)
    writer = backend.blobs.writer()
    writer.write(content)
    info = writer.finish()
    assert (info.size, info.sha256) == (size, hashlib.sha256(content).hexdigest())
    assert info.md5 == hashlib.md5(content).hexdigest()
    assert not await backend.blobs.exists(info.blob_id)
    committed = await writer.commit(durable=size > 1000)
    assert committed.blob_id == info.blob_id
    assert await backend.blobs.exists(info.blob_id)
    assert await read_blob(backend, info.blob_id) == content
    assert await backend.blobs.verify(info.blob_id) is None


async def test_blob_identical_content_is_stored_once(backend: Backend) -> None:
    content = os.urandom(200 * 1024)
    first = await store_blob(backend, content)
    second = await store_blob(backend, content, durable=True)
    assert first == second
    assert await backend.blobs.ids() == [first]
    other = await store_blob(backend, b"other content")
    assert sorted(await backend.blobs.ids()) == sorted([first, other])


async def test_blob_aborted_write_leaves_nothing(backend: Backend) -> None:
    writer = backend.blobs.writer()
    writer.write(os.urandom(300 * 1024))
    info = writer.finish()
    await writer.abort()
    assert not await backend.blobs.exists(info.blob_id)
    assert await backend.blobs.ids() == []


async def test_blob_missing(backend: Backend) -> None:
    with pytest.raises(BlobMissing):
        await backend.blobs.reader("e" * 64)
    assert await backend.blobs.verify("e" * 64) == "missing"
    assert await backend.blobs.delete("e" * 64) is False


@pytest.mark.parametrize("size", [1000, 300 * 1024], ids=["small", "large"])
async def test_blob_corrupt_is_an_error_and_removed(backend: Backend, size: int) -> None:
    blob_id = await store_blob(backend, os.urandom(size))
    await backend.corrupt(blob_id)
    with pytest.raises(BlobCorrupt):
        await read_blob(backend, blob_id)
    assert not await backend.blobs.exists(blob_id)


async def test_blob_verify_reports_corruption(backend: Backend) -> None:
    blob_id = await store_blob(backend, os.urandom(5000))
    await backend.corrupt(blob_id)
    reason = await backend.blobs.verify(blob_id)
    assert reason is not None and "authentication failed" in reason


async def test_blob_delete(backend: Backend) -> None:
    kept = await store_blob(backend, b"kept")
    gone = await store_blob(backend, os.urandom(300 * 1024), durable=True)
    assert await backend.blobs.delete(gone) is True
    assert await backend.blobs.delete(gone) is False
    assert not await backend.blobs.exists(gone)
    assert await backend.blobs.ids() == [kept]
    with pytest.raises(BlobMissing):
        await backend.blobs.reader(gone)


# -- secrecy ----------------------------------------------------------------------------------------
async def test_backend_never_sees_plaintext_or_digests(backend: Backend) -> None:
    small = b"small-plaintext-content-of-the-contract-suite " * 10
    large = os.urandom(300 * 1024) + b"large-plaintext-marker-of-the-contract-suite"
    for content, durable in ((small, False), (large, True)):
        await store_blob(backend, content, durable=durable)
    await backend.catalog.update_package("secret-repository-name", SCOPED, add_version("7.7.7-secret"))
    await backend.metadata.put(
        CachedDocument(200, b"metadata-plaintext-body-marker", etag='"etag-marker"'),
        "npm",
        "up",
        "meta-key-marker",
    )
    await backend.ledger.record("a" * 64, 5, pinned=False)
    raw = await backend.raw()
    assert len(raw) > len(large)  # the dump holds what was stored, sealed
    secrets = [
        b"small-plaintext-content",
        b"large-plaintext-marker",
        b"secret-repository-name",
        SCOPED.name.encode(),
        SCOPED.namespace.encode(),
        b"7.7.7-secret",
        b"metadata-plaintext-body-marker",
        b"etag-marker",
        b"meta-key-marker",
    ]
    for content in (small, large):
        digest = hashlib.sha256(content)
        secrets += [
            digest.digest(),
            digest.hexdigest().encode(),
            hashlib.sha512(content).hexdigest().encode(),
        ]
    assert [secret for secret in secrets if secret in raw] == []
