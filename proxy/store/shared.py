"""The store's asset service over any backends (``proxy.store.protocols``): what the one-host
``Store`` does with its blob files and ledger (ingest, read, evict), for a store that several daemons
share (PostgreSQL ledger, blobs on a shared path or in S3).

``SharedBlobService`` has the methods of the formats' blob service (``ingest``, ``has_blob``,
``read``); the catalog and metadata backends have those of the formats' catalog and metadata
services already.

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
from proxy.store.protocols import BlobBackend, BlobSink, LedgerBackend

log = logging.getLogger(__name__)

EVICTION_CHECK_SECONDS = 5.0


class SharedIngest:
    """One asset streaming in: ``write``, ``finish`` for its digests, then ``commit`` or leave the
    ``async with`` (which aborts what was not committed)."""

    def __init__(self, service: SharedBlobService) -> None:
        self._service = service
        self._sink: BlobSink = service.blobs.writer()

    def write(self, data: bytes) -> None:
        self._sink.write(data)

    def finish(self) -> BlobInfo:
        return self._sink.finish()

    async def commit(self, *, published: bool) -> BlobInfo:
        """Store the blob (durably when ``published``: the only copy) and record it in the ledger,
        pinned when ``published``."""
        info = await self._sink.commit(durable=published)
        await self._service.ledger.record(info.blob_id, info.size, pinned=published)
        self._service.schedule_eviction()
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
        check_every: float = EVICTION_CHECK_SECONDS,
    ) -> None:
        self.blobs = blobs
        self.ledger = ledger
        self.max_size = max_size
        self._check_every = check_every
        self._last_check = -check_every
        self._task: asyncio.Task[None] | None = None

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
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.ledger.flush()
