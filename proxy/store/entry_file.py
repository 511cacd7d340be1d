"""One sealed entry kept as a file of the one-host store (the permissions policies): read whole,
replaced atomically (temp file, fsync, rename, directory fsync) so a change is durable when it returns.
The same interface as ``proxy.store.postgres.PostgresEntry`` (``load``, ``change``, ``watch``); the
caller seals and opens the bytes.

Concurrency: one process changes it (``proxy.store.host.HostEntryFile`` serialises the workers of a
host); the write runs in a thread, so the loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

from proxy.store.keyring import fsync_dir, make_private_dirs

POLICIES_FILE = "auth/policies"  # the permissions policies' entry, under the one-host store's root


class EntryFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read_now(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    async def load(self) -> bytes | None:
        return self.read_now()

    async def change(self, apply: Callable[[bytes | None], bytes]) -> bytes:
        """Store ``apply(stored value)`` (it may raise to refuse: nothing is written) and return it."""
        raw = apply(self.read_now())
        await asyncio.to_thread(self.write, raw)
        return raw

    async def watch(self, on_change: Callable[[], None]) -> Callable[[], Awaitable[None]] | None:
        """Nothing to watch: only this process changes the file."""
        return None

    def write(self, value: bytes) -> None:
        make_private_dirs(self.path.parent)
        temp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(8)}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            try:
                os.write(fd, value)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, self.path)
        finally:
            temp.unlink(missing_ok=True)
        fsync_dir(self.path.parent)
