"""The storage backends' seams: what the store asks of a catalog, a blob ledger, a metadata cache and a
blob store, as async protocols, so that one store can be SQLite and files on one host
(``proxy.store.sqlite_backend``) or PostgreSQL plus a shared path or S3 for several daemons
(``proxy.store.postgres``, ``proxy.store.remote_blobs``).

Every backend keeps the store's secrecy rule: what it holds is keyed names (HMAC under the cache key)
and sealed values (AES-GCM under the cache key); it never sees a plaintext repository or package name,
a metadata document, a blob's content or a content digest. ``tests/store_contract`` is the suite every
backend passes.

Concurrency rule: a backend object belongs to one event loop; its methods may be awaited by many
requests at once. ``update_package`` is atomic per package against every writer of the same backend
(other requests, other processes, other hosts): no update is lost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Protocol

from proxy.store.blobs import BlobInfo
from proxy.store.catalog import PackageCoordinate, PackageRecord
from proxy.store.ledger import LedgerEntry
from proxy.store.metadata import CachedDocument


class CatalogBackend(Protocol):
    """repository -> package -> package version -> asset, sealed (see ``proxy.store.catalog``)."""

    async def package(self, repository: str, coordinate: PackageCoordinate) -> PackageRecord | None: ...

    async def update_package(
        self,
        repository: str,
        coordinate: PackageCoordinate,
        change: Callable[[PackageRecord], None],
        *,
        commit: bool = False,
    ) -> PackageRecord:
        """Apply ``change`` to the record (created if new) and store it atomically; ``commit``: durable
        before this returns."""
        ...

    async def delete_package(self, repository: str, coordinate: PackageCoordinate) -> None: ...

    async def packages(self, repository: str) -> list[PackageCoordinate]: ...

    async def repositories(self) -> list[str]: ...

    def records(self) -> AsyncIterator[tuple[str, PackageRecord]]:
        """Every package record of every repository (gc, verify, the control plane)."""
        ...

    async def sync(self) -> None:
        """Make every update so far survive a power failure (a publish is acknowledged only after)."""
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


class MetadataBackend(Protocol):
    """Cached upstream metadata documents by logical key (see ``proxy.store.metadata``)."""

    async def get(self, *key: str) -> CachedDocument | None: ...

    async def put(self, doc: CachedDocument, *key: str) -> None: ...

    async def delete(self, *key: str) -> None: ...

    async def names(self) -> list[str]:
        """Every entry's keyed name (for verify)."""
        ...

    async def check(self, name: str) -> str | None:
        """None if the entry opens with the key ring, else why not."""
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

    async def verify(self, blob_id: str) -> str | None:
        """None if the blob reads back whole under its id, else why not (a corrupt one is removed)."""
        ...

    async def close(self) -> None: ...
