"""The cache key ring: the master keys that encrypt and name everything the store writes.

A key file holds 32 raw random bytes and nothing else. The current key seals new data and names
new blobs; old key files (listed in the configuration after a rotation) only open and find what
they sealed before. A key's id is derived from its secret, so it is stable across restarts and
says nothing about the secret.

Key files are refused (``KeyFileError``) unless they are regular files of exactly 32 bytes that
neither group nor others may access. A missing current key file is created once, atomically: a
private temp file is written and fsynced, then hard-linked into place, so a crash never leaves
a short key and two processes starting together agree on one key.

Concurrency: a ``KeyRing`` is immutable after ``load``; its only mutable state is a cache of
derived subkeys, filled idempotently, so it is safe to share between threads.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SECRET_SIZE = 32
KEY_ID_SIZE = 8
_NAME_INFO = b"codeartifact-proxy keyed-name v1:"


class KeyFileError(Exception):
    """A key file is missing, unreadable or unsafe. The message names the file, never key bytes."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"key file {path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class Key:
    """One master key. ``key_id`` is public (it is written into every sealed header)."""

    key_id: bytes
    secret: bytes = field(repr=False)

    @classmethod
    def from_secret(cls, secret: bytes) -> Key:
        if len(secret) != SECRET_SIZE:
            raise ValueError(f"a key is {SECRET_SIZE} bytes, got {len(secret)}")
        key_id = hmac.digest(secret, b"key-id", hashlib.sha256)[:KEY_ID_SIZE]
        return cls(key_id=key_id, secret=secret)

    @classmethod
    def generate(cls) -> Key:
        return cls.from_secret(secrets.token_bytes(SECRET_SIZE))


class KeyRing:
    """The current key plus any old keys still needed to open and find older data."""

    def __init__(self, current: Key, old: Sequence[Key] = ()) -> None:
        self.current = current
        by_id: dict[bytes, Key] = {}
        for key in (current, *old):
            by_id.setdefault(key.key_id, key)
        self._by_id = by_id
        self._subkeys: dict[tuple[bytes, str], bytes] = {}

    def __repr__(self) -> str:
        ids = ", ".join(key.key_id.hex() for key in self.keys)
        return f"KeyRing(key_ids=[{ids}])"

    @property
    def keys(self) -> tuple[Key, ...]:
        """Every key of the ring, the current one first."""
        return tuple(self._by_id.values())

    def get(self, key_id: bytes) -> Key:
        """The key with this id; ``KeyError`` if the ring has none."""
        return self._by_id[key_id]

    @classmethod
    def load(cls, key_file: Path, old_key_files: Sequence[Path] = (), create: bool = True) -> KeyRing:
        """Read the current key (creating it if absent and ``create``) and the old keys."""
        current = _read_key_file(key_file, create=create)
        old = [_read_key_file(path, create=False) for path in old_key_files]
        return cls(current, old)

    def keyed_name(self, purpose: str, data: bytes) -> str:
        """A hex name for ``data`` that reveals nothing about it without the current key."""
        return self._name(self.current, purpose, data)

    def keyed_names(self, purpose: str, data: bytes) -> list[str]:
        """``keyed_name`` under every key of the ring (current first), to find data across rotations."""
        return [self._name(key, purpose, data) for key in self.keys]

    def _name(self, key: Key, purpose: str, data: bytes) -> str:
        return hmac.digest(self._subkey(key, purpose), data, "sha256").hex()

    def _subkey(self, key: Key, purpose: str) -> bytes:
        # Two threads may derive the same subkey at once; both results are equal, so no lock.
        cache_key = (key.key_id, purpose)
        subkey = self._subkeys.get(cache_key)
        if subkey is None:
            hkdf = HKDF(hashes.SHA256(), length=32, salt=None, info=_NAME_INFO + purpose.encode())
            subkey = self._subkeys[cache_key] = hkdf.derive(key.secret)
        return subkey


def make_private_dirs(path: Path) -> None:
    """Create ``path`` and any missing parents with mode 0700 (``mkdir -p`` would use the umask)."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o700)


def _read_key_file(path: Path, *, create: bool) -> Key:
    try:
        # O_NONBLOCK: opening a FIFO planted at the key path must not hang the daemon.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        if not create:
            raise KeyFileError(path, "does not exist") from None
        return _create_key_file(path)
    except OSError as exc:
        raise KeyFileError(path, f"cannot be opened ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        _check_key_file(path, info)
        secret = os.read(fd, SECRET_SIZE + 1)
    except OSError as exc:
        raise KeyFileError(path, f"cannot be read ({exc.strerror})") from None
    finally:
        os.close(fd)
    if len(secret) != SECRET_SIZE:
        raise KeyFileError(path, f"must hold exactly {SECRET_SIZE} bytes")
    return Key.from_secret(secret)


def _check_key_file(path: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise KeyFileError(path, "is not a regular file")
    if info.st_mode & 0o077:
        mode = stat.S_IMODE(info.st_mode)
        raise KeyFileError(path, f"is accessible by group or others (mode {mode:04o}); run: chmod 600 {path}")
    if info.st_size != SECRET_SIZE:
        raise KeyFileError(path, f"must hold exactly {SECRET_SIZE} bytes, it holds {info.st_size}")


def _create_key_file(path: Path) -> Key:
    key = Key.generate()
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        make_private_dirs(path.parent)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, key.secret)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, path)
        except FileExistsError:
            # Another process created the key first: use that one, so both agree.
            return _read_key_file(path, create=False)
        fsync_dir(path.parent)
    except OSError as exc:
        raise KeyFileError(path, f"cannot be created ({exc.strerror})") from None
    finally:
        temp.unlink(missing_ok=True)
    return key


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some file systems cannot fsync a directory; the data itself is already durable.
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)
