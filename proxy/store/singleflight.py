"""Single flight: concurrent callers asking for the same key share one piece of work (``SingleFlight``,
within one process); ``OneProcessLeases``, the ``AssetLeases`` of a store one process owns.

Concurrency rule: the work runs in its own task, so a caller that is cancelled (a client that hung up)
does not cancel it for the others; the key is forgotten as soon as the work ends, so the next call after
a failure tries again instead of replaying the old error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._inflight: dict[Hashable, asyncio.Task[T]] = {}

    def __len__(self) -> int:
        return len(self._inflight)

    async def do(self, key: Hashable, work: Callable[[], Awaitable[T]]) -> T:
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(work())
            self._inflight[key] = task
            task.add_done_callback(lambda _t: self._forget(key, _t))
        return await asyncio.shield(task)

    def _forget(self, key: Hashable, task: asyncio.Task[T]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # mark retrieved: a failure with no waiter left must not warn at exit


class OneProcessLeases:
    """``AssetLeases`` of the one-host store: one process owns it (its indexes are locked), and its
    callers' ``SingleFlight`` already makes concurrent misses of that process one, so ``work`` runs
    as it is."""

    async def exclusive(self, key: tuple[str, ...], work: Callable[[], Awaitable[T]]) -> T:
        return await work()
