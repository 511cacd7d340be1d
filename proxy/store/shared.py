"""The store's asset service over any backends (``proxy.store.protocols``): what the one-host
``Store`` does with its blob files and ledger (ingest, read, evict), for a store that several daemons
share (PostgreSQL ledger, blobs on a shared path or in S3).

``SharedBlobService`` has the methods of the formats' blob service (``ingest``, ``has_blob``,
``read``, ``hold``/``release`` for a publish that may still be refused, ``discard_unreferenced``); the
catalog and metadata backends have those of the formats' catalog and metadata services already.

A refused publish's blob (``release(refused=True)``) is removed unless this daemon committed the same
content meanwhile; another daemon committing the very same bytes within that moment would find its
blob gone at the next read and fetch it again (as after an eviction).

Eviction: after a commit, at most every ``EVICTION_CHECK_SECONDS``, one background task asks the
ledger for the cached size and evicts past ``max_size``; the ledger's lock makes it one eviction at a
time across daemons. Reads are noted in memory and flushed to the ledger by that task and at close.

A blob the eviction removed between another daemon's dedup check and its ledger record leaves a
catalog entry naming a missing blob: the next read raises ``BlobMissing``, forgets it, and the
caller fetches the content again, as after a power failure in the one-host store.

Concurrency rule: one instance per daemon, on its event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections.abc import AsyncIterator
from types import TracebackType

from proxy.store.blobs import BlobCorrupt, BlobInfo, BlobMissing
from proxy.store.protocols import BlobBackend, BlobSink, CatalogService, LedgerBackend

log = logging.getLogger(__name__)

EVICTION_CHECK_SECONDS = 5.0


class SharedIngest:
    """One asset streaming in: ``write``, ``finish`` for its digests, then ``commit`` or leave the
    ``async with`` (which aborts what was not committed)."""

    def __init__(self, service: SharedBlobService) -> None:
        self._service = service
        self._sink: BlobSink = service.blobs.writer()
        # Set by a published commit: this writer put the blob in the store (none was there). A fetch's
        # commit does not look (a round trip to the blob store), nor does anything read it after one.
        self.created = False

    def write(self, data: bytes) -> None:
        self._sink.write(data)

    def finish(self) -> BlobInfo:
        return self._sink.finish()

    async def commit(self, *, published: bool) -> BlobInfo:
        """Store the blob (durably when ``published``: the only copy) and record it in the ledger,
        pinned when ``published``."""
        existed = published and await self._service.blobs.exists(self._sink.finish().blob_id)
        info = await self._sink.commit(durable=published)
        await self._service.ledger.record(info.blob_id, info.size, pinned=published)
        self._service.claimed(info.blob_id)
        self._service.schedule_eviction()
        self.created = published and not existed
        return info

    async def abort(self) -> None:
        await self._sink.abort()

    async def __aenter__(self) -> SharedIngest:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.abort()


class SharedBlobService:
    """Assets in ``blobs``, accounted in ``ledger``, cached content evicted past ``max_size``."""

    def __init__(
        self,
        blobs: BlobBackend,
        ledger: LedgerBackend,
        max_size: int,
        *,
        catalog: CatalogService | None = None,
        check_every: float = EVICTION_CHECK_SECONDS,
    ) -> None:
        self.blobs = blobs
        self.ledger = ledger
        self.max_size = max_size
        self._catalog = catalog  # for discard_unreferenced
        self._check_every = check_every
        self._last_check = -check_every
        self._task: asyncio.Task[None] | None = None
        self._provisional: dict[str, bool] = {}  # held blob -> committed again by something else
        self._discarding: set[asyncio.Task[None]] = set()

    def hold(self, blob_id: str) -> None:
        """Mark a blob a publish just created (``SharedIngest.created``) provisional until ``release``."""
        self._provisional[blob_id] = False

    def release(self, blob_id: str, *, refused: bool) -> None:
        """End ``hold``; a refused publish's blob is removed (in the background) unless this daemon
        committed the same content meanwhile."""
        claimed = self._provisional.pop(blob_id, True)
        if refused and not claimed:
            task = asyncio.get_running_loop().create_task(self._discard(blob_id))
            self._discarding.add(task)
            task.add_done_callback(self._discarding.discard)

    def claimed(self, blob_id: str) -> None:
        if blob_id in self._provisional:
            self._provisional[blob_id] = True

    async def _discard(self, blob_id: str) -> None:
        try:
            await self.ledger.forget(blob_id)
            await self.blobs.delete(blob_id)
        except Exception:  # gc removes it later; nothing references it
            log.exception("removing a refused publish's blob failed")

    async def discard_unreferenced(self, blob_ids: set[str]) -> None:
        """Remove those of ``blob_ids`` that no package version of any repository references (after
        the catalog change that dropped them). Reads every record, as the one-host store does."""
        if not blob_ids or self._catalog is None:
            return
        left = set(blob_ids)
        async for _repository, record in self._catalog.records():
            for version in record.versions.values():
                left -= {asset.blob_id for asset in version.assets.values()}
            if not left:
                return
        for blob_id in left:
            await self._discard(blob_id)

    def ingest(self) -> SharedIngest:
        return SharedIngest(self)

    async def has_blob(self, blob_id: str) -> bool:
        return await self.blobs.exists(blob_id)

    async def read(self, blob_id: str) -> AsyncIterator[bytes]:
        """Plaintext chunks; ``BlobMissing`` before the first when it is gone, ``BlobCorrupt`` when it
        fails to authenticate (it has been removed then); either way the ledger forgets it."""
        try:
            source = await self.blobs.reader(blob_id)
        except BlobMissing:
            await self.ledger.forget(blob_id)
            raise
        self.ledger.touch(blob_id)
        try:
            async for chunk in source:
                yield chunk
        except BlobCorrupt:
            await self.ledger.forget(blob_id)
            raise
        finally:
            await source.aclose()

    def open_seekable(self, blob_id: str) -> io.RawIOBase:
        """The blob as a seekable file (blocking: use it from a worker thread)."""
        self.ledger.touch(blob_id)
        return self.blobs.open_seekable(blob_id)

    def schedule_eviction(self) -> None:
        """Check the cached size soon, in the background, unless a check ran or runs already."""
        now = time.monotonic()
        if (self._task is None or self._task.done()) and now - self._last_check >= self._check_every:
            self._last_check = now
            self._task = asyncio.get_running_loop().create_task(self._check())

    async def _check(self) -> None:
        try:
            await self.evict()
        except Exception:  # the next commit checks again; the daemon goes on serving meanwhile
            log.exception("eviction failed")

    async def evict(self) -> list[str]:
        """Flush reads to the ledger, then evict least-recently-used cached blobs past ``max_size``."""
        await self.ledger.flush()
        if await self.ledger.cached_size() <= self.max_size:
            return []

        async def delete(blob_id: str) -> None:
            await self.blobs.delete(blob_id)

        return await self.ledger.evict(self.max_size, delete)

    async def close(self) -> None:
        for task in list(self._discarding):
            with contextlib.suppress(Exception):
                await task
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.ledger.flush()
