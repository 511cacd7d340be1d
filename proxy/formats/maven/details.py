"""Maven's answer to DescribePackageVersion and ListPackageVersionDependencies: read from the version's
POM asset. Maven has no readme."""

from __future__ import annotations

from collections.abc import Collection
from xml.etree.ElementTree import Element

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from proxy.repository.details import Dependency, License, ReadAsset, VersionDetails, text
from proxy.store.protocols import PackageCoordinate, PackageRecord, PackageVersionRecord

MAX_POM = 4 * 1024 * 1024


def coordinate(namespace: str | None, name: str) -> PackageCoordinate:
    """namespace is the groupId, name the artifactId."""
    return PackageCoordinate("maven", namespace or "", name)


async def version_details(
    coordinate: PackageCoordinate, version: PackageVersionRecord, read: ReadAsset
) -> VersionDetails:
    poms = [a for name, a in sorted(version.assets.items()) if name.endswith(".pom")]
    if not poms or poms[0].size > MAX_POM:
        return VersionDetails(coordinate.name)
    try:
        root = ElementTree.fromstring(await read(poms[0]))
    except (ElementTree.ParseError, DefusedXmlException, ValueError):
        return VersionDetails(coordinate.name)
    return VersionDetails(
        display_name=_child(root, "name") or coordinate.name,
        summary=_child(root, "description"),
        home_page=_child(root, "url"),
        source_code_repository=_child(_find(root, "scm"), "url"),
        licenses=[
            License(name, _child(item, "url"))
            for item in _all(_find(root, "licenses"), "license")
            if (name := _child(item, "name"))
        ],
        readme=None,
        dependencies=dependencies(root),
    )


def dependencies(root: Element) -> list[Dependency]:
    return [
        Dependency(
            _child(item, "groupId"),
            artifact,
            _child(item, "scope") or "compile",
            _child(item, "version"),
        )
        for item in _all(_find(root, "dependencies"), "dependency")
        if (artifact := _child(item, "artifactId"))
    ]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find(parent: Element | None, name: str) -> Element | None:
    if parent is None:
        return None
    return next((child for child in parent if _local(child.tag) == name), None)


def _all(parent: Element | None, name: str) -> list[Element]:
    return [child for child in parent if _local(child.tag) == name] if parent is not None else []


def _child(parent: Element | None, name: str) -> str | None:
    found = _find(parent, name)
    return text(found.text) if found is not None else None


def versions_copied(record: PackageRecord, versions: Collection[str]) -> None:
    """Versions were copied into ``record``: nothing else of the package depends on them here."""
