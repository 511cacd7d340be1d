"""The metadata cache's large documents (body held apart, read only when used) and the daemon's
write-behind in front of it (writes after the answer, read back at once, drained at close)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest

from proxy.store.keyring import KeyRing
from proxy.store.metadata import APART_BYTES, CachedDocument, MetadataCache, WriteBehind


def open_cache(tmp_path: Path) -> MetadataCache:
    return MetadataCache(tmp_path / "metadata", KeyRing.load(tmp_path / "cache.key"))


def large(marker: bytes, fetched_at: float = 1000.0) -> CachedDocument:
    body = marker * (APART_BYTES // len(marker) + 1)
    digest = hashlib.blake2b(body, digest_size=32).hexdigest()
    return CachedDocument(200, body, fetched_at, '"e1"', None, "application/json", digest)


def test_a_large_document_is_read_back_whole_its_body_only_when_asked_for(tmp_path):
    cache = open_cache(tmp_path)
    doc = large(b"lodash ")
    cache.put(doc, "metadata", "up", "npm", "lodash")
    reads: list[str] = []
    read, read_from = cache.index.get, cache.index.get_from
    cache.index.get = lambda name: reads.append(name) or read(name)  # type: ignore[method-assign]
    cache.index.get_from = lambda name, how: reads.append(name) or read_from(name, how)  # type: ignore[method-assign]

    kept = cache.get("metadata", "up", "npm", "lodash")

    assert kept is not None and len(reads) == 1  # the head only
    assert (kept.size, kept.digest, kept.etag, kept.fetched_at) == (doc.size, doc.digest, '"e1"', 1000.0)
    assert kept.body == doc.body and len(reads) == 2
    assert kept == doc
    assert all(cache.check(name) is None for name in cache.names())


def test_a_revalidated_document_keeps_its_body_entry_and_a_changed_one_replaces_it(tmp_path):
    cache = open_cache(tmp_path)
    cache.put(large(b"one "), "k")
    names = set(cache.names())
    assert len(names) == 2  # the head and the body apart

    kept = cache.get("k")
    assert kept is not None
    cache.put(kept.refreshed(2000.0), "k")  # a 304: the body is neither read nor written again
    assert set(cache.names()) == names
    refreshed = cache.get("k")
    assert refreshed is not None and refreshed.fetched_at == 2000.0 and refreshed.body == large(b"one ").body

    cache.put(large(b"two "), "k")
    assert len(set(cache.names())) == 3  # the head, the new body and the one it replaced
    assert kept.body == large(b"one ").body  # a reader that took the head before the change
    second = cache.get("k")
    assert second is not None and second.body == large(b"two ").body

    before_third = cache.get("k")
    cache.put(large(b"three "), "k")
    assert len(set(cache.names())) == 3 and len(names & set(cache.names())) == 1  # the head; body one is gone
    assert before_third is not None and before_third.body == large(b"two ").body
    stale = cache.get("k")
    cache.put(large(b"four "), "k")
    cache.put(large(b"five "), "k")
    with pytest.raises(LookupError):
        assert stale is not None
        stale.body  # noqa: B018 - two changes later its body is gone: never the new body as its own

    replaced = cache.get("k")
    assert replaced is not None and replaced.body == large(b"five ").body

    cache.put(CachedDocument(404, b""), "k")
    assert len(cache.names()) == 1
    cache.delete("k")
    assert cache.names() == [] and cache.get("k") is None


def test_small_documents_and_documents_without_a_digest_stay_whole(tmp_path):
    cache = open_cache(tmp_path)
    cache.put(CachedDocument(200, b"x" * (APART_BYTES * 2)), "no-digest")
    cache.put(CachedDocument(200, b"{}", digest="00"), "small")
    assert len(cache.names()) == 2
    assert cache.get("no-digest") == CachedDocument(
        200, b"x" * (APART_BYTES * 2), cache.get("no-digest").fetched_at
    )


async def test_write_behind_reads_its_own_writes_and_writes_the_latest_by_drain(tmp_path):
    cache = open_cache(tmp_path)
    behind = WriteBehind(cache)
    first, second = CachedDocument(200, b"first"), CachedDocument(200, b"second")
    await behind.put(first, "a")
    await behind.put(second, "a")  # changed again while queued: written once, the latest
    await behind.put(CachedDocument(200, b"gone"), "b")
    await behind.delete("b")
    assert await behind.get("a") == second and await behind.get("b") is None

    await behind.drain()
    assert cache.get("a") == second and cache.get("b") is None
    assert await behind.get("a") == second


async def test_write_behind_answers_before_the_store_is_written(tmp_path, monkeypatch):
    cache = open_cache(tmp_path)
    behind = WriteBehind(cache)
    gate = asyncio.Event()
    loop = asyncio.get_running_loop()
    write = cache.put

    def slow_put(doc: CachedDocument, *key: str) -> None:
        asyncio.run_coroutine_threadsafe(gate.wait(), loop).result()
        write(doc, *key)

    monkeypatch.setattr(cache, "put", slow_put)
    doc = large(os.urandom(8))
    await asyncio.wait_for(behind.put(doc, "k"), 1)  # returns while the write waits
    assert cache.get("k") is None and await behind.get("k") == doc
    gate.set()
    await behind.drain()
    assert cache.get("k") == doc


def test_a_fetched_document_that_needs_only_its_parsed_form_lets_go_of_its_body():
    from proxy.repository.fetch import Fetched, body_digest

    body = b'{"files": []}' * 1000
    parsed: list[bytes] = []
    kept = Fetched(CachedDocument(200, body), False, lambda b: parsed.append(b) or len(b))
    dropped = Fetched(CachedDocument(200, body), False, lambda b: parsed.append(b) or len(b), keep_body=False)
    assert kept.parsed() == dropped.parsed() == len(body) and kept.doc.body == body
    assert dropped.digest() == body_digest(body) and dropped.doc.size == len(body)  # made before it went
    with pytest.raises(LookupError):
        _ = dropped.doc.body
    assert dropped.parsed() == len(body) and len(parsed) == 2  # parsed once each, never again
