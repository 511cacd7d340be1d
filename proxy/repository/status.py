"""Package version statuses and what clients see of them, as CodeArtifact applies them.

- Published: listed (packuments, simple pages, maven-metadata) and fetchable.
- Unlisted: absent from listings, still fetchable by its exact version (a lockfile, a pinned URL).
- Archived, Disposed: neither listed nor fetchable.

A status is a repository's word on a version, whether the version was published there or cached from
an upstream: a cached EXTERNAL version with a local status is hidden even though the upstream still
lists it. ``proxy.repository.resolve`` applies these rules where a chain's answers are gathered.
"""

from __future__ import annotations

from collections.abc import Iterable

from proxy.store.protocols import PackageRecord, PackageVersionRecord

LISTED = frozenset({"Published"})
FETCHABLE = frozenset({"Published", "Unlisted"})
SETTABLE = frozenset({"Published", "Unlisted", "Archived"})  # by UpdatePackageVersionsStatus


def listed(version: PackageVersionRecord) -> bool:
    return version.status in LISTED


def fetchable(version: PackageVersionRecord) -> bool:
    return version.status in FETCHABLE


def unlisted_versions(records: Iterable[PackageRecord]) -> dict[str, str]:
    """Version -> status of every version that the given records (a chain's repositories, in chain
    order) keep out of listings; the first record that has the version decides."""
    decided: dict[str, str] = {}
    for record in records:
        for version, pv in record.versions.items():
            decided.setdefault(version, pv.status)
    return {version: status for version, status in decided.items() if status not in LISTED}


def listed_record(record: PackageRecord) -> PackageRecord:
    """The record with only its listed versions (what a repository answers for a listing)."""
    if all(listed(pv) for pv in record.versions.values()):
        return record
    versions = {v: pv for v, pv in record.versions.items() if listed(pv)}
    return PackageRecord(record.coordinate, record.origin_configuration, versions, dict(record.dist_tags))


def unfetchable(records: Iterable[PackageRecord], version: str) -> str | None:
    """The status that forbids fetching ``version`` in the first of the records (a chain's
    repositories) that has it, or None when it may be fetched (or no record has it)."""
    for record in records:
        pv = record.versions.get(version)
        if pv is not None:
            return None if fetchable(pv) else pv.status
    return None
