"""Where permissions policies live: one sealed entry, sealed with the cache key (proxy.store.sealed).
The one-host store keeps it in the file ``auth/policies`` under the cache path (``EntryFile``: written
atomically, fsynced before a Put or Delete answers; its workers announce a change to one another); a
shared store in its database
(``proxy.store.postgres.PostgresEntry``), which announces every change so that every daemon of the
store enforces a policy as soon as it is stored. Policies are few and small, so all of them are held in
memory.

Concurrency: reads are of the in-memory copy. A change is a read-modify-write of the stored entry
(the revision is checked against what is stored, not against the memory), serialised by an asyncio
lock in this daemon and by the entry's own lock across daemons; the loop never waits on the disk. Use
from one event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from proxy.store.entry_file import POLICIES_FILE, EntryFile
from proxy.store.index import entry_namer
from proxy.store.keyring import KeyRing
from proxy.store.protocols import SharedEntryUnavailable
from proxy.store.rereads import Rereads
from proxy.store.sealed import SealError, seal, unseal
from proxy.store.store import StoreUnavailable

log = logging.getLogger(__name__)

_CONTEXT = b"permissions-policies v1"
DOMAIN_KEY = ""  # the domain's own policy; repositories are keyed by name


@dataclass(frozen=True)
class StoredPolicy:
    document: str
    revision: str
    updated: float


Policies = dict[str, StoredPolicy]


class RevisionMismatch(Exception):
    """A Put or Delete named a revision that is not the current one."""


class PoliciesUnavailable(Exception):
    """The stored policies could not be read or changed (a shared store's database is out of reach)."""


class PolicyEntry(Protocol):
    """Where the sealed policies are kept: ``proxy.store.entry_file.EntryFile`` (one-host; its workers'
    ``proxy.store.host.HostEntryFile``) or ``proxy.store.postgres.PostgresEntry`` (shared)."""

    async def load(self) -> bytes | None: ...

    async def change(self, apply: Callable[[bytes | None], bytes]) -> bytes: ...

    async def watch(self, on_change: Callable[[], None]) -> Callable[[], Awaitable[None]] | None: ...


def entry_name(keyring: KeyRing) -> str:
    """The keyed name of the policies' entry in a shared store's database."""
    return entry_namer(keyring, "policies")(("permissions-policies",))


class PolicyStore:
    def __init__(self, entry: PolicyEntry, keyring: KeyRing) -> None:
        self._entry = entry
        self._keyring = keyring
        self._lock = asyncio.Lock()
        self._policies: Policies = {}
        self._read = False  # whether the stored policies were read (``open`` reads the one-host file)
        self._stop_watching: Callable[[], Awaitable[None]] | None = None
        self._rereads = Rereads(self._read_again)

    @classmethod
    def open(cls, cache_path: Path, keyring: KeyRing, entry: EntryFile | None = None) -> PolicyStore:
        """The one-host store's policies in ``entry`` (default: the file ``POLICIES_FILE`` under
        ``cache_path``), read now; ``StoreUnavailable`` naming the file when it is unreadable."""
        entry = entry or EntryFile(cache_path / POLICIES_FILE)
        store = cls(entry, keyring)
        store._read = True
        try:
            raw = entry.read_now()
        except OSError as exc:
            raise StoreUnavailable(cache_path, exc) from None
        if raw is not None:
            try:
                store._policies = store._open(raw)
            except PoliciesUnavailable as exc:
                reason = f"cannot be opened ({exc}); restore it, or remove it to start with no policies"
                raise StoreUnavailable(cache_path, OSError(0, reason, str(entry.path))) from None
        return store

    async def start(self) -> None:
        """Read the stored policies, unless ``open`` did, and follow the changes other daemons (a shared
        store) or workers make."""
        if not self._read:
            self._policies = self._open(await self._entry.load())
            self._read = True
        self._stop_watching = await self._entry.watch(self._rereads.notice)

    async def stop(self) -> None:
        if self._stop_watching is not None:
            await self._stop_watching()
            self._stop_watching = None
        self._rereads.stop()

    def get(self, key: str) -> StoredPolicy | None:
        """The policy of a repository (by name) or of the domain (``DOMAIN_KEY``)."""
        return self._policies.get(key)

    def all(self) -> Policies:
        return dict(self._policies)

    async def put(self, key: str, document: str, revision: str | None) -> StoredPolicy:
        stored = StoredPolicy(document, secrets.token_hex(16), time.time())
        await self._change(key, revision, lambda policies: {**policies, key: stored})
        return stored

    async def delete(self, key: str, revision: str | None) -> StoredPolicy | None:
        """Remove ``key``'s policy; the policy removed, None when there was none (nothing written)."""
        removed: list[StoredPolicy] = []

        def without(policies: Policies) -> Policies:
            if key in policies:
                removed.append(policies[key])
            return {k: v for k, v in policies.items() if k != key}

        await self._change(key, revision, without)
        return removed[0] if removed else None

    async def _change(self, key: str, revision: str | None, change: Callable[[Policies], Policies]) -> None:
        def apply(raw: bytes | None) -> bytes:
            policies = self._open(raw)
            current = policies.get(key)
            if revision is not None and (current is None or current.revision != revision):
                raise RevisionMismatch(revision)
            return self._seal(change(policies))

        async with self._lock:
            try:
                raw = await self._entry.change(apply)
            except (OSError, PoliciesUnavailable, SharedEntryUnavailable) as exc:
                raise PoliciesUnavailable(f"the permissions policies cannot be changed now: {exc}") from None
            self._policies = self._open(raw)

    async def _read_again(self) -> None:
        """A daemon of the shared store changed the policies (or notices may have been missed)."""
        try:
            self._policies = self._open(await self._entry.load())
        except (PoliciesUnavailable, SharedEntryUnavailable) as exc:
            # The policies last read stay in force; the next notice (or reconnection) reads again.
            log.warning("permissions policies not read again: %s", exc)

    def _open(self, raw: bytes | None) -> Policies:
        if raw is None:
            return {}
        try:
            entries = json.loads(unseal(self._keyring, raw, _CONTEXT))
            return {key: StoredPolicy(**value) for key, value in entries.items()}
        except (SealError, ValueError, TypeError) as exc:
            raise PoliciesUnavailable(str(exc)) from None

    def _seal(self, policies: Policies) -> bytes:
        data = json.dumps({k: asdict(v) for k, v in policies.items()}).encode()
        return seal(self._keyring, data, _CONTEXT)
