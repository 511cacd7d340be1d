"""The asset service over any backends (``proxy.store.shared``): ingest, read, the ledger kept in step,
eviction; run against every backend of the contract suite."""

from __future__ import annotations

import asyncio
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
from proxy.store.shared import SharedBlobService
from tests.store_contract.backends import Backend


async def ingest(service: SharedBlobService, content: bytes, *, published: bool = False) -> str:
    async with service.ingest() as writer:
        writer.write(content)
        writer.finish()
        return (await writer.commit(published=published)).blob_id


async def read(service: SharedBlobService, blob_id: str) -> bytes:
    return b"".join([chunk async for chunk in service.read(blob_id)])


@pytest.fixture
async def service(backend: Backend):
    opened = SharedBlobService(backend.blobs, backend.ledger, max_size=10**9)
    yield opened
    await opened.close()


async def test_an_ingested_asset_reads_back_and_is_in_the_ledger(service, backend):
    content = os.urandom(300 * 1024)
    blob_id = await ingest(service, content, published=True)
    assert await service.has_blob(blob_id)
    assert await read(service, blob_id) == content
    entry = (await backend.ledger.entries())[blob_id]
    assert (entry.size, entry.pinned) == (len(content), True)
    await backend.catalog.sync()  # a publish is acknowledged after this; it must not fail


async def test_an_aborted_ingest_leaves_nothing(service, backend):
    async with service.ingest() as writer:
        writer.write(b"never committed")
        info = writer.finish()
    assert not await service.has_blob(info.blob_id)
    assert await backend.ledger.entries() == {}


async def test_a_missing_or_corrupt_blob_is_forgotten(service, backend):
    gone = await ingest(service, b"soon gone")
    await backend.blobs.delete(gone)
    with pytest.raises(BlobMissing):
        await read(service, gone)
    broken = await ingest(service, os.urandom(5000))
    await backend.corrupt(broken)
    with pytest.raises(BlobCorrupt):
        await read(service, broken)
    assert await backend.ledger.entries() == {}
    assert not await service.has_blob(broken)


async def test_eviction_keeps_published_and_recently_read(service, backend):
    service.max_size = 250_000
    published = await ingest(service, os.urandom(300_000), published=True)
    cached = []
    for _ in range(4):
        cached.append(await ingest(service, os.urandom(100_000)))
        await asyncio.sleep(0.005)
    await read(service, cached[0])  # now the most recently used
    evicted = await service.evict()
    assert sorted(evicted) == sorted(cached[1:3])
    assert [await service.has_blob(b) for b in [published, *cached]] == [True, True, False, False, True]
    assert await backend.ledger.cached_size() == 200_000


async def test_a_commit_past_the_limit_evicts_in_the_background(backend):
    service = SharedBlobService(backend.blobs, backend.ledger, max_size=0, check_every=0)
    try:
        blob_id = await ingest(service, os.urandom(1000))
        for _ in range(500):
            if not await service.has_blob(blob_id):
                break
            await asyncio.sleep(0.01)
        assert not await service.has_blob(blob_id)
        assert await backend.ledger.entries() == {}
    finally:
        await service.close()


async def test_a_refused_publish_s_blob_is_removed_unless_committed_again(backend):
    service = SharedBlobService(backend.blobs, backend.ledger, max_size=10**9, catalog=backend.catalog)
    try:
        async with service.ingest() as writer:
            writer.write(b"a refused upload")
            writer.finish()
            refused = (await writer.commit(published=True)).blob_id
        assert writer.created
        service.hold(refused)
        service.release(refused, refused=True)
        async with service.ingest() as again:  # the same content is no new blob
            again.write(b"kept: another publish committed it meanwhile")
            again.finish()
            kept = (await again.commit(published=True)).blob_id
        service.hold(kept)
        async with service.ingest() as same:
            same.write(b"kept: another publish committed it meanwhile")
            same.finish()
            await same.commit(published=True)
        assert not same.created
        service.release(kept, refused=True)
        await service.close()  # waits for the removal in the background
        assert not await backend.blobs.exists(refused) and refused not in await backend.ledger.entries()
        assert await backend.blobs.exists(kept)
    finally:
        await service.close()


async def test_discard_unreferenced_keeps_what_the_catalog_still_names(backend):
    service = SharedBlobService(backend.blobs, backend.ledger, max_size=10**9, catalog=backend.catalog)
    try:
        named, dropped = await ingest(service, b"still named"), await ingest(service, b"no longer named")

        def publish(record: PackageRecord) -> None:
            record.versions["1.0"] = PackageVersionRecord(
                "1.0",
                PackageVersionOrigin("INTERNAL", "team-repo"),
                assets={"a.whl": AssetRecord("a.whl", 11, named, {})},
            )

        await backend.catalog.update_package(
            "team-repo", PackageCoordinate("pypi", "", "a"), publish, commit=True
        )
        await service.discard_unreferenced({named, dropped})
        assert await backend.blobs.exists(named) and not await backend.blobs.exists(dropped)
    finally:
        await service.close()
