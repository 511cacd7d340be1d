"""What a package version says about itself, read from its format's metadata: the shape every format's
``details`` module returns (``proxy.formats.<format>.details.version_details``), served by
DescribePackageVersion, GetPackageVersionReadme and ListPackageVersionDependencies."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from proxy.store.protocols import AssetRecord

# Reads a stored asset whole (decrypted); raises LookupError when its blob is gone.
ReadAsset = Callable[[AssetRecord], Awaitable[bytes]]

MAX_DETAILS_ASSET = 64 * 1024 * 1024  # larger archives are not opened for their metadata


@dataclass(frozen=True)
class License:
    name: str
    url: str | None = None


@dataclass(frozen=True)
class Dependency:
    """One declared dependency, in CodeArtifact's PackageDependency terms."""

    namespace: str | None
    package: str
    dependency_type: str
    version_requirement: str | None


@dataclass(frozen=True)
class VersionDetails:
    display_name: str
    summary: str | None = None
    home_page: str | None = None
    source_code_repository: str | None = None
    licenses: list[License] = field(default_factory=list)
    readme: str | None = None
    dependencies: list[Dependency] = field(default_factory=list)


def text(value: object) -> str | None:
    """A metadata field as a non-empty string, else None."""
    return value.strip() or None if isinstance(value, str) else None


def version_order(version: str) -> tuple[tuple[int, int | str], ...]:
    """An order that puts 1.10 after 1.9 for any format (numbers compare as numbers)."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.findall(r"\d+|[^\d.\-+]+", version))
