"""A repository's view of one project: resolved across the chain, merged, rendered once per change.

Resolution goes through ``resolve()``: local repositories answer with what they publish, upstreams with
their project page through the Fetcher (freshness, revalidation, not-found caching, stale-if-error).
An upstream's page is ``simple/<project>/`` under its PyPI endpoint, or ``<project>/`` when the
endpoint already is a ``.../simple/`` index URL (a plain index configured the way pip is).

Views live in memory (LRU), keyed by repository and project, until the first of their upstream
documents goes stale (at most ``metadata_ttl``; a few seconds when an upstream failed or a stale copy
was served, so the next request tries again). Renderings are made per base URL and representation on
first use and kept with the view, compressed once. ``invalidate(project)`` drops every repository's
view of a project when something changes it here (a publish, a file or metadata newly held).

Concurrency: one computation per (repository, project, generation) at a time (single flight); a
computation that started before an invalidation still answers its waiters but is not kept.
"""

from __future__ import annotations

import gzip
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

from cachetools import LRUCache

from proxy.daemon import Daemon
from proxy.formats.pypi.merge import Offer, Project, Source, merge
from proxy.formats.pypi.names import coordinate
from proxy.formats.pypi.negotiate import HTML_V1, JSON_V1, TEXT_HTML, Representation
from proxy.formats.pypi.pages import DistFile, parse_page
from proxy.formats.pypi.records import held_assets, published_offers
from proxy.formats.pypi.simple import render_project
from proxy.repository.fetch import NOT_FOUND_TTL
from proxy.repository.resolve import resolve
from proxy.store.catalog import PackageRecord
from proxy.store.singleflight import SingleFlight
from proxy.upstream.base import Upstream, UpstreamUnavailable

# PEP 691 JSON where the upstream has it: read several times faster than PEP 503 HTML (a 1,000-file
# page: 10 ms against 21). Not every index speaks it, hence the HTML fallbacks.
UPSTREAM_ACCEPT = f"{JSON_V1}, {HTML_V1}; q=0.1, {TEXT_HTML}; q=0.01"
RETRY_AFTER_FAILURE = 5.0  # seconds a view built without some upstream (failed or stale) is kept
_MAX_VIEWS = 4096
_MAX_RENDERINGS = 8  # per view: base URLs x representations; more means Host headers vary wildly


@dataclass(frozen=True)
class Rendered:
    body: bytes
    gzipped: bytes
    etag: str  # of the uncompressed body; the gzipped one adds "-gz"

    @classmethod
    def of(cls, body: bytes) -> Rendered:
        return cls(body, gzip.compress(body, mtime=0), hashlib.sha256(body).hexdigest()[:32])


def file_url(base: str, repository: str, project: str, filename: str) -> str:
    """Where clients fetch a file (``.metadata`` appended: its core metadata, PEP 658)."""
    return f"{base}pypi/{repository}/files/{project}/{quote(filename, safe='')}"


@dataclass
class View:
    repository: str
    project: Project | None  # None: no place of the chain has the project
    expires: float  # time.time() after which it is rebuilt
    stale: bool  # built from an upstream page served past its freshness
    renderings: dict[tuple[str, Representation], Rendered] = field(default_factory=dict)

    def render(self, base: str, representation: Representation) -> Rendered:
        key = (base, representation)
        rendered = self.renderings.get(key)
        if rendered is None:
            assert self.project is not None
            project = self.project
            page = project.page(lambda filename: file_url(base, self.repository, project.name, filename))
            rendered = Rendered.of(render_project(page, representation))
            if len(self.renderings) >= _MAX_RENDERINGS:
                self.renderings.clear()
            self.renderings[key] = rendered
        return rendered


class ProjectViews:
    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._views: LRUCache[tuple[str, str], View] = LRUCache(maxsize=_MAX_VIEWS)
        self._generations: dict[str, int] = {}
        self._flight: SingleFlight[View] = SingleFlight()

    async def get(self, repository: str, project: str) -> View:
        """The view of ``project`` (normalized) through ``repository``; raises NoUpstreamAnswered."""
        view = self._views.get((repository, project))
        if view is not None and view.expires > time.time():
            return view
        generation = self._generations.get(project, 0)
        return await self._flight.do(
            (repository, project, generation), lambda: self._build(repository, project, generation)
        )

    def invalidate(self, project: str) -> None:
        self._generations[project] = self._generations.get(project, 0) + 1
        for key in [k for k in self._views if k[1] == project]:
            self._views.pop(key, None)

    async def _build(self, repository: str, project: str, generation: int) -> View:
        daemon = self._daemon
        ttl = daemon.config.cache.metadata_ttl
        now = time.time()
        expiries = [now + ttl]
        records: dict[str, PackageRecord] = {}

        def local(name: str, record: PackageRecord) -> list[Offer] | None:
            records[name] = record
            return published_offers(name, record) or None

        async def remote(upstream: Upstream) -> tuple[list[Offer], bool] | None:
            if "pypi" not in upstream.formats:
                return None
            path = await _page_path(upstream, project)
            fetched = await daemon.fetcher.metadata(upstream, "pypi", path, _parser(project), UPSTREAM_ACCEPT)
            if fetched is None:
                expiries.append(time.time() + NOT_FOUND_TTL)
                return None
            expiries.append(fetched.doc.fetched_at + ttl)
            source = Source(upstream.name, upstream, path)
            return [Offer(f, source) for f in fetched.parsed()], fetched.stale

        places = daemon.chain.places(repository)
        resolution = await resolve(daemon.store, places, coordinate(project), local, remote)
        if resolution.failed or resolution.stale:
            expiries.append(time.time() + RETRY_AFTER_FAILURE)
        merged = None
        if resolution.found:
            held = held_assets(records[p.name] for p in places if p.name in records)
            merged = merge(project, (offers for _, offers in resolution.found), held, resolution.unlisted)
        view = View(repository, merged, min(expiries), resolution.stale)
        if self._generations.get(project, 0) == generation:
            self._views[(repository, project)] = view
        return view


def _parser(project: str) -> Callable[[bytes], list[DistFile]]:
    return lambda body: parse_page(body, project)


async def _page_path(upstream: Upstream, project: str) -> str:
    try:
        endpoint = await upstream.endpoint("pypi")
    except UpstreamUnavailable:
        # No endpoint now (CodeArtifact unreachable): the usual path still finds a cached page.
        return f"simple/{project}/"
    return f"{project}/" if endpoint.rstrip("/").endswith("/simple") else f"simple/{project}/"
