"""PyPI names: project names (PEP 503 normalization, PEP 508 validity) and distribution filenames
(wheels and sdists), all through ``packaging`` so the proxy reads names exactly as pip does."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from proxy.store.catalog import PackageCoordinate

# PEP 508 names: ASCII letters and digits, with ".", "_" and "-" inside.
_VALID_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)

METADATA_SUFFIX = ".metadata"  # PEP 658: the core metadata file sits at the distribution's URL + this

DistKind = Literal["wheel", "sdist"]


def normalize(name: str) -> str:
    """The PEP 503 normalized form: ``Foo_Bar`` and ``foo.bar`` are both ``foo-bar``."""
    return canonicalize_name(name)


def is_valid_name(name: str) -> bool:
    return bool(_VALID_NAME.match(name))


def coordinate(project: str) -> PackageCoordinate:
    """The catalog coordinate of a project; PyPI has no namespace and the name is normalized."""
    return PackageCoordinate("pypi", "", normalize(project))


def parse_version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


@dataclass(frozen=True)
class DistFilename:
    """What a distribution filename says: its project (normalized), version and kind."""

    project: str
    version: str  # normalized (str(Version)), the catalog's package version key
    kind: DistKind


def parse_filename(filename: str) -> DistFilename | None:
    """A wheel (``.whl``) or sdist (``.tar.gz``/``.zip``) filename, or None for anything else
    (eggs, installers, names ``packaging`` cannot read: pip ignores those too)."""
    try:
        if filename.endswith(".whl"):
            name, version, _build, _tags = parse_wheel_filename(filename)
            return DistFilename(name, str(version), "wheel")
        name, version = parse_sdist_filename(filename)
        return DistFilename(name, str(version), "sdist")
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None
