"""Cached package metadata documents, as fetched from one upstream (packuments, simple pages,
maven-metadata.xml), with what is needed to revalidate them (ETag, Last-Modified) and to tell fresh
from stale. A 404 is cached too, briefly, so a missing package does not cost an upstream request each time.

Entries live in an Index (``proxy.store.index``) under ``index/metadata``, named by keyed hash and
sealed like the catalog.

A store that is out of disk space (proxy.store.space) caches nothing more: ``put`` and ``delete`` log
that and return, and the document is served all the same.

Concurrency rule: whole-document replace; the last writer wins, which is right for a cache.

``WriteBehind`` takes a one-process daemon's writes off its requests' path: a cold request is answered
before the document it fetched (sealed, written) or the rendering it made is in the store.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from proxy.store.index import Index, entry_namer
from proxy.store.keyring import KeyRing
from proxy.store.sealed import SealError, seal, unseal
from proxy.store.space import unless_out_of_space

log = logging.getLogger(__name__)

# Entries are whole upstream documents (a popular packument is MBs) and renderings, besides small
# ones: with 16 KiB pages SQLite inserts and reads such entries in about half the CPU of its 4 KiB
# default, and small entries cost no more.
PAGE_SIZE = 16 * 1024


@dataclass(frozen=True)
class CachedDocument:
    status: int  # 200, or 404 for a remembered "not there"
    body: bytes
    fetched_at: float = field(default_factory=time.time)
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    # SHA-256 of ``body`` (hex), when its writer made it: an upstream document's, made once when it
    # was fetched, so that telling whether it changed never hashes the body again (nor after a restart).
    digest: str | None = None

    def age(self, now: float | None = None) -> float:
        return (now if now is not None else time.time()) - self.fetched_at


def pack_document(doc: CachedDocument) -> bytes:
    """The plaintext an entry seals: a length-prefixed JSON head, then the body."""
    head = json.dumps(
        {
            "status": doc.status,
            "fetched_at": doc.fetched_at,
            "etag": doc.etag,
            "last_modified": doc.last_modified,
            "content_type": doc.content_type,
            "digest": doc.digest,
        }
    ).encode()
    return len(head).to_bytes(4, "big") + head + doc.body


def unpack_document(plain: bytes) -> CachedDocument:
    head_len = int.from_bytes(plain[:4], "big")
    head = json.loads(plain[4 : 4 + head_len])
    return CachedDocument(body=plain[4 + head_len :], **head)


def check_entry(keyring: KeyRing, name: str, raw: bytes | None) -> str | None:
    """None if the sealed entry ``raw`` named ``name`` opens with the key ring, else why not."""
    if raw is None:
        return "missing"
    try:
        unseal(keyring, raw, context=name.encode())
    except SealError as exc:
        return str(exc)
    return None


class MetadataCache:
    def __init__(self, root: Path, keyring: KeyRing, *, shared: bool = False) -> None:
        self.index = Index(root, shared=shared, page_size=PAGE_SIZE)
        self._keyring = keyring
        self._name = entry_namer(keyring, "metadata")

    def close(self) -> None:
        self.index.close()

    def get(self, *key: str) -> CachedDocument | None:
        name = self._name(key)
        raw = self.index.get(name)
        if raw is None:
            return None
        return unpack_document(unseal(self._keyring, raw, context=name.encode()))

    def put(self, doc: CachedDocument, *key: str) -> None:
        name = self._name(key)
        with unless_out_of_space(log, "metadata not cached"):
            self.index.set(name, seal(self._keyring, pack_document(doc), context=name.encode()))

    def delete(self, *key: str) -> None:
        with unless_out_of_space(log, "metadata not removed from the cache"):
            self.index.delete(self._name(key))

    def names(self) -> list[str]:
        return self.index.names()

    def check(self, name: str) -> str | None:
        """None if the entry opens with the key ring, else the reason (for verify)."""
        return check_entry(self._keyring, name, self.index.get(name))


class WriteBehind:
    """The MetadataService of one daemon process on a one-host store (``cache``), whose writes happen
    after the request that made them, off the event loop: ``put`` and ``delete`` queue the change and
    return; one background task hands everything queued to a worker thread at once, which seals and
    writes it and commits it, while the next changes queue. Only the latest change of a key is written
    (a key changed again while queued is written once). ``get`` answers from the queue first, so the
    daemon reads its own writes at once. ``drain`` waits until the queue is written (the daemon's
    shutdown, before the store closes). More than ``MAX_QUEUED`` bytes queued make ``put`` wait for
    the queue, so that a burst of large documents does not pile up in memory.

    A write that fails is logged and dropped, like a group commit that fails (``proxy.store.index``):
    what goes through here is fetched content, fetched again when asked for, and renderings, made
    again; a full disk is ``MetadataCache``'s to log.

    Concurrency: the methods are for the event loop; ``cache`` is written from one worker thread at a
    time (its index's lock serialises it with reads from the loop)."""

    MAX_QUEUED = 64 * 1024**2

    def __init__(self, cache: MetadataCache) -> None:
        self._cache = cache
        self._queue: dict[tuple[str, ...], CachedDocument | None] = {}  # None: delete
        self._queued_bytes = 0
        self._task: asyncio.Task[None] | None = None

    async def get(self, *key: str) -> CachedDocument | None:
        if key in self._queue:
            return self._queue[key]
        return self._cache.get(*key)

    async def put(self, doc: CachedDocument, *key: str) -> None:
        if self._queued_bytes > self.MAX_QUEUED:
            await self.drain()
        self._enqueue(key, doc)

    async def delete(self, *key: str) -> None:
        self._enqueue(key, None)

    async def drain(self) -> None:
        """Return once every queued change was written (or failed and was logged)."""
        while self._task is not None:
            await asyncio.shield(self._task)

    def _enqueue(self, key: tuple[str, ...], doc: CachedDocument | None) -> None:
        self._queued_bytes += _size(doc) - _size(self._queue.pop(key, None))
        self._queue[key] = doc
        if self._task is None:
            self._task = asyncio.ensure_future(self._write_queued())

    async def _write_queued(self) -> None:
        try:
            while self._queue:
                batch = list(self._queue.items())
                try:
                    await asyncio.to_thread(self._write, batch)
                except Exception as exc:  # entries of the cache lost, never the daemon's loop
                    log.warning("cached documents were not written to the store: %s", exc)
                for key, doc in batch:
                    if key in self._queue and self._queue[key] is doc:  # not changed again meanwhile
                        del self._queue[key]
                        self._queued_bytes -= _size(doc)
        finally:
            self._task = None

    def _write(self, batch: list[tuple[tuple[str, ...], CachedDocument | None]]) -> None:
        for key, doc in batch:
            if doc is None:
                self._cache.delete(*key)
            else:
                self._cache.put(doc, *key)
        self._cache.index.end_group()


def _size(doc: CachedDocument | None) -> int:
    return 0 if doc is None else len(doc.body)
