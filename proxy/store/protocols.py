"""The storage seams: what format and repository code may ask of the store, as async protocols.

    CatalogService   repository -> package -> package version -> asset records
    BlobService      encrypted, content-addressed asset bytes: ingest, read, seekable read
    MetadataService  upstream documents cached with their freshness (and "not there" answers)

The local SQLite-and-files store (``proxy.store.local``) is the first backend. Callers await every
method; a backend runs small work inline on the event loop (the local one does: a catalog entry of a
few KB costs less than a hop to a worker thread, see ``proxy.store.store``) and offloads only what
waits on the disk's durability or handles many bytes.

Concurrency: one instance per process, used from the event loop. ``update_package``'s ``change`` runs
inline, once, on the current record; it may raise to refuse, and then nothing is written.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from proxy.store.blobs import BlobCorrupt, BlobError, BlobInfo, BlobMissing
from proxy.store.catalog import (
    AssetRecord,
    ListingCursor,
    OriginConfiguration,
    PackageCoordinate,
    PackageRecord,
    PackageVersionOrigin,
    PackageVersionRecord,
)
from proxy.store.metadata import CachedDocument

__all__ = [
    "AssetIngest",
    "AssetRecord",
    "BlobCorrupt",
    "BlobError",
    "BlobInfo",
    "BlobMissing",
    "BlobService",
    "CachedDocument",
    "CatalogService",
    "ListingCursor",
    "MetadataService",
    "OriginConfiguration",
    "PackageCoordinate",
    "PackageRecord",
    "PackageVersionOrigin",
    "PackageVersionRecord",
    "StoreDamaged",
]


class StoreDamaged(Exception):
    """A published (pinned) blob is missing or fails to authenticate: the store lost primary data,
    which no upstream can give back. Any backend raises it from ``has_blob`` and ``read``; the server
    answers it 500 naming the damage (never 404, never a refetch)."""

    def __init__(self, blob_id: str, how: str) -> None:
        self.blob_id = blob_id
        super().__init__(
            f"the proxy's store is damaged: a published file's content is {how}; "
            "the operator should run `codeartifact-proxy verify`"
        )


class CatalogService(Protocol):
    async def package(self, repository: str, coordinate: PackageCoordinate) -> PackageRecord | None:
        """The package's record in ``repository``, or None."""
        ...

    async def update_package(
        self,
        repository: str,
        coordinate: PackageCoordinate,
        change: Callable[[PackageRecord], None],
        *,
        commit: bool = False,
    ) -> PackageRecord:
        """Apply ``change`` to the package's record (a new, empty one when there is none) and write it.
        With ``commit`` the write is committed before this returns (not only grouped)."""
        ...

    async def delete_package(self, repository: str, coordinate: PackageCoordinate) -> None: ...

    async def packages(self, repository: str) -> list[PackageCoordinate]:
        """Every package ``repository`` holds (published or cached)."""
        ...

    async def package_page(
        self,
        repository: str,
        cursor: ListingCursor | None,
        limit: int,
        keep: Callable[[PackageCoordinate], bool],
    ) -> tuple[list[PackageCoordinate], ListingCursor | None]:
        """Up to ``limit`` packages of ``repository`` that ``keep`` accepts, from ``cursor`` on (None:
        the start), and the cursor of the next page (None: this was the last). A page reads the listing
        shards it spans, not the whole repository."""
        ...

    async def repositories(self) -> list[str]:
        """Every repository that holds a package."""
        ...

    def records(self) -> AsyncIterator[tuple[str, PackageRecord]]:
        """Every (repository, record)."""
        ...

    async def sync(self) -> None:
        """Make every write so far survive a power failure (a publish is acknowledged only after)."""
        ...


class AssetIngest(Protocol):
    """One asset streaming into the store (``BlobService.ingest``): ``write`` its bytes, ``finish`` to
    learn its digests, then ``commit`` (the blob becomes visible) or leave the ``async with`` to abort."""

    created: bool  # after ``commit``: this writer put the blob in the store (no copy was there)

    def write(self, data: bytes) -> None: ...

    def finish(self) -> BlobInfo: ...

    async def commit(self, *, published: bool) -> BlobInfo: ...

    async def abort(self) -> None: ...


class BlobService(Protocol):
    def ingest(self) -> AbstractAsyncContextManager[AssetIngest]:
        """A writer for one asset, used with ``async with`` (what was not committed is aborted)."""
        ...

    async def has_blob(self, blob_id: str) -> bool:
        """Whether the blob is there; raises StoreDamaged for a published one that is not."""
        ...

    def read(self, blob_id: str) -> AsyncIterator[bytes]:
        """Plaintext chunks; BlobMissing before the first when it is gone, BlobCorrupt when it fails to
        authenticate (then it has been removed); StoreDamaged instead of either for a published blob."""
        ...

    def hold(self, blob_id: str) -> None:
        """Mark a blob a publish just created (``AssetIngest.created``) provisional until ``release``: the
        publish may still check the committed file and refuse it."""
        ...

    def release(self, blob_id: str, *, refused: bool) -> None:
        """End ``hold``; a refused publish's blob is removed unless something else committed the same
        content meanwhile."""
        ...

    def open_seekable(self, blob_id: str) -> io.RawIOBase:
        """The blob as a seekable, read-only file. Blocking: call it, and read it, in a worker thread."""
        ...

    async def discard_unreferenced(self, blob_ids: set[str]) -> None:
        """Remove those of ``blob_ids`` that no package version of any repository references any more
        (called after the catalog change that dropped the references)."""
        ...


class MetadataService(Protocol):
    async def get(self, *key: str) -> CachedDocument | None: ...

    async def put(self, doc: CachedDocument, *key: str) -> None: ...

    async def delete(self, *key: str) -> None: ...
