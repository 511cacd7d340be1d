"""The SQLite files under ``ROOT/index`` (catalog, ledger, metadata): one table of named entries each.

Every file is ``entries.sqlite`` holding ``entries(name TEXT PRIMARY KEY, value BLOB)``:
an entry is a name (a keyed hash or a blob id) and the bytes its owner made of it. Nothing expires or
is evicted here (the ledger decides what goes).

Why not diskcache, which earlier versions used (and whose files are migrated on first open, below):
it is a cache, and paid for it on every write - triggers keeping a count and a size, an expiry index,
pickling, auto-vacuum, a process-id check and one connection per thread. On a cold ``npm ci``, where
each package costs three index commits, that was 11-14 % of the proxy's CPU time.

Locking: the file is opened in SQLite's exclusive locking mode, by one connection per process that its
threads share under a lock. SQLite then needs no shared-memory index and no file lock per transaction,
and no other process can open the index while the daemon has it: ``gc``, ``verify`` or a second daemon
on the same cache is refused (``IndexInUse``) instead of changing the store under the daemon's feet.

Durability: a commit does not wait for the disk (write-ahead log, ``synchronous=NORMAL``): a process
that dies loses nothing, but a power failure can roll back the last commits. Changes that must survive
it (a publish) call ``sync`` before they are acknowledged.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import diskcache

from proxy.store.keyring import KeyRing, fsync_dir, make_private_dirs

FILE_NAME = "entries.sqlite"
NAMES_REMEMBERED = 8192  # keyed entry names kept in memory per index owner (64 hex digits each)
_LEGACY_FILE = diskcache.core.DBNAME  # where diskcache kept an index before


class IndexUnavailable(Exception):
    """The index cannot be opened; the message says why, in words for the user."""


class IndexInUse(IndexUnavailable):
    """Another process (a running daemon) has the index open."""


class LegacyIndexUnreadable(IndexUnavailable):
    """An index diskcache wrote cannot be moved in; it is left as it was."""


def entry_namer(keyring: KeyRing, purpose: str) -> Callable[[tuple[str, ...]], str]:
    """The keyed entry name of a logical key, remembered: one request names an entry several times
    (a look-up, then the update or put of what was fetched)."""

    @functools.lru_cache(maxsize=NAMES_REMEMBERED)
    def name(key: tuple[str, ...]) -> str:
        return keyring.keyed_name(purpose, json.dumps(key).encode())

    return name


class Index:
    def __init__(self, directory: Path, convert_legacy: Callable[[object], bytes] | None = None) -> None:
        """Open (or create) the index in ``directory``; an index diskcache wrote there is moved in first,
        its values made bytes by ``convert_legacy`` (default: they are bytes already)."""
        make_private_dirs(directory)
        self.path = directory / FILE_NAME
        self._lock = threading.RLock()
        self._depth = 0
        # check_same_thread off: the lock, not the thread, guards the connection.
        self._con = sqlite3.connect(self.path, isolation_level=None, timeout=0, check_same_thread=False)
        try:
            # Exclusive mode must be set before WAL is entered, or SQLite makes the shared-memory index.
            self._con.execute("PRAGMA locking_mode = EXCLUSIVE")
            self._con.execute("PRAGMA journal_mode = WAL")
            self._con.execute("PRAGMA synchronous = NORMAL")
            # A rowid table: names are random (keyed hashes), so rows keyed by name would land all
            # over the tree; appended by rowid, an insert costs half (1 KB values: 20 us, not 42).
            self._con.execute(
                "CREATE TABLE IF NOT EXISTS entries (name TEXT PRIMARY KEY, value BLOB NOT NULL)"
            )
            if (directory / _LEGACY_FILE).exists():
                self._migrate(directory, convert_legacy or _as_bytes)
        except sqlite3.OperationalError as exc:
            self._con.close()
            if exc.sqlite_errorcode == sqlite3.SQLITE_BUSY:
                raise IndexInUse("in use by another process (a running daemon?); stop it first") from None
            raise

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def get(self, name: str) -> bytes | None:
        with self._lock:
            row = self._con.execute("SELECT value FROM entries WHERE name = ?", (name,)).fetchone()
        return None if row is None else row[0]

    def set(self, name: str, value: bytes) -> None:
        with self._lock:
            self._con.execute("INSERT OR REPLACE INTO entries (name, value) VALUES (?, ?)", (name, value))

    def delete(self, name: str) -> None:
        with self._lock:
            self._con.execute("DELETE FROM entries WHERE name = ?", (name,))

    def names(self) -> list[str]:
        with self._lock:
            return [name for (name,) in self._con.execute("SELECT name FROM entries")]

    def items(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return self._con.execute("SELECT name, value FROM entries").fetchall()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything in the block commits at once, or not at all; blocks may nest (one commit)."""
        with self._lock:
            self._depth += 1
            if self._depth == 1:
                self._con.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if self._depth == 1 and self._con.in_transaction:
                    self._con.execute("ROLLBACK")
                raise
            else:
                if self._depth == 1:
                    try:
                        self._con.execute("COMMIT")
                    except BaseException:
                        if self._con.in_transaction:  # a failed COMMIT (a full disk) leaves it open
                            self._con.execute("ROLLBACK")
                        raise
            finally:
                self._depth -= 1

    def sync(self) -> None:
        """Make every commit so far durable: fsync the write-ahead log, where commits are until a
        checkpoint moves them into the database file (which SQLite fsyncs then)."""
        try:
            fd = os.open(f"{self.path}-wal", os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return  # no log: everything is in the database file already
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(self.path.parent)

    def _migrate(self, directory: Path, convert: Callable[[object], bytes]) -> None:
        """Copy diskcache's entries in, make that durable, then remove diskcache's files. Run again in full
        if the process dies before the removal: the copy replaces entries by the same values."""
        try:
            legacy = diskcache.Cache(str(directory))
            try:
                with self.transaction():
                    for name in legacy.iterkeys():
                        self.set(name, convert(legacy[name]))
            finally:
                legacy.close()
        except Exception as exc:  # whatever diskcache raises for a damaged file (SQLite, pickle, ...)
            reason = f"cannot move in the index in {directory} from an earlier version: {exc}"
            raise LegacyIndexUnreadable(f"{reason}; it was left as it is") from exc
        self.sync()
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(directory / f"{_LEGACY_FILE}{suffix}")
        for entry in os.scandir(directory):  # diskcache's files of large values, two levels down
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)


def _as_bytes(value: object) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError(f"a legacy index entry is {type(value).__name__}, not bytes")
    return value
