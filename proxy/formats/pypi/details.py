"""PyPI's answer to DescribePackageVersion, GetPackageVersionReadme and ListPackageVersionDependencies:
read from a version's core metadata (the ``<file>.metadata`` asset held next to a file, else the
METADATA inside a held wheel). The readme is the metadata's description."""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import Collection

from packaging.metadata import parse_email
from packaging.requirements import InvalidRequirement, Requirement

from proxy.formats.pypi.names import METADATA_SUFFIX, normalize
from proxy.repository.details import MAX_DETAILS_ASSET, Dependency, License, ReadAsset, VersionDetails, text
from proxy.store.protocols import PackageCoordinate, PackageRecord, PackageVersionRecord

HOME_PAGE_LABELS = ("homepage", "home-page", "home")
SOURCE_LABELS = ("source", "source code", "repository", "code")


def coordinate(namespace: str | None, name: str) -> PackageCoordinate:
    """PyPI has no namespace; the name is normalized as the catalog keeps it."""
    return PackageCoordinate("pypi", "", normalize(name))


async def version_details(
    coordinate: PackageCoordinate, version: PackageVersionRecord, read: ReadAsset
) -> VersionDetails:
    raw = await _core_metadata(version, read)
    if raw is None:
        return VersionDetails(coordinate.name)
    fields, _ = parse_email(raw)
    urls = {label.strip().lower(): url.strip() for label, url in fields.get("project_urls", {}).items()}
    home = text(fields.get("home_page")) or next((urls[k] for k in HOME_PAGE_LABELS if k in urls), None)
    license = text(fields.get("license_expression")) or text(fields.get("license"))
    return VersionDetails(
        display_name=text(fields.get("name")) or coordinate.name,
        summary=text(fields.get("summary")),
        home_page=home,
        source_code_repository=next((urls[k] for k in SOURCE_LABELS if k in urls), None),
        licenses=[License(license.splitlines()[0])] if license else [],
        readme=text(fields.get("description")),
        dependencies=dependencies(fields.get("requires_dist", [])),
    )


def dependencies(requires_dist: list[str]) -> list[Dependency]:
    found = []
    for line in requires_dist:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        kind = "extra" if requirement.marker and "extra" in str(requirement.marker) else "install"
        found.append(Dependency(None, normalize(requirement.name), kind, str(requirement.specifier) or None))
    return found


async def _core_metadata(version: PackageVersionRecord, read: ReadAsset) -> bytes | None:
    held = [a for name, a in sorted(version.assets.items()) if name.endswith(METADATA_SUFFIX)]
    if held:
        return await read(held[0])
    wheels = [a for name, a in sorted(version.assets.items()) if name.endswith(".whl")]
    if wheels and wheels[0].size <= MAX_DETAILS_ASSET:
        return await asyncio.to_thread(_wheel_metadata, await read(wheels[0]))
    return None


def _wheel_metadata(data: bytes) -> bytes | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as wheel:
            found = [n for n in wheel.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
            return wheel.read(found[0]) if len(found) == 1 else None
    except (zipfile.BadZipFile, OSError, EOFError):
        return None


def versions_copied(record: PackageRecord, versions: Collection[str]) -> None:
    """Versions were copied into ``record``: nothing else of the package depends on them here."""
