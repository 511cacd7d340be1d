"""Where permissions policies live: one sealed file, ``auth/policies`` under the cache path, sealed
with the cache key (proxy.store.sealed), written atomically (temp file, fsync, rename) and fsynced
before a Put or Delete answers. Policies are few and small, so all of them are held in memory.

Concurrency: reads are of the in-memory copy; writes are serialised by an asyncio lock and done in a
thread, so the loop never waits on the disk. Use from one event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from proxy.store.keyring import KeyRing, fsync_dir, make_private_dirs
from proxy.store.sealed import SealError, seal, unseal
from proxy.store.store import StoreUnavailable

_CONTEXT = b"permissions-policies v1"
DOMAIN_KEY = ""  # the domain's own policy; repositories are keyed by name


@dataclass(frozen=True)
class StoredPolicy:
    document: str
    revision: str
    updated: float


class RevisionMismatch(Exception):
    """A Put or Delete named a revision that is not the current one."""


class PolicyStore:
    def __init__(self, path: Path, keyring: KeyRing) -> None:
        self.path = path
        self._keyring = keyring
        self._lock = asyncio.Lock()
        self._policies: dict[str, StoredPolicy] = {}

    @classmethod
    def open(cls, cache_path: Path, keyring: KeyRing) -> PolicyStore:
        """The store under ``cache_path``; ``StoreUnavailable`` naming its file when that is unreadable."""
        store = cls(cache_path / "auth" / "policies", keyring)
        try:
            raw = store.path.read_bytes()
            entries = json.loads(unseal(keyring, raw, _CONTEXT))
            store._policies = {key: StoredPolicy(**value) for key, value in entries.items()}
        except FileNotFoundError:
            return store
        except OSError as exc:
            raise StoreUnavailable(cache_path, exc) from None
        except (SealError, ValueError, TypeError) as exc:
            reason = f"cannot be opened ({exc}); restore it, or remove it to start with no policies"
            raise StoreUnavailable(cache_path, OSError(0, reason, str(store.path))) from None
        return store

    def get(self, key: str) -> StoredPolicy | None:
        """The policy of a repository (by name) or of the domain (``DOMAIN_KEY``)."""
        return self._policies.get(key)

    def all(self) -> dict[str, StoredPolicy]:
        return dict(self._policies)

    async def put(self, key: str, document: str, revision: str | None) -> StoredPolicy:
        async with self._lock:
            self._check_revision(key, revision)
            stored = StoredPolicy(document, secrets.token_hex(16), time.time())
            await self._write({**self._policies, key: stored})
            return stored

    async def delete(self, key: str, revision: str | None) -> StoredPolicy | None:
        async with self._lock:
            self._check_revision(key, revision)
            old = self._policies.get(key)
            if old is not None:
                await self._write({k: v for k, v in self._policies.items() if k != key})
            return old

    def _check_revision(self, key: str, revision: str | None) -> None:
        current = self._policies.get(key)
        if revision is not None and (current is None or current.revision != revision):
            raise RevisionMismatch(revision)

    async def _write(self, policies: dict[str, StoredPolicy]) -> None:
        data = json.dumps({k: asdict(v) for k, v in policies.items()}).encode()
        await asyncio.to_thread(self._write_file, seal(self._keyring, data, _CONTEXT))
        self._policies = policies

    def _write_file(self, sealed: bytes) -> None:
        make_private_dirs(self.path.parent)
        temp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(8)}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            try:
                os.write(fd, sealed)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, self.path)
        finally:
            temp.unlink(missing_ok=True)
        fsync_dir(self.path.parent)
