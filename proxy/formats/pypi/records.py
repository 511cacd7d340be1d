"""PyPI in the catalog: what a package version record holds for PyPI, and reading it back as offers.

A PyPI package version's assets are its distribution files and, next to a file, ``<filename>.metadata``
(its core metadata, PEP 658): published with the file, fetched from an upstream that offers it, or
extracted from a held wheel. The version document (``PackageVersionRecord.metadata``) of a published
version says, per file, what the upload declared::

    {"files": {"<filename>": {"requires_python": ">=3.9" | null, "core_metadata": true | false}}}

``core_metadata`` false: the metadata is stored but not advertised (an sdist whose metadata is not
reliable, see ``coremeta.sdist_metadata_is_static``).

Statuses (``proxy.repository.status``): only listed versions reach ``published_offers`` (resolve
filters them); Unlisted files are still served by their URL; Archived and Disposed ones are not served,
whether published here or cached from an upstream.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from packaging.version import Version

from proxy.formats.pypi.merge import Offer, Source
from proxy.formats.pypi.names import METADATA_SUFFIX
from proxy.formats.pypi.simple import DistFile
from proxy.repository.status import fetchable
from proxy.store.catalog import AssetRecord, PackageRecord, PackageVersionRecord


def file_entry(requires_python: str | None, core_metadata: bool) -> dict[str, Any]:
    return {"requires_python": requires_python, "core_metadata": core_metadata}


def _served(version: PackageVersionRecord) -> bool:
    return fetchable(version)


def _by_version(record: PackageRecord) -> list[PackageVersionRecord]:
    return sorted(record.versions.values(), key=lambda v: Version(v.version))


def published_offers(repository: str, record: PackageRecord) -> list[Offer]:
    """The files ``repository`` publishes of this package (not what it cached from upstreams)."""
    source = Source(repository)
    offers = []
    for version in _by_version(record):
        if version.origin.origin_type != "INTERNAL" or not _served(version):
            continue
        declared = version.metadata.get("files", {})
        for name, asset in sorted(version.assets.items()):
            if name.endswith(METADATA_SUFFIX):
                continue
            entry = declared.get(name, {})
            metadata = version.assets.get(name + METADATA_SUFFIX)
            file = DistFile(
                filename=name,
                url="",
                hashes={"sha256": asset.hashes["SHA-256"]},
                requires_python=entry.get("requires_python"),
                yanked="Unlisted" if version.status == "Unlisted" else None,
                core_metadata=(
                    {"sha256": metadata.hashes["SHA-256"]}
                    if metadata and entry.get("core_metadata")
                    else None
                ),
            )
            offers.append(Offer(file, source))
    return offers


def held_assets(records: Iterable[PackageRecord]) -> dict[str, AssetRecord]:
    """Every asset the given records hold and may serve, by name; the first record wins a name."""
    held: dict[str, AssetRecord] = {}
    for record in records:
        for version in record.versions.values():
            if _served(version):
                for name, asset in version.assets.items():
                    held.setdefault(name, asset)
    return held


def find_held(records: Iterable[PackageRecord], version: str, name: str) -> AssetRecord | None:
    """The asset ``name`` of ``version`` in the first record that holds and may serve it."""
    for record in records:
        found = record.versions.get(version)
        if found is not None and _served(found) and name in found.assets:
            return found.assets[name]
    return None
