"""Package versions and assets in a repository's catalog: recording what was fetched or published,
and finding a stored asset again. Every format records through these, so origin configuration and
pinning follow one set of rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from proxy.repository.origin import FETCHED_DEFAULT, PUBLISHED_DEFAULT
from proxy.repository.status import fetchable
from proxy.store.protocols import (
    AssetRecord,
    BlobInfo,
    CatalogService,
    PackageCoordinate,
    PackageRecord,
    PackageVersionOrigin,
    PackageVersionRecord,
)


def asset_record(name: str, info: BlobInfo) -> AssetRecord:
    """An asset as CodeArtifact lists it: name, size and hashes by its algorithm names."""
    hashes = {"SHA-256": info.sha256, "SHA-512": info.sha512, "SHA-1": info.sha1, "MD5": info.md5}
    return AssetRecord(name=name, size=info.size, blob_id=info.blob_id, hashes=hashes)


async def record_fetched_asset(
    catalog: CatalogService,
    repository: str,
    coordinate: PackageCoordinate,
    version: str,
    asset: AssetRecord,
    upstream: str,
) -> None:
    """Remember an asset fetched through ``upstream`` into ``repository`` (the cache's index)."""

    def change(record: PackageRecord) -> None:
        if not record.versions:
            record.origin_configuration = FETCHED_DEFAULT
        pv = record.versions.setdefault(
            version, PackageVersionRecord(version, PackageVersionOrigin("EXTERNAL", upstream))
        )
        pv.assets[asset.name] = asset

    await catalog.update_package(repository, coordinate, change)


async def update_published(
    catalog: CatalogService,
    repository: str,
    coordinate: PackageCoordinate,
    change: Callable[[PackageRecord], None],
) -> PackageRecord:
    """Apply a publishing change; a package new to the repository gets the published origin defaults.
    ``change`` may raise to refuse (nothing is written then). Returns once the change is durable: a
    publish is the only copy, unlike a fetched asset (``record_fetched_asset`` does not wait)."""

    def apply(record: PackageRecord) -> None:
        if not record.versions:
            record.origin_configuration = PUBLISHED_DEFAULT
        change(record)

    # Committed here, not by the sync: the group it joins could be committed, and fail, in between.
    updated = await catalog.update_package(repository, coordinate, apply, commit=True)
    await catalog.sync()
    return updated


def published_version(
    version: str, repository: str, assets: list[AssetRecord], metadata: dict[str, Any]
) -> PackageVersionRecord:
    return PackageVersionRecord(
        version,
        PackageVersionOrigin("INTERNAL", repository),
        assets={a.name: a for a in assets},
        metadata=metadata,
    )


async def find_asset(
    catalog: CatalogService, repository: str, coordinate: PackageCoordinate, version: str, name: str
) -> AssetRecord | None:
    """The stored asset, or None when the repository does not hold it or its status forbids fetching."""
    record = await catalog.package(repository, coordinate)
    if record is None or version not in record.versions or not fetchable(record.versions[version]):
        return None
    return record.versions[version].assets.get(name)
