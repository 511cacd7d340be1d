"""The repository registry: the repositories of the proxy's domain, which can change at run time.

Repositories come from two places: the config file's ``[repository.X]`` tables, created or updated
from it at every start and marked ``config_defined`` (changed only by editing the file), and the /v1
API (CreateRepository, UpdateRepository, DeleteRepository, Associate/DisassociateExternalConnection),
persisted in the store (``proxy.store.repositories``) so they survive a restart. On a shared store
(PostgreSQL) they are kept in the database (``open`` reads them) and every daemon of the store serves a
change as soon as it commits (LISTEN/NOTIFY); the config file's repositories are each daemon's own.

Every change calls the ``on_change`` callbacks with the repository's name: the resolution chain
recomputes itself and the merged views (packuments, simple pages, maven-metadata) are dropped, so the
data plane serves the new state at once.

Concurrency: used from the daemon's event loop only. A change is decided on the freshest stored records
and stored in one atomic step of the store (one transaction under a lock across daemons, on a shared
store), then served; an asyncio lock keeps this daemon's changes and re-reads in order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from proxy.config.model import Config
from proxy.store.repositories import (
    RecordsChange,
    RepositoriesUnavailable,
    RepositoryEntries,
    RepositoryRecord,
)
from proxy.store.rereads import Rereads

log = logging.getLogger(__name__)

MAX_UPSTREAMS = 10  # CodeArtifact's limit of upstream repositories per repository


class Entries(Protocol):
    """Where the registry keeps its records: ``proxy.store.repositories.RepositoryEntries`` (one-host)
    or ``proxy.store.postgres.PostgresRepositoryEntries`` (shared)."""

    keeps_config_records: bool  # the config file's repositories are stored too (one-host only)

    def load_now(self) -> list[RepositoryRecord]: ...

    async def load(self) -> list[RepositoryRecord]: ...

    async def change(self, apply: RecordsChange) -> list[RepositoryRecord]: ...

    async def watch(self, on_change: Callable[[], None]) -> Callable[[], Awaitable[None]] | None: ...


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


class RegistryUnavailable(RegistryError):
    """The store that keeps the repositories cannot be reached; nothing was changed."""


class RepositoryRegistry:
    """The domain's repositories by name, and the changes to them."""

    def __init__(self, config: Config, entries: Entries) -> None:
        self._source = config.source
        self._repositories = config.repositories
        self._upstream_names = frozenset(config.upstreams)
        self._entries = entries
        self._callbacks: list[Callable[[str], None]] = []
        self._lock = asyncio.Lock()
        self._stop_watching: Callable[[], Awaitable[None]] | None = None
        self._rereads = Rereads(self._reread_or_keep)
        stored = entries.load_now()
        self._records: dict[str, RepositoryRecord] = {}
        self._records = self._view(stored, warn=True)
        if isinstance(entries, RepositoryEntries) and (
            self._records != {r.name: r for r in stored} or not stored
        ):
            entries.save(list(self._records.values()))  # the config's repositories, kept with their times

    async def open(self) -> None:
        """Read the stored repositories and follow the changes other daemons make (a shared store), or
        the other workers of a one-host store (read at construction). Raises ``RegistryUnavailable``."""
        if self._entries.keeps_config_records:
            self._stop_watching = await self._entries.watch(self._rereads.notice)
            return
        try:
            self._stop_watching = await self._entries.watch(self._rereads.notice)
        except RepositoriesUnavailable as exc:
            raise RegistryUnavailable(f"the stored repositories cannot be followed: {exc}") from None
        await self._reread()

    async def close(self) -> None:
        if self._stop_watching is not None:
            await self._stop_watching()
            self._stop_watching = None
        self._rereads.stop()

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
        """Call ``callback(repository name)`` after every change (from the event loop), this daemon's
        or, on a shared store, another's."""
        self._callbacks.append(callback)

    # -- changes ----------------------------------------------------------------------------------
    async def create(
        self, name: str, description: str = "", upstreams: Sequence[str] = ()
    ) -> RepositoryRecord:
        def decide(view: Mapping[str, RepositoryRecord]) -> RepositoryRecord:
            if name in view:
                raise RepositoryExists(name)
            if name in self._upstream_names:
                raise RepositoryExists(
                    name, f"cannot be created: [upstream.{name}] in {self._source} has that name"
                )
            record = RepositoryRecord(
                name, description, tuple(upstreams), publish=True, created_time=time.time()
            )
            self._check_upstreams(record, view)
            return record

        return await self._change(name, decide)

    async def update(
        self, name: str, description: str | None = None, upstreams: Sequence[str] | None = None
    ) -> RepositoryRecord:
        def decide(view: Mapping[str, RepositoryRecord]) -> RepositoryRecord:
            record = self._changeable(name, view)
            if description is not None:
                record = replace(record, description=description)
            if upstreams is not None:
                record = replace(record, upstreams=tuple(upstreams))
                self._check_upstreams(record, view)
            return record

        return await self._change(name, decide)

    async def delete(self, name: str) -> RepositoryRecord:
        deleted: list[RepositoryRecord] = []

        def decide(view: Mapping[str, RepositoryRecord]) -> None:
            deleted.append(self._changeable(name, view))
            users = [r.name for r in view.values() if name in r.upstreams]
            if users:
                raise InUse(name, users)

        await self._change(name, decide)
        return deleted[-1]

    # -- internals --------------------------------------------------------------------------------
    async def _change(
        self, name: str, decide: Callable[[Mapping[str, RepositoryRecord]], RepositoryRecord | None]
    ) -> Any:
        """Store the record ``decide`` makes of the freshest stored state (None: remove ``name``), then
        serve it. ``decide`` raises a RegistryError to refuse; nothing is stored then."""
        decided: list[RepositoryRecord | None] = []

        def apply(stored: list[RepositoryRecord]) -> list[RepositoryRecord]:
            decided.append(decide(self._view(stored)))
            others = [r for r in stored if r.name != name]
            return others if decided[-1] is None else [*others, decided[-1]]

        async with self._lock:
            try:
                stored = await self._entries.change(apply)
            except RepositoriesUnavailable as exc:
                raise RegistryUnavailable(f"the repositories cannot be changed now: {exc}") from None
            self._serve(stored)
        return decided[-1]

    async def _reread_or_keep(self) -> None:
        """A daemon of the shared store changed the repositories (or notices may have been missed)."""
        try:
            await self._reread()
        except RegistryUnavailable as exc:
            log.warning("%s; serving the repositories known before", exc)

    async def _reread(self) -> None:
        async with self._lock:
            try:
                stored = await self._entries.load()
            except RepositoriesUnavailable as exc:
                raise RegistryUnavailable(f"the stored repositories cannot be read: {exc}") from None
            self._serve(stored)

    def _serve(self, stored: list[RepositoryRecord]) -> None:
        """Serve ``stored`` (with the config file's repositories); tell the callbacks what changed."""
        view = self._view(stored, warn=True)
        changed = sorted(n for n in view.keys() | self._records.keys() if view.get(n) != self._records.get(n))
        self._records = view
        for name in changed:
            for callback in self._callbacks:
                callback(name)

    def _changeable(self, name: str, view: Mapping[str, RepositoryRecord]) -> RepositoryRecord:
        record = view.get(name)
        if record is None:
            raise RepositoryNotFound(name)
        if record.config_defined:
            raise ConfigDefined(name, self._source)
        return record

    def _check_upstreams(self, record: RepositoryRecord, view: Mapping[str, RepositoryRecord]) -> None:
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
            if upstream not in view and upstream not in self._upstream_names:
                raise InvalidUpstreams(
                    f"upstream {upstream} is neither a repository of this domain nor an "
                    f"[upstream.{upstream}] table in {self._source}"
                )
        loop = _find_loop(record.name, {**view, record.name: record})
        if loop:
            raise InvalidUpstreams(f"the upstream chain would loop: {' -> '.join(loop)}")

    def _view(self, stored: list[RepositoryRecord], *, warn: bool = False) -> dict[str, RepositoryRecord]:
        """The repositories served: the config file's (created or updated from it, marked
        config-defined) and the stored ones made through the API, but none the file no longer has,
        none named like an ``[upstream.X]``, and without upstreams that no longer exist (``warn``:
        log what is left out)."""
        by_name = {r.name: r for r in stored}
        records: dict[str, RepositoryRecord] = {}
        for name, configured in self._repositories.items():
            existing = by_name.get(name) or self._records.get(name)
            records[name] = RepositoryRecord(
                name,
                existing.description if existing else "",
                configured.upstreams,
                publish=configured.publish,
                config_defined=True,
                created_time=existing.created_time if existing else time.time(),
            )
        for name, record in by_name.items():
            if name in records or record.config_defined:
                continue  # the config's, or removed from the file
            if name in self._upstream_names:
                if warn:
                    log.warning(
                        "repository %s made through the API is not served: [upstream.%s] in %s has its name",
                        name,
                        name,
                        self._source,
                    )
                continue
            records[name] = record
        for name, record in list(records.items()):
            known = [u for u in record.upstreams if u in records or u in self._upstream_names]
            if len(known) != len(record.upstreams):
                if warn:
                    gone = sorted(set(record.upstreams) - set(known))
                    log.warning(
                        "repository %s: upstreams %s do not exist here; left out", name, ", ".join(gone)
                    )
                records[name] = replace(record, upstreams=tuple(known))
        return records


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
