"""Merged packuments per repository: what the npm format gives the shared merged-document cache
(``proxy.formats.common.documents``), which keeps them, refreshes them and renders them once.

``resolve`` walks the repository's chain with ``proxy.repository.resolve`` (the catalog for local
repositories, the Fetcher for upstreams: TTL, revalidation, 404 caching, stale-if-error) and
fingerprints the answers by their bytes, so a refresh where every answer is what was merged before (a
304 upstream, say) keeps the merged packument and its renderings. The merged packument is fresh until
the earliest upstream document in it is due for revalidation; when every place fails, the last one is
served marked stale (the handler adds ``Warning: 110``) and the chain is asked again after
``RETRY_AFTER`` seconds.

A packument is rendered per base URL (the tarball URLs in it depend on it) in its full or abbreviated
form.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace

from proxy.formats.common.documents import (
    PARSED_FACTOR,
    Entry,
    MergedDocuments,
    Rendered,
    RenderStore,
    Resolution,
)
from proxy.formats.format import Services
from proxy.formats.npm.metadata import (
    ABBREVIATED_TYPE,
    Document,
    Packument,
    PlaceDocument,
    VersionSource,
    dumps,
    local_document,
    located_sources,
    merge,
    parse_complete,
    parse_packument,
    render_abbreviated,
    render_full,
    source_located,
    tarball_prefix,
)
from proxy.formats.npm.names import PackageName
from proxy.repository.fetch import NOT_FOUND_TTL
from proxy.repository.resolve import resolve
from proxy.store.protocols import PackageRecord
from proxy.store.store import offload
from proxy.upstream.base import Upstream

RETRY_AFTER = 10.0  # seconds before a chain that failed is asked again
# Bytes a merged packument takes per byte of its upstream answers: what installing needs of them (1.24
# over the 328 packuments of the npm replay in bench/; read whole, they take 3.6), and the answers' own
# bytes, which it keeps to make its complete form.
MERGED_FACTOR = 2.25


@dataclass(frozen=True)
class _Answer:
    """One place's document as resolve hands it over: cheap to compare, parsed only when it changed."""

    digest: bytes
    size: int
    load: Callable[[], Document]  # what installing needs (``parse_packument``)
    load_complete: Callable[[], Document]  # every field (``parse_complete``)
    expires: float


class Packuments:
    def __init__(self, services: Services) -> None:
        self._services = services
        self._ttl = services.metadata_ttl
        self._documents: MergedDocuments[PackageName, Packument] = MergedDocuments(
            self._resolve,
            lambda package: package.full,
            budget=services.documents_memory,
            keep_on_failure=RETRY_AFTER,
            # One slot per form: the base URL (from the Host header) is checked, not kept apart.
            store=RenderStore(services.metadata, "npm", lambda package: package.full, _form),
            locator=located_sources,
        )
        services.warm.add("npm packuments", self._documents)

    @property
    def renders(self) -> int:
        """Packuments rendered so far (not found in memory or in the store)."""
        return self._documents.renders

    @property
    def resolved(self) -> int:
        """Packuments resolved along the chain so far (not fresh in memory)."""
        return self._documents.resolved

    def invalidate(self, package: str) -> None:
        """Forget the package (its full name) in every repository."""
        self._documents.invalidate(package)

    def invalidate_all(self) -> None:
        """Forget every merged view in every repository."""
        self._documents.invalidate_all()

    async def lookup(self, repository: str, package: PackageName) -> Entry[Packument]:
        """The merged view (``found`` False when no place has it), fresh or refreshed. Raises
        NoUpstreamAnswered when every place failed and nothing was merged before."""
        return await self._documents.get(repository, package)

    async def value(self, entry: Entry[Packument]) -> Packument | None:
        """The merged packument of ``entry`` (merged on first use, a large one in a worker thread)."""
        return await self._documents.value(entry)

    async def source(self, entry: Entry[Packument], version: str) -> VersionSource | None:
        """Where ``version`` of ``entry``'s packument comes from (None: it lists no such version); for a
        released view, from what it kept (``located_sources``), without merging it again."""
        if entry.released and entry.located is not None:
            return source_located(entry.located, version)
        packument = await self._documents.value(entry)
        if packument is None or version not in packument.versions:
            return None
        return packument.sources[version]

    async def complete(self, entry: Entry[Packument]) -> Packument | None:
        """The merged packument of ``entry`` with every field (``Packument.complete``), not kept."""
        packument = await self._documents.value(entry)
        return None if packument is None else await offload(entry.size, packument.complete)

    async def rendered(
        self, entry: Entry[Packument], repository: str, package: PackageName, base: str, abbreviated: bool
    ) -> Rendered:
        """The full or abbreviated packument for clients of ``base``, rendered and compressed once."""
        variant = (base, abbreviated)
        cached = entry.renders.get(variant)  # the warm path: no closure, no prefix built
        if cached is not None:
            return cached
        tarballs = tarball_prefix(base, repository, package)
        return await self._documents.rendered(
            repository, package, entry, variant, lambda p: _render(p, tarballs, abbreviated)
        )

    async def _resolve(self, repository: str, package: PackageName) -> Resolution[Packument]:
        now = time.time()
        deadlines = [now + self._ttl]

        def local(_repository: str, record: PackageRecord) -> _Answer | None:
            doc = local_document(package, record)
            if doc is None:
                return None
            raw = dumps(doc)
            return _Answer(hashlib.sha1(raw).digest(), len(raw), lambda: doc, lambda: doc, now + self._ttl)

        async def remote(upstream: Upstream) -> tuple[_Answer, bool] | None:
            if "npm" not in upstream.formats:
                return None
            fetched = await self._services.fetcher.metadata(upstream, "npm", package.escaped, parse_packument)
            if fetched is None:
                deadlines.append(now + min(self._ttl, NOT_FOUND_TTL))
                return None
            fresh_until = fetched.doc.fetched_at + self._ttl
            # The body is not read here: after a restart it is read from the store only when merged.
            answer = _Answer(
                fetched.digest(),
                fetched.doc.size,
                fetched.parsed,
                lambda: parse_complete(fetched.doc.body),
                fresh_until,
            )
            return answer, fetched.stale

        services = self._services
        resolution = await resolve(
            services.catalog, services.chain.places(repository), package.coordinate, local, remote
        )
        found = resolution.found
        degraded = resolution.stale or bool(resolution.failed)
        deadlines.extend(answer.expires for _, answer in found)
        expires = min(deadlines) if not degraded else now + RETRY_AFTER
        # A deadline already passed (a stale copy) must not make every request refresh again at once.
        expires = max(expires, now + 1.0)
        fingerprint = hashlib.sha1(b"".join(p.name.encode() + b"\0" + a.digest for p, a in found)).digest()
        places = [(p.name, not p.is_repository, a) for p, a in found]

        def merged(hidden: frozenset[str]) -> Packument | None:
            if not places:
                return None

            def complete() -> Packument:
                return merge(package, [PlaceDocument(n, u, a.load_complete()) for n, u, a in places], hidden)

            packument = merge(package, [PlaceDocument(n, u, a.load()) for n, u, a in places], hidden)
            return replace(packument, completed_by=complete)

        size = sum(a.size for _, a in found)
        # A local repository's packument is whole (it is small: what was published here).
        factors = [(PARSED_FACTOR if p.is_repository else MERGED_FACTOR, a.size) for p, a in found]
        merged_size = int(sum(factor * n for factor, n in factors))
        return Resolution(
            fingerprint,
            expires,
            resolution.stale,
            size,
            merged,
            resolution.unlisted,
            found=bool(places),
            merged_size=merged_size,
        )


def _form(variant: Hashable) -> Hashable:
    """A packument's variant is (base URL, abbreviated)."""
    assert isinstance(variant, tuple)
    return variant[1]


def _render(packument: Packument, tarballs: str, abbreviated: bool) -> Rendered:
    if abbreviated:
        return Rendered.of(dumps(render_abbreviated(packument, tarballs)), ABBREVIATED_TYPE)
    return Rendered.of(dumps(render_full(packument.complete(), tarballs)), "application/json")
