"""Merged packuments per repository, kept in memory and rendered + compressed once per change.

``lookup(repository, package)`` walks the repository's chain with ``resolve`` (the catalog for local
repositories, the Fetcher for upstreams: TTL, revalidation, 404 caching, stale-if-error) and merges
the answers. The result stays in memory until the earliest upstream document in it is due for
revalidation; a warm request then costs a dictionary look-up and no I/O at all. When it is due, the
chain is asked again; if every answer is byte-for-byte what was merged before (a 304 upstream, say),
the merged packument and its renders are kept and only the deadline moves.

``rendered(...)`` gives the JSON and gzip bytes of the full or abbreviated form for one base URL (the
tarball URLs in it depend on it), made once and cached with the entry.

Stale-if-error: when every place fails, the last merged packument is served marked stale (the handler
adds a ``Warning: 110``) and the chain is asked again after ``RETRY_AFTER`` seconds.

Concurrency: everything runs on the event loop; merging and rendering documents of more than
``INLINE_BYTES`` (JSON and gzip of packuments that can be megabytes) are offloaded to worker threads,
on data nobody mutates. Concurrent refreshes of one packument and concurrent renders of one form are
single flights. ``invalidate`` (after a publish or a dist-tag
change) bumps a generation counter that is part of the single-flight keys and is checked before a
refresh result is kept, so no refresh started before a publish can put the old packument back.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cachetools import LRUCache

from proxy.daemon import Daemon
from proxy.formats.npm.metadata import (
    ABBREVIATED_TYPE,
    Document,
    Packument,
    PlaceDocument,
    dumps,
    local_document,
    merge,
    parse_packument,
    render_abbreviated,
    render_full,
    tarball_prefix,
)
from proxy.formats.npm.names import PackageName
from proxy.repository.fetch import NOT_FOUND_TTL
from proxy.repository.resolve import NoUpstreamAnswered, resolve
from proxy.store.catalog import PackageRecord
from proxy.store.singleflight import SingleFlight
from proxy.store.store import offload
from proxy.upstream.base import Upstream

log = logging.getLogger(__name__)

RETRY_AFTER = 10.0  # seconds before a chain that failed is asked again
CACHE_BUDGET = 256 * 1024**2  # bytes of merged packuments and renders kept in memory
GZIP_LEVEL = 6


@dataclass(frozen=True)
class Rendered:
    body: bytes
    gzipped: bytes
    digest: str  # of ``body``; the ETag is built from it
    content_type: str


@dataclass
class Entry:
    packument: Packument | None  # None: no place in the chain has the package
    fingerprint: bytes  # of the places' documents it was merged from
    expires: float  # time.time() after which the chain is asked again
    stale: bool = False  # some document is a cached copy served because its upstream failed
    size: int = 0  # bytes of the merged inputs, for the memory budget
    renders: dict[tuple[str, bool], Rendered] = field(default_factory=dict)

    def weight(self) -> int:
        return self.size + sum(len(r.body) + len(r.gzipped) for r in self.renders.values())


@dataclass(frozen=True)
class _Answer:
    """One place's document as resolve hands it over: cheap to compare, parsed only when it changed."""

    digest: bytes
    size: int
    load: Callable[[], Document]
    expires: float


class Packuments:
    def __init__(self, daemon: Daemon, budget: int = CACHE_BUDGET) -> None:
        self._daemon = daemon
        self._ttl = daemon.config.cache.metadata_ttl
        self._entries: LRUCache[tuple[str, str], Entry] = LRUCache(budget, getsizeof=Entry.weight)
        self._refreshing: SingleFlight[Entry] = SingleFlight()
        self._rendering: SingleFlight[Rendered] = SingleFlight()
        self._generation = 0

    def invalidate(self, package: PackageName) -> None:
        """Forget the package in every repository (a publish into one can show through many chains)."""
        self._generation += 1
        for key in [key for key in self._entries if key[1] == package.full]:
            self._entries.pop(key, None)

    async def lookup(self, repository: str, package: PackageName) -> Entry:
        """The merged packument, fresh or refreshed. Raises NoUpstreamAnswered when every place failed
        and nothing was merged before."""
        key = (repository, package.full)
        entry = self._entries.get(key)
        if entry is not None and entry.expires > time.time():
            return entry
        generation = self._generation
        return await self._refreshing.do(
            (*key, generation), lambda: self._refresh(repository, package, entry, generation)
        )

    async def _refresh(
        self, repository: str, package: PackageName, previous: Entry | None, generation: int
    ) -> Entry:
        try:
            entry = await self._resolve(repository, package, previous)
        except NoUpstreamAnswered as exc:
            if previous is None or previous.packument is None:
                raise
            log.warning("serving the last merged packument of %s in %s: %s", package.full, repository, exc)
            entry = previous
            entry.stale, entry.expires = True, time.time() + RETRY_AFTER
        if generation == self._generation:
            self._keep((repository, package.full), entry)
        return entry

    def _keep(self, key: tuple[str, str], entry: Entry) -> None:
        try:
            self._entries[key] = entry
        except ValueError:
            self._entries.pop(key, None)  # larger than the whole budget: served, never kept

    async def _resolve(self, repository: str, package: PackageName, previous: Entry | None) -> Entry:
        now = time.time()
        deadlines = [now + self._ttl]

        def local(_repository: str, record: PackageRecord) -> _Answer | None:
            doc = local_document(package, record)
            if doc is None:
                return None
            raw = dumps(doc)
            return _Answer(hashlib.sha1(raw).digest(), len(raw), lambda: doc, now + self._ttl)

        async def remote(upstream: Upstream) -> tuple[_Answer, bool] | None:
            if "npm" not in upstream.formats:
                return None
            fetched = await self._daemon.fetcher.metadata(upstream, "npm", package.escaped, parse_packument)
            if fetched is None:
                deadlines.append(now + min(self._ttl, NOT_FOUND_TTL))
                return None
            body = fetched.doc.body
            fresh_until = fetched.doc.fetched_at + self._ttl
            answer = _Answer(hashlib.sha1(body).digest(), len(body), fetched.parsed, fresh_until)
            return answer, fetched.stale

        daemon = self._daemon
        resolution = await resolve(
            daemon.store, daemon.chain.places(repository), package.coordinate, local, remote
        )
        found = resolution.found
        degraded = resolution.stale or bool(resolution.failed)
        deadlines.extend(answer.expires for _, answer in found)
        expires = min(deadlines) if not degraded else now + RETRY_AFTER
        # A deadline already passed (a stale copy) must not make every request refresh again at once.
        expires = max(expires, now + 1.0)
        hidden = frozenset(resolution.unlisted)
        fingerprint = hashlib.sha1(
            b"".join(p.name.encode() + b"\0" + a.digest for p, a in found)
            + "\0".join(sorted(hidden)).encode()
        ).digest()
        if previous is not None and previous.fingerprint == fingerprint:
            previous.expires, previous.stale = expires, resolution.stale
            return previous
        if not found:
            return Entry(None, fingerprint, expires, resolution.stale)
        documents = [(p.name, not p.is_repository, a.load) for p, a in found]

        def merged() -> Packument:
            return merge(package, [PlaceDocument(name, up, load()) for name, up, load in documents], hidden)

        size = sum(a.size for _, a in found)
        packument = await offload(size, merged)
        return Entry(packument, fingerprint, expires, resolution.stale, size)

    async def rendered(
        self, entry: Entry, repository: str, package: PackageName, base: str, abbreviated: bool
    ) -> Rendered:
        """The full or abbreviated packument for clients of ``base``, rendered and compressed once."""
        cached = entry.renders.get((base, abbreviated))
        if cached is not None:
            return cached
        key = (id(entry), base, abbreviated)
        return await self._rendering.do(
            key, lambda: self._render(entry, repository, package, base, abbreviated)
        )

    async def _render(
        self, entry: Entry, repository: str, package: PackageName, base: str, abbreviated: bool
    ) -> Rendered:
        packument = entry.packument
        assert packument is not None, "only found packages are rendered"
        tarballs = tarball_prefix(base, repository, package)
        rendered = await offload(entry.size, lambda: _render(packument, tarballs, abbreviated))
        entry.renders[(base, abbreviated)] = rendered
        key = (repository, package.full)
        if self._entries.get(key) is entry:
            self._keep(key, entry)  # counts the render against the memory budget
        return rendered


def _render(packument: Packument, tarballs: str, abbreviated: bool) -> Rendered:
    doc = render_abbreviated(packument, tarballs) if abbreviated else render_full(packument, tarballs)
    body = dumps(doc)
    content_type = ABBREVIATED_TYPE if abbreviated else "application/json"
    digest = hashlib.sha256(body).hexdigest()[:32]
    return Rendered(body, gzip.compress(body, GZIP_LEVEL, mtime=0), digest, content_type)
