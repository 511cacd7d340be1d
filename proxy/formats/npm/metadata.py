"""npm package metadata (packuments): parse what a place has, merge a chain's answers, render for clients.

Merge rules, as CodeArtifact applies them along a repository's chain:
- versions are the union; a version present in several places is taken from the first in chain order;
- ``time`` keeps each version's time from the place the version came from, the earliest ``created`` and
  the latest ``modified``;
- dist-tags: a place's tag overrides the same tag from places before it in the chain (on a conflict the
  upstream's value wins); a tag pointing at a version that is not in the merged list is dropped, and then
  the value from an earlier place counts, if it is valid;
- other top-level fields (description, readme, ...) come from the first place that has the package.

Every version keeps where it came from (VersionSource), so the tarball handler can fetch and verify it.
Rendering rewrites every ``dist.tarball`` to the proxy. Pure functions on plain data, no I/O.

An upstream packument is read in two depths. ``parse_packument`` checks the whole body and keeps what
installing needs (per version the ``INSTALL_FIELDS`` and the install scripts; ``dist-tags``, ``time``):
it is what is merged for the abbreviated form, the tarballs and the dist-tags, and it skips the
readmes, ``devDependencies``-sized maintainers lists and other fields that make most of a large
packument's bytes. ``parse_complete`` reads everything, for the full form and a version's document; a
merged packument made of the first kind carries how to make its complete counterpart
(``Packument.complete``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypedDict

import msgspec

from proxy.formats.common import json_codec
from proxy.formats.npm.names import PackageName
from proxy.store.catalog import PackageRecord

Document = dict[str, Any]

ABBREVIATED_TYPE = "application/vnd.npm.install-v1+json"
# What npm needs to install a version: the abbreviated ("corgi") form keeps only these.
INSTALL_FIELDS = (
    "name",
    "version",
    "deprecated",
    "dependencies",
    "optionalDependencies",
    "devDependencies",
    "bundleDependencies",
    "bundledDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "acceptDependencies",
    "bin",
    "directories",
    "dist",
    "engines",
    "cpu",
    "os",
    "libc",
    "funding",
    "_hasShrinkwrap",
    "hasInstallScript",
)
_INSTALL_SCRIPTS = ("preinstall", "install", "postinstall")
# A JSON value that is not an object: a version or ``scripts`` of another type is kept (and skipped when
# merged or abbreviated) rather than failing the whole packument, as a fully read one would be.
_Other = str | int | float | bool | None | list[Any]
_Scripts = TypedDict("_Scripts", {s: Any for s in _INSTALL_SCRIPTS}, total=False)  # type: ignore[misc]
_InstallVersion = TypedDict(  # type: ignore[misc]
    "_InstallVersion", {**{f: Any for f in INSTALL_FIELDS}, "scripts": _Scripts | _Other}, total=False
)
_InstallPackument = TypedDict(  # type: ignore[misc]
    "_InstallPackument",
    {"versions": dict[str, _InstallVersion | _Other], "dist-tags": dict[str, Any], "time": dict[str, Any]},
    total=False,
)
_INSTALL_SHAPE = msgspec.json.Decoder(_InstallPackument)
_INSTALL_SHAPED = frozenset({*INSTALL_FIELDS, "scripts"})  # the keys of a version ``parse_packument`` keeps
_DROPPED_TOP_LEVEL = frozenset({"_id", "_rev", "_attachments", "name", "versions", "dist-tags", "time"})


@dataclass(frozen=True)
class VersionSource:
    """Where a version of the merged packument comes from."""

    place: str  # the chain place (repository or upstream name)
    upstream: bool  # False: published in a local repository of this proxy
    tarball: str  # the upstream's own tarball URL ('' for a local repository)
    integrity: str  # dist.integrity as declared ('' when absent)
    shasum: str  # dist.shasum as declared ('' when absent)


@dataclass(frozen=True)
class PlaceDocument:
    """One place's packument, in chain order, ready to merge."""

    place: str
    upstream: bool
    doc: Document


@dataclass(frozen=True)
class Packument:
    """A merged packument. Treated as immutable once built: renders share its dictionaries."""

    package: PackageName
    versions: dict[str, Document]
    sources: Sources
    dist_tags: dict[str, str]
    time: dict[str, str]
    fields: Document
    # Merges the places' complete documents, when this one was merged from what installing needs.
    completed_by: Callable[[], Packument] | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        return self.package.full

    def complete(self) -> Packument:
        """This packument with every field of every version (the full form): itself when it has them,
        else merged again from the places' complete documents (parsed now, not kept)."""
        return self if self.completed_by is None else self.completed_by()

    def version_for(self, spec: str) -> str | None:
        """A version or dist-tag -> the version it names in this packument, or None."""
        if spec in self.versions:
            return spec
        tagged = self.dist_tags.get(spec)
        return tagged if tagged in self.versions else None


# -- parsing ------------------------------------------------------------------------------------
def parse_packument(body: bytes) -> Document:
    """What installing needs of an upstream's packument (see the module docstring), the whole body
    checked; ValueError when it is not a packument (the Fetcher then refuses to cache it)."""
    try:
        return json_codec.loads_as(body, _INSTALL_SHAPE)
    except ValueError as exc:  # not UTF-8, not JSON, or not of a packument's shape
        raise ValueError(f"packument is not a packument ({exc})") from None
    except RecursionError:
        raise ValueError("packument is nested too deeply") from None


def parse_complete(body: bytes) -> Document:
    """Every field of an upstream's packument that ``parse_packument`` accepted (which checked it: the
    same reader reads it whole)."""
    doc: Document = json_codec.loads(body)
    return doc


def iso_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def local_document(package: PackageName, record: PackageRecord) -> Document | None:
    """What a local repository publishes of the package, as a packument; None when it publishes nothing
    (a record that only indexes fetched assets is a cache, not a place that has the package)."""
    published = {
        v: pv for v, pv in record.versions.items() if pv.origin.origin_type == "INTERNAL" and pv.metadata
    }
    if not published:
        return None
    times = {v: iso_time(pv.published_time) for v, pv in published.items()}
    stamps = [pv.published_time for pv in published.values()]
    latest = published.get(record.dist_tags.get("latest", ""))
    fields = {"description": latest.metadata.get("description", "")} if latest else {}
    return {
        "name": package.full,
        **fields,
        "dist-tags": dict(record.dist_tags),
        "versions": {v: pv.metadata for v, pv in published.items()},
        "time": {"created": iso_time(min(stamps)), "modified": iso_time(max(stamps)), **times},
    }


# -- merging ------------------------------------------------------------------------------------
def merge(package: PackageName, found: Iterable[PlaceDocument], hidden: Collection[str] = ()) -> Packument:
    """Merge the places' packuments (in chain order) by the rules in the module docstring, without the
    ``hidden`` versions (see proxy.repository.status)."""
    versions: dict[str, Document] = {}
    origins: dict[str, PlaceDocument] = {}
    times: dict[str, str] = {}
    tag_candidates: dict[str, list[str]] = {}
    created: list[str] = []
    modified: list[str] = []
    fields: Document | None = None
    for item in found:
        doc = item.doc
        if fields is None:
            fields = {k: v for k, v in doc.items() if k not in _DROPPED_TOP_LEVEL}
        doc_time = _string_map(doc.get("time"))
        for version, vdoc in _dict(doc.get("versions")).items():
            if version in versions or version in hidden or not isinstance(vdoc, dict):
                continue
            versions[version] = vdoc
            origins[version] = item
            if version in doc_time:
                times[version] = doc_time[version]
        created.extend(doc_time[k] for k in ("created",) if k in doc_time)
        modified.extend(doc_time[k] for k in ("modified",) if k in doc_time)
        for tag, version in _string_map(doc.get("dist-tags")).items():
            tag_candidates.setdefault(tag, []).append(version)
    dist_tags = {}
    for tag, candidates in tag_candidates.items():
        valid = [v for v in candidates if v in versions]
        if valid:
            dist_tags[tag] = valid[-1]
    merged_time = {}
    if created:
        merged_time["created"] = min(created)
    if modified:
        merged_time["modified"] = max(modified)
    merged_time.update(times)
    return Packument(package, versions, Sources(origins, versions), dist_tags, merged_time, fields or {})


class Sources(Mapping[str, VersionSource]):
    """Where each version of a merged packument comes from, made when asked for: serving a tarball
    needs one version's, and a packument lists hundreds."""

    def __init__(self, origins: dict[str, PlaceDocument], versions: dict[str, Document]) -> None:
        self._origins = origins
        self._versions = versions

    def __getitem__(self, version: str) -> VersionSource:
        return VersionSource(*self.row(version))

    def __iter__(self) -> Iterator[str]:
        return iter(self._origins)

    def __len__(self) -> int:
        return len(self._origins)

    def row(self, version: str) -> tuple[str, bool, str, str, str]:
        """``version``'s source as a tuple of ``VersionSource``'s fields."""
        item = self._origins[version]
        dist = self._versions[version].get("dist")
        if not isinstance(dist, dict):
            return (item.place, item.upstream, "", "", "")
        tarball = dist.get("tarball") if item.upstream else ""
        integrity, shasum = dist.get("integrity"), dist.get("shasum")
        return (item.place, item.upstream, _str(tarball), _str(integrity), _str(shasum))


_LOCATED = msgspec.json.Decoder(dict[str, tuple[str, bool, str, str, str]])


def located_sources(packument: Packument) -> bytes:
    """Every version's source, as JSON (what a released view keeps to locate its tarballs)."""
    sources = packument.sources
    return json_codec.dumps({v: sources.row(v) for v in sources})


def source_located(located: bytes, version: str) -> VersionSource | None:
    """``version``'s source in what ``located_sources`` made (None: not a version it lists)."""
    row = _LOCATED.decode(located).get(version)
    return None if row is None else VersionSource(*row)


def _dict(value: object) -> Document:
    return value if isinstance(value, dict) else {}


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _string_map(value: object) -> dict[str, str]:
    return {k: v for k, v in _dict(value).items() if isinstance(v, str)}


# -- rendering ----------------------------------------------------------------------------------
def tarball_prefix(base: str, repository: str, package: PackageName) -> str:
    """``<base>npm/<repo>/<name>/-/``: where the package's tarballs are on the proxy (never an upstream)."""
    return f"{base}npm/{repository}/{package.full}/-/"


def version_document(packument: Packument, version: str, tarballs: str) -> Document:
    """A version's document with ``dist.tarball`` at ``tarballs`` (a ``tarball_prefix``) on the proxy."""
    vdoc = packument.versions[version]
    dist = {**_dict(vdoc.get("dist")), "tarball": tarballs + packument.package.tarball_file(version)}
    return {**vdoc, "dist": dist}


def render_full(packument: Packument, tarballs: str) -> Document:
    return {
        "_id": packument.name,
        "name": packument.name,
        **packument.fields,
        "dist-tags": packument.dist_tags,
        "versions": {v: version_document(packument, v, tarballs) for v in packument.versions},
        "time": packument.time,
    }


def render_abbreviated(packument: Packument, tarballs: str) -> Document:
    tarball_file = packument.package.tarball_file
    return {
        "name": packument.name,
        "modified": packument.time.get("modified") or iso_time(0),
        "dist-tags": packument.dist_tags,
        # What abbreviate(version_document(...)) gives, without copying each whole version document.
        "versions": {
            v: abbreviate(vdoc, tarballs + tarball_file(v)) for v, vdoc in packument.versions.items()
        },
    }


def abbreviate(vdoc: Document, tarball: str | None = None) -> Document:
    """Only the fields npm needs to install; ``hasInstallScript`` derived when the registry left it out.
    ``tarball``: the ``dist.tarball`` to give it (a version document always has ``dist`` then)."""
    if vdoc.keys() <= _INSTALL_SHAPED:  # read by ``parse_packument``: copied, not picked field by field
        short = dict(vdoc)
        scripts = short.pop("scripts", None)
    else:
        short = {k: vdoc[k] for k in INSTALL_FIELDS if k in vdoc}
        scripts = vdoc.get("scripts")
    if tarball is not None:
        short["dist"] = {**_dict(vdoc.get("dist")), "tarball": tarball}
    if (
        "hasInstallScript" not in short
        and isinstance(scripts, dict)
        and not scripts.keys().isdisjoint(_INSTALL_SCRIPTS)
    ):
        short["hasInstallScript"] = True
    return short


def dumps(doc: Document) -> bytes:
    return json_codec.dumps(doc)
