"""npm's answer to DescribePackageVersion, GetPackageVersionReadme and ListPackageVersionDependencies:
read from the version document recorded at publish, or, for a version cached from an upstream, from
the ``package/package.json`` (and README) inside its stored tarball."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
from collections.abc import Collection
from typing import Any

from proxy.formats.npm.names import full_name
from proxy.repository.details import (
    MAX_DETAILS_ASSET,
    Dependency,
    License,
    ReadAsset,
    VersionDetails,
    text,
    version_order,
)
from proxy.store.protocols import PackageCoordinate, PackageRecord, PackageVersionRecord

DEPENDENCY_FIELDS = {
    "dependencies": "regular",
    "devDependencies": "dev",
    "optionalDependencies": "optional",
    "peerDependencies": "peer",
    "bundleDependencies": "bundle",
}


def coordinate(namespace: str | None, name: str) -> PackageCoordinate:
    """The catalog coordinate of an API (namespace, package): the scope without its '@'."""
    return PackageCoordinate("npm", (namespace or "").removeprefix("@"), name)


async def version_details(
    coordinate: PackageCoordinate, version: PackageVersionRecord, read: ReadAsset
) -> VersionDetails:
    manifest, readme = dict(version.metadata), None
    if not manifest or "readme" not in manifest:
        tarballs = [a for a in version.assets.values() if a.name.endswith(".tgz")]
        if tarballs and tarballs[0].size <= MAX_DETAILS_ASSET:
            packed, readme = await asyncio.to_thread(_from_tarball, await read(tarballs[0]))
            manifest = manifest or packed
    return VersionDetails(
        display_name=full_name(coordinate),
        summary=text(manifest.get("description")),
        home_page=text(manifest.get("homepage")),
        source_code_repository=_repository(manifest.get("repository")),
        licenses=_licenses(manifest.get("license"), manifest.get("licenses")),
        readme=text(manifest.get("readme")) or readme,
        dependencies=dependencies(manifest),
    )


def dependencies(manifest: dict[str, Any]) -> list[Dependency]:
    found = []
    for key, kind in DEPENDENCY_FIELDS.items():
        declared = manifest.get(key)
        if isinstance(declared, list):  # bundleDependencies may be a list of names
            declared = {name: None for name in declared if isinstance(name, str)}
        if not isinstance(declared, dict):
            continue
        for name, requirement in declared.items():
            scope, _, bare = name[1:].partition("/") if name.startswith("@") else ("", "", name)
            found.append(
                Dependency(scope or None, bare, kind, requirement if isinstance(requirement, str) else None)
            )
    return found


def _licenses(license: object, licenses: object) -> list[License]:
    if isinstance(license, str) and license.strip():
        return [License(license.strip())]
    if isinstance(license, dict) and text(license.get("type")):
        return [License(str(text(license.get("type"))), text(license.get("url")))]
    if isinstance(licenses, list):
        return [
            License(str(text(item.get("type"))), text(item.get("url")))
            for item in licenses
            if isinstance(item, dict) and text(item.get("type"))
        ]
    return []


def _repository(value: object) -> str | None:
    if isinstance(value, dict):
        return text(value.get("url"))
    return text(value)


def _from_tarball(data: bytes) -> tuple[dict[str, Any], str | None]:
    """package.json and the README of an npm tarball; ({}, None) when it cannot be read."""
    manifest: dict[str, Any] = {}
    readme = None
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            for member in archive:
                if not member.isfile() or member.name.count("/") != 1 or member.size > MAX_DETAILS_ASSET:
                    continue
                base = member.name.split("/", 1)[1]
                extracted = archive.extractfile(member)
                if extracted is None:
                    continue
                if base == "package.json":
                    doc = json.loads(extracted.read())
                    manifest = doc if isinstance(doc, dict) else {}
                elif base.lower().startswith("readme") and readme is None:
                    readme = extracted.read().decode("utf-8", "replace")
    except (tarfile.TarError, OSError, EOFError, ValueError):
        return {}, None
    return manifest, readme


def versions_copied(record: PackageRecord, versions: Collection[str]) -> None:
    """Versions were copied into ``record`` (CopyPackageVersions): a package that had no ``latest``
    dist-tag gets the highest of them, as a first publish would."""
    if versions and "latest" not in record.dist_tags:
        record.dist_tags["latest"] = max(versions, key=version_order)
