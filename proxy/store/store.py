"""The store: the domain's single copy of every asset and piece of metadata, on disk, encrypted.

    ROOT/store-format  the layout's version (proxy.store.version)
    ROOT/blobs/     encrypted, content-addressed blobs (BlobStore): one per distinct content
    ROOT/tmp/       writes in progress; emptied at start (what a crash left there never became visible)
    ROOT/index/     catalog (repository -> package -> package version -> asset), blob ledger, metadata
    ROOT/lock       held (flock) by the process that has the store open: one daemon, ``gc`` or ``verify``
    ROOT/workers/   what the workers of one daemon share (``proxy.store.host``); emptied at start
    ROOT/warm       what the last daemon held in memory, sealed when it stopped gracefully; taken (read
                    and deleted) by whatever opens the store next (``proxy.formats.common.warm``)

Writing an asset: ``ingest()`` gives an AssetWriter; bytes stream into a temp file while being hashed;
the caller checks the digests its metadata declared, then commits (the blob becomes visible by an atomic
rename) or aborts. Only after the commit does the caller add the asset to the catalog, so a process that
dies can leave an unreferenced blob (removed by ``gc``) but never an index entry pointing nowhere.

Durability: a published asset is the only copy, so its commit waits for fsync, and so does its catalog
entry (``sync``, before the publish is acknowledged). A fetched one is not fsynced: it can be fetched
again, every read authenticates it, and the fsync with its hand-over to a worker thread was about 40 %
of the proxy's CPU time per cold npm package (300 cold tarballs: 1.1-1.4 s of CPU with it, 0.5-0.75 s
without). After a power failure a fetched asset's entry may name a blob that is gone, empty or torn;
readers take that as a miss (a corrupt blob is removed) and fetch it again. The index's other commits
(SQLite in WAL mode, synchronous=NORMAL) make the same trade, and in the daemon they are grouped
(``group_commits``): what a cold package writes to the index is committed with what other requests
wrote in the same ``GROUP_SECONDS``, and lost if the process dies before; a publish commits at once.

Several workers (``[server] workers`` > 1): their parent takes the root's lock and opens the store once
(``prepare_workers``: the indexes are created, the temp files of a dead run removed), then each worker
opens it with ``workers=True``: its indexes shared with the others (see ``proxy.store.index``), no
temp files removed, eviction one worker at a time (a lock file under ``ROOT/workers``).

Concurrency rule: one Store per process, used from the event loop. Work that waits on the disk's
durability (fsync) or handles more than ``INLINE_BYTES`` at once runs in a worker thread (``offload``);
everything else (opening and reading files, catalog and metadata entries of a few KB in SQLite's WAL,
a chunk of encryption) runs inline: under GIL contention a hop to a worker thread costs about a
millisecond of CPU, several times that work (measured on a cold ``npm ci``: 300 tarballs took 1.7 s
with every store step in a thread, 1.1 s with every step inline).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import logging
import os
import secrets
import shutil
import sqlite3
import stat
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

from proxy.config.model import CacheConfig
from proxy.store.allocator import give_back_free_memory
from proxy.store.blobs import BlobCorrupt, BlobInfo, BlobMissing, BlobStore
from proxy.store.catalog import Catalog
from proxy.store.index import Index, IndexInUse, IndexUnavailable
from proxy.store.keyring import KeyRing, make_private_dirs
from proxy.store.ledger import BlobLedger
from proxy.store.metadata import MetadataCache
from proxy.store.protocols import StoreDamaged
from proxy.store.version import StoreFormatError, check_store_format

log = logging.getLogger(__name__)

T = TypeVar("T")
INLINE_BYTES = 64 * 1024
GROUP_SECONDS = 0.2  # an index's group of writes commits this long after it opened
WARM = "warm"  # a daemon's warm state, under the root (see the module docstring)


# Once this many bytes of offloaded work (documents parsed, merged, rendered) have run, the C heap's
# free pages go back to the system the next time no offloaded work runs for ``TRIM_DELAY`` seconds
# (proxy.store.allocator): what a burst of large documents took is not kept in the idle daemon's RSS.
TRIM_AFTER_BYTES = 16 * 1024 * 1024
TRIM_DELAY = 1.0


class _Bursts:
    """Offloaded work of one event loop, to give the heap's free memory back after each burst. Used
    from its loop only."""

    def __init__(self) -> None:
        self.running = 0  # pieces of work in worker threads
        self._since_trim = 0  # bytes of work run since the heap was last trimmed
        self._trim: asyncio.TimerHandle | None = None
        self._trimming: asyncio.Future[bool] | None = None

    def done(self, size: int) -> None:
        self.running -= 1
        self._since_trim += size
        if self.running == 0 and self._since_trim >= TRIM_AFTER_BYTES:
            if self._trim is not None:
                self._trim.cancel()
            self._trim = asyncio.get_running_loop().call_later(TRIM_DELAY, self._give_back)

    def _give_back(self) -> None:
        self._trim = None
        if self.running or (self._trimming is not None and not self._trimming.done()):
            return  # the next piece of work to end schedules it again
        self._since_trim = 0
        self._trimming = asyncio.ensure_future(asyncio.to_thread(give_back_free_memory))


_bursts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Bursts] = weakref.WeakKeyDictionary()


def _commit_later(loop: asyncio.AbstractEventLoop, index: Index) -> None:
    """Commit ``index``'s group ``GROUP_SECONDS`` from now, on ``loop``, which never waits for it: while
    a worker thread holds the index (writing, or committing, a batch of its own), it tries again later."""

    def commit() -> None:
        if not index.end_group_unless_busy():
            _commit_later(loop, index)

    loop.call_later(GROUP_SECONDS, commit)


async def offload(size: int, work: Callable[[], T]) -> T:
    """Run ``work``, which handles about ``size`` bytes, inline when that is small, else in a thread."""
    if size < INLINE_BYTES:
        return work()
    loop = asyncio.get_running_loop()
    bursts = _bursts.get(loop)
    if bursts is None:
        bursts = _bursts[loop] = _Bursts()
    bursts.running += 1
    try:
        return await asyncio.to_thread(work)
    finally:
        bursts.done(size)


class AssetWriter:
    """Streams one asset into the store; ``finish`` to learn its digests, then ``commit`` or ``abort``.
    Used with ``async with``, it aborts what was not committed."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._blob = store.blobs.writer()  # no file yet: see BlobWriter
        self.created = False  # set by commit: this writer put the blob in the store (none was there)

    def write(self, data: bytes) -> None:
        self._blob.write(data)

    def finish(self) -> BlobInfo:
        return self._blob.finish()

    async def commit(self, *, published: bool) -> BlobInfo:
        created = self._blob.prepare_commit()
        if created:
            if published:
                await asyncio.to_thread(self._blob.place, durable=True)
            else:
                self._blob.place(durable=False)
        elif published:
            # Stored before, maybe as a small blob fetched a moment ago: committed now, not with a
            # group that could fail after the publish was acknowledged (``sync`` makes it durable).
            self._store.blobs.small.commit()
        info = self._blob.complete_commit()
        self._store.ledger.record(info.blob_id, info.size, pinned=published)
        self._store.schedule_eviction()
        self._store._claimed(info.blob_id)
        self.created = created
        return info

    async def abort(self) -> None:
        self._blob.abort()  # nothing once committed

    async def __aenter__(self) -> AssetWriter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.abort()


class StoreUnavailable(Exception):
    """The cache directory cannot be opened: the message names it and says why (a path that is not a
    directory, no permission, a full disk, another process using it)."""

    def __init__(
        self, path: Path, cause: OSError | sqlite3.Error | IndexUnavailable | StoreFormatError
    ) -> None:
        if isinstance(cause, OSError):
            reason = cause.strerror or str(cause)
            if cause.filename and cause.filename != str(path):
                reason = f"{cause.filename}: {reason}"
        else:
            reason = str(cause)
        super().__init__(f"cache {path}: {reason}")


@dataclass(frozen=True)
class GcReport:
    removed_blobs: int
    removed_bytes: int
    kept_blobs: int


@dataclass(frozen=True)
class VerifyReport:
    checked_blobs: int
    broken: list[str]  # "what: reason" lines, naming blob ids or entries, never content

    @property
    def ok(self) -> bool:
        return not self.broken


def private_root(root: Path) -> None:
    """Create the cache root with mode 0700, or take group and other access away from one that
    exists: everything inside is encrypted, but names, sizes and the index files are not for others."""
    make_private_dirs(root)
    mode = stat.S_IMODE(root.stat().st_mode)
    if mode & 0o077:
        os.chmod(root, mode & 0o700)


class RootLock:
    """The root's lock (``ROOT/lock``, an flock): held by whatever has the store open, so that a second
    daemon, ``gc`` or ``verify`` is refused while one runs. Forked workers share their parent's."""

    def __init__(self, root: Path) -> None:
        self._fd = os.open(root / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise IndexInUse("in use by another process (a running daemon?); stop it first") from None

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class Store:
    def __init__(self, root: Path, keyring: KeyRing, max_size: int, *, workers: bool = False) -> None:
        """Open the store under ``root``; ``workers``: as one of several workers whose parent holds the
        root's lock (see ``prepare_workers``), else alone."""
        self.root = root
        self.keyring = keyring
        self.max_size = max_size
        self.workers = workers
        private_root(root)
        check_store_format(root)
        # The lock first: it refuses a second process before anything under ``tmp/`` is touched.
        self._root_lock = None if workers else RootLock(root)
        self._warm_out: Path | None = None
        with contextlib.ExitStack() as opened:
            if self._root_lock is not None:
                opened.callback(self._root_lock.release)
            # Taken by every opener, so that a daemon's warm state is only restored into the store as
            # that daemon left it (a command that opens the store in between drops it).
            self.warm: BinaryIO | None = None if workers else self._take_warm()
            if self.warm is not None:
                opened.callback(self.warm.close)
            self.catalog = Catalog(root / "index" / "catalog", keyring, shared=workers)
            opened.callback(self.catalog.close)
            self.ledger = BlobLedger(root / "index" / "ledger", shared=workers)
            opened.callback(self.ledger.close)
            self.metadata = MetadataCache(root / "index" / "metadata", keyring, shared=workers)
            opened.callback(self.metadata.close)
            self.blobs = BlobStore(root, keyring, shared=workers)
            opened.pop_all()
        self._indexes = (self.catalog.index, self.ledger.index, self.metadata.index, self.blobs.small)
        self._eviction_lock = threading.Lock()
        self.damaged: set[str] = set()  # published blobs found missing or corrupt since start
        self._provisional: dict[str, bool] = {}  # held blob -> committed again by someone else since

    @classmethod
    def open(cls, cache: CacheConfig, *, workers: bool = False) -> Store:
        """The store of ``cache``; StoreUnavailable when its directory or index cannot be opened."""
        keyring = KeyRing.load(cache.key_file, cache.old_key_files)
        try:
            return cls(cache.path, keyring, cache.max_size, workers=workers)
        except (OSError, sqlite3.Error, IndexUnavailable, StoreFormatError) as exc:
            raise StoreUnavailable(cache.path, exc) from None

    @classmethod
    def prepare_workers(cls, cache: CacheConfig) -> RootLock:
        """For a parent about to start workers on ``cache``'s store: open it alone once (creating its
        indexes, removing what a dead run left in ``tmp/`` and ``workers/``), close it, and return the
        root's lock, which the parent (and its workers, through fork) hold while they serve."""
        store = cls.open(cache)
        lock, store._root_lock = store._root_lock, None
        assert lock is not None
        try:
            store.close()
            shutil.rmtree(cache.path / "workers", ignore_errors=True)
            make_private_dirs(cache.path / "workers")
        except BaseException:
            lock.release()
            raise
        return lock

    def group_commits(self, loop: asyncio.AbstractEventLoop) -> None:
        """From now on index writes commit in groups (see proxy.store.index), each ``GROUP_SECONDS``
        after it opened, on ``loop``."""
        for index in self._indexes:
            index.group_commits(functools.partial(loop.call_soon_threadsafe, _commit_later, loop, index))

    def sync(self) -> None:
        """Make the catalog and the ledger survive a power failure as they are now: a publish is
        acknowledged only after this (its blob was fsynced when committed)."""
        self.catalog.sync()
        self.ledger.sync()
        self.blobs.small.sync()  # a publish of content fetched before is stored as that small blob

    def _take_warm(self) -> BinaryIO | None:
        """The warm state the last daemon left (sealed), open for reading and already deleted."""
        try:
            warm = (self.root / WARM).open("rb")
        except FileNotFoundError:
            return None
        (self.root / WARM).unlink()
        return warm

    @contextlib.contextmanager
    def keeping_warm(self) -> Iterator[BinaryIO]:
        """A private file for a daemon's warm state, left for the next opener if the block ends without
        an error: it becomes ``ROOT/warm`` when ``close`` has closed the indexes, while the root's lock
        is still held (until then it lies in ``tmp/``, emptied at start)."""
        temp = self.root / "tmp" / f"warm.{secrets.token_hex(8)}"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as file:
                yield file
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        self._warm_out = temp

    def close(self) -> None:
        try:
            self.ledger.close()
            self.catalog.close()
            self.metadata.close()
            self.blobs.close()
            if self.warm is not None:
                self.warm.close()  # not taken by a daemon: dropped
            if self._warm_out is not None:
                try:
                    os.replace(self._warm_out, self.root / WARM)
                except OSError as exc:  # the next daemon starts cold
                    log.warning("the warm state was not kept: %s", exc)
        finally:
            if self._root_lock is not None:
                self._root_lock.release()

    # -- assets -----------------------------------------------------------------------------------
    def ingest(self) -> AssetWriter:
        """An AssetWriter, to use with ``async with`` (it aborts what was not committed)."""
        return AssetWriter(self)

    def has_blob(self, blob_id: str) -> bool:
        """Whether the blob is there. A cached blob may have been evicted (False: fetch it again); a
        pinned one never is, so its absence raises StoreDamaged."""
        if self.blobs.exists(blob_id):
            return True
        if self.ledger.pinned(blob_id):
            raise self._damaged(blob_id, "missing")
        return False

    async def read(self, blob_id: str) -> AsyncIterator[bytes]:
        """Plaintext chunks of a blob. Raises BlobMissing before the first chunk if it is gone; a blob that
        fails to authenticate raises BlobCorrupt (it has been removed and logged by then). For a pinned
        (published) blob both raise StoreDamaged instead: there is no other copy to fetch."""
        try:
            reader = self.blobs.reader(blob_id)
        except BlobMissing:
            if self.ledger.pinned(blob_id):
                raise self._damaged(blob_id, "missing") from None
            self.ledger.forget(blob_id)
            raise
        self.ledger.touch(blob_id)
        try:
            with reader:
                for chunk in reader:
                    yield chunk
        except BlobCorrupt:
            if self.ledger.pinned(blob_id):
                raise self._damaged(blob_id, "corrupt") from None
            self.ledger.forget(blob_id)
            raise

    # -- provisional blobs: committed for a publish that may still be refused ----------------------------
    def hold(self, blob_id: str) -> None:
        """Mark a blob this publish just created (``AssetWriter.created``) as provisional until
        ``release``: a publish may check a committed file (a wheel's METADATA) and refuse it."""
        self._provisional[blob_id] = False

    def release(self, blob_id: str, *, refused: bool) -> None:
        """End ``hold``. A refused publish's blob is removed, unless anything else committed the same
        content meanwhile (another publish or a fetch, which may reference it by now)."""
        shared = self._provisional.pop(blob_id, True)
        if refused and not shared:
            self.blobs.delete(blob_id)
            self.ledger.forget(blob_id)

    def _claimed(self, blob_id: str) -> None:
        if blob_id in self._provisional:
            self._provisional[blob_id] = True

    def _damaged(self, blob_id: str, how: str) -> StoreDamaged:
        """Note a published blob found missing or corrupt (``damaged``, shown by /readyz)."""
        if blob_id not in self.damaged:
            self.damaged.add(blob_id)
            log.error(
                "the store is damaged: published blob %s is %s; run `codeartifact-proxy verify`", blob_id, how
            )
        return StoreDamaged(blob_id, how)

    # -- eviction, gc, verify ---------------------------------------------------------------------
    def schedule_eviction(self) -> None:
        if self.ledger.cached_size > self.max_size and not self._eviction_lock.locked():
            asyncio.get_running_loop().run_in_executor(None, self.evict)

    def evict(self) -> list[str]:
        with self._eviction_lock:
            if not self.workers:
                return self.ledger.evict(self.max_size, self.blobs.delete)
            with _file_lock(self.root / "workers" / "evict.lock") as locked:
                # Another worker evicting now frees the space for every worker: nothing to do here.
                return self.ledger.evict(self.max_size, self.blobs.delete) if locked else []

    def published_blobs(self) -> set[str]:
        return {
            asset.blob_id
            for _, record in self.catalog.records()
            for version in record.versions.values()
            if version.origin.origin_type == "INTERNAL"
            for asset in version.assets.values()
        }

    def referenced_blobs(self) -> set[str]:
        return {
            asset.blob_id
            for _, record in self.catalog.records()
            for version in record.versions.values()
            for asset in version.assets.values()
        }

    def gc(self) -> GcReport:
        """Remove blobs that no catalog entry references; recompute pins; compact the index files.
        Run with the daemon stopped."""
        referenced = self.referenced_blobs()
        removed = removed_bytes = kept = 0
        for blob_id in list(self.blobs.ids()):
            if blob_id in referenced:
                kept += 1
                continue
            removed_bytes += self.blobs.disk_size(blob_id)
            self.blobs.delete(blob_id)
            self.ledger.forget(blob_id)
            removed += 1
        self.ledger.set_pins(self.published_blobs())
        for index in self._indexes:
            index.compact()
        return GcReport(removed, removed_bytes, kept)

    def verify(self) -> VerifyReport:
        """Decrypt and check every blob and every index entry; broken blobs are removed."""
        broken: list[str] = []
        checked = 0
        for blob_id in list(self.blobs.ids()):
            checked += 1
            reason = self.blobs.verify(blob_id)
            if reason is not None:
                self.ledger.forget(blob_id)
                broken.append(f"blob {blob_id}: {reason}")
        for name in self.metadata.names():
            reason = self.metadata.check(name)
            if reason is not None:
                broken.append(f"metadata entry {name}: {reason}")
        for repository, record in self.catalog.records():
            for version in record.versions.values():
                if version.origin.origin_type != "INTERNAL":
                    continue  # cached content may have been evicted; it is fetched again on demand
                for asset in version.assets.values():
                    if not self.blobs.exists(asset.blob_id):
                        broken.append(
                            f"repository {repository}: published asset {asset.name} "
                            f"({record.coordinate.name} {version.version}): blob {asset.blob_id} missing"
                        )
        return VerifyReport(checked, broken)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[bool]:
    """Hold an flock on ``path`` if no other process does; yields whether it was taken."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
