"""Offloaded work (proxy.store.store.offload): large pieces run in worker threads, small ones inline,
and after a burst of large ones the C heap's free memory is given back."""

from __future__ import annotations

import asyncio
import threading

import pytest

from proxy.store import store
from proxy.store.store import INLINE_BYTES, offload


@pytest.fixture
def trimmed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the trims (each records how much offloaded work was running then)."""
    trims: list[int] = []
    monkeypatch.setattr(store, "TRIM_AFTER_BYTES", 2 * INLINE_BYTES)
    monkeypatch.setattr(store, "TRIM_DELAY", 0.01)
    monkeypatch.setattr(store, "give_back_free_memory", lambda: trims.append(1) or True)
    return trims


async def test_large_work_runs_in_a_thread_small_work_inline() -> None:
    here = threading.get_ident()
    assert await offload(INLINE_BYTES - 1, threading.get_ident) == here
    assert await offload(INLINE_BYTES, threading.get_ident) != here


async def test_free_memory_is_given_back_once_after_a_burst(trimmed: list[int]) -> None:
    await offload(INLINE_BYTES, lambda: None)
    await asyncio.sleep(0.1)
    assert trimmed == []  # not enough work yet
    release = threading.Event()
    burst = [asyncio.ensure_future(offload(INLINE_BYTES, lambda: release.wait(5))) for _ in range(3)]
    await asyncio.sleep(0.1)
    assert trimmed == []  # work still runs
    release.set()
    await asyncio.gather(*burst)
    for _ in range(100):
        if trimmed:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    assert trimmed == [1]  # one trim for the whole burst


async def test_failed_work_counts_as_ended(trimmed: list[int]) -> None:
    def fail() -> None:
        raise ValueError("broken document")

    for _ in range(2):
        with pytest.raises(ValueError):
            await offload(INLINE_BYTES, fail)
    for _ in range(100):
        if trimmed:
            break
        await asyncio.sleep(0.02)
    assert trimmed == [1]
