"""Reading a shared entry again when a notice says another daemon changed it (``PostgresEntry.watch``):
notices coalesce into one read at a time, and a notice that arrives while a read is under way makes it
read once more, since that read may have begun before the change.

Concurrency: use from one event loop; ``read`` handles (logs) its own failures.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class Rereads:
    def __init__(self, read: Callable[[], Awaitable[None]]) -> None:
        self._read = read
        self._task: asyncio.Task[None] | None = None
        self._stale = False  # a change was announced since the last read began

    def notice(self) -> None:
        """The entry changed (or notices may have been missed): read it again."""
        self._stale = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._read_while_stale())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _read_while_stale(self) -> None:
        while self._stale:
            self._stale = False
            await self._read()
