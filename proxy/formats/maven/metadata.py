"""maven-metadata.xml: parse (hardened), merge across the chain, render.

One model covers the three levels Maven uses: artifact level (``versioning/versions``), SNAPSHOT
version level (``versioning/snapshot`` and ``snapshotVersions``) and group level (``plugins``). Merging
takes the union of every part: versions in Maven's order with ``latest``/``release`` recomputed,
``lastUpdated`` the newest, for a SNAPSHOT the newest build per classifier and extension, plugin
prefixes by first place in chain order.

Untrusted XML is parsed with defusedxml (no entities, no external references). A body that is not a
``<metadata>`` document (an HTML error page, a truncated file) raises ``ValueError``, so the Fetcher
refuses to cache it and the client sees a 502.

Pure functions: safe from any thread.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from proxy.formats.maven.paths import ArtifactPath, parse_asset_name
from proxy.formats.maven.versions import is_snapshot, sort_versions


@dataclass(frozen=True)
class Snapshot:
    timestamp: str  # "20261125.193057"
    build_number: int


@dataclass(frozen=True)
class SnapshotVersion:
    classifier: str
    extension: str
    value: str  # "1.0-20261125.193057-1"
    updated: str  # "20261125193057"


@dataclass(frozen=True)
class Plugin:
    prefix: str
    artifact_id: str
    name: str | None = None


@dataclass(frozen=True)
class MavenMetadata:
    group_id: str | None = None
    artifact_id: str | None = None
    version: str | None = None  # SNAPSHOT version-level documents only
    versions: tuple[str, ...] = ()
    last_updated: str | None = None  # "yyyyMMddHHmmss", UTC
    snapshot: Snapshot | None = None
    snapshot_versions: tuple[SnapshotVersion, ...] = ()
    plugins: tuple[Plugin, ...] = ()
    latest: str | None = field(default=None, compare=False)
    release: str | None = field(default=None, compare=False)


def timestamp_of(seconds: float) -> str:
    """Maven's lastUpdated form of a POSIX time."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(seconds))


# -- parse ----------------------------------------------------------------------------------------
def parse(body: bytes) -> MavenMetadata:
    """Parse an upstream's or a client's maven-metadata.xml; ValueError when it is not one."""
    try:
        root = SafeET.fromstring(body)
    except (ET.ParseError, DefusedXmlException) as exc:
        raise ValueError(f"not a maven-metadata.xml document ({exc})") from None
    if _local(root.tag) != "metadata":
        raise ValueError(f"not a maven-metadata.xml document (root element <{_local(root.tag)}>)")
    versioning = _child(root, "versioning")
    snapshot = _child(versioning, "snapshot")
    return MavenMetadata(
        group_id=_text(root, "groupId"),
        artifact_id=_text(root, "artifactId"),
        version=_text(root, "version"),
        versions=tuple(v for v in _texts(_child(versioning, "versions"), "version") if v),
        last_updated=_text(versioning, "lastUpdated"),
        snapshot=_snapshot(snapshot),
        snapshot_versions=tuple(
            SnapshotVersion(
                classifier=_text(item, "classifier") or "",
                extension=_text(item, "extension") or "",
                value=_text(item, "value") or "",
                updated=_text(item, "updated") or "",
            )
            for item in _children(_child(versioning, "snapshotVersions"), "snapshotVersion")
        ),
        plugins=tuple(
            Plugin(_text(item, "prefix") or "", _text(item, "artifactId") or "", _text(item, "name"))
            for item in _children(_child(root, "plugins"), "plugin")
            if _text(item, "prefix") and _text(item, "artifactId")
        ),
        latest=_text(versioning, "latest"),
        release=_text(versioning, "release"),
    )


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]  # documents with the METADATA/1.1.0 namespace name their tags {ns}tag


def _children(parent: ET.Element | None, name: str) -> list[ET.Element]:
    if parent is None:
        return []
    return [child for child in parent if _local(child.tag) == name]


def _child(parent: ET.Element | None, name: str) -> ET.Element | None:
    found = _children(parent, name)
    return found[0] if found else None


def _text(parent: ET.Element | None, name: str) -> str | None:
    child = _child(parent, name)
    if child is None or child.text is None:
        return None
    return child.text.strip() or None


def _texts(parent: ET.Element | None, name: str) -> list[str]:
    return [(child.text or "").strip() for child in _children(parent, name)]


def _snapshot(element: ET.Element | None) -> Snapshot | None:
    if element is None:
        return None
    timestamp = _text(element, "timestamp")
    build = _text(element, "buildNumber")
    if not timestamp or not build or not build.isdigit():
        return None  # localCopy-only snapshots describe someone's local repository, not this one
    return Snapshot(timestamp, int(build))


# -- merge ----------------------------------------------------------------------------------------
def merge(documents: Iterable[MavenMetadata], hidden: Collection[str] = ()) -> MavenMetadata:
    """One document from the chain's answers, given in chain order, without the ``hidden`` versions
    (see proxy.repository.status)."""
    docs = list(documents)
    versions = sort_versions(v for doc in docs for v in doc.versions if v not in hidden)
    releases = [v for v in versions if not is_snapshot(v)]
    snapshot_versions: dict[tuple[str, str], SnapshotVersion] = {}
    for doc in docs:
        for item in doc.snapshot_versions:
            key = (item.classifier, item.extension)
            if key not in snapshot_versions or item.updated > snapshot_versions[key].updated:
                snapshot_versions[key] = item
    plugins: dict[str, Plugin] = {}
    for doc in docs:
        for plugin in doc.plugins:
            plugins.setdefault(plugin.prefix, plugin)
    snapshots = [doc.snapshot for doc in docs if doc.snapshot is not None]
    updated = [doc.last_updated for doc in docs if doc.last_updated]
    return MavenMetadata(
        group_id=_first(doc.group_id for doc in docs),
        artifact_id=_first(doc.artifact_id for doc in docs),
        version=_first(doc.version for doc in docs),
        versions=tuple(versions),
        last_updated=max(updated) if updated else None,
        snapshot=max(snapshots, key=lambda s: (s.timestamp, s.build_number)) if snapshots else None,
        snapshot_versions=tuple(snapshot_versions.values()),
        plugins=tuple(plugins.values()),
        latest=versions[-1] if versions else None,
        release=releases[-1] if releases else None,
    )


def _first(values: Iterable[str | None]) -> str | None:
    return next((v for v in values if v), None)


# -- from what a repository holds -----------------------------------------------------------------
def artifact_metadata(group: str, artifact: str, versions: dict[str, float]) -> MavenMetadata:
    """Artifact-level metadata of the versions a repository holds (version -> published time)."""
    ordered = sort_versions(versions)
    return MavenMetadata(
        group_id=group,
        artifact_id=artifact,
        versions=tuple(ordered),
        last_updated=timestamp_of(max(versions.values())) if versions else None,
    )


def snapshot_metadata(group: str, artifact: str, version: str, assets: Iterable[str]) -> MavenMetadata | None:
    """SNAPSHOT version-level metadata made from the timestamped builds a repository holds (asset file
    names); None when it holds no timestamped build of that version."""
    newest: dict[tuple[str, str], tuple[int, str]] = {}
    for filename in assets:
        name = parse_asset_name(ArtifactPath(group, artifact, version, filename))
        if name is None or name.timestamp is None or name.build_number is None:
            continue
        key = (name.classifier, name.extension)
        if key not in newest or (name.build_number, name.timestamp) > newest[key]:
            newest[key] = (name.build_number, name.timestamp)
    if not newest:
        return None
    build, stamp = max(newest.values())
    base = version.removesuffix("SNAPSHOT")
    items = tuple(
        SnapshotVersion(classifier, extension, f"{base}{ts}-{number}", ts.replace(".", ""))
        for (classifier, extension), (number, ts) in sorted(newest.items())
    )
    return MavenMetadata(
        group_id=group,
        artifact_id=artifact,
        version=version,
        last_updated=max(item.updated for item in items),
        snapshot=Snapshot(stamp, build),
        snapshot_versions=items,
    )


# -- render ---------------------------------------------------------------------------------------
def render(doc: MavenMetadata) -> bytes:
    root = ET.Element("metadata", modelVersion="1.1.0")
    _add(root, "groupId", doc.group_id)
    _add(root, "artifactId", doc.artifact_id)
    _add(root, "version", doc.version)
    if doc.versions or doc.snapshot or doc.snapshot_versions or doc.last_updated:
        versioning = ET.SubElement(root, "versioning")
        _add(versioning, "latest", doc.latest)
        _add(versioning, "release", doc.release)
        if doc.snapshot is not None:
            snapshot = ET.SubElement(versioning, "snapshot")
            _add(snapshot, "timestamp", doc.snapshot.timestamp)
            _add(snapshot, "buildNumber", str(doc.snapshot.build_number))
        if doc.versions:
            versions = ET.SubElement(versioning, "versions")
            for version in doc.versions:
                _add(versions, "version", version)
        _add(versioning, "lastUpdated", doc.last_updated)
        if doc.snapshot_versions:
            items = ET.SubElement(versioning, "snapshotVersions")
            for item in doc.snapshot_versions:
                element = ET.SubElement(items, "snapshotVersion")
                _add(element, "classifier", item.classifier or None)
                _add(element, "extension", item.extension)
                _add(element, "value", item.value)
                _add(element, "updated", item.updated)
    if doc.plugins:
        plugins = ET.SubElement(root, "plugins")
        for plugin in doc.plugins:
            element = ET.SubElement(plugins, "plugin")
            _add(element, "name", plugin.name)
            _add(element, "prefix", plugin.prefix)
            _add(element, "artifactId", plugin.artifact_id)
    ET.indent(root, space="  ")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{ET.tostring(root, encoding="unicode")}\n'.encode()


def _add(parent: ET.Element, name: str, value: str | None) -> None:
    if value is not None:
        ET.SubElement(parent, name).text = value
