"""The repository registry: the repositories of the proxy's domain, which can change at run time.

Repositories come from two places: the config file's ``[repository.X]`` tables, created or updated
from it at every start and marked ``config_defined`` (changed only by editing the file), and the /v1
API (CreateRepository, UpdateRepository, DeleteRepository, Associate/DisassociateExternalConnection),
persisted in the store (``proxy.store.repositories``) so they survive a restart.

Every change calls the ``on_change`` callbacks with the repository's name: the resolution chain
recomputes itself and the merged views (packuments, simple pages, maven-metadata) are dropped, so the
data plane serves the new state at once.

Concurrency: used from the daemon's event loop only. A change is checked, stored (synced) and then
applied in memory, with no await in between, so two API calls never interleave.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace

from proxy.config.model import Config, RepositoryConfig
from proxy.store.repositories import ConfigOnlyEntries, RepositoriesFixed, RepositoryEntries, RepositoryRecord

log = logging.getLogger(__name__)

MAX_UPSTREAMS = 10  # CodeArtifact's limit of upstream repositories per repository


class RegistryError(Exception):
    """A change the registry refuses; ``str()`` says why, in words for the user."""


class RepositoryNotFound(RegistryError):
    def __init__(self, name: str) -> None:
        super().__init__(f"repository {name} does not exist")
        self.name = name


class RepositoryExists(RegistryError):
    def __init__(self, name: str, why: str = "already exists") -> None:
        super().__init__(f"repository {name} {why}")
        self.name = name


class ConfigDefined(RegistryError):
    """The repository is defined by the config file; only an edit there changes it."""

    def __init__(self, name: str, source: str) -> None:
        super().__init__(
            f"repository {name} is defined in the configuration file {source} ([repository.{name}]); "
            "change it there and restart the proxy"
        )
        self.name = name


class InUse(RegistryError):
    """The repository is an upstream of another and cannot be deleted."""

    def __init__(self, name: str, users: Sequence[str]) -> None:
        super().__init__(f"repository {name} is an upstream of {', '.join(users)}; remove it there first")
        self.name = name


class InvalidUpstreams(RegistryError):
    """An upstream list that is too long, names something unknown, or makes a loop."""


class RepositoryRegistry:
    """The domain's repositories by name, and the changes to them."""

    def __init__(self, config: Config, entries: RepositoryEntries | ConfigOnlyEntries) -> None:
        self._source = config.source
        self._upstream_names = frozenset(config.upstreams)
        self._entries = entries
        self._records: dict[str, RepositoryRecord] = {r.name: r for r in entries.load()}
        self._callbacks: list[Callable[[str], None]] = []
        self._apply_config(config.repositories)

    # -- reads (the data plane asks these on every request) ---------------------------------------
    def get(self, name: str) -> RepositoryRecord | None:
        return self._records.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._records

    def __getitem__(self, name: str) -> RepositoryRecord:
        return self._records[name]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._records))

    def __len__(self) -> int:
        return len(self._records)

    def list(self) -> list[RepositoryRecord]:
        """Every repository, by name."""
        return [self._records[name] for name in sorted(self._records)]

    def on_change(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(repository name)`` after every change (from the event loop)."""
        self._callbacks.append(callback)

    # -- changes ----------------------------------------------------------------------------------
    def create(self, name: str, description: str = "", upstreams: Sequence[str] = ()) -> RepositoryRecord:
        if name in self._records:
            raise RepositoryExists(name)
        if name in self._upstream_names:
            raise RepositoryExists(
                name, f"cannot be created: [upstream.{name}] in {self._source} has that name"
            )
        record = RepositoryRecord(name, description, tuple(upstreams), publish=True, created_time=time.time())
        self._check_upstreams(record)
        return self._store(record)

    def update(
        self, name: str, description: str | None = None, upstreams: Sequence[str] | None = None
    ) -> RepositoryRecord:
        record = self._changeable(name)
        if description is not None:
            record = replace(record, description=description)
        if upstreams is not None:
            record = replace(record, upstreams=tuple(upstreams))
            self._check_upstreams(record)
        return self._store(record)

    def delete(self, name: str) -> RepositoryRecord:
        record = self._changeable(name)
        users = [r.name for r in self._records.values() if name in r.upstreams]
        if users:
            raise InUse(name, users)
        remaining = [r for r in self._records.values() if r.name != name]
        self._save(remaining)
        del self._records[name]
        self._changed(name)
        return record

    # -- internals --------------------------------------------------------------------------------
    def _save(self, records: list[RepositoryRecord]) -> None:
        try:
            self._entries.save(records)
        except RepositoriesFixed as exc:
            raise RegistryError(str(exc)) from None

    def _changeable(self, name: str) -> RepositoryRecord:
        record = self._records.get(name)
        if record is None:
            raise RepositoryNotFound(name)
        if record.config_defined:
            raise ConfigDefined(name, self._source)
        return record

    def _store(self, record: RepositoryRecord) -> RepositoryRecord:
        self._save([*(r for r in self._records.values() if r.name != record.name), record])
        self._records[record.name] = record
        self._changed(record.name)
        return record

    def _changed(self, name: str) -> None:
        for callback in self._callbacks:
            callback(name)

    def _check_upstreams(self, record: RepositoryRecord) -> None:
        upstreams = record.upstreams
        if len(upstreams) > MAX_UPSTREAMS:
            raise InvalidUpstreams(
                f"{len(upstreams)} upstreams; CodeArtifact allows at most {MAX_UPSTREAMS} per repository"
            )
        for index, upstream in enumerate(upstreams):
            if upstream == record.name:
                raise InvalidUpstreams(f"repository {record.name} cannot be its own upstream")
            if upstream in upstreams[:index]:
                raise InvalidUpstreams(f"upstream {upstream} is listed twice")
            if upstream not in self._records and upstream not in self._upstream_names:
                raise InvalidUpstreams(
                    f"upstream {upstream} is neither a repository of this domain nor an "
                    f"[upstream.{upstream}] table in {self._source}"
                )
        loop = _find_loop(record.name, {**self._records, record.name: record})
        if loop:
            raise InvalidUpstreams(f"the upstream chain would loop: {' -> '.join(loop)}")

    def _apply_config(self, repositories: Mapping[str, RepositoryConfig]) -> None:
        """Make the stored records agree with the config file: its repositories are created or updated
        and marked config-defined; ones it no longer has are dropped; API repositories lose upstreams
        that no longer exist (with a warning)."""
        records: dict[str, RepositoryRecord] = {}
        for name, configured in repositories.items():
            existing = self._records.get(name)
            records[name] = RepositoryRecord(
                name,
                existing.description if existing else "",
                configured.upstreams,
                publish=configured.publish,
                config_defined=True,
                created_time=existing.created_time if existing else time.time(),
            )
        for name, record in self._records.items():
            if name in records or record.config_defined:
                continue  # the config's, or removed from the file
            if name in self._upstream_names:
                log.warning(
                    "repository %s created through the API is dropped: [upstream.%s] in %s now has its name",
                    name,
                    name,
                    self._source,
                )
                continue
            records[name] = record
        for name, record in list(records.items()):
            known = [u for u in record.upstreams if u in records or u in self._upstream_names]
            if len(known) != len(record.upstreams):
                gone = sorted(set(record.upstreams) - set(known))
                log.warning("repository %s: upstreams %s no longer exist; dropped", name, ", ".join(gone))
                records[name] = replace(record, upstreams=tuple(known))
        if (records != self._records or not self._records) and isinstance(self._entries, RepositoryEntries):
            self._entries.save(list(records.values()))
        self._records = records


def _find_loop(start: str, records: Mapping[str, RepositoryRecord]) -> list[str]:
    """A chain of repositories from ``start`` back to itself, or [] when there is none."""
    path = [start]
    done: set[str] = set()

    def visit(name: str) -> list[str]:
        for upstream in records[name].upstreams:
            if upstream == start:
                return [*path, start]
            if upstream in records and upstream not in done and upstream not in path:
                path.append(upstream)
                found = visit(upstream)
                if found:
                    return found
                path.pop()
                done.add(upstream)
        return []

    return visit(start)
