"""The catalog: the index of what the store holds, in CodeArtifact's model.

repository -> package (format, namespace, name, origin configuration)
           -> package version (status, origin: published here or fetched through which upstream)
           -> assets (name, size, the format's digests, blob id)

It lives in an Index (SQLite, ``proxy.store.index``) under ``index/catalog``. Nothing in it is readable
without the key: every entry's name is a keyed hash of its logical key and every value is sealed
(AES-GCM) with that name as context, so a value cannot be moved under another name either.

A repository's package list is split over ``LISTING_SHARDS`` entries by the package's entry name, so
adding a package rewrites a short list, not one that grows with the repository.

Concurrency rule: one package is one entry, updated read-modify-write under a process-local lock, so the
daemon's threads never lose each other's updates. The daemon is the only writer: `gc` and `verify` run
while it is stopped (the index refuses a second process).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from proxy.config.model import Format
from proxy.store.index import Index, entry_namer
from proxy.store.keyring import KeyRing
from proxy.store.sealed import seal, unseal

LISTING_SHARDS = 1024  # ~100 packages a shard at 100,000 in a repository; a listing reads every shard

OriginType = Literal["INTERNAL", "EXTERNAL"]
Restriction = Literal["ALLOW", "BLOCK"]


@dataclass(frozen=True)
class PackageCoordinate:
    """A package within a repository; ``namespace`` is the npm scope, Maven groupId, or '' for PyPI."""

    format: Format
    namespace: str
    name: str


@dataclass
class AssetRecord:
    name: str
    size: int
    blob_id: str
    hashes: dict[
        str, str
    ]  # algorithm -> lowercase hex: SHA-256, SHA-512, SHA-1, MD5 as CodeArtifact lists them


@dataclass
class PackageVersionOrigin:
    """Where a package version entered the domain, as CodeArtifact's PackageVersionOrigin."""

    origin_type: OriginType  # INTERNAL: published to a repository here; EXTERNAL: fetched from an upstream
    entry_point: str  # the repository it was published to, or the upstream it came through


@dataclass
class PackageVersionRecord:
    version: str
    origin: PackageVersionOrigin
    status: str = "Published"
    published_time: float = field(default_factory=time.time)
    assets: dict[str, AssetRecord] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)  # the format's own version document, if any


@dataclass
class OriginConfiguration:
    """CodeArtifact's package origin controls for one package in one repository."""

    publish: Restriction = "ALLOW"
    upstream: Restriction = "ALLOW"


@dataclass
class PackageRecord:
    coordinate: PackageCoordinate
    origin_configuration: OriginConfiguration = field(default_factory=OriginConfiguration)
    versions: dict[str, PackageVersionRecord] = field(default_factory=dict)
    dist_tags: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        # By hand: dataclasses.asdict deep-copies, and was a tenth of a cold tarball's catalog write.
        return {
            "coordinate": vars(self.coordinate),
            "origin_configuration": vars(self.origin_configuration),
            "versions": {
                version: {
                    **vars(pv),
                    "origin": vars(pv.origin),
                    "assets": {name: vars(asset) for name, asset in pv.assets.items()},
                }
                for version, pv in self.versions.items()
            },
            "dist_tags": self.dist_tags,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> PackageRecord:
        versions = {
            v: PackageVersionRecord(
                version=pv["version"],
                origin=PackageVersionOrigin(**pv["origin"]),
                status=pv["status"],
                published_time=pv["published_time"],
                assets={a: AssetRecord(**rec) for a, rec in pv["assets"].items()},
                metadata=pv["metadata"],
            )
            for v, pv in doc["versions"].items()
        }
        return cls(
            coordinate=PackageCoordinate(**doc["coordinate"]),
            origin_configuration=OriginConfiguration(**doc["origin_configuration"]),
            versions=versions,
            dist_tags=doc["dist_tags"],
        )


@dataclass(frozen=True)
class ListingCursor:
    """Where a paged package listing goes on: the shard, and the last entry taken from it."""

    shard: int
    after: tuple[str, str, str] | None


class Catalog:
    def __init__(self, root: Path, keyring: KeyRing, *, shared: bool = False) -> None:
        self.index = Index(root, shared=shared, known_names=True)
        self._keyring = keyring
        self._entry_name = entry_namer(keyring, "catalog")
        self._lock = threading.RLock()
        self._known_repositories: set[str] | None = None

    def close(self) -> None:
        self.index.close()

    def sync(self) -> None:
        """Make every change so far survive a power failure (see proxy.store.index)."""
        self.index.sync()

    # -- sealed entries -------------------------------------------------------------------------
    def _get(self, *key: str) -> Any:
        name = self._entry_name(key)
        raw = self.index.get(name)
        if raw is None:
            return None
        return json.loads(unseal(self._keyring, raw, context=name.encode()))

    def _set(self, value: Any, *key: str) -> None:
        name = self._entry_name(key)
        self.index.set(name, seal(self._keyring, json.dumps(value).encode(), context=name.encode()))

    def _delete(self, *key: str) -> None:
        self.index.delete(self._entry_name(key))

    # -- repositories and packages --------------------------------------------------------------
    @staticmethod
    def _package_key(repository: str, coordinate: PackageCoordinate) -> tuple[str, ...]:
        return ("package", repository, coordinate.format, coordinate.namespace, coordinate.name)

    def package(self, repository: str, coordinate: PackageCoordinate) -> PackageRecord | None:
        doc = self._get(*self._package_key(repository, coordinate))
        return PackageRecord.from_json(doc) if doc else None

    def update_package(
        self,
        repository: str,
        coordinate: PackageCoordinate,
        change: Callable[[PackageRecord], None],
        *,
        commit: bool = False,
    ) -> PackageRecord:
        """Apply ``change`` to the package's record (created if new) and store the result atomically.
        ``commit``: committed before this returns, not with the index's group (see proxy.store.index)."""
        with self._lock, self.index.transaction():  # the record and its listing together
            existing = self.package(repository, coordinate)
            record = existing or PackageRecord(coordinate)
            change(record)
            self._set(record.to_json(), *self._package_key(repository, coordinate))
            if existing is None:
                self._list(repository, coordinate)
        if commit:
            self.index.commit()
        return record

    def delete_package(self, repository: str, coordinate: PackageCoordinate) -> None:
        entry = [coordinate.format, coordinate.namespace, coordinate.name]
        with self._lock, self.index.transaction():  # the record and its listing together
            self._delete(*self._package_key(repository, coordinate))
            key = self._listing_key(repository, coordinate)
            listed = self._get(*key) or []
            if entry in listed:
                listed.remove(entry)
                self._set(listed, *key)

    def packages(self, repository: str) -> list[PackageCoordinate]:
        keys = _listing_keys(repository)
        return [PackageCoordinate(f, ns, n) for key in keys for f, ns, n in self._get(*key) or []]

    def repositories(self) -> list[str]:
        return self._get("repositories") or []

    def _listing_key(self, repository: str, coordinate: PackageCoordinate) -> tuple[str, ...]:
        name = self._entry_name(self._package_key(repository, coordinate))
        return _shard_key(repository, int(name[:8], 16) % LISTING_SHARDS)

    def _list(self, repository: str, coordinate: PackageCoordinate) -> None:
        key = self._listing_key(repository, coordinate)
        listed = self._get(*key) or []
        entry = [coordinate.format, coordinate.namespace, coordinate.name]
        if entry not in listed:
            self._set([*listed, entry], *key)
        if self._known_repositories is None or self.index.shared:  # workers: another may have added one
            self._known_repositories = set(self.repositories())
        if repository not in self._known_repositories:
            self._known_repositories.add(repository)
            self._set(sorted(self._known_repositories), "repositories")

    def package_page(
        self,
        repository: str,
        cursor: ListingCursor | None,
        limit: int,
        keep: Callable[[PackageCoordinate], bool],
    ) -> tuple[list[PackageCoordinate], ListingCursor | None]:
        """Up to ``limit`` listed packages of ``repository`` that ``keep`` accepts, from ``cursor`` on
        (None: the start), and the cursor of the next page (None: this was the last).

        Reads listing shards in order until the page is full, so a page costs the shards it spans, not
        the whole repository. Within a shard entries are taken in sorted order after the cursor's
        entry, so packages added or deleted between pages neither repeat nor shift the others."""
        keys = _listing_keys(repository)
        shard, after = (cursor.shard, cursor.after) if cursor else (0, None)
        page: list[PackageCoordinate] = []
        while shard < len(keys):
            entries = sorted(tuple(entry) for entry in self._get(*keys[shard]) or [])
            for entry in entries:
                if after is not None and entry <= after:
                    continue
                coordinate = PackageCoordinate(*entry)
                if keep(coordinate):
                    page.append(coordinate)
                    if len(page) == limit:
                        return page, ListingCursor(shard, entry)
            shard, after = shard + 1, None
        return page, None

    def records(self) -> Iterator[tuple[str, PackageRecord]]:
        """Every package record of every repository (for gc, verify and the control plane)."""
        for repository in self.repositories():
            for coordinate in self.packages(repository):
                record = self.package(repository, coordinate)
                if record is not None:
                    yield repository, record


def _shard_key(repository: str, shard: int) -> tuple[str, ...]:
    return ("listing", repository, str(shard))


def _listing_keys(repository: str) -> list[tuple[str, ...]]:
    return [_shard_key(repository, shard) for shard in range(LISTING_SHARDS)]
