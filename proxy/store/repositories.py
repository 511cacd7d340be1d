"""The repository registry's persistence: the domain's repositories as one sealed entry in the catalog's
index (``index/catalog``), named and sealed with the cache key like every catalog entry.

One entry holds every repository (a domain has tens, not thousands), so a change is one atomic write.
Each write commits and is synced before it returns: an API call that created, changed or deleted a
repository is acknowledged only once the change survives a power failure.

Concurrency: called from the daemon's event loop (the registry serialises changes); the index's own lock
guards the connection against the daemon's other threads.
"""

from __future__ import annotations

import json
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


class RepositoryEntries:
    """Load and save the domain's repository records in ``index`` (the catalog's), sealed with ``keyring``."""

    def __init__(self, index: Index, keyring: KeyRing) -> None:
        self._index = index
        self._keyring = keyring
        self._name = entry_namer(self._keyring, "repositories")(_KEY)

    def load(self) -> list[RepositoryRecord]:
        raw = self._index.get(self._name)
        if raw is None:
            return []
        docs = json.loads(unseal(self._keyring, raw, context=self._name.encode()))
        return [RepositoryRecord.from_json(doc) for doc in docs]

    def save(self, records: list[RepositoryRecord]) -> None:
        """Replace the stored records; durable when this returns."""
        value = json.dumps([record.to_json() for record in records]).encode()
        self._index.set(self._name, seal(self._keyring, value, context=self._name.encode()))
        self._index.sync()


class ConfigOnlyEntries:
    """For a store shared by several daemons, which has no index of this daemon's: the config file's
    repositories only. ``save`` refuses, so no daemon holds repositories the others do not know."""

    def load(self) -> list[RepositoryRecord]:
        return []

    def save(self, records: list[RepositoryRecord]) -> None:
        raise RepositoriesFixed(
            "repositories are created and changed through the API only on a one-host store; with a "
            "shared [store], define them in the configuration file of every daemon"
        )


class RepositoriesFixed(Exception):
    """This store cannot keep repositories created through the API (``ConfigOnlyEntries``)."""
