"""Offloaded work (proxy.store.store.offload): large pieces run in worker threads, at most
``OFFLOAD_BYTES`` of them at once, and after a burst the C heap's free memory is given back."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from proxy.store import store
from proxy.store.store import INLINE_BYTES, offload


class Running:
    """Work that records how many bytes of it run at once."""

    def __init__(self) -> None:
        self.now = self.most = 0
        self.lock = threading.Lock()

    def work(self, size: int, release: threading.Event | None = None) -> int:
        with self.lock:
            self.now += size
            self.most = max(self.most, self.now)
        if release is not None:
            release.wait(5)
        else:
            time.sleep(0.01)
        with self.lock:
            self.now -= size
        return size


@pytest.fixture
def limit(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(store, "OFFLOAD_BYTES", 4 * INLINE_BYTES)
    return 4 * INLINE_BYTES


async def test_offloaded_work_runs_at_most_the_limit_at_once(limit: int) -> None:
    running = Running()
    sizes = [INLINE_BYTES, 2 * INLINE_BYTES, 3 * INLINE_BYTES] * 4
    done = await asyncio.gather(*(offload(size, lambda s=size: running.work(s)) for size in sizes))
    assert done == sizes
    assert INLINE_BYTES < running.most <= limit


async def test_a_piece_past_the_limit_runs_alone_and_small_work_stays_inline(limit: int) -> None:
    running = Running()
    big = asyncio.ensure_future(offload(2 * limit, lambda: running.work(2 * limit)))
    small = asyncio.ensure_future(offload(INLINE_BYTES, lambda: running.work(INLINE_BYTES)))
    assert await asyncio.gather(big, small) == [2 * limit, INLINE_BYTES]
    assert running.most == 2 * limit
    assert await offload(10, threading.get_ident) == threading.get_ident()  # inline: this thread


async def test_a_cancelled_waiter_leaves_nothing_admitted(limit: int) -> None:
    running, release = Running(), threading.Event()
    first = asyncio.ensure_future(offload(limit, lambda: running.work(limit, release)))
    await asyncio.sleep(0.05)
    waiter = asyncio.ensure_future(offload(limit, lambda: running.work(limit)))
    await asyncio.sleep(0.05)
    waiter.cancel()
    release.set()
    assert await first == limit
    with pytest.raises(asyncio.CancelledError):
        await waiter
    # Nothing is left counted: a piece of the whole limit is admitted at once.
    assert await asyncio.wait_for(offload(limit, lambda: running.work(limit)), 5) == limit
    assert running.most == limit


async def test_free_memory_is_given_back_after_a_burst(monkeypatch: pytest.MonkeyPatch) -> None:
    trimmed = threading.Event()
    monkeypatch.setattr(store, "TRIM_AFTER_BYTES", 2 * INLINE_BYTES)
    monkeypatch.setattr(store, "TRIM_DELAY", 0.01)
    monkeypatch.setattr(store, "give_back_free_memory", lambda: trimmed.set() or True)
    await offload(INLINE_BYTES, lambda: None)
    await asyncio.sleep(0.1)
    assert not trimmed.is_set()  # not enough work yet
    await offload(INLINE_BYTES, lambda: None)
    assert await asyncio.to_thread(trimmed.wait, 5)
