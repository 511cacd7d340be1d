"""What the workers of one daemon (``[server] workers`` > 1 on the one-host store) share besides the
store's files, under ``ROOT/workers`` (emptied by their parent before it starts them):

    ROOT/workers/leases/     ``HostLeases``: single flight of asset fetches across the workers (diskcache)
    ROOT/workers/changes/N   ``HostChanges``: worker N's socket, where it hears the packages others change
    ROOT/workers/evict.lock  eviction, one worker at a time (``proxy.store.store``)

Single flight: a lease is a diskcache entry added atomically (``Cache.add``) with an expiry; its holder
renews it every third of ``ttl`` while it fetches and deletes it after, the others poll for it to go
(``POLL_SECONDS``). A worker killed mid-fetch stops renewing: its lease expires after ``ttl`` at most.

Publish visibility: a worker that commits a package change (a publish, a status change, a deletion)
sends the package's name, before it answers its client, as a datagram to every worker's socket (its
own too); each worker reads its socket on its event loop and drops its merged views of that package.
A change of the domain's repositories through /v1 (``HostRepositoryEntries``) is announced the same
way, and every worker reads the stored repositories again.
A unix datagram is queued in the receiver's socket as soon as ``sendto`` returns, so a request that
reaches another worker after the publish was answered finds it there: the change is heard at once,
not after a TTL. The sockets are files in the private store root: only its owner can send.

Concurrency rule: used from one worker's event loop. The diskcache and socket calls are short (an
SQLite row, a datagram) and run inline; a lease is waited for with ``asyncio.sleep``, never blocking.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import diskcache

from proxy.store.catalog import PackageCoordinate, PackageRecord
from proxy.store.entry_file import EntryFile
from proxy.store.index import Index, entry_namer
from proxy.store.keyring import KeyRing, make_private_dirs
from proxy.store.local import LocalCatalog
from proxy.store.protocols import ChangeListener, Listening
from proxy.store.repositories import RecordsChange, RepositoryEntries, RepositoryRecord, seal_records
from proxy.store.store import Store

T = TypeVar("T")
log = logging.getLogger(__name__)

POLL_SECONDS = 0.05  # how often a worker waiting for another's lease looks again
BUSY_SECONDS = 2.0  # how long a diskcache call waits for another worker's write
SEND_SECONDS = 1.0  # how long an announcement waits for a worker whose socket is full
_MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes with its NUL
REPOSITORIES, POLICIES = "repositories", "policies"  # the entries whose changes are announced


class HostLeases:
    """``AssetLeases`` across the workers of one host (see the module docstring)."""

    def __init__(self, directory: Path, keyring: KeyRing, *, ttl: float, poll: float = POLL_SECONDS) -> None:
        make_private_dirs(directory)
        self._cache = diskcache.Cache(str(directory), timeout=BUSY_SECONDS, eviction_policy="none")
        self._name = entry_namer(keyring, "lease")
        self._holder = f"{os.getpid()}.{secrets.token_hex(4)}"
        self.ttl = ttl
        self.poll = poll

    def close(self) -> None:
        self._cache.close()

    async def exclusive(self, key: tuple[str, ...], work: Callable[[], Awaitable[T]]) -> T:
        """``work()`` while this worker holds ``key``'s lease (waiting while another one does)."""
        name = self._name(key)
        while not self._cache.add(name, self._holder, expire=self.ttl):
            await asyncio.sleep(self.poll)
        renewing = asyncio.get_running_loop().create_task(self._renew(name))
        try:
            return await work()
        finally:
            renewing.cancel()
            # Renewed, the lease is still this worker's (unless its loop stalled past ``ttl``: then at
            # worst another fetch starts early); one delete costs half a compare-and-delete.
            self._cache.delete(name)

    async def _renew(self, name: str) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            with self._cache.transact():
                held = self._cache.get(name) == self._holder
                if held:
                    self._cache.touch(name, expire=self.ttl)
            if not held:  # taken over after it expired: the work may run twice, harmlessly
                log.warning("single flight lease %s lost to another worker", name[:12])
                return


class HostChanges:
    """``PackageChanges`` across the workers of one host (see the module docstring): ``announce`` from
    the catalog, ``listen`` from the daemon."""

    def __init__(self, directory: Path) -> None:
        make_private_dirs(directory)
        self._directory = directory
        self._path = directory / str(os.getpid())
        if len(os.fsencode(self._path)) > _MAX_SOCKET_PATH:
            raise OSError(f"{directory}: too long a path for the workers' sockets (at most ~90 characters)")
        self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sender.settimeout(SEND_SECONDS)
        self._on_entry: dict[str, list[Callable[[], None]]] = {}

    def announce(self, repository: str, coordinate: PackageCoordinate) -> None:
        """Tell every worker (this one too) that ``coordinate`` changed in ``repository``."""
        self._send([repository, coordinate.format, coordinate.namespace, coordinate.name], coordinate.name)

    def announce_entry(self, name: str) -> None:
        """Tell every worker (this one too) that the stored entry ``name`` (``REPOSITORIES``,
        ``POLICIES``) changed."""
        self._send([name], f"the {name}")

    def on_entry(self, name: str, on_change: Callable[[], None]) -> None:
        """Call ``on_change()`` whenever a worker announces a change of the entry ``name``."""
        self._on_entry.setdefault(name, []).append(on_change)

    def _send(self, change: list[str], what: str) -> None:
        message = json.dumps(change).encode()
        for entry in os.scandir(self._directory):
            try:
                self._sender.sendto(message, entry.path)
            except (ConnectionRefusedError, FileNotFoundError):  # a worker that died: nobody to tell
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
            except OSError as exc:
                log.error("worker %s was not told of a change to %s: %s", entry.name, what, exc)

    async def listen(self, on_change: ChangeListener, on_lost: Callable[[], None]) -> Listening:
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()  # a socket left by a dead worker of the same pid
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        receiver.setblocking(False)
        receiver.bind(str(self._path))
        loop = asyncio.get_running_loop()
        loop.add_reader(receiver.fileno(), self._receive, receiver, on_change)
        return _Listening(loop, receiver, self._path)

    def close(self) -> None:
        self._sender.close()

    def _receive(self, receiver: socket.socket, on_change: ChangeListener) -> None:
        while True:
            try:
                change = json.loads(receiver.recv(65536))
            except BlockingIOError:
                return
            except ValueError:
                log.error("a malformed change announcement was ignored")
                continue
            if len(change) == 1:
                for reread in self._on_entry.get(change[0], []):
                    reread()
            else:
                repository, format_, namespace, name = change
                on_change(repository, PackageCoordinate(format_, namespace, name))


class _Listening:
    def __init__(self, loop: asyncio.AbstractEventLoop, receiver: socket.socket, path: Path) -> None:
        self._loop, self._receiver, self._path = loop, receiver, path

    async def stop(self) -> None:
        self._loop.remove_reader(self._receiver.fileno())
        self._receiver.close()
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()


class AnnouncingCatalog(LocalCatalog):
    """The one-host catalog of a worker: the changes it commits are announced to every worker."""

    def __init__(self, store: Store, changes: HostChanges) -> None:
        super().__init__(store)
        self._changes = changes

    async def update_package(
        self,
        repository: str,
        coordinate: PackageCoordinate,
        change: Callable[[PackageRecord], None],
        *,
        commit: bool = False,
    ) -> PackageRecord:
        record = await super().update_package(repository, coordinate, change, commit=commit)
        if commit:
            self._changes.announce(repository, coordinate)
        return record

    async def delete_package(self, repository: str, coordinate: PackageCoordinate) -> None:
        await super().delete_package(repository, coordinate)
        self._changes.announce(repository, coordinate)


class HostRepositoryEntries(RepositoryEntries):
    """The domain's repositories in the one-host catalog of a worker: a change reads and writes them
    under the index's write lock (no other worker's change is lost) and is announced to every worker;
    ``watch`` hears the others' changes."""

    def __init__(self, index: Index, keyring: KeyRing, changes: HostChanges) -> None:
        super().__init__(index, keyring)
        self._changes = changes

    async def change(self, apply: RecordsChange) -> list[RepositoryRecord]:
        with self._index.transaction():
            records = apply(self.load_now())
            self._index.set(self._name, seal_records(self._keyring, self._name, records))
        self._index.sync()
        self._changes.announce_entry(REPOSITORIES)
        return records

    async def watch(self, on_change: Callable[[], None]) -> Callable[[], Awaitable[None]] | None:
        return _watch_entry(self._changes, REPOSITORIES, on_change)


class HostEntryFile(EntryFile):
    """An entry file of the one-host store (the permissions policies) in a worker: a change reads and
    writes it under an exclusive lock on a file beside it (no other worker's change is lost) and is
    announced to every worker; ``watch`` hears the others' changes."""

    def __init__(self, path: Path, name: str, changes: HostChanges) -> None:
        super().__init__(path)
        self._name = name
        self._changes = changes

    async def change(self, apply: Callable[[bytes | None], bytes]) -> bytes:
        raw = await asyncio.to_thread(self._change_locked, apply)
        self._changes.announce_entry(self._name)
        return raw

    def _change_locked(self, apply: Callable[[bytes | None], bytes]) -> bytes:
        make_private_dirs(self.path.parent)
        fd = os.open(
            self.path.with_name(f".{self.path.name}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = apply(self.read_now())
            self.write(raw)
            return raw
        finally:
            os.close(fd)  # releases the lock

    async def watch(self, on_change: Callable[[], None]) -> Callable[[], Awaitable[None]] | None:
        return _watch_entry(self._changes, self._name, on_change)


def _watch_entry(changes: HostChanges, name: str, on_change: Callable[[], None]) -> None:
    changes.on_entry(name, on_change)
    on_change()  # what another worker changed before this one listened
    # nothing to stop: the worker's socket closes with the store
