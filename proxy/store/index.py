"""The SQLite files under ``ROOT/index`` (catalog, ledger, metadata) and ``ROOT/blobs/small`` (small
blobs, see ``proxy.store.blobs``): one table of named entries each.

Every file is ``entries.sqlite`` holding ``entries(name TEXT PRIMARY KEY, value BLOB)``:
an entry is a name (a keyed hash or a blob id) and the bytes its owner made of it. Nothing expires or
is evicted here (the ledger decides what goes).

Why not diskcache for the store's indexes: it is a cache and pays for that on every write (triggers
keeping a count and a size, an expiry index, pickling, auto-vacuum, one connection per thread); a cold
package costs several index writes, so that showed in the proxy's CPU time on a cold ``npm ci``.

Locking: the file is opened in SQLite's exclusive locking mode, by one connection per process that its
threads share under a lock. SQLite then needs no shared-memory index and no file lock per transaction,
and no other process can open the index while the daemon has it: ``gc``, ``verify`` or a second daemon
on the same cache is refused (``IndexInUse``) instead of changing the store under the daemon's feet.

Several workers (``[server] workers`` > 1 on this store, ``shared=True``): each worker process opens
the file in SQLite's normal locking mode instead (WAL with its shared-memory index), and every
``transaction`` begins with ``BEGIN IMMEDIATE``: its reads are made under the write lock, so a
read-modify-write (a package record, a listing) never loses another worker's update. Writes then
commit one by one (no groups: a group holds the write lock until it commits, which would stall the
other workers' event loops that long), and a worker waits for another's write at most
``BUSY_MILLISECONDS`` (each write is a few entries: far less). The workers' parent holds the root's
lock (``proxy.store.store``), so ``gc`` and ``verify`` are still refused while they run.

Known names (``known_names``, for an index one process holds): the index keeps every name it holds in
memory, as its first 64 bits (``KnownNames``, eight bytes a name), so that a look-up of a name it does
not hold, which is most of them on a cold path, is answered without SQLite and without waiting for a
thread that holds the index (a worker writing a large batch and committing it). A removed name stays
known: a look-up then reads SQLite, as without it. Other processes never write such an index (it is
opened exclusively); workers sharing one keep no names.

Durability: a commit does not wait for the disk (write-ahead log, ``synchronous=NORMAL``): a process
that dies loses nothing committed, but a power failure can roll back the last commits. Changes that
must survive it (a publish) call ``sync`` before they are acknowledged.

Group commits (the daemon, ``group_commits``): writes do not commit one by one but join one open
transaction, a *group*, which its owner commits shortly after it opened (``commit``). A cold package
writes several entries (its fetched metadata, catalog record, listing, blob ledger); committing them
one by one was a tenth of the proxy's CPU time on a cold ``npm ci``. Reads see the group's writes at
once (one connection). A process that dies loses the group; what it held was fetched content, fetched
again when asked for, because what must not be lost commits at once (``commit``, then ``sync``).
A ``transaction`` block in a group is a savepoint: it still applies entirely or not at all.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import heapq
import json
import logging
import os
import sqlite3
import threading
from array import array
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from proxy.store.keyring import KeyRing, fsync_dir, make_private_dirs

log = logging.getLogger(__name__)

T = TypeVar("T")

FILE_NAME = "entries.sqlite"
BUSY_MILLISECONDS = 2000  # several workers: how long a write waits for another worker's write
NAMES_REMEMBERED = 8192  # keyed entry names kept in memory per index owner (64 hex digits each)


class IndexUnavailable(Exception):
    """The index cannot be opened; the message says why, in words for the user."""


class IndexInUse(IndexUnavailable):
    """Another process (a running daemon) has the index open."""


def entry_namer(keyring: KeyRing, purpose: str) -> Callable[[tuple[str, ...]], str]:
    """The keyed entry name of a logical key, remembered: one request names an entry several times
    (a look-up, then the update or put of what was fetched)."""

    @functools.lru_cache(maxsize=NAMES_REMEMBERED)
    def name(key: tuple[str, ...]) -> str:
        return keyring.keyed_name(purpose, json.dumps(key).encode())

    return name


class KnownNames:
    """The names an index holds: ``may_hold`` is False only for a name it surely does not hold. Names
    are keyed hashes (hex); each is known by its first 64 bits, in a sorted array (eight bytes a name)
    and a set of those added since, merged into the array past ``MERGE_AFTER``.

    Concurrency: ``may_hold`` runs on any thread, ``add`` under the index's lock. A merge assigns the
    array before it empties the set, and ``may_hold`` reads the set first: it never misses a name."""

    MERGE_AFTER = 65536

    def __init__(self, names_in_order: Iterable[str]) -> None:
        """``names_in_order``: sorted, as SQLite gives its primary key (hex of one length sorts as its
        number): the array is made as they come, without a list of them."""
        self._sorted = array("Q", map(_known_as, names_in_order))
        self._added: set[int] = set()

    def add(self, name: str) -> None:
        self._added.add(_known_as(name))
        if len(self._added) > self.MERGE_AFTER:
            self._sorted = array("Q", heapq.merge(self._sorted, sorted(self._added)))
            self._added = set()

    def may_hold(self, name: str) -> bool:
        key = _known_as(name)
        if key in self._added:
            return True
        known = self._sorted
        at = bisect.bisect_left(known, key)
        return at < len(known) and known[at] == key


def _known_as(name: str) -> int:
    return int(name[:16], 16)


class Index:
    def __init__(
        self, directory: Path, *, shared: bool = False, page_size: int = 4096, known_names: bool = False
    ) -> None:
        """Open (or create) the index in ``directory``; ``shared``: with the other workers of this
        host (see the module docstring), else exclusively. ``page_size``: SQLite's, for a new file
        (a file keeps the page size it was created with); larger pages cost less per byte of large
        entries (fewer overflow pages to chain, write and read), more per small entry changed.
        ``known_names``: keep the names held in memory (see the module docstring; not when shared)."""
        make_private_dirs(directory)
        self.shared = shared
        self.path = directory / FILE_NAME
        self._lock = threading.RLock()
        self._depth = 0  # transaction blocks open
        self._on_group: Callable[[], None] | None = None  # set: writes are grouped (group_commits)
        self._closed = False
        # check_same_thread off: the lock, not the thread, guards the connection.
        private_file(self.path)  # SQLite gives its -wal and -shm files the database file's mode
        timeout = BUSY_MILLISECONDS / 1000 if shared else 0
        self._con = sqlite3.connect(self.path, isolation_level=None, timeout=timeout, check_same_thread=False)
        try:
            self._con.execute(f"PRAGMA page_size = {int(page_size)}")  # before anything is written
            if not shared:
                # Exclusive mode must be set before WAL is entered, or SQLite makes the shared-memory index.
                self._con.execute("PRAGMA locking_mode = EXCLUSIVE")
            self._con.execute("PRAGMA journal_mode = WAL")
            self._con.execute("PRAGMA synchronous = NORMAL")
            # A rowid table: names are random (keyed hashes), so rows keyed by name would land all
            # over the tree; appended by rowid, an insert costs half (1 KB values: 20 us, not 42).
            self._con.execute(
                "CREATE TABLE IF NOT EXISTS entries (name TEXT PRIMARY KEY, value BLOB NOT NULL)"
            )
        except sqlite3.OperationalError as exc:
            self._con.close()
            if exc.sqlite_errorcode == sqlite3.SQLITE_BUSY:
                raise IndexInUse("in use by another process (a running daemon?); stop it first") from None
            raise
        self._known: KnownNames | None = None
        if known_names and not shared:
            names = self._con.execute("SELECT name FROM entries ORDER BY name")
            self._known = KnownNames(name for (name,) in names)

    def close(self) -> None:
        with self._lock:
            try:
                self.end_group()
            finally:
                self._con.close()
                self._closed = True  # a commit scheduled before is then nothing to do

    def group_commits(self, on_open: Callable[[], None]) -> None:
        """From now on writes join a group that ``commit`` ends; ``on_open`` is called, from the thread
        that writes, whenever a group opens, so that its owner can schedule that commit."""
        self._on_group = on_open

    def commit(self) -> None:
        """Commit the open group now, if there is one. When that fails (a full disk) its changes are
        rolled back, and the error raised."""
        with self._lock:
            if self._depth == 0 and not self._closed and self._con.in_transaction:
                self._commit("COMMIT")

    def end_group(self) -> None:
        """``commit``, for callers that nobody could tell of a failure (a timer, the shutdown): it is
        logged. What a group holds is fetched content: changes that must be kept commit at once."""
        try:
            self.commit()
        except sqlite3.Error as exc:
            log.warning("cache index %s: recent changes were not saved: %s", self.path.parent, exc)

    def end_group_unless_busy(self) -> bool:
        """``end_group``, unless another thread holds the index (False: nothing was done)."""
        with self.held_now() as held:
            if held:
                self.end_group()
        return held

    @contextlib.contextmanager
    def held_now(self) -> Iterator[bool]:
        """Hold the index for the block if no other thread holds it (True), without waiting (False).
        For the event loop: a worker thread may hold it for long (a large write, its commit)."""
        if not self._lock.acquire(blocking=False):
            yield False
            return
        try:
            yield True
        finally:
            self._lock.release()

    def get(self, name: str) -> bytes | None:
        if self._surely_absent(name):
            return None
        with self._lock:
            row = self._con.execute("SELECT value FROM entries WHERE name = ?", (name,)).fetchone()
        return None if row is None else row[0]

    def get_from(self, name: str, read: Callable[[sqlite3.Blob], T]) -> T | None:
        """What ``read`` makes of the entry's value, read in pieces from its row (None: no such entry),
        for a large value that is not to be held whole; the index is held for others meanwhile."""
        if self._surely_absent(name):
            return None
        with self._lock:
            row = self._con.execute("SELECT rowid FROM entries WHERE name = ?", (name,)).fetchone()
            if row is None:
                return None
            with self._con.blobopen("entries", "value", row[0], readonly=True) as blob:
                return read(blob)

    def has(self, name: str) -> bool:
        if self._surely_absent(name):
            return False
        with self._lock:
            return self._con.execute("SELECT 1 FROM entries WHERE name = ?", (name,)).fetchone() is not None

    def set(self, name: str, value: bytes) -> None:
        with self._lock:
            self._join_group()
            self._remember(name)
            self._con.execute("INSERT OR REPLACE INTO entries (name, value) VALUES (?, ?)", (name, value))

    def set_from(self, name: str, size: int, fill: Callable[[Callable[[bytes], object]], None]) -> None:
        """``set`` for a large value made in pieces: ``fill`` hands each piece, in order, to the writer it
        is given, which writes it into a row of ``size`` bytes (exactly what ``fill`` writes). Neither
        this process nor SQLite then holds the value whole."""
        with self._lock:
            self._join_group()
            self._remember(name)
            row = self._con.execute(
                "INSERT OR REPLACE INTO entries (name, value) VALUES (?, zeroblob(?))", (name, size)
            ).lastrowid
            assert row is not None
            with self._con.blobopen("entries", "value", row) as blob:
                fill(blob.write)

    def delete(self, name: str) -> bool:
        """Remove the entry; False if there was none."""
        with self._lock:
            self._join_group()
            return self._con.execute("DELETE FROM entries WHERE name = ?", (name,)).rowcount > 0

    def names(self) -> list[str]:
        with self._lock:
            return [name for (name,) in self._con.execute("SELECT name FROM entries")]

    def items(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return self._con.execute("SELECT name, value FROM entries").fetchall()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything in the block is written at once, or not at all; blocks may nest. Outside a group,
        the outermost block commits."""
        with self._lock:
            self._join_group()
            if self.shared and not self._con.in_transaction:
                # The write lock before the first read: no other worker writes between them.
                self._con.execute("BEGIN IMMEDIATE")
            self._depth += 1
            self._con.execute("SAVEPOINT block")
            try:
                yield
            except BaseException:
                if self._con.in_transaction:  # after some errors (a full disk) SQLite rolled back already
                    self._con.execute("ROLLBACK TO block")
                    self._con.execute("RELEASE block")
                    if self.shared and self._depth == 1 and self._on_group is None:
                        self._con.execute("ROLLBACK")  # the BEGIN IMMEDIATE above
                raise
            else:
                if self._depth == 1 and self._on_group is None:
                    self._commit("RELEASE block")  # the outermost savepoint's release is the commit
                    if self.shared and self._con.in_transaction:
                        self._commit("COMMIT")  # the BEGIN IMMEDIATE above
                else:
                    self._con.execute("RELEASE block")
            finally:
                self._depth -= 1

    def _surely_absent(self, name: str) -> bool:
        # Without the lock: a name is known before it is written (``_remember``).
        return self._known is not None and not self._known.may_hold(name)

    def _remember(self, name: str) -> None:
        # Before the write: a reader on another thread never misses a name that is written.
        if self._known is not None:
            self._known.add(name)

    def _join_group(self) -> None:
        if self._on_group is not None and not self._con.in_transaction:
            self._con.execute("BEGIN IMMEDIATE")
            self._on_group()

    def _commit(self, statement: str) -> None:
        try:
            self._con.execute(statement)
        except BaseException:
            if self._con.in_transaction:  # a failed commit (a full disk) leaves the transaction open
                self._con.execute("ROLLBACK")
            raise

    def compact(self) -> None:
        """Give the space of removed entries back to the file system (SQLite reuses it, but never
        shrinks the file on its own). Rewrites the whole file: for ``gc``, not for the daemon."""
        with self._lock:
            self.commit()
            self._con.execute("VACUUM")
            # VACUUM writes the new file into the write-ahead log; the checkpoint puts it in place.
            self._con.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def sync(self) -> None:
        """Commit the open group, then make every commit so far durable: fsync the write-ahead log,
        where commits are until a checkpoint moves them into the database file (which SQLite fsyncs
        then)."""
        self.commit()
        try:
            fd = os.open(f"{self.path}-wal", os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return  # no log: everything is in the database file already
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(self.path.parent)


def private_file(path: Path) -> None:
    """Make ``path`` exist with mode 0600 whatever the umask (SQLite would create it 0644 & ~umask)
    and tighten the SQLite files beside it that an earlier run left."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{path}{suffix}", 0o600)
