"""Opening the store's backends from the configuration (``open_backends`` for maintenance,
``open_serving`` for a daemon), and the maintenance (``verify``, ``gc``) that works on any of them
through the storage protocols (``proxy.store.protocols``).

    no [store] table          the one-host store under [cache] path (SQLite and files, one process)
    [store] catalog, blobs    catalog, ledger, metadata in PostgreSQL; blobs on a shared path or in S3

The cache key (``[cache] key_file``) seals everything either way: every daemon of a shared store needs
the same key file. An S3 store's writes in progress go to a directory of their own under ``[cache] path``/tmp.

Concurrency rule: ``verify`` and ``gc`` run with every daemon of the store stopped (``gc`` would remove
a blob another daemon committed but has not entered in the catalog yet).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from proxy.config.model import CacheConfig, StoreConfig
from proxy.store.blobs import BlobStore
from proxy.store.catalog import PackageRecord
from proxy.store.entry_file import POLICIES_FILE, EntryFile
from proxy.store.keyring import KeyRing
from proxy.store.local import LocalBlobs, LocalCatalog, LocalMetadata, StorageServices, local_services
from proxy.store.protocols import (
    AssetLeases,
    BlobBackend,
    CatalogBackend,
    LedgerBackend,
    MetadataBackend,
    PackageChanges,
)
from proxy.store.repositories import RepositoryEntries
from proxy.store.shared import SharedBlobService
from proxy.store.singleflight import OneProcessLeases
from proxy.store.sqlite_backend import AsyncBlobs, SqliteLedger
from proxy.store.store import GcReport, Store, StoreUnavailable, VerifyReport

T = TypeVar("T")
log = logging.getLogger(__name__)

USAGE_REFRESH_SECONDS = 15.0  # a shared store's figures for /metrics and /-/status are this old at most


class SharedStoreUnavailable(StoreUnavailable):
    """A shared store's database or blob store cannot be used; the message says which and why."""

    def __init__(self, what: str, reason: str) -> None:
        Exception.__init__(self, f"store {what}: {reason}")


@dataclass
class StoreBackends:
    catalog: CatalogBackend
    ledger: LedgerBackend
    metadata: MetadataBackend
    blobs: BlobBackend
    close: Callable[[], Awaitable[None]]
    leases: AssetLeases  # single flight of fetches across every process of the store
    changes: PackageChanges | None = None  # a shared store's announced package changes


async def open_backends(store: StoreConfig, cache: CacheConfig) -> StoreBackends:
    """The backends ``store`` names (the one-host store when it names none); ``StoreUnavailable`` when
    one cannot be opened."""
    if not store.shared:
        return local_backends(await asyncio.to_thread(Store.open, cache))
    # Here: asyncpg only for a shared store, not for every daemon.
    from proxy.store.postgres import PostgresIndexes, PostgresUnavailable

    keyring = KeyRing.load(cache.key_file, cache.old_key_files)
    assert store.catalog is not None and store.blobs is not None  # the loader requires both
    try:
        indexes = await PostgresIndexes.open(store.catalog, keyring, lease_seconds=store.lease_timeout)
    except PostgresUnavailable as exc:
        raise SharedStoreUnavailable("catalog", str(exc)) from None
    try:
        blob_store = await asyncio.to_thread(_open_blobs, store, cache, keyring)
    except BaseException:
        await indexes.close()
        raise
    blobs = AsyncBlobs(blob_store, offload=True)

    async def close() -> None:
        await blobs.close()
        await indexes.close()

    return StoreBackends(
        indexes.catalog, indexes.ledger, indexes.metadata, blobs, close, indexes.leases, indexes.catalog
    )


def local_backends(store: Store) -> StoreBackends:
    async def close() -> None:
        await asyncio.to_thread(store.close)

    return StoreBackends(
        LocalCatalog(store),
        SqliteLedger(store.ledger),
        LocalMetadata(store),
        AsyncBlobs(store.blobs, offload=False),
        close,
        OneProcessLeases(),
    )


def _open_blobs(store: StoreConfig, cache: CacheConfig, keyring: KeyRing) -> BlobStore:
    # Here: botocore only for a shared store (its S3 client), not for every daemon.
    from botocore.exceptions import BotoCoreError, ClientError

    from proxy.store.remote_blobs import S3BlobStore, SharedBlobStore, s3_client

    assert store.blobs is not None
    s3 = store.s3
    if s3 is None:
        try:
            return SharedBlobStore(Path(store.blobs), keyring)
        except OSError as exc:
            raise SharedStoreUnavailable(f"blobs {store.blobs}", exc.strerror or str(exc)) from None
    bucket, prefix = s3
    try:
        client = s3_client(region=store.s3_region, endpoint_url=store.s3_endpoint_url)
        client.head_bucket(Bucket=bucket)  # fails now, not at the first fetch: no bucket, no access
    except (BotoCoreError, ClientError) as exc:
        raise SharedStoreUnavailable(f"blobs {store.blobs}", str(exc)) from None
    tmp = cache.path / "tmp" / f"s3-{socket.gethostname()}.{os.getpid()}"
    return S3BlobStore(client, bucket, prefix, keyring, tmp)


async def maintain(
    store: StoreConfig, cache: CacheConfig, work: Callable[[StoreBackends], Awaitable[T]]
) -> T:
    """Open the backends, run ``work`` (``verify`` or ``gc``) on them, close them."""
    opened = await open_backends(store, cache)
    try:
        return await work(opened)
    finally:
        await opened.close()


def maintain_store(
    store: StoreConfig,
    cache: CacheConfig,
    shared: Callable[[StoreBackends], Awaitable[T]],
    local: Callable[[Store], T],
) -> T:
    """Run a maintenance command (``verify``, ``gc``) on the configured store, with no daemon running:
    ``shared`` on the backends of a shared store, else ``local`` on the one-host store."""
    if store.shared:
        return asyncio.run(maintain(store, cache, shared))
    opened = Store.open(cache)
    try:
        return local(opened)
    finally:
        opened.close()


async def verify(backends: StoreBackends) -> VerifyReport:
    """Decrypt and check every blob and metadata entry, and that every published asset has its blob;
    broken blobs are removed."""
    broken: list[str] = []
    blob_ids = await backends.blobs.ids()
    for blob_id in blob_ids:
        reason = await backends.blobs.verify(blob_id)
        if reason is not None:
            await backends.ledger.forget(blob_id)
            broken.append(f"blob {blob_id}: {reason}")
    for name in await backends.metadata.names():
        reason = await backends.metadata.check(name)
        if reason is not None:
            broken.append(f"metadata entry {name}: {reason}")
    async for repository, record in backends.catalog.records():
        for version in record.versions.values():
            if version.origin.origin_type != "INTERNAL":
                continue  # cached content may have been evicted; it is fetched again on demand
            for asset in version.assets.values():
                if not await backends.blobs.exists(asset.blob_id):
                    broken.append(
                        f"repository {repository}: published asset {asset.name} "
                        f"({record.coordinate.name} {version.version}): blob {asset.blob_id} missing"
                    )
    return VerifyReport(len(blob_ids), broken)


async def gc(backends: StoreBackends) -> GcReport:
    """Remove blobs that no catalog entry references; recompute pins."""
    referenced: set[str] = set()
    published: set[str] = set()
    async for _, record in backends.catalog.records():
        referenced |= _blob_ids(record, published=False)
        published |= _blob_ids(record, published=True)
    removed = kept = 0
    entries = await backends.ledger.entries()
    removed_bytes = 0
    for blob_id in await backends.blobs.ids():
        if blob_id in referenced:
            kept += 1
            continue
        entry = entries.get(blob_id)
        removed_bytes += entry.size if entry else 0
        await backends.blobs.delete(blob_id)
        await backends.ledger.forget(blob_id)
        removed += 1
    await backends.ledger.set_pins(published)
    return GcReport(removed, removed_bytes, kept)


def _blob_ids(record: PackageRecord, *, published: bool) -> set[str]:
    return {
        asset.blob_id
        for version in record.versions.values()
        if not published or version.origin.origin_type == "INTERNAL"
        for asset in version.assets.values()
    }


# -- serving ----------------------------------------------------------------------------------------
class LedgerFigures:
    """The one-host ledger's figures, read when asked."""

    def __init__(self, store: Store) -> None:
        self._ledger = store.ledger

    @property
    def blob_count(self) -> int:
        return self._ledger.blob_count

    @property
    def cached_size(self) -> int:
        return self._ledger.cached_size

    @property
    def total_size(self) -> int:
        return sum(entry.size for entry in self._ledger.entries().values())


class SharedFigures:
    """A shared ledger's figures, refreshed in the background every ``USAGE_REFRESH_SECONDS`` (the
    ledger is a database: /metrics reads these without waiting on it)."""

    def __init__(self, ledger: LedgerBackend) -> None:
        self._ledger = ledger
        self.blob_count = 0
        self.cached_size = 0
        self.total_size = 0
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        entries = await self._ledger.entries()
        self.blob_count = len(entries)
        self.cached_size = sum(e.size for e in entries.values() if not e.pinned)
        self.total_size = sum(e.size for e in entries.values())

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(USAGE_REFRESH_SECONDS)
            try:
                await self.refresh()
            except Exception:  # the figures stay as they were; the next round tries again
                log.exception("reading the store's figures failed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@dataclass
class ServingStore:
    """A store opened for a daemon: its storage services, its figures (``blob_count``,
    ``cached_size``, ``total_size``), the local directory of this daemon (``[cache] path``: its
    writes in progress, the authorizer's files), the key ring, ``close``, its ``leases`` (single
    flight of fetches across the daemons of a shared store) and ``changes`` (what the other daemons of
    a shared store publish or change). ``local`` is the
    one-host store when it is one (None for a shared store)."""

    services: StorageServices
    figures: LedgerFigures | SharedFigures
    root: Path
    keyring: KeyRing
    close: Callable[[], Awaitable[None]]
    leases: AssetLeases  # single flight of fetches across every daemon of the store
    local: Store | None = None
    changes: PackageChanges | None = None  # None: one process, which invalidates its views itself
    repositories: RepositoryEntries | None = None  # a worker's on the one-host store (else the daemon's)
    policies: EntryFile | None = None  # a worker's policies file on the one-host store (else the default)


async def open_serving(store: StoreConfig, cache: CacheConfig, *, workers: int = 1) -> ServingStore:
    """The store ``store`` and ``cache`` name, for a daemon to serve from; ``StoreUnavailable`` when
    a part cannot be opened. One-host: index writes commit in groups on the running loop; as one of
    ``workers`` > 1 (``open_worker``), shared with the other workers of this host."""
    if not store.shared and workers > 1:
        return await open_worker(store, cache)
    if not store.shared:
        local = await asyncio.to_thread(Store.open, cache)
        local.group_commits(asyncio.get_running_loop())
        return ServingStore(
            local_services(local),
            LedgerFigures(local),
            local.root,
            local.keyring,
            lambda: asyncio.to_thread(local.close),
            OneProcessLeases(),
            local,
        )
    keyring = await asyncio.to_thread(KeyRing.load, cache.key_file, cache.old_key_files)
    opened = await open_backends(store, cache)
    blobs = SharedBlobService(opened.blobs, opened.ledger, cache.max_size, catalog=opened.catalog)
    figures = SharedFigures(opened.ledger)
    try:
        await asyncio.to_thread(lambda: (cache.path / "tmp").mkdir(parents=True, exist_ok=True))
        await figures.start()
    except BaseException:
        await opened.close()
        raise

    async def close() -> None:
        await figures.stop()
        await blobs.close()
        await opened.close()

    services = StorageServices(opened.catalog, blobs, opened.metadata)
    return ServingStore(services, figures, cache.path, keyring, close, opened.leases, changes=opened.changes)


async def open_worker(store: StoreConfig, cache: CacheConfig) -> ServingStore:
    """The one-host store for one of several workers whose parent prepared it (``Store.prepare_workers``):
    indexes shared with the other workers (no grouped commits), single flight through ``HostLeases``,
    package changes announced through ``HostChanges`` (``proxy.store.host``), eviction one worker at a
    time, and the ledger's figures recounted every ``USAGE_REFRESH_SECONDS`` (each worker counts only
    its own writes in between)."""
    # Here: diskcache (the workers' leases) only for several workers.
    from proxy.store.host import (
        POLICIES,
        AnnouncingCatalog,
        HostChanges,
        HostEntryFile,
        HostLeases,
        HostRepositoryEntries,
    )

    local = await asyncio.to_thread(Store.open, cache, workers=True)
    shared = local.root / "workers"
    try:
        changes = HostChanges(shared / "changes")
        leases = HostLeases(shared / "leases", local.keyring, ttl=store.lease_timeout)
    except OSError as exc:
        await asyncio.to_thread(local.close)
        raise StoreUnavailable(cache.path, exc) from None
    refreshing = asyncio.get_running_loop().create_task(_recount(local))

    async def close() -> None:
        refreshing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refreshing
        leases.close()
        changes.close()
        await asyncio.to_thread(local.close)

    services = StorageServices(AnnouncingCatalog(local, changes), LocalBlobs(local), LocalMetadata(local))
    repositories = HostRepositoryEntries(local.catalog.index, local.keyring, changes)
    policies = HostEntryFile(local.root / POLICIES_FILE, POLICIES, changes)
    return ServingStore(
        services,
        LedgerFigures(local),
        local.root,
        local.keyring,
        close,
        leases,
        local,
        changes,
        repositories,
        policies,
    )


async def _recount(local: Store) -> None:
    """Every ``USAGE_REFRESH_SECONDS``: the ledger's figures as every worker left them; evict if due."""
    while True:
        await asyncio.sleep(USAGE_REFRESH_SECONDS)
        try:
            await asyncio.to_thread(local.ledger.refresh)
            local.schedule_eviction()
        except Exception:  # the figures stay as they were; the next round tries again
            log.exception("recounting the store's figures failed")
