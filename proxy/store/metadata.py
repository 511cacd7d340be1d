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
import functools
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from proxy.store.index import Index, entry_namer
from proxy.store.keyring import KeyRing
from proxy.store.sealed import SealError, seal, seal_to, sealed_size, unseal, unseal_from
from proxy.store.space import unless_out_of_space

log = logging.getLogger(__name__)

# Entries are whole upstream documents (a popular packument is MBs) and renderings, besides small
# ones: with 16 KiB pages SQLite inserts and reads such entries in about half the CPU of its 4 KiB
# default, and small entries cost no more.
PAGE_SIZE = 16 * 1024
# A larger body is kept in an entry of its own, apart from the document's head: telling whether the
# document is fresh, or serving what was rendered from it, then reads no body (a packument is MBs).
APART_BYTES = 64 * 1024


class CachedDocument:
    """A cached document: its status and body, and what revalidating it needs. Immutable. One read
    back from the store may hold its body apart (``MetadataCache``): ``body`` is read when first
    asked for, on the caller's thread; ``size`` and everything else are known without reading it."""

    __slots__ = (
        "_body",
        "_load",
        "content_type",
        "digest",
        "etag",
        "fetched_at",
        "last_modified",
        "size",
        "status",
    )

    def __init__(
        self,
        status: int,  # 200, or 404 for a remembered "not there"
        body: bytes,
        fetched_at: float | None = None,  # None: now
        etag: str | None = None,
        last_modified: str | None = None,
        content_type: str | None = None,
        # A digest of ``body`` (hex), when its writer made it: an upstream document's, made once when
        # it was fetched, so that telling whether it changed never hashes the body again.
        digest: str | None = None,
    ) -> None:
        self.status = status
        self._body: bytes | None = body
        self._load: Callable[[], bytes] | None = None
        self.size = len(body)
        self.fetched_at = time.time() if fetched_at is None else fetched_at
        self.etag = etag
        self.last_modified = last_modified
        self.content_type = content_type
        self.digest = digest

    @classmethod
    def apart(cls, load: Callable[[], bytes], size: int, **head: Any) -> CachedDocument:
        """A document whose ``size`` bytes of body ``load`` reads when first asked for."""
        doc = cls(body=b"", **head)
        doc._body, doc._load, doc.size = None, load, size
        return doc

    @property
    def body(self) -> bytes:
        if self._body is None:
            assert self._load is not None
            self._body, self._load = self._load(), None
        return self._body

    def refreshed(self, fetched_at: float) -> CachedDocument:
        """The same document, confirmed unchanged at ``fetched_at`` (a body held apart stays unread)."""
        doc = CachedDocument(
            self.status, b"", fetched_at, self.etag, self.last_modified, self.content_type, self.digest
        )
        doc._body, doc._load, doc.size = self._body, self._load, self.size
        return doc

    def head(self) -> CachedDocument:
        """The same document without its body (``size`` stays): for a holder that keeps what it parsed
        from the body instead. Reading its ``body`` raises LookupError."""
        return CachedDocument.apart(_let_go, self.size, **_head(self))

    def age(self, now: float | None = None) -> float:
        return (now if now is not None else time.time()) - self.fetched_at

    def _key(self) -> tuple[object, ...]:
        head = (self.status, self.fetched_at, self.etag, self.last_modified, self.content_type, self.digest)
        return (*head, self.body)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CachedDocument) and self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"CachedDocument(status={self.status}, size={self.size}, etag={self.etag!r})"


def _reader(blob: sqlite3.Blob) -> Callable[[int, int], bytes]:
    """``blob``'s bytes from ``start`` to ``end``, for ``unseal_from``."""
    return lambda start, end: blob[start:end]


def _let_go() -> bytes:
    raise LookupError("the body of this copy of the document was let go (CachedDocument.head)")


def _head(doc: CachedDocument) -> dict[str, Any]:
    return {
        "status": doc.status,
        "fetched_at": doc.fetched_at,
        "etag": doc.etag,
        "last_modified": doc.last_modified,
        "content_type": doc.content_type,
        "digest": doc.digest,
    }


def _packed(head: dict[str, Any], body: bytes) -> bytes:
    encoded = json.dumps(head).encode()
    return len(encoded).to_bytes(4, "big") + encoded + body


def _unpacked(plain: bytes) -> tuple[dict[str, Any], bytes]:
    head_len = int.from_bytes(plain[:4], "big")
    return json.loads(plain[4 : 4 + head_len]), plain[4 + head_len :]


def pack_document(doc: CachedDocument) -> bytes:
    """The plaintext an entry seals: a length-prefixed JSON head, then the body."""
    return _packed(_head(doc), doc.body)


def unpack_document(plain: bytes) -> CachedDocument:
    head, body = _unpacked(plain)
    return CachedDocument(body=body, **head)


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
        self.index = Index(root, shared=shared, page_size=PAGE_SIZE, known_names=True)
        self._keyring = keyring
        self._name = entry_namer(keyring, "metadata")

    def close(self) -> None:
        self.index.close()

    def get(self, *key: str) -> CachedDocument | None:
        name = self._name(key)
        raw = self.index.get(name)
        if raw is None:
            return None
        head, body = _unpacked(unseal(self._keyring, raw, context=name.encode()))
        apart = head.pop("apart", None)
        if apart is None:
            return CachedDocument(body=body, **head)
        return CachedDocument.apart(functools.partial(self._body, apart["entry"]), apart["size"], **head)

    def put(self, doc: CachedDocument, *key: str) -> None:
        """Keep ``doc``; a body of more than ``APART_BYTES`` with a digest goes to an entry of its own,
        written only when the digest changed (a revalidated document rewrites its head only). The body
        it replaces is kept one change longer: a reader that took the previous head before this change
        still reads its body (only two changes of one document while one request reads it, within
        ``metadata_ttl``, lose it, and that request is then answered "ask again")."""
        name = self._name(key)
        # One transaction: the workers of a host sharing the index never drop a body another one kept.
        with unless_out_of_space(log, "metadata not cached"), self.index.transaction():
            held, previous = self._held_apart(name)
            if doc.size > APART_BYTES and doc.digest is not None:
                apart = self._body_name(key, doc.digest)
                if apart != held:
                    self._set_sealed_body(apart, doc.body)
                kept = previous if apart == held else held
                head = {**_head(doc), "apart": {"entry": apart, "size": doc.size, "previous": kept}}
                plain = _packed(head, b"")
            else:
                apart, kept, plain = None, held, pack_document(doc)
            self.index.set(name, seal(self._keyring, plain, context=name.encode()))
            if previous is not None and previous not in (apart, kept):
                self.index.delete(previous)
            if kept is not None and apart is None:
                self.index.delete(kept)  # a small document now: nothing refers to a body held apart

    def _set_sealed_body(self, name: str, body: bytes) -> None:
        """Seal a body a chunk at a time into its entry: it is never copied whole, by us or SQLite."""
        context, ring = name.encode(), self._keyring
        self.index.set_from(name, sealed_size(len(body)), lambda write: seal_to(ring, body, write, context))

    def delete(self, *key: str) -> None:
        name = self._name(key)
        with unless_out_of_space(log, "metadata not removed from the cache"), self.index.transaction():
            for held in self._held_apart(name):
                if held is not None:
                    self.index.delete(held)
            self.index.delete(name)

    def _body_name(self, key: tuple[str, ...], digest: str) -> str:
        return self._name((*key, "\0body", digest))

    def _held_apart(self, name: str) -> tuple[str | None, str | None]:
        """The entry names of the body held apart for the document now kept under ``name``, and of the
        one it replaced, kept one change longer (None: none)."""
        raw = self.index.get(name)
        if raw is None:
            return None, None
        try:
            head, _ = _unpacked(unseal(self._keyring, raw, context=name.encode()))
        except SealError:
            return None, None  # overwritten either way; verify reports unreadable entries
        apart = head.get("apart")
        if apart is None:
            return None, None
        return str(apart["entry"]), apart.get("previous")

    def _body(self, name: str) -> bytes:
        """A body held apart (``name``: its entry), for ``CachedDocument.body``, on any thread."""
        context, ring = name.encode(), self._keyring
        body = self.index.get_from(name, lambda blob: unseal_from(ring, _reader(blob), len(blob), context))
        if body is None:
            raise LookupError("a cached document changed while it was read; ask again")
        return body

    def names(self) -> list[str]:
        return self.index.names()

    def check(self, name: str) -> str | None:
        """None if the entry opens with the key ring, else the reason (for verify)."""
        return check_entry(self._keyring, name, self.index.get(name))


class WriteBehind:
    """The MetadataService of one daemon process on a one-host store (``cache``), whose writes happen
    after the request that made them: ``put`` and ``delete`` queue the change and return; one
    background task hands everything queued at once to a worker thread, which seals it, writes it and
    commits the index's group of writes (``proxy.store.index``), while the next changes queue; a small
    batch is written on the loop into the group, which the store commits. Only the latest change of a key is
    written (a key changed again while queued is written once). ``get`` answers from the queue first,
    so the daemon reads its own writes at once. ``drain`` waits until the queue is written (the
    daemon's shutdown, before the store closes). More than ``MAX_QUEUED`` bytes queued make ``put``
    wait for the queue, so that a burst of large documents does not pile up in memory.

    A write that fails is logged and dropped, like a group commit that fails (``proxy.store.index``):
    what goes through here is fetched content, fetched again when asked for, and renderings, made
    again; a full disk is ``MetadataCache``'s to log.

    Concurrency: the methods are for the event loop; ``cache`` is written by one batch at a time, on
    the loop or a worker thread (its index's lock serialises that with reads from the loop)."""

    MAX_QUEUED = 64 * 1024**2
    # A smaller batch is written on the loop (a thread costs more than sealing a few KB; see
    # ``proxy.store.store.offload``), still after the answer.
    INLINE_BATCH = 64 * 1024

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
                    if sum(_size(doc) for _, doc in batch) < self.INLINE_BATCH:
                        self._write(batch)
                    else:
                        await asyncio.to_thread(self._write, batch, commit=True)
                except Exception as exc:  # entries of the cache lost, never the daemon's loop
                    log.warning("cached documents were not written to the store: %s", exc)
                for key, doc in batch:
                    if key in self._queue and self._queue[key] is doc:  # not changed again meanwhile
                        del self._queue[key]
                        self._queued_bytes -= _size(doc)
        finally:
            self._task = None

    def _write(
        self, batch: list[tuple[tuple[str, ...], CachedDocument | None]], commit: bool = False
    ) -> None:
        """Write ``batch``; ``commit``: and commit the index's group here (a worker thread), so that the
        store's timer, on the loop, does not write these many bytes to the log."""
        for key, doc in batch:
            if doc is None:
                self._cache.delete(*key)
            else:
                self._cache.put(doc, *key)
        if commit:
            self._cache.index.end_group()


def _size(doc: CachedDocument | None) -> int:
    return 0 if doc is None else doc.size
