"""Telling "the store's disk is full" from other storage failures.

A full disk (or an exhausted quota, or a file-size limit) is an operating condition, not a bug: the proxy
goes on serving what it fetches without keeping it, and refuses what it would have to keep (a publish)
with 507 Insufficient Storage. The file system says so with an errno, SQLite with SQLITE_FULL.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import sqlite3
from collections.abc import Iterator

_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def out_of_space(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in _ERRNOS
    if isinstance(exc, sqlite3.OperationalError):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    return False


@contextlib.contextmanager
def unless_out_of_space(log: logging.Logger, what: str) -> Iterator[None]:
    """Run the block; when the disk is full, log ``what`` was not done instead of raising (for work the
    proxy can go on without: caching, bookkeeping)."""
    try:
        yield
    except Exception as exc:
        if not out_of_space(exc):
            raise
        log.warning("%s: the store is full (%s)", what, exc)
