"""A repository's view of one project: resolved across the chain, merged, rendered once per change.

Resolution goes through ``resolve()``: local repositories answer with what they publish, upstreams with
their project page through the Fetcher (freshness, revalidation, not-found caching, stale-if-error).
An upstream's page is ``simple/<project>/`` under its PyPI endpoint, or ``<project>/`` when the
endpoint already is a ``.../simple/`` index URL (a plain index configured the way pip is).

Views live in the shared merged-document cache (``proxy.formats.common.documents``: single flight,
generation, memory budget), keyed by repository and project, until the first of their upstream
documents goes stale (at most ``metadata_ttl``; a few seconds when an upstream failed or a stale copy
was served, so the next request tries again). Renderings are made per base URL and representation on
first use and kept with the view, compressed once. ``invalidate(project)`` drops every repository's
view of a project when something changes it here (a publish, a file or metadata newly held).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import quote

from proxy.formats.common.documents import Entry, MergedDocuments, Rendered, Resolution
from proxy.formats.format import Services
from proxy.formats.pypi.merge import Offer, Project, Source, merge
from proxy.formats.pypi.names import coordinate
from proxy.formats.pypi.negotiate import HTML_V1, JSON_V1, TEXT_HTML, Representation
from proxy.formats.pypi.pages import DistFile, parse_page
from proxy.formats.pypi.records import held_assets, published_offers
from proxy.formats.pypi.simple import render_project
from proxy.repository.fetch import NOT_FOUND_TTL
from proxy.repository.resolve import resolve
from proxy.store.protocols import PackageRecord
from proxy.upstream.base import Upstream, UpstreamUnavailable

# PEP 691 JSON where the upstream has it: read several times faster than PEP 503 HTML (a 1,000-file
# page: 10 ms against 21). Not every index speaks it, hence the HTML fallbacks.
UPSTREAM_ACCEPT = f"{JSON_V1}, {HTML_V1}; q=0.1, {TEXT_HTML}; q=0.01"
RETRY_AFTER_FAILURE = 5.0  # seconds a view built without some upstream (failed or stale) is kept
CACHE_BUDGET = 64 * 1024**2  # bytes of merged project views and their renderings kept in memory


def file_url(base: str, repository: str, project: str, filename: str) -> str:
    """Where clients fetch a file (``.metadata`` appended: its core metadata, PEP 658)."""
    return f"{base}pypi/{repository}/files/{project}/{quote(filename, safe='')}"


class ProjectViews:
    """Project views by (repository, normalized project), in the shared merged-document cache."""

    def __init__(self, services: Services, budget: int = CACHE_BUDGET) -> None:
        self._services = services
        self._documents: MergedDocuments[str, Project] = MergedDocuments(
            self._resolve, lambda project: project, budget=budget
        )

    async def get(self, repository: str, project: str) -> Entry[Project]:
        """The view of ``project`` (normalized) through ``repository`` (``value`` None: no place has
        it); raises NoUpstreamAnswered."""
        return await self._documents.get(repository, project)

    async def rendered(
        self, repository: str, project: str, view: Entry[Project], base: str, representation: Representation
    ) -> Rendered:
        """The page for clients of ``base`` in ``representation``, rendered and compressed once."""
        cached = view.renders.get((base, representation))  # the warm path: no closure built
        if cached is not None:
            return cached

        def render(merged: Project) -> Rendered:
            page = merged.page(lambda filename: file_url(base, repository, merged.name, filename))
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

        async def remote(upstream: Upstream) -> tuple[list[Offer], bool] | None:
            if "pypi" not in upstream.formats:
                return None
            path = await _page_path(upstream, project)
            fetched = await services.fetcher.metadata(
                upstream, "pypi", path, _parser(project), UPSTREAM_ACCEPT
            )
            if fetched is None:
                expiries.append(time.time() + NOT_FOUND_TTL)
                return None
            expiries.append(fetched.doc.fetched_at + ttl)
            sizes.append(len(fetched.doc.body))
            source = Source(upstream.name, upstream, path)
            return [Offer(f, source) for f in fetched.parsed()], fetched.stale

        places = services.chain.places(repository)
        resolution = await resolve(services.catalog, places, coordinate(project), local, remote)
        if resolution.failed or resolution.stale:
            expiries.append(time.time() + RETRY_AFTER_FAILURE)

        def merged(hidden: frozenset[str]) -> Project | None:
            if not resolution.found:
                return None
            held = held_assets(records[p.name] for p in places if p.name in records)
            return merge(project, (offers for _, offers in resolution.found), held, hidden)

        # Every refresh merges again (object(): no two resolutions compare equal).
        return Resolution(object(), min(expiries), resolution.stale, sum(sizes), merged, resolution.unlisted)


def _parser(project: str) -> Callable[[bytes], list[DistFile]]:
    return lambda body: parse_page(body, project)


async def _page_path(upstream: Upstream, project: str) -> str:
    try:
        endpoint = await upstream.endpoint("pypi")
    except UpstreamUnavailable:
        # No endpoint now (CodeArtifact unreachable): the usual path still finds a cached page.
        return f"simple/{project}/"
    return f"{project}/" if endpoint.rstrip("/").endswith("/simple") else f"simple/{project}/"
