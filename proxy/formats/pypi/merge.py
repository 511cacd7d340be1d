"""Merging a project across a repository's chain into one ``Project``.

Files are unioned by filename; a filename offered by several places comes from the first in chain
order, with that place's hashes, requires-python, yanked state and metadata declaration. What the
chain's repositories already hold (``held``: cached or published assets, by asset name) completes an
offer, never adds one: a file listed without a sha256 gets the sha256 of the copy held, and a wheel
listed without PEP 658 metadata gets the hashes of the METADATA the proxy extracted from the held
wheel, when that wheel is the one listed (same sha256). Pure functions; no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from proxy.formats.pypi.names import METADATA_SUFFIX, parse_filename
from proxy.formats.pypi.simple import DistFile, ProjectPage
from proxy.store.catalog import AssetRecord
from proxy.upstream.base import Upstream


@dataclass(frozen=True)
class Source:
    """Where an offered file's bytes are: published in a local repository, or at an upstream."""

    place: str  # the repository or upstream name
    upstream: Upstream | None = None  # None: published in the local repository ``place``
    # The upstream page's URL relative to the upstream's endpoint; the page's file URLs are relative to it.
    page_path: str = ""


class Offer(NamedTuple):
    """A file as one place of the chain lists it (a named tuple: one is made per listed file)."""

    file: DistFile
    source: Source


@dataclass(frozen=True)
class Project:
    name: str  # normalized
    offers: Mapping[str, Offer]  # by filename, in listing order
    held: Mapping[str, AssetRecord]  # what the chain's repositories hold, by asset name

    def page(self, file_url: Callable[[str], str]) -> ProjectPage:
        """The page clients see, with every file URL pointing at the proxy (``file_url`` of its name)."""
        return ProjectPage(self.name, tuple(o.file for o in self.offers.values()), file_url)


def merge(
    name: str,
    answers: Iterable[Iterable[Offer]],
    held: Mapping[str, AssetRecord],
    hidden: Collection[str] = (),
) -> Project:
    """The merged project, without the files of ``hidden`` versions (see proxy.repository.status)."""
    offers: dict[str, Offer] = {}
    for answer in answers:
        for offer in answer:
            parsed = parse_filename(offer.file.filename) if hidden else None
            if parsed is not None and parsed.version in hidden:
                continue
            if offer.file.filename not in offers:
                completed = complete(offer.file, held)
                offers[offer.file.filename] = (
                    offer if completed is offer.file else Offer(completed, offer.source)
                )
    return Project(name, offers, held)


def complete(file: DistFile, held: Mapping[str, AssetRecord]) -> DistFile:
    """``file`` with what the held copy adds to its listing; ``file`` itself when it adds nothing."""
    asset = held.get(file.filename)
    if asset is None:
        return file
    held_sha256 = asset.hashes.get("SHA-256")
    hashes = (
        file.hashes if "sha256" in file.hashes or not held_sha256 else {"sha256": held_sha256, **file.hashes}
    )
    metadata = file.core_metadata
    extracted = held.get(file.filename + METADATA_SUFFIX)
    is_wheel = file.filename.endswith(".whl")  # an sdist's metadata is only what its record declares
    if metadata is None and is_wheel and extracted is not None and hashes.get("sha256") == held_sha256:
        metadata = {"sha256": extracted.hashes["SHA-256"]}
    if hashes is file.hashes and metadata is file.core_metadata:
        return file
    return file._replace(hashes=hashes, core_metadata=metadata)
