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
from typing import Protocol

from proxy.store.index import Index, entry_namer
from proxy.store.keyring import KeyRing
from proxy.store.sealed import SealError, seal, unseal
from proxy.store.space import unless_out_of_space

log = logging.getLogger(__name__)


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
        self.index = Index(root, shared=shared)
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


class _Documents(Protocol):
    """What ``WriteBehind`` writes to (``proxy.store.protocols.MetadataService``)."""

    async def get(self, *key: str) -> CachedDocument | None: ...

    async def put(self, doc: CachedDocument, *key: str) -> None: ...

    async def delete(self, *key: str) -> None: ...


class WriteBehind:
    """A MetadataService whose writes happen after the request that made them: ``put`` and ``delete``
    queue the change and return; one background task applies the queue to ``inner`` in order, the
    latest change of a key only (a key changed again while queued is written once). ``get`` answers
    from the queue first, so the process reads its own writes at once. ``drain`` waits until the queue
    is applied (the daemon's shutdown, before the store closes). More than ``MAX_QUEUED`` bytes queued
    make ``put`` wait for the queue, so a burst of large documents cannot pile up in memory.

    A change that fails to apply is logged and dropped: what goes through here is fetched content
    (fetched again when asked for) and renderings (made again). For one process of a one-host store:
    other processes of a shared store would see a change only once it was applied.

    Concurrency: event loop only."""

    MAX_QUEUED = 64 * 1024**2

    def __init__(self, inner: _Documents) -> None:
        self._inner = inner
        self._queue: dict[tuple[str, ...], CachedDocument | None] = {}  # None: delete
        self._queued_bytes = 0
        self._task: asyncio.Task[None] | None = None

    async def get(self, *key: str) -> CachedDocument | None:
        if key in self._queue:
            return self._queue[key]
        return await self._inner.get(*key)

    async def put(self, doc: CachedDocument, *key: str) -> None:
        if self._queued_bytes > self.MAX_QUEUED:
            await self.drain()
        self._enqueue(key, doc)

    async def delete(self, *key: str) -> None:
        self._enqueue(key, None)

    async def drain(self) -> None:
        """Return once every queued change was applied (or failed and was logged)."""
        while self._task is not None:
            await asyncio.shield(self._task)

    def _enqueue(self, key: tuple[str, ...], doc: CachedDocument | None) -> None:
        self._queued_bytes -= _size(self._queue.pop(key, None))
        self._queue[key] = doc
        self._queued_bytes += _size(doc)
        if self._task is None:
            self._task = asyncio.ensure_future(self._apply())

    async def _apply(self) -> None:
        try:
            while self._queue:
                key, doc = next(iter(self._queue.items()))
                try:
                    if doc is None:
                        await self._inner.delete(*key)
                    else:
                        await self._inner.put(doc, *key)
                except Exception as exc:  # a cache entry lost, never the daemon's loop
                    log.warning("a cached document was not written to the store: %s", exc)
                if key in self._queue and self._queue[key] is doc:  # not changed again meanwhile
                    del self._queue[key]
                    self._queued_bytes -= _size(doc)
        finally:
            self._task = None


def _size(doc: CachedDocument | None) -> int:
    return 0 if doc is None else len(doc.body)
