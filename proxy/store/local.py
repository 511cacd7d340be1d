"""The local store (``proxy.store.store.Store``: SQLite indexes and encrypted files under one directory)
as the storage services of ``proxy.store.protocols``: the first backend. ``LocalCatalog`` and
``LocalMetadata`` are its catalog and metadata backends too (``proxy.store.backends``); its ledger and
blob files are those of ``proxy.store.sqlite_backend``.

Small work (a catalog entry, a metadata document of less than ``INLINE_BYTES``, a blob's existence)
runs inline on the event loop; what reads a whole repository's listing, waits on fsync or handles a
large document runs in a worker thread (see ``proxy.store.store`` for why).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from proxy.store.catalog import ListingCursor, PackageCoordinate, PackageRecord
from proxy.store.metadata import CachedDocument
from proxy.store.protocols import AssetIngest, BlobService, CatalogService, MetadataService
from proxy.store.seekable import SeekableBlob
from proxy.store.store import Store, offload


class LocalCatalog:
    """CatalogService (and CatalogBackend) on the store's catalog."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._catalog = store.catalog

    async def package(self, repository: str, coordinate: PackageCoordinate) -> PackageRecord | None:
        return self._catalog.package(repository, coordinate)

    async def update_package(
        self,
        repository: str,
        coordinate: PackageCoordinate,
        change: Callable[[PackageRecord], None],
        *,
        commit: bool = False,
    ) -> PackageRecord:
        return self._catalog.update_package(repository, coordinate, change, commit=commit)

    async def delete_package(self, repository: str, coordinate: PackageCoordinate) -> None:
        self._catalog.delete_package(repository, coordinate)

    async def packages(self, repository: str) -> list[PackageCoordinate]:
        return await asyncio.to_thread(self._catalog.packages, repository)

    async def package_page(
        self,
        repository: str,
        cursor: ListingCursor | None,
        limit: int,
        keep: Callable[[PackageCoordinate], bool],
    ) -> tuple[list[PackageCoordinate], ListingCursor | None]:
        # Reads up to every shard when ``keep`` refuses most: off the event loop.
        return await asyncio.to_thread(self._catalog.package_page, repository, cursor, limit, keep)

    async def repositories(self) -> list[str]:
        return self._catalog.repositories()

    async def records(self) -> AsyncIterator[tuple[str, PackageRecord]]:
        for repository in await self.repositories():
            for coordinate in await self.packages(repository):
                record = self._catalog.package(repository, coordinate)
                if record is not None:
                    yield repository, record

    async def sync(self) -> None:
        await asyncio.to_thread(self._store.sync)

    async def close(self) -> None:
        self._catalog.close()


class LocalBlobs:
    """BlobService on the store's blob files."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def ingest(self) -> AbstractAsyncContextManager[AssetIngest]:
        return self._store.ingest()

    async def has_blob(self, blob_id: str) -> bool:
        # One stat of a local file: cheaper inline than a hop to a worker thread.
        return self._store.has_blob(blob_id)

    def read(self, blob_id: str) -> AsyncIterator[bytes]:
        return self._store.read(blob_id)

    def open_seekable(self, blob_id: str) -> io.RawIOBase:
        return SeekableBlob(self._store.blobs, blob_id)

    def hold(self, blob_id: str) -> None:
        self._store.hold(blob_id)

    def release(self, blob_id: str, *, refused: bool) -> None:
        self._store.release(blob_id, refused=refused)

    async def discard_unreferenced(self, blob_ids: set[str]) -> None:
        # Scanning every record is what makes "unless another version or repository still references
        # the blob" hold. A publish of the same bytes racing this could dedup onto a blob that is then
        # removed: ``verify`` reports such a version.
        if not blob_ids:
            return
        store = self._store

        def release() -> None:
            referenced = store.referenced_blobs()
            for blob_id in blob_ids - referenced:
                store.blobs.delete(blob_id)
                store.ledger.forget(blob_id)

        await asyncio.to_thread(release)


class LocalMetadata:
    """MetadataService (and MetadataBackend) on the store's metadata cache."""

    def __init__(self, store: Store) -> None:
        self._metadata = store.metadata

    async def get(self, *key: str) -> CachedDocument | None:
        return self._metadata.get(*key)

    async def put(self, doc: CachedDocument, *key: str) -> None:
        await offload(len(doc.body), lambda: self._metadata.put(doc, *key))

    async def delete(self, *key: str) -> None:
        self._metadata.delete(*key)

    async def names(self) -> list[str]:
        return self._metadata.names()

    async def check(self, name: str) -> str | None:
        return self._metadata.check(name)

    async def close(self) -> None:
        self._metadata.close()


@dataclass(frozen=True)
class StorageServices:
    """The three storage services of one backend."""

    catalog: CatalogService
    blobs: BlobService
    metadata: MetadataService


def local_services(store: Store) -> StorageServices:
    return StorageServices(LocalCatalog(store), LocalBlobs(store), LocalMetadata(store))
