"""Paths of the Maven 2 repository layout, as clients ask for them under ``/maven/{repo}/``.

    org/example/hello/1.0/hello-1.0.jar                      an asset of package version org.example:hello 1.0
    org/example/hello/1.0-SNAPSHOT/hello-1.0-20261125.193057-1-sources.jar   a timestamped SNAPSHOT build
    org/example/hello/maven-metadata.xml                     artifact-level (or group-level) metadata
    org/example/hello/1.0-SNAPSHOT/maven-metadata.xml        SNAPSHOT version-level metadata
    org/apache/maven/plugins/maven-metadata.xml              group-level metadata (plugin prefixes)
    ...any of them + .md5 .sha1 .sha256 .sha512              a checksum of that file

A ``G/A/maven-metadata.xml`` path is both an artifact-level path (group G, artifact A) and a group-level
one (group G.A); the documents say which they are, and merging keeps both parts.

Anything else (``..``, empty or dot segments, control characters, a file that does not belong to its
version directory) is refused with ``BadPath``, before any store or upstream is asked.

Pure functions: safe from any thread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from proxy.formats.maven.versions import is_snapshot

ChecksumAlgorithm = Literal["md5", "sha1", "sha256", "sha512"]
CHECKSUM_ALGORITHMS: tuple[ChecksumAlgorithm, ...] = ("md5", "sha1", "sha256", "sha512")
HEX_LENGTHS: dict[ChecksumAlgorithm, int] = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}
METADATA_FILE = "maven-metadata.xml"

_BAD_CHARACTERS = re.compile(r"[\x00-\x1f\x7f\\:*?\"<>|]")
_TIMESTAMPED = re.compile(r"(?P<timestamp>\d{8}\.\d{6})-(?P<build>\d+)")


class BadPath(ValueError):
    """The path is not one of the Maven 2 layout's."""


@dataclass(frozen=True)
class ArtifactPath:
    """A file in a version directory: an asset of one package version."""

    group: str  # groupId, dotted
    artifact: str
    version: str  # the directory's version: 1.0, or 1.0-SNAPSHOT for every build of that SNAPSHOT
    filename: str  # the asset's name
    checksum: ChecksumAlgorithm | None = None

    @property
    def directory(self) -> str:
        return f"{self.group.replace('.', '/')}/{self.artifact}/{self.version}"

    @property
    def asset_path(self) -> str:
        """The path of the asset itself (without a checksum suffix), relative to the repository."""
        return f"{self.directory}/{self.filename}"


@dataclass(frozen=True)
class MetadataPath:
    """A ``maven-metadata.xml`` (or its checksum) at group, artifact or SNAPSHOT-version level."""

    directory: str  # the folder it is in, relative to the repository
    group: str  # the groupId when artifact-level, else the whole dotted folder
    artifact: str | None  # None when the folder can only be a group
    version: str | None  # set for SNAPSHOT version-level metadata
    checksum: ChecksumAlgorithm | None = None

    @property
    def document_path(self) -> str:
        return f"{self.directory}/{METADATA_FILE}"


@dataclass(frozen=True)
class AssetName:
    """What an asset's file name says: its SNAPSHOT build (if timestamped), classifier and extension."""

    timestamp: str | None  # "20261125.193057" for a timestamped SNAPSHOT build
    build_number: int | None
    classifier: str
    extension: str


MavenPath = ArtifactPath | MetadataPath


def parse_path(path: str) -> MavenPath:
    """Parse a path relative to ``/maven/{repo}/``; raise BadPath when it is not a layout path."""
    segments = path.split("/")
    for segment in segments:
        if segment in ("", ".", "..") or _BAD_CHARACTERS.search(segment):
            raise BadPath(f"not a Maven repository path: {path!r}")
    name, checksum = _split_checksum(segments[-1])
    folders = segments[:-1]
    if name == METADATA_FILE:
        return _metadata_path(path, folders, checksum)
    if len(folders) < 3:
        raise BadPath(f"not a Maven repository path (expected group/artifact/version/file): {path!r}")
    *group, artifact, version = folders
    parsed = ArtifactPath(".".join(group), artifact, version, name, checksum)
    if parse_asset_name(parsed) is None:
        raise BadPath(f"{name!r} is not a file of {parsed.group}:{artifact}:{version}")
    return parsed


def _split_checksum(name: str) -> tuple[str, ChecksumAlgorithm | None]:
    stem, dot, suffix = name.rpartition(".")
    for algorithm in CHECKSUM_ALGORITHMS:
        if dot and suffix == algorithm and stem:
            return stem, algorithm
    return name, None


def _metadata_path(path: str, folders: list[str], checksum: ChecksumAlgorithm | None) -> MetadataPath:
    if not folders:
        raise BadPath(f"not a Maven repository path (metadata needs a group folder): {path!r}")
    directory = "/".join(folders)
    if len(folders) >= 3 and is_snapshot(folders[-1]):
        *group, artifact, version = folders
        return MetadataPath(directory, ".".join(group), artifact, version, checksum)
    if len(folders) >= 2:
        return MetadataPath(directory, ".".join(folders[:-1]), folders[-1], None, checksum)
    return MetadataPath(directory, folders[0], None, None, checksum)


def parse_asset_name(path: ArtifactPath) -> AssetName | None:
    """Split an asset's file name into build, classifier and extension; None if it is not one of the
    version's files (``{artifact}-{version}[-{classifier}].{extension}``, SNAPSHOT builds timestamped)."""
    prefix = f"{path.artifact}-"
    if not path.filename.startswith(prefix):
        return None
    rest = path.filename[len(prefix) :]
    timestamp = build = None
    if is_snapshot(path.version):
        base = path.version.removesuffix("SNAPSHOT")
        if not rest.startswith(base):
            return None
        rest = rest[len(base) :]
        stamped = _TIMESTAMPED.match(rest)
        if stamped:
            timestamp, build = stamped["timestamp"], int(stamped["build"])
            rest = rest[stamped.end() :]
        elif rest.startswith("SNAPSHOT"):
            rest = rest[len("SNAPSHOT") :]
        else:
            return None
    elif rest.startswith(path.version):
        rest = rest[len(path.version) :]
    else:
        return None
    classifier = ""
    if rest.startswith("-"):
        classifier, dot, rest = rest[1:].partition(".")
        if not classifier or not dot:
            return None
        rest = "." + rest
    if not rest.startswith(".") or len(rest) < 2:
        return None
    return AssetName(timestamp, build, classifier, rest[1:])


def upstream_url(path: str) -> str:
    """A layout path as a URL relative to an upstream's endpoint (each segment percent-encoded)."""
    return quote(path, safe="/+")
