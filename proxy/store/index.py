"""The SQLite files under ``ROOT/index`` (catalog, ledger, metadata), opened one way.

diskcache is used as a durable key-value store, not as a cache: nothing in it expires or is evicted
by diskcache itself (the ledger decides what goes), so its eviction and culling are off; culling
would cost a query on every write.

A commit does not wait for the disk (write-ahead log, ``synchronous=NORMAL``): a process that dies
loses nothing, but a power failure can roll back the last commits. Changes that must survive it (a
publish) call ``sync_index`` before they are acknowledged.
"""

from __future__ import annotations

import os
from pathlib import Path

import diskcache

from proxy.store.keyring import fsync_dir


def open_index(root: Path) -> diskcache.Cache:
    return diskcache.Cache(str(root), eviction_policy="none", size_limit=2**62, cull_limit=0)


def sync_index(db: diskcache.Cache) -> None:
    """Make every commit so far durable: fsync the write-ahead log, where commits are until a
    checkpoint moves them into the database file (which SQLite fsyncs then)."""
    directory = Path(db.directory)
    try:
        fd = os.open(directory / f"{diskcache.core.DBNAME}-wal", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return  # no log: everything is in the database file already
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(directory)
