"""PyPI names: project names (PEP 503 normalization, PEP 508 validity) and distribution filenames
(wheels and sdists), all through ``packaging`` so the proxy reads names exactly as pip does."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
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

# A strict subset of the filenames packaging reads as a wheel (no build tag) or an sdist: a name of
# the characters a wheel's name may have (an sdist's, also "-"), a release version with optional
# pre, post and dev parts, lowercase tags whose interpreters are identifiers. ASCII only, so the digits
# are the ones a PEP 440 version takes. What it does not match is left to packaging.
_PLAIN_VERSION = r"[0-9]+(?:\.[0-9]+)*(?:(?:a|b|rc)[0-9]+)?(?:\.post[0-9]+)?(?:\.dev[0-9]+)?"
_PLAIN_TAGS = (
    r"[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*"  # interpreters
    r"-[a-z0-9_]+(?:\.[a-z0-9_]+)*-[a-z0-9_]+(?:\.[a-z0-9_]+)*"  # ABIs, platforms
)
_PLAIN_WHEEL = re.compile(rf"([A-Za-z0-9_.]+)-{_PLAIN_VERSION}-{_PLAIN_TAGS}\.whl", re.ASCII)
_PLAIN_SDIST = re.compile(rf"([A-Za-z0-9_.-]+)-{_PLAIN_VERSION}\.(?:tar\.gz|zip)", re.ASCII)

METADATA_SUFFIX = ".metadata"  # PEP 658: the core metadata file sits at the distribution's URL + this

DistKind = Literal["wheel", "sdist"]


def normalize(name: str) -> str:
    """The PEP 503 normalized form: ``Foo_Bar`` and ``foo.bar`` are both ``foo-bar``."""
    return canonicalize_name(name)


# The name parts of a page's files repeat (a project's page spells its name one way or a few).
_normalized_part = lru_cache(maxsize=4096)(canonicalize_name)


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


def belongs(filename: str, project: str) -> bool:
    """Whether ``filename`` is a wheel or sdist of ``project`` (normalized): exactly when
    ``parse_filename`` reads it as one, without its cost for the usual names (pages list thousands)."""
    plain = _PLAIN_WHEEL.fullmatch(filename) or _PLAIN_SDIST.fullmatch(filename)
    if plain is not None and "__" not in plain[1]:
        return _normalized_part(plain[1]) == project
    parsed = parse_filename(filename)
    return parsed is not None and parsed.project == project
