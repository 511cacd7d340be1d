"""The merged-document cache every format uses: per repository and document, one merged view of what
the repository's chain answers (npm packuments, PyPI project pages, maven-metadata.xml), kept in memory
and rendered and compressed once per change.

A format gives ``resolve(repository, key)``: it walks the chain (``proxy.repository.resolve``) and
returns a ``Resolution``: a fingerprint of the answers, when to ask again, whether a stale copy was
used, the versions the chain's statuses hide from listings, and ``merge(hidden)`` to build the merged
view without them (None: no place has the document). The cache adds the
rest, the same for every format:

- freshness: a view is served from memory until its ``expires``; a warm request costs a dictionary
  look-up. A refresh whose fingerprint equals the kept view's keeps that view and its renderings (only
  the deadline moves), so a 304 upstream costs no merge and no render;
- retry policy: with ``keep_on_failure``, a refresh that fails with ``NoUpstreamAnswered`` serves the
  last view marked stale and asks again after ``keep_on_failure`` seconds; without, the failure goes
  to the client (a 502);
- single flight: one refresh per (repository, document) at a time, one render per (view, variant);
- invalidation: ``invalidate(package)`` drops the package's views in every repository (a publish into
  one repository shows through every chain that has it) and bumps a generation, checked before a
  refresh's result is kept, so no refresh started before a publish can put the old view back;
- memory: an LRU bounded by ``budget`` bytes (merged inputs plus renderings); a view larger than the
  whole budget is served, never kept;
- rendering: ``rendered(entry, variant, render)`` makes a variant (a base URL, a representation) once;
  merging and rendering of more than ``INLINE_BYTES`` run in a worker thread, on data nobody mutates.

Concurrency: everything else runs on the event loop.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from cachetools import LRUCache

from proxy.repository.errors import NoUpstreamAnswered
from proxy.store.singleflight import SingleFlight
from proxy.store.store import offload

log = logging.getLogger(__name__)

V = TypeVar("V")
K = TypeVar("K", bound=Hashable)

GZIP_LEVEL = 6
ENTRY_OVERHEAD = 1024  # bytes counted for a view besides its inputs and renderings
MAX_RENDERINGS = 8  # per view: base URLs x variants; more means Host headers vary wildly


@dataclass(frozen=True)
class Rendered:
    """A document as sent: its bytes, gzipped once, and the ETag made from them."""

    body: bytes
    gzipped: bytes
    etag: str  # of ``body``
    content_type: str
    checksums: Mapping[str, str] = field(default_factory=dict)  # of ``body``, when the format serves them

    @classmethod
    def of(cls, body: bytes, content_type: str, checksums: Mapping[str, str] | None = None) -> Rendered:
        etag = hashlib.sha256(body).hexdigest()[:32]
        gzipped = gzip.compress(body, GZIP_LEVEL, mtime=0)
        return cls(body, gzipped, etag, content_type, checksums or {})


@dataclass
class Resolution(Generic[V]):
    """What a format's ``resolve`` found along the chain, before merging."""

    fingerprint: object  # equal (==) fingerprints merge to equal views
    expires: float  # time.time() after which the chain is asked again
    stale: bool  # some answer is a cached copy served because its upstream failed
    size: int  # bytes of the answers: the memory they take, and whether merging is offloaded
    # merge(hidden): the merged view without the hidden versions; None when no place has the document.
    merge: Callable[[frozenset[str]], V | None]
    hidden: frozenset[str] = frozenset()  # versions the chain's statuses keep out of listings


@dataclass
class Entry(Generic[V]):
    """One repository's merged view of one document."""

    value: V | None  # None: no place in the chain has the document
    fingerprint: object
    expires: float
    stale: bool = False
    size: int = 0
    renders: dict[Hashable, Rendered] = field(default_factory=dict)

    def weight(self) -> int:
        # ENTRY_OVERHEAD: a view made of local records only (size 0) still counts.
        return ENTRY_OVERHEAD + self.size + sum(len(r.body) + len(r.gzipped) for r in self.renders.values())


class MergedDocuments(Generic[K, V]):
    """Merged views by (repository, ``key``); ``package(key)`` names the package a key belongs to."""

    def __init__(
        self,
        resolve: Callable[[str, K], Awaitable[Resolution[V]]],
        package: Callable[[K], str],
        *,
        budget: int,
        keep_on_failure: float | None = None,
    ) -> None:
        self._resolve = resolve
        self._package = package
        self._keep_on_failure = keep_on_failure
        self._entries: LRUCache[tuple[str, K], Entry[V]] = LRUCache(budget, getsizeof=Entry.weight)
        self._refreshing: SingleFlight[Entry[V]] = SingleFlight()
        self._rendering: SingleFlight[Rendered] = SingleFlight()
        self._generation = 0

    def invalidate(self, package: str) -> None:
        """Forget ``package`` in every repository."""
        self._generation += 1
        for key in [key for key in self._entries if self._package(key[1]) == package]:
            self._entries.pop(key, None)

    def invalidate_all(self) -> None:
        """Forget every merged view (a repository's upstream list changed: any chain may differ now)."""
        self._generation += 1
        self._entries.clear()

    async def get(self, repository: str, key: K) -> Entry[V]:
        """The merged view, fresh or refreshed. Raises NoUpstreamAnswered when every place failed and
        nothing may be served instead."""
        slot = (repository, key)
        entry = self._entries.get(slot)
        if entry is not None and entry.expires > time.time():
            return entry
        generation = self._generation
        return await self._refreshing.do(
            (slot, generation), lambda: self._refresh(slot, repository, key, entry, generation)
        )

    async def _refresh(
        self, slot: tuple[str, K], repository: str, key: K, previous: Entry[V] | None, generation: int
    ) -> Entry[V]:
        try:
            entry = await self._rebuild(repository, key, previous)
        except NoUpstreamAnswered as exc:
            if self._keep_on_failure is None or previous is None or previous.value is None:
                raise
            log.warning("serving the last merged view of %s in %s: %s", self._package(key), repository, exc)
            entry = previous
            entry.stale, entry.expires = True, time.time() + self._keep_on_failure
        if generation == self._generation:
            self._keep(slot, entry)
        return entry

    async def _rebuild(self, repository: str, key: K, previous: Entry[V] | None) -> Entry[V]:
        resolution = await self._resolve(repository, key)
        # A status change hides or shows versions with the same answers: it is part of the fingerprint.
        fingerprint = (resolution.fingerprint, resolution.hidden)
        if previous is not None and previous.fingerprint == fingerprint:
            previous.expires, previous.stale = resolution.expires, resolution.stale
            return previous
        value = await offload(resolution.size, lambda: resolution.merge(resolution.hidden))
        return Entry(value, fingerprint, resolution.expires, resolution.stale, resolution.size)

    def _keep(self, slot: tuple[str, K], entry: Entry[V]) -> None:
        try:
            self._entries[slot] = entry
        except ValueError:
            self._entries.pop(slot, None)  # larger than the whole budget: served, never kept

    async def rendered(
        self, repository: str, key: K, entry: Entry[V], variant: Hashable, render: Callable[[V], Rendered]
    ) -> Rendered:
        """``entry``'s view rendered as ``variant`` (made once per variant by ``render``)."""
        cached = entry.renders.get(variant)
        if cached is not None:
            return cached
        return await self._rendering.do(
            (id(entry), variant), lambda: self._render(repository, key, entry, variant, render)
        )

    async def _render(
        self, repository: str, key: K, entry: Entry[V], variant: Hashable, render: Callable[[V], Rendered]
    ) -> Rendered:
        value = entry.value
        assert value is not None, "only found documents are rendered"
        rendered = await offload(entry.size, lambda: render(value))
        if len(entry.renders) >= MAX_RENDERINGS:
            entry.renders.clear()
        entry.renders[variant] = rendered
        slot = (repository, key)
        if self._entries.get(slot) is entry:
            self._keep(slot, entry)  # counts the rendering against the memory budget
        return rendered
