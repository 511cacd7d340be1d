"""The repository registry's persistence: the domain's repositories as one sealed entry, named and
sealed with the cache key like every catalog entry. A one-host store keeps it in the catalog's index
(``RepositoryEntries``); a shared store in PostgreSQL (``proxy.store.postgres.PostgresRepositoryEntries``,
which announces every change to the other daemons).

One entry holds every repository (a domain has tens, not thousands), so a change is one atomic
read-modify-write. Each change is durable before it returns: an API call that created, changed or
deleted a repository is acknowledged only once the change survives a power failure.

Concurrency: called from the daemon's event loop (the registry serialises its own changes); the index's
own lock guards the connection against the daemon's other threads.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from proxy.store.index import Index, entry_namer
from proxy.store.keyring import KeyRing
from proxy.store.sealed import seal, unseal

_KEY = ("repository-registry",)


@dataclass(frozen=True)
class RepositoryRecord:
    """One repository of the domain as stored. ``upstreams``: names of other repositories of the domain
    or of ``[upstream.X]`` tables, in resolution order. ``config_defined``: created from the config
    file, changed only there."""

    name: str
    description: str = ""
    upstreams: tuple[str, ...] = ()
    publish: bool = True
    config_defined: bool = False
    created_time: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "upstreams": list(self.upstreams)}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RepositoryRecord:
        return cls(**{**doc, "upstreams": tuple(doc["upstreams"])})


RecordsChange = Callable[[list[RepositoryRecord]], list[RepositoryRecord]]


class RepositoriesUnavailable(Exception):
    """The stored repositories could not be read or changed (a shared store's database is out of
    reach); the message says why, without credentials."""


class RepositoryEntries:
    """Load and change the domain's repository records in ``index`` (the one-host catalog's), sealed with
    ``keyring``. It keeps the config file's repositories too (marked ``config_defined``), so their
    description and creation time survive a restart."""

    keeps_config_records = True

    def __init__(self, index: Index, keyring: KeyRing) -> None:
        self._index = index
        self._keyring = keyring
        self._name = entry_name(keyring)

    def load_now(self) -> list[RepositoryRecord]:
        raw = self._index.get(self._name)
        if raw is None:
            return []
        return open_records(self._keyring, self._name, raw)

    async def load(self) -> list[RepositoryRecord]:
        return self.load_now()

    def save(self, records: list[RepositoryRecord]) -> None:
        """Replace the stored records; durable when this returns."""
        self._index.set(self._name, seal_records(self._keyring, self._name, records))
        self._index.sync()

    async def change(self, apply: RecordsChange) -> list[RepositoryRecord]:
        """Store ``apply(stored records)`` (it may raise to refuse) and return it; durable when this
        returns. No await inside: one process's changes never interleave."""
        records = apply(self.load_now())
        self.save(records)
        return records

    async def watch(self, on_change: Callable[[], None]) -> Callable[[], Awaitable[None]] | None:
        """Nothing to watch: only this process changes a one-host store's repositories."""
        return None


def entry_name(keyring: KeyRing) -> str:
    """The keyed name of the registry's one entry, in the index or the shared store's table."""
    return entry_namer(keyring, "repositories")(_KEY)


def seal_records(keyring: KeyRing, name: str, records: list[RepositoryRecord]) -> bytes:
    value = json.dumps([record.to_json() for record in records]).encode()
    return seal(keyring, value, context=name.encode())


def open_records(keyring: KeyRing, name: str, raw: bytes) -> list[RepositoryRecord]:
    docs = json.loads(unseal(keyring, raw, context=name.encode()))
    return [RepositoryRecord.from_json(doc) for doc in docs]
