"""The storage seams, as async protocols: what format and repository code may ask of the store (the
services), and what a store is built from (the backends).

Services (what formats, the repository code and the server use):

    CatalogService   repository -> package -> package version -> asset records
    BlobService      encrypted, content-addressed asset bytes: ingest, read, seekable read
    MetadataService  upstream documents cached with their freshness (and "not there" answers)
    AssetLeases      one locate of an asset at a time across every process serving the store
    PackageChanges   the packages other daemons of a shared store published or changed

Backends (what ``proxy.store.backends`` opens and maintenance - verify, gc - works on):

    CatalogBackend   a CatalogService that can be closed
    MetadataBackend  a MetadataService that lists and checks its entries, and can be closed
    LedgerBackend    size, pin and last access of every blob, for LRU eviction
    BlobBackend      sealed blobs by id (BlobSink to write one, BlobSource to read one)

The one-host store (``proxy.store.local``: SQLite indexes and files under one directory) is the first
backend; PostgreSQL (``proxy.store.postgres``) with blobs on a shared path or in S3
(``proxy.store.remote_blobs``) serves several daemons, its assets through
``proxy.store.shared.SharedBlobService``. Callers await every method; a backend runs small work inline
on the event loop (the local one does: a catalog entry of a few KB costs less than a hop to a worker
thread, see ``proxy.store.store``) and offloads only what waits on the disk's durability, a network
or many bytes.

Every backend keeps the store's secrecy rule: what it holds is keyed names (HMAC under the cache key)
and sealed values (AES-GCM under the cache key); it never sees a plaintext repository or package name,
a metadata document, a blob's content or a content digest. ``tests/store_contract`` is the suite every
backend passes.

Concurrency: one instance per process, used from the event loop; its methods may be awaited by many
requests at once. ``update_package``'s ``change`` runs inline, once, on the current record; it may
raise to refuse, and then nothing is written. ``update_package`` is atomic per package against every
writer of the same backend (other requests, other processes, other hosts): no update is lost.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Protocol, TypeVar

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
from proxy.store.ledger import LedgerEntry
from proxy.store.metadata import CachedDocument

__all__ = [
    "AssetIngest",
    "AssetLeases",
    "AssetRecord",
    "BlobBackend",
    "BlobCorrupt",
    "BlobError",
    "BlobInfo",
    "BlobMissing",
    "BlobService",
    "BlobSink",
    "BlobSource",
    "CachedDocument",
    "CatalogBackend",
    "CatalogService",
    "ChangeListener",
    "LedgerBackend",
    "Listening",
    "ListingCursor",
    "MetadataBackend",
    "MetadataService",
    "OriginConfiguration",
    "PackageChanges",
    "PackageCoordinate",
    "PackageRecord",
    "PackageVersionOrigin",
    "PackageVersionRecord",
    "StoreDamaged",
]


class SharedEntryUnavailable(Exception):
    """A shared store's database could not read or change one of its entries (the repository registry,
    the permissions policies); the message says why, without credentials."""


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
        With ``commit`` (a publish, a /v1 change) the write is committed before this returns (not only
        grouped) and, in a store several daemons share, announced to every one of them
        (``PackageChanges``); without it (a fetched asset's record, which is cache) it is not."""
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


T = TypeVar("T")


class AssetLeases(Protocol):
    """Single flight of asset fetches across every process that serves one store.

    ``exclusive(key, work)`` runs ``work`` while no other process of the store runs work under the
    same ``key``: the first of concurrent misses fetches and commits, the others run ``work`` after it,
    and ``work``, which looks in the catalog before it downloads, finds the committed asset. Within one
    process the caller's own single flight (``proxy.store.singleflight``) comes first, so one request
    per process waits here, not every request.

    One-host store: one process owns it, so nothing more is needed (``OneProcessLeases``). Shared
    store: a lease in the database (``PostgresLeases``), renewed while ``work`` runs; a process that
    dies mid-fetch blocks the others at most ``[store] lease_timeout``.
    """

    async def exclusive(self, key: tuple[str, ...], work: Callable[[], Awaitable[T]]) -> T:
        """``work()``'s result (or what it raises), run under ``key``'s lease."""
        ...


ChangeListener = Callable[[str, PackageCoordinate], None]


class Listening(Protocol):
    async def stop(self) -> None: ...


class PackageChanges(Protocol):
    """The packages that any daemon of a shared store changed (``update_package`` with ``commit``) or
    deleted, heard by every daemon of the store, so each drops its merged views of them at once."""

    async def listen(self, on_change: ChangeListener, on_lost: Callable[[], None]) -> Listening:
        """Call ``on_change(repository, coordinate)`` for every change committed from now on, by any
        daemon (this one too); ``on_lost()`` when changes may have been missed (the connection to the
        store dropped), so the listener forgets everything it derived from the catalog."""
        ...


class MetadataService(Protocol):
    async def get(self, *key: str) -> CachedDocument | None: ...

    async def put(self, doc: CachedDocument, *key: str) -> None: ...

    async def delete(self, *key: str) -> None: ...


# -- backends ---------------------------------------------------------------------------------------
class CatalogBackend(CatalogService, Protocol):
    """A catalog a store is opened with (SQLite, PostgreSQL)."""

    async def close(self) -> None: ...


class MetadataBackend(MetadataService, Protocol):
    """A metadata cache a store is opened with (SQLite, PostgreSQL)."""

    async def names(self) -> list[str]:
        """Every entry's keyed name (for verify)."""
        ...

    async def check(self, name: str) -> str | None:
        """None if the entry opens with the key ring, else why not."""
        ...

    async def close(self) -> None: ...


class LedgerBackend(Protocol):
    """Size, pin and last access of every blob, for LRU eviction (see ``proxy.store.ledger``)."""

    async def record(self, blob_id: str, size: int, *, pinned: bool) -> None:
        """Note a committed blob; a pin is sticky."""
        ...

    def touch(self, blob_id: str) -> None:
        """Note a read; kept in memory until ``flush`` (a warm read costs no write)."""
        ...

    async def forget(self, blob_id: str) -> None: ...

    async def flush(self) -> None: ...

    async def entries(self) -> dict[str, LedgerEntry]: ...

    async def set_pins(self, pinned: Iterable[str]) -> None:
        """Exactly these blobs are pinned from now on (gc recomputes them from the catalog)."""
        ...

    async def cached_size(self) -> int:
        """Bytes of unpinned blobs."""
        ...

    async def blob_count(self) -> int: ...

    async def evict(self, max_size: int, delete_blob: Callable[[str], Awaitable[object]]) -> list[str]:
        """Delete least-recently-used unpinned blobs until cached content fits in ``max_size``; the
        ids deleted. One eviction at a time per backend (across processes for a shared one)."""
        ...

    async def close(self) -> None: ...


class BlobSource(Protocol):
    """One blob being read: its plaintext ``size``, then its authenticated chunks, once."""

    size: int

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class BlobSink(Protocol):
    """One blob being written: ``write`` the content, ``finish`` for its digests, ``commit`` or ``abort``."""

    def write(self, data: bytes) -> None: ...

    def finish(self) -> BlobInfo: ...

    async def commit(self, *, durable: bool) -> BlobInfo:
        """Make the blob visible (the id of identical content stored before, if any)."""
        ...

    async def abort(self) -> None: ...


class BlobBackend(Protocol):
    """Sealed, content-addressed blobs by blob id (see ``proxy.store.blobs``).

    ``reader`` raises ``BlobMissing`` for an absent blob; reading a blob that fails authentication
    raises ``BlobCorrupt`` and removes it, so the caller fetches the content again."""

    def writer(self) -> BlobSink: ...

    async def reader(self, blob_id: str) -> BlobSource: ...

    async def exists(self, blob_id: str) -> bool: ...

    async def delete(self, blob_id: str) -> bool: ...

    async def ids(self) -> list[str]: ...

    def open_seekable(self, blob_id: str) -> io.RawIOBase:
        """The blob as a seekable, read-only file. Blocking: call it, and read it, in a worker thread."""
        ...

    async def verify(self, blob_id: str) -> str | None:
        """None if the blob reads back whole under its id, else why not (a corrupt one is removed)."""
        ...

    async def close(self) -> None: ...
