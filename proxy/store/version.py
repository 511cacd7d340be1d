"""The store's format version: ``ROOT/store-format`` names the layout of everything under ROOT.

A new store gets the current version when first opened. A store of another version, or one without the
file that already holds an index or blobs, is refused with one line saying what to do: this version
reads no other layout, and it never changes a store it cannot read.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from proxy.store.keyring import fsync_dir, make_private_dirs

STORE_FORMAT = 2
FILE_NAME = "store-format"
_CONTENT = ("index", "blobs")  # what a store of any version has once it was used


class StoreFormatError(Exception):
    """The store under ROOT is of a layout this version does not read."""


def check_store_format(root: Path) -> None:
    """Accept a store of the current version, or make a new one so; else raise StoreFormatError."""
    path = root / FILE_NAME
    try:
        found = path.read_text().strip()
    except FileNotFoundError:
        if any((root / name).exists() for name in _CONTENT):
            raise StoreFormatError(_refusal("an unversioned layout")) from None
        _write(root, path)
        return
    if found != str(STORE_FORMAT):
        raise StoreFormatError(_refusal(f"store format {found[:20]!r}"))


def _refusal(what: str) -> str:
    return (
        f"holds {what}; this version reads store format {STORE_FORMAT} only: move the directory aside "
        "and start again (fetched packages are fetched again; published ones must be published again)"
    )


def _write(root: Path, path: Path) -> None:
    make_private_dirs(root)
    temp = path.with_name(f".{FILE_NAME}.{os.getpid()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, f"{STORE_FORMAT}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    fsync_dir(root)
