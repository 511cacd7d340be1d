"""The one-host store's ledger and blob files as backends (``proxy.store.protocols``; its catalog and
metadata backends are ``proxy.store.local``'s), and ``AsyncBlobs`` over any synchronous ``BlobStore``
(local files, a shared path, S3).

Concurrency rule: the SQLite ledger runs inline on the event loop (their calls take microseconds, see
``proxy.store.store``); ``AsyncBlobs`` runs blob work inline for local files and in a worker thread
for stores whose calls wait on a network (``offload``).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Protocol, TypeVar

from proxy.store.blobs import BlobInfo, BlobReader, BlobWriter
from proxy.store.ledger import BlobLedger, LedgerEntry
from proxy.store.seekable import SeekableBlob

T = TypeVar("T")


class SqliteLedger:
    """``LedgerBackend`` over the SQLite ledger."""

    def __init__(self, ledger: BlobLedger) -> None:
        self.sync_ledger = ledger

    async def record(self, blob_id: str, size: int, *, pinned: bool) -> None:
        self.sync_ledger.record(blob_id, size, pinned=pinned)

    def touch(self, blob_id: str) -> None:
        self.sync_ledger.touch(blob_id)

    async def forget(self, blob_id: str) -> None:
        self.sync_ledger.forget(blob_id)

    async def flush(self) -> None:
        self.sync_ledger.flush()

    async def entries(self) -> dict[str, LedgerEntry]:
        return self.sync_ledger.entries()

    async def set_pins(self, pinned: Iterable[str]) -> None:
        self.sync_ledger.set_pins(pinned)

    async def cached_size(self) -> int:
        return self.sync_ledger.cached_size

    async def blob_count(self) -> int:
        return self.sync_ledger.blob_count

    async def evict(self, max_size: int, delete_blob: Callable[[str], Awaitable[object]]) -> list[str]:
        # The SQLite ledger deletes through a synchronous callback: collect the ids, delete after.
        chosen: list[str] = []
        evicted = self.sync_ledger.evict(max_size, chosen.append)
        for blob_id in chosen:
            await delete_blob(blob_id)
        return evicted

    async def close(self) -> None:
        self.sync_ledger.close()


class SyncBlobStore(Protocol):
    """What ``AsyncBlobs`` needs of a synchronous blob store (``proxy.store.blobs.BlobStore`` and the
    shared-path and S3 stores built on it)."""

    def writer(self) -> BlobWriter: ...

    def reader(self, blob_id: str, *, check_identity: bool = False) -> BlobReader: ...

    def exists(self, blob_id: str) -> bool: ...

    def delete(self, blob_id: str) -> bool: ...

    def ids(self) -> Iterator[str]: ...

    def verify(self, blob_id: str) -> str | None: ...

    def close(self) -> None: ...


class AsyncBlobs:
    """``BlobBackend`` over a synchronous blob store; ``offload`` runs each call in a worker thread."""

    def __init__(self, store: SyncBlobStore, *, offload: bool) -> None:
        self.sync_store = store
        self._offload = offload

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.to_thread(work) if self._offload else work()

    def writer(self) -> AsyncBlobWriter:
        return AsyncBlobWriter(self.sync_store.writer(), self._run)

    async def reader(self, blob_id: str) -> AsyncBlobReader:
        reader = await self._run(lambda: self.sync_store.reader(blob_id))
        return AsyncBlobReader(reader, self._run)

    async def exists(self, blob_id: str) -> bool:
        return await self._run(lambda: self.sync_store.exists(blob_id))

    async def delete(self, blob_id: str) -> bool:
        return await self._run(lambda: self.sync_store.delete(blob_id))

    async def ids(self) -> list[str]:
        return await self._run(lambda: list(self.sync_store.ids()))

    def open_seekable(self, blob_id: str) -> io.RawIOBase:
        return SeekableBlob(self.sync_store, blob_id)

    async def verify(self, blob_id: str) -> str | None:
        return await self._run(lambda: self.sync_store.verify(blob_id))

    async def close(self) -> None:
        self.sync_store.close()


Runner = Callable[[Callable[[], T]], Awaitable[T]]


class AsyncBlobWriter:
    """``BlobSink`` over a ``BlobWriter``: writing and hashing inline, the commit as the store runs."""

    def __init__(self, writer: BlobWriter, run: Runner) -> None:
        self._writer = writer
        self._run = run

    def write(self, data: bytes) -> None:
        self._writer.write(data)

    def finish(self) -> BlobInfo:
        return self._writer.finish()

    async def commit(self, *, durable: bool) -> BlobInfo:
        return await self._run(lambda: self._writer.commit(durable=durable))

    async def abort(self) -> None:
        self._writer.abort()


class AsyncBlobReader:
    """``BlobSource`` over a ``BlobReader``."""

    def __init__(self, reader: BlobReader, run: Runner) -> None:
        self._reader = reader
        self._run = run
        self.size = reader.size

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = iter(self._reader)
        try:
            while (chunk := await self._run(lambda: next(chunks, None))) is not None:
                yield chunk
        finally:
            self._reader.close()

    async def aclose(self) -> None:
        self._reader.close()
