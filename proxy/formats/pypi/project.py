"""A repository's view of one project: resolved across the chain, merged, rendered once per change.

Resolution goes through ``resolve()``: local repositories answer with what they publish, upstreams with
their project page through the Fetcher (freshness, revalidation, not-found caching, stale-if-error).
An upstream's page is ``simple/<project>/`` under its PyPI endpoint, or ``<project>/`` when the
endpoint already is a ``.../simple/`` index URL (a plain index configured the way pip is).

Views live in the shared merged-document cache (``proxy.formats.common.documents``: single flight,
generation, memory budget, renderings sealed in the store), keyed by repository and project, until the
first of their upstream documents goes stale (at most ``metadata_ttl``; a few seconds when an upstream
failed or a stale copy was served, so the next request tries again). Renderings are made per base URL
and representation on first use and kept with the view, compressed once. ``invalidate(project)`` has
every repository's view of a project resolved again when something may change it here (a publish, a
file or metadata newly held).

A view's fingerprint is what its page lists: the bytes of every upstream page, the files published
here, and what held files add to the listing (a sha256 for a file listed without one, PEP 658 metadata
for a wheel listed without it; see ``merge.complete``). Which listed files such a held file can
complete is read from the upstream page once per page body (``completable``) and remembered: caching a
file the page already describes fully changes nothing, so it neither merges nor renders again. They
are kept in the store's metadata (``LISTING``, under the page's digest), so a restarted daemon knows a
view's fingerprint without parsing the page; the page is parsed only when the view is merged (a
rendering the store does not keep, a file not held yet). Only the names are kept, not the page's files:
writing them on every cold page cost more than parsing the page again when a merge needs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
from array import array
from bisect import bisect_left
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

from cachetools import LRUCache

from proxy.formats.common import json_codec
from proxy.formats.common.documents import Entry, MergedDocuments, Rendered, RenderStore, Resolution
from proxy.formats.format import Services
from proxy.formats.pypi.merge import Offer, Project, Source, merge
from proxy.formats.pypi.names import METADATA_SUFFIX, coordinate
from proxy.formats.pypi.negotiate import HTML_V1, JSON_V1, TEXT_HTML, Representation
from proxy.formats.pypi.pages import DistFile, parse_page
from proxy.formats.pypi.records import held_assets, published_offers
from proxy.formats.pypi.simple import render_project
from proxy.repository.fetch import NOT_FOUND_TTL, Fetched
from proxy.repository.resolve import resolve
from proxy.store.protocols import AssetRecord, CachedDocument, PackageRecord
from proxy.store.store import offload
from proxy.upstream.base import Upstream, UpstreamUnavailable

# PEP 691 JSON where the upstream has it: read several times faster than PEP 503 HTML (a 1,000-file
# page: 10 ms against 21). Not every index speaks it, hence the HTML fallbacks.
UPSTREAM_ACCEPT = f"{JSON_V1}, {HTML_V1}; q=0.1, {TEXT_HTML}; q=0.01"
RETRY_AFTER_FAILURE = 5.0  # seconds a view built without some upstream (failed or stale) is kept
LISTING = "pypi-listing"  # the metadata entries keeping an upstream page's completable names
COMPLETABLE_BUDGET = 4 * 1024**2  # bytes of remembered completable file names (usually none a page)


@dataclass
class _Page:
    """An upstream's page as resolve hands it over: its digest, and its files, parsed when first
    needed (a page just fetched was parsed when it was checked)."""

    source: Source
    digest: bytes
    fetched: Fetched[list[DistFile]]

    def offers(self) -> list[Offer]:
        source = self.source
        return [Offer(f, source) for f in self.fetched.parsed()]


class NameSet:
    """File names, for membership only: their hashes, sorted in one buffer. A page's names are strings
    its parse made among thousands that die with it; kept as they are, a few of them in each block of
    small objects would keep every such block from going back to the system. A name whose hash a
    completable one shares (about one chance in 2**64 a pair) is taken as completable too: it only
    goes into a view's fingerprint when a copy of it is held, where it changes nothing but that."""

    __slots__ = ("_hashes",)

    def __init__(self, names: Iterable[str] = (), hashes: Iterable[int] = ()) -> None:
        self._hashes = array("q", sorted({*map(hash, names), *hashes}))  # hash(): in memory only

    def __contains__(self, name: object) -> bool:
        value = hash(name)
        at = bisect_left(self._hashes, value)
        return at < len(self._hashes) and self._hashes[at] == value

    def __or__(self, other: NameSet) -> NameSet:
        return NameSet(hashes=(*self._hashes, *other._hashes))

    def weight(self) -> int:
        return 64 + self._hashes.itemsize * len(self._hashes)


def completable(files: Iterable[DistFile]) -> list[str]:
    """The listed files a held copy can add to (``merge.complete``), sorted: no sha256, or a wheel
    without PEP 658 metadata."""
    return sorted(
        {
            f.filename
            for f in files
            if "sha256" not in f.hashes or (f.core_metadata is None and f.filename.endswith(".whl"))
        }
    )


def _completions(names: NameSet, held: Mapping[str, AssetRecord]) -> bytes:
    """What the held files add to the listing of ``names``, as bytes to fingerprint."""
    parts = []
    candidates = {*held, *(n.removesuffix(METADATA_SUFFIX) for n in held if n.endswith(METADATA_SUFFIX))}
    for name in sorted(n for n in candidates if n in names):
        asset, extracted = held.get(name), held.get(name + METADATA_SUFFIX)
        if asset is not None or extracted is not None:
            parts.append(
                "\0".join(
                    (
                        name,
                        asset.hashes.get("SHA-256", "") if asset else "",
                        extracted.hashes.get("SHA-256", "") if extracted else "",
                    )
                )
            )
    return "\n".join(parts).encode()


def _representation(variant: Hashable) -> Hashable:
    """A page's variant is (base URL, representation)."""
    assert isinstance(variant, tuple)
    return variant[1]


def file_url(base: str, repository: str, project: str, filename: str) -> str:
    """Where clients fetch a file (``.metadata`` appended: its core metadata, PEP 658)."""
    return f"{base}pypi/{repository}/files/{project}/{_quoted(filename)}"


_UNQUOTED = re.compile(r"[A-Za-z0-9_.~-]*")  # what ``quote`` leaves as it is


def _quoted(filename: str) -> str:
    """``filename`` quoted for a URL path segment (usual names need nothing: checked at one match)."""
    return filename if _UNQUOTED.fullmatch(filename) else quote(filename, safe="")


class ProjectViews:
    """Project views by (repository, normalized project), in the shared merged-document cache."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._completable: LRUCache[tuple[str, bytes], NameSet] = LRUCache(
            COMPLETABLE_BUDGET, getsizeof=NameSet.weight
        )
        self._documents: MergedDocuments[str, Project] = MergedDocuments(
            self._resolve,
            lambda project: project,
            budget=services.documents_memory,
            # One slot per representation: the base URL (from the Host header) is checked, not kept apart.
            store=RenderStore(services.metadata, "pypi", lambda project: project, _representation),
        )
        services.warm.add("pypi projects", self._documents)

    @property
    def renders(self) -> int:
        """Pages rendered so far (not found in memory or in the store)."""
        return self._documents.renders

    @property
    def resolved(self) -> int:
        """Pages resolved along the chain so far (not fresh in memory)."""
        return self._documents.resolved

    async def get(self, repository: str, project: str) -> Entry[Project]:
        """The view of ``project`` (normalized) through ``repository`` (``found`` False: no place has
        it); raises NoUpstreamAnswered."""
        return await self._documents.get(repository, project)

    async def value(self, view: Entry[Project]) -> Project | None:
        """The merged project of ``view`` (merged on first use)."""
        return await self._documents.value(view)

    async def rendered(
        self, repository: str, project: str, view: Entry[Project], base: str, representation: Representation
    ) -> Rendered:
        """The page for clients of ``base`` in ``representation``, rendered and compressed once."""
        cached = view.renders.get((base, representation))  # the warm path: no closure built
        if cached is not None:
            return cached

        def render(merged: Project) -> Rendered:
            prefix = file_url(base, repository, merged.name, "")
            page = merged.page(lambda filename: prefix + _quoted(filename))
            return Rendered.of(render_project(page, representation), representation)

        return await self._documents.rendered(repository, project, view, (base, representation), render)

    def invalidate(self, project: str) -> None:
        self._documents.invalidate(project)

    def invalidate_all(self) -> None:
        """Forget every merged view in every repository."""
        self._documents.invalidate_all()

    async def _resolve(self, repository: str, project: str) -> Resolution[Project]:
        services = self._services
        ttl = services.metadata_ttl
        now = time.time()
        expiries = [now + ttl]
        sizes: list[int] = []
        records: dict[str, PackageRecord] = {}

        def local(name: str, record: PackageRecord) -> list[Offer] | None:
            records[name] = record
            return published_offers(name, record) or None

        async def remote(upstream: Upstream) -> tuple[_Page, bool] | None:
            if "pypi" not in upstream.formats:
                return None
            path = await _page_path(upstream, project)
            fetched = await services.fetcher.metadata(
                upstream, "pypi", path, _parser(project), UPSTREAM_ACCEPT, keep_body=False
            )
            if fetched is None:
                expiries.append(time.time() + NOT_FOUND_TTL)
                return None
            expiries.append(fetched.doc.fetched_at + ttl)
            sizes.append(fetched.doc.size)
            digest = fetched.digest()
            return _Page(Source(upstream.name, upstream, path), digest, fetched), fetched.stale

        places = services.chain.places(repository)
        resolution = await resolve(services.catalog, places, coordinate(project), local, remote)
        if resolution.failed or resolution.stale:
            expiries.append(time.time() + RETRY_AFTER_FAILURE)
        held = held_assets(records[p.name] for p in places if p.name in records)
        size = sum(sizes)
        fingerprint = hashlib.sha1()
        names = NameSet()
        for place, answer in resolution.found:
            if isinstance(answer, _Page):
                path = answer.source.page_path.encode()
                fingerprint.update(b"page\0%s\0%s\0%s\n" % (place.name.encode(), path, answer.digest))
                names |= await self._completable_names(project, answer, size)
            else:
                listed = repr([offer.file for offer in answer]).encode()
                fingerprint.update(b"local\0%s\0%s\n" % (place.name.encode(), listed))
                names |= NameSet(completable(offer.file for offer in answer))
        listing = fingerprint.digest()  # what is listed, before what held files complete
        fingerprint.update(b"held\0" + _completions(names, held))
        answers = [answer for _, answer in resolution.found]

        def merged(hidden: frozenset[str]) -> Project | None:
            if not answers:
                return None
            offers = (a.offers() if isinstance(a, _Page) else a for a in answers)
            return merge(project, offers, held, hidden)

        return Resolution(
            fingerprint.digest(),
            min(expiries),
            resolution.stale,
            size,
            merged,
            resolution.unlisted,
            found=bool(answers),
            listing=listing,
        )

    async def _completable_names(self, project: str, page: _Page, size: int) -> NameSet:
        """The files of an upstream page that a held copy can complete: remembered in memory, else
        read from the page's listing in the store, else from the page (which is then listed there)."""
        key = (project, page.digest)
        names = self._completable.get(key)
        if names is None:
            names = await self._read_listing(page, size)
            with contextlib.suppress(ValueError):  # more names than the whole budget: read again next time
                self._completable[key] = names
        return names

    async def _read_listing(self, page: _Page, size: int) -> NameSet:
        metadata = self._services.metadata
        key = (LISTING, page.source.place, page.source.page_path)
        kept = await metadata.get(*key)
        if kept is not None and kept.status == 200 and kept.etag == page.digest.hex():
            record = await offload(len(kept.body), lambda: json_codec.loads(kept.body))
            return NameSet(record["completable"])

        def read() -> tuple[NameSet, bytes]:
            names = completable(page.fetched.parsed())
            return NameSet(names), json_codec.dumps({"completable": names})

        names, body = await offload(size, read)
        await metadata.put(CachedDocument(200, body, etag=page.digest.hex()), *key)
        return names


def _parser(project: str) -> Callable[[bytes], list[DistFile]]:
    return lambda body: parse_page(body, project)


async def _page_path(upstream: Upstream, project: str) -> str:
    try:
        endpoint = await upstream.endpoint("pypi")
    except UpstreamUnavailable:
        # No endpoint now (CodeArtifact unreachable): the usual path still finds a cached page.
        return f"simple/{project}/"
    return f"{project}/" if endpoint.rstrip("/").endswith("/simple") else f"simple/{project}/"
