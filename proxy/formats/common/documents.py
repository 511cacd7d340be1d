"""The merged-document cache every format uses: per repository and document, one merged view of what
the repository's chain answers (npm packuments, PyPI project pages, maven-metadata.xml), kept in memory
and rendered and compressed once per change.

A format gives ``resolve(repository, key)``: it walks the chain (``proxy.repository.resolve``) and
returns a ``Resolution``: a fingerprint of what the view lists (the places' documents, not how they
are held), whether any place has the document, when to ask again, whether a stale copy was used, the
versions the chain's statuses hide from listings, and ``merge(hidden)`` to build the merged view
without them. The cache adds the rest, the same for every format:

- freshness: a view is served from memory until its ``expires``; a warm request costs a dictionary
  look-up. A refresh whose fingerprint equals the kept view's keeps that view and its renderings (only
  the deadline moves), so a 304 upstream costs no merge and no render;
- lazy merging: a view is merged when something needs it (a rendering not kept, a format reading the
  merged value), not when it is resolved;
- sealed renderings: with a ``RenderStore`` and a ``bytes`` fingerprint, every rendering is also kept
  in the store's metadata (sealed like every entry) under its fingerprint, so a restarted daemon, or a
  view dropped from memory, serves it again without merging or rendering while the fingerprint holds;
- refinement: when only what ``Resolution.listing`` leaves out changed (a detail, e.g. the core metadata a
  held wheel adds to a PyPI page), the last rendering of the same listing, from memory or the store, is
  still true and is served while the view's own is made ``REFINE_SECONDS`` later, off the request's path:
  the first warm install after a cold one is not held up by rendering large pages again;
- retry policy: with ``keep_on_failure``, a refresh that fails with ``NoUpstreamAnswered`` serves the
  last view marked stale and asks again after ``keep_on_failure`` seconds; without, the failure goes
  to the client (a 502);
- single flight: one refresh per (repository, document) at a time, one render per (view, variant);
- invalidation: ``invalidate(package)`` marks the package's views in every repository due (a publish
  into one repository shows through every chain that has it: the next request resolves again, and a
  view whose fingerprint did not change keeps its renderings) and bumps the package's generation,
  checked before a refresh's result is kept, so no refresh started before a publish can put the old
  view back (the refreshes of other packages keep theirs); a view
  marked so is never served as the stale fallback;
- memory: ``budget`` bytes. A quarter of it is an LRU of views (merged, as ``Resolution.merged_size``
  estimates them, plus renderings). A view it drops, or one larger than all of it, is *released*: its
  merged value and answers go, its renderings stay, gzipped only, in an LRU of the other three
  quarters, with what the format's ``locator`` keeps of the merged value (bytes: where its assets come
  from), so the warm path (a fresh rendering) still costs a dictionary look-up and a tarball asked for
  right after its packument needs no merge; what needs the merged value of a released view (a variant
  not rendered) resolves it again; one dropped from there is served from its sealed renderings.
  Merged views are many small objects, made among the many more that a parse makes and drops, and
  keep blocks of the interpreter's heap from going back to the system; renderings are a few large
  objects: hence the small share for merged views;
- rendering: ``rendered(entry, variant, render)`` makes a variant (a base URL, a representation) once;
  merging and rendering of more than ``INLINE_BYTES`` run in a worker thread, on data nobody mutates;
- warm restarts: ``warm_state`` gives every view found as released, ``restore`` takes them back into the
  released LRU (``proxy.formats.common.warm``).

Concurrency: everything else runs on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from cachetools import LRUCache

from proxy.repository.errors import NoUpstreamAnswered
from proxy.store.protocols import CachedDocument, MetadataService
from proxy.store.singleflight import SingleFlight
from proxy.store.store import offload

log = logging.getLogger(__name__)

V = TypeVar("V")
K = TypeVar("K", bound=Hashable)

# Level 1, as nginx's gzip: on real packuments it costs half of level 6's CPU (28 against 53 ms for
# 9.5 MB of renderings) for 13 % more bytes (1.41 against 1.24 MB), and a rendering is made on a cold
# request's path while its bytes cross a LAN or loopback.
GZIP_LEVEL = 1
ENTRY_OVERHEAD = 1024  # bytes counted for a view besides its inputs and renderings
PARSED_FACTOR = 3  # a merged view takes about this many times its answers' bytes once parsed (dicts, strings)
MAX_RENDERINGS = 8  # per view: base URLs x variants; more means Host headers vary wildly
REFINE_SECONDS = 1.0  # how long a provisional rendering is served before its refinement is made
TRACKED_INVALIDATIONS = 4096  # packages whose last invalidation is remembered (past it: all bumped)


class Rendered:
    """A document as sent: its bytes, gzipped once, and the ETag made from them. A ``compact`` one (read
    back from the store, or kept by a released view) holds only the gzipped form, what clients take:
    ``body`` is decompressed each time it is asked for. Treated as immutable."""

    __slots__ = ("_body", "checksums", "content_type", "etag", "gzipped", "size")

    def __init__(
        self,
        body: bytes | None,
        gzipped: bytes,
        size: int,
        etag: str,
        content_type: str,
        checksums: Mapping[str, str] | None = None,
    ) -> None:
        self._body = body  # None: a compact one
        self.gzipped = gzipped
        self.size = size  # of ``body``, whether it is held or not
        self.etag = etag  # of ``body``
        self.content_type = content_type
        self.checksums: Mapping[str, str] = checksums or {}  # of ``body``, when the format serves them

    @classmethod
    def of(cls, body: bytes, content_type: str, checksums: Mapping[str, str] | None = None) -> Rendered:
        etag = hashlib.blake2b(body, digest_size=16).hexdigest()  # the fastest hash on any CPU
        gzipped = gzip.compress(body, GZIP_LEVEL, mtime=0)
        return cls(body, gzipped, len(body), etag, content_type, checksums)

    @property
    def body(self) -> bytes:
        """The document's bytes (for a compact one decompressed here, on the caller's thread, and not
        kept: only clients that do not take gzip ask)."""
        return self._body if self._body is not None else gzip.decompress(self.gzipped)

    def weight(self) -> int:
        """Bytes it holds in memory: both forms, or the gzipped one for a compact one."""
        return (self.size if self._body is not None else 0) + len(self.gzipped)

    def compact(self) -> Rendered:
        """The same rendering holding only its gzipped form."""
        return Rendered(None, self.gzipped, self.size, self.etag, self.content_type, self.checksums)


@dataclass
class Resolution(Generic[V]):
    """What a format's ``resolve`` found along the chain, before merging."""

    # Equal (==) fingerprints merge to equal views. A ``bytes`` digest of what the view lists (stable
    # across restarts) lets renderings be kept in the store; any other value keeps them in memory only.
    fingerprint: object
    expires: float  # time.time() after which the chain is asked again
    stale: bool  # some answer is a cached copy served because its upstream failed
    size: int  # bytes of the answers: the memory they take, and whether merging is offloaded
    # merge(hidden): the merged view without the hidden versions; None when no place has the document.
    merge: Callable[[frozenset[str]], V | None]
    hidden: frozenset[str] = frozenset()  # versions the chain's statuses keep out of listings
    found: bool | None = None  # whether some place has the document; None: merge to know
    # The fingerprint without what only adds detail to the listing (PyPI: what held files complete).
    # When only that detail changed, the previous renderings stay correct, if less complete: they are
    # served while the new ones are made in the background. None: every change renders before serving.
    listing: object = None
    # The memory the merged view takes; None: PARSED_FACTOR times ``size``, for a format that parses
    # its answers whole.
    merged_size: int | None = None


@dataclass
class Entry(Generic[V]):
    """One repository's merged view of one document, merged on first use."""

    found: bool  # False: no place in the chain has the document
    fingerprint: object
    expires: float
    stale: bool = False
    size: int = 0
    merged_size: int = 0  # ``Resolution.merged_size``
    renders: dict[Hashable, Rendered] = field(default_factory=dict)
    pending: Callable[[], V | None] | None = None  # the merge, until it ran
    merged: V | None = None
    invalidated: bool = False  # something it lists changed: resolve again, never serve it stale
    released: bool = False  # merged value and answers dropped, renderings kept (see the module docstring)
    oversized: bool = False  # larger than the whole budget: never kept merged
    slot: tuple[str, Hashable] = ("", "")  # (repository, key): what resolves a released view again
    located: bytes | None = None  # what the format's ``locator`` made of the merged value, for releases
    listing: object = None  # the fingerprint without detail (``Resolution.listing``)
    # Renderings of the view this one refines (same listing, less detail), served until each variant's
    # own is made in the background.
    provisional: dict[Hashable, Rendered] = field(default_factory=dict)

    @property
    def value(self) -> V | None:
        """The merged view (None: not found), merged here, on the caller's thread, if nobody did yet;
        ``MergedDocuments.value`` merges a large view in a worker thread instead, and resolves a released
        one again."""
        assert not self.released, "a released view is merged again by MergedDocuments.value"
        if self.pending is not None:
            self.merged, self.pending = self.pending(), None
        return self.merged

    def weight(self) -> int:
        # ENTRY_OVERHEAD: a view made of local records only (size 0) still counts. Its answers take
        # ``merged_size`` once merged; a view served from its sealed renderings (after a restart or an
        # eviction) never parses them, and holds their bytes at most.
        renders = [*self.renders.values(), *self.provisional.values()]
        answers = 0 if self.released else self.merged_size if self.pending is None else self.size
        located = len(self.located) if self.located is not None else 0
        return ENTRY_OVERHEAD + answers + located + sum(r.weight() for r in renders)


class RenderStore:
    """Renderings sealed in the store's metadata, each saying the fingerprint and the variant it was
    rendered for; a rendering of another fingerprint or variant is never served. One entry per
    (repository, document, ``slot(variant)``): variants that clients choose freely (a base URL taken
    from the Host header) share a slot, the last one rendered wins it, so what is kept stays bounded
    by the documents. Only the gzipped form is kept: the plain one is decompressed when a
    client that does not take gzip asks for it.
    ``name`` turns a document's key into text; ``namespace`` (the format) keeps formats apart."""

    def __init__(
        self,
        metadata: MetadataService,
        namespace: str,
        name: Callable[[K], str],
        slot: Callable[[Hashable], Hashable] = lambda variant: variant,
    ) -> None:
        self._metadata = metadata
        self._namespace = namespace
        self._name = name
        self._slot = slot

    def _key(self, repository: str, key: K, variant: Hashable) -> tuple[str, ...]:
        return ("rendered", self._namespace, repository, self._name(key), repr(self._slot(variant)))

    @staticmethod
    def _made_from(fingerprint: bytes, variant: Hashable) -> str:
        return hashlib.sha1(fingerprint + b"\0" + repr(variant).encode()).hexdigest()

    async def get(
        self, repository: str, key: K, variant: Hashable, fingerprint: bytes, listing: object = None
    ) -> tuple[Rendered, bool] | None:
        """The rendering kept for ``fingerprint`` (and True), else one kept for an earlier view with the
        same ``listing`` (and False: correct, if less complete), else None."""
        doc = await self._metadata.get(*self._key(repository, key, variant))
        if doc is None or doc.status != 200:
            return None
        head_len = int.from_bytes(doc.body[:4], "big")
        head = json.loads(doc.body[4 : 4 + head_len])
        exact = doc.etag == self._made_from(fingerprint, variant)
        if not exact and (not isinstance(listing, bytes) or head.get("listing") != _listed(listing, variant)):
            return None
        gzipped = doc.body[4 + head_len :]
        kept = Rendered(None, gzipped, head["size"], head["etag"], head["content_type"], head["checksums"])
        return kept, exact

    async def put(
        self,
        repository: str,
        key: K,
        variant: Hashable,
        fingerprint: bytes,
        rendered: Rendered,
        listing: object = None,
    ) -> None:
        packed = json.dumps(
            {
                "etag": rendered.etag,
                "size": rendered.size,
                "content_type": rendered.content_type,
                "checksums": dict(rendered.checksums),
                "listing": _listed(listing, variant) if isinstance(listing, bytes) else None,
            }
        ).encode()
        body = len(packed).to_bytes(4, "big") + packed + rendered.gzipped
        made_from = self._made_from(fingerprint, variant)
        doc = CachedDocument(200, body, etag=made_from, content_type=rendered.content_type)
        await self._metadata.put(doc, *self._key(repository, key, variant))


class MergedDocuments(Generic[K, V]):
    """Merged views by (repository, ``key``); ``package(key)`` names the package a key belongs to."""

    def __init__(
        self,
        resolve: Callable[[str, K], Awaitable[Resolution[V]]],
        package: Callable[[K], str],
        *,
        budget: int,
        keep_on_failure: float | None = None,
        store: RenderStore | None = None,
        locator: Callable[[V], bytes] | None = None,
    ) -> None:
        self._resolve = resolve
        self._package = package
        self._keep_on_failure = keep_on_failure
        self._store = store
        self._locator = locator
        released = budget * 3 // 4
        self._entries: _Releasing[tuple[str, K], Entry[V]] = _Releasing(budget - released, self._release)
        self._released: LRUCache[tuple[str, K], Entry[V]] = LRUCache(released, getsizeof=Entry.weight)
        self._refreshing: SingleFlight[Entry[V]] = SingleFlight()
        self._rendering: SingleFlight[Rendered] = SingleFlight()
        self._merging: SingleFlight[V | None] = SingleFlight()
        self._generation = 0  # of every package (invalidate_all)
        self._invalidations = 0
        self._invalidated: dict[str, int] = {}  # package -> the count of invalidations at its last one
        self._background: set[asyncio.Task[Rendered]] = set()
        self._refining: set[tuple[int, Hashable]] = set()  # (entry, variant) refinements scheduled
        # Refinements run one at a time: those of an install's pages fall due together, and each holds
        # a merged view and its rendering while it runs (tens of MB at once, else).
        self._refinement_turn = asyncio.Semaphore(1)
        self.renders = 0  # renderings made (not found in memory or in the store), for tests and figures
        self.resolved = 0  # views resolved along the chain (not fresh in memory), for tests and figures

    def invalidate(self, package: str) -> None:
        """``package`` changed: its views in every repository are resolved again before next use."""
        self._invalidations += 1
        if len(self._invalidated) >= TRACKED_INVALIDATIONS:
            self._invalidated.clear()
            self._generation += 1
        self._invalidated[package] = self._invalidations
        for key in [key for key in self._entries if self._package(key[1]) == package]:
            entry = self._entries[key]
            entry.expires, entry.invalidated = 0.0, True
        for key in [key for key in self._released if self._package(key[1]) == package]:
            self._released.pop(key).invalidated = True

    def invalidate_all(self) -> None:
        """Forget every merged view (a repository's upstream list changed: any chain may differ now)."""
        self._generation += 1
        self._entries.clear()
        self._released.clear()

    async def get(self, repository: str, key: K) -> Entry[V]:
        """The merged view, fresh or refreshed. Raises NoUpstreamAnswered when every place failed and
        nothing may be served instead."""
        slot = (repository, key)
        entry = self._entries.get(slot) or self._released.get(slot)
        if entry is not None and entry.expires > time.time():
            return entry
        generation = self._generation_of(key)
        return await self._refreshing.do(
            (slot, generation), lambda: self._refresh(slot, repository, key, entry, generation)
        )

    def _generation_of(self, key: K) -> tuple[int, int]:
        """Changes when ``key``'s package (or every package) is invalidated, not when another one is."""
        return self._generation, self._invalidated.get(self._package(key), 0)

    async def _refresh(
        self,
        slot: tuple[str, K],
        repository: str,
        key: K,
        previous: Entry[V] | None,
        generation: tuple[int, int],
    ) -> Entry[V]:
        try:
            entry = await self._rebuild(repository, key, previous)
        except NoUpstreamAnswered as exc:
            if (
                self._keep_on_failure is None
                or previous is None
                or not previous.found
                or previous.invalidated
            ):
                raise
            log.warning("serving the last merged view of %s in %s: %s", self._package(key), repository, exc)
            entry = previous
            entry.stale, entry.expires = True, time.time() + self._keep_on_failure
        if generation == self._generation_of(key):
            self._keep(slot, entry)
        return entry

    async def _rebuild(self, repository: str, key: K, previous: Entry[V] | None) -> Entry[V]:
        self.resolved += 1
        resolution = await self._resolve(repository, key)
        fingerprint = _with_hidden(resolution.fingerprint, resolution.hidden)
        hidden = resolution.hidden
        if previous is not None and previous.fingerprint == fingerprint:
            previous.expires, previous.stale = resolution.expires, resolution.stale
            previous.invalidated = False
            if previous.released:  # merged again from these answers when needed
                previous.pending, previous.released = lambda: resolution.merge(hidden), False
                previous.located = None
                previous.size, previous.merged_size = resolution.size, _merged_size(resolution)
            return previous
        listing = None if resolution.listing is None else _with_hidden(resolution.listing, hidden)
        entry: Entry[V] = Entry(
            bool(resolution.found),
            fingerprint,
            resolution.expires,
            resolution.stale,
            resolution.size,
            _merged_size(resolution),
            pending=lambda: resolution.merge(hidden),
            listing=listing,
            slot=(repository, key),
        )
        if previous is not None and listing is not None and previous.listing == listing:
            entry.provisional = {**previous.provisional, **previous.renders}
        if resolution.found is None:  # the format knows only by merging
            await self.value(entry)
            entry.found = entry.merged is not None
        return entry

    async def value(self, entry: Entry[V]) -> V | None:
        """``entry``'s merged view (None: not found), merged once, a large one in a worker thread; a
        released view's resolved again (the chain's answers as they are now)."""
        if entry.released:
            entry = await self._restore(entry)
        pending = entry.pending
        if pending is None:
            return entry.merged

        async def merge() -> V | None:
            if entry.pending is not None:
                entry.merged, entry.pending = await offload(entry.size, pending), None
            return entry.merged

        return await self._merging.do(id(entry), merge)

    async def _restore(self, entry: Entry[V]) -> Entry[V]:
        """A released view resolved again: itself, to be merged, when the chain's answers are unchanged
        (kept again if it is still its slot's view), else the view of the answers as they are now."""
        slot: tuple[str, K] = entry.slot  # type: ignore[assignment]  # the slot's key is a K
        current = await self._rebuild(*slot, previous=entry)
        if current is entry and self._released.get(slot) is entry:
            self._keep(slot, entry)
        return current

    def _keep(self, slot: tuple[str, K], entry: Entry[V]) -> None:
        self._released.pop(slot, None)
        try:
            self._entries[slot] = entry
        except ValueError:  # larger than the whole budget: served, and released once rendered
            self._entries.pop(slot, None)
            entry.oversized = True
            self._release(slot, entry)

    def _release(self, slot: tuple[str, K], entry: Entry[V]) -> None:
        """Keep what serves ``entry`` warm (its renderings) in the released LRU, in a new entry: whoever
        holds ``entry`` now still finds it merged."""
        if entry.released:
            return
        released = self._released_form(slot, entry)
        if released is not None:
            with contextlib.suppress(ValueError):  # its renderings alone exceed the released budget
                self._released[slot] = released

    def _released_form(self, slot: tuple[str, K], entry: Entry[V]) -> Entry[V] | None:
        """``entry`` as released: its renderings (gzipped) and what the locator makes of it, without its
        merged value (None: nothing to keep, the view was not found or is invalidated)."""
        if not entry.found or entry.invalidated:
            return None
        if entry.released:
            return entry
        if entry.located is None and self._locator is not None and entry.merged is not None:
            # Made once: an oversized view is released again with each of its renderings.
            entry.located = self._locator(entry.merged)
        return Entry(
            True,
            entry.fingerprint,
            entry.expires,
            entry.stale,
            entry.size,
            entry.merged_size,
            renders={variant: rendered.compact() for variant, rendered in entry.renders.items()},
            listing=entry.listing,
            released=True,
            slot=slot,
            located=entry.located,
        )

    def warm_state(self) -> list[Entry[V]]:
        """Every view found, as released (``proxy.formats.common.warm``)."""
        caches = (self._released, self._entries)
        views = [self._released_form(slot, entry) for cache in caches for slot, entry in cache.items()]
        return [view for view in views if view is not None]

    def restore(self, state: object) -> int:
        """The released views of ``warm_state`` held again, as far as the released budget goes."""
        assert isinstance(state, list)
        for view in state:
            with contextlib.suppress(ValueError):
                self._released[view.slot] = view
        return len(self._released)

    async def rendered(
        self, repository: str, key: K, entry: Entry[V], variant: Hashable, render: Callable[[V], Rendered]
    ) -> Rendered:
        """``entry``'s view rendered as ``variant`` (made once per variant by ``render``)."""
        cached = entry.renders.get(variant)
        if cached is not None:
            return cached
        provisional = entry.provisional.get(variant)
        # In the store, outside the single flight (a read needs none): this view's, or a provisional one.
        looked = provisional is None and self._store is not None and isinstance(entry.fingerprint, bytes)
        if looked:
            provisional = await self._kept(repository, key, entry, variant)
            if variant in entry.renders:  # the store kept this very view's
                return entry.renders[variant]

        def make() -> Awaitable[Rendered]:
            return self._rendering.do(
                (id(entry), variant), lambda: self._render(repository, key, entry, variant, render, looked)
            )

        if provisional is None:
            return await make()
        self._refine_later(entry, variant, make)
        return provisional

    def _refine_later(
        self, entry: Entry[V], variant: Hashable, make: Callable[[], Awaitable[Rendered]]
    ) -> None:
        """Make ``entry``'s own rendering of ``variant`` ``REFINE_SECONDS`` from now, off the request's
        path, after the refinements due before it: a burst of requests (an install) is answered first,
        then the renderings are made, one at a time."""
        if (id(entry), variant) in self._refining:
            return
        self._refining.add((id(entry), variant))

        async def in_turn() -> Rendered:
            async with self._refinement_turn:
                return entry.renders[variant] if variant in entry.renders else await make()

        def start() -> None:
            self._refining.discard((id(entry), variant))
            if variant in entry.renders:
                return
            task = asyncio.ensure_future(in_turn())
            self._background.add(task)
            task.add_done_callback(self._rendered_in_background)

        asyncio.get_running_loop().call_later(REFINE_SECONDS, start)

    async def _kept(self, repository: str, key: K, entry: Entry[V], variant: Hashable) -> Rendered | None:
        """The sealed rendering of ``entry``'s own view (a restart, or a view the memory budget dropped)
        goes to its renderings (and None is returned); one of an earlier view with ``entry``'s listing
        is returned, to serve while ``entry``'s own is made."""
        assert self._store is not None and isinstance(entry.fingerprint, bytes)
        kept = await self._store.get(repository, key, variant, entry.fingerprint, entry.listing)
        if kept is None:
            return None
        rendered, exact = kept
        if exact:
            self._add(repository, key, entry, variant, rendered)
            return None
        entry.provisional[variant] = rendered
        return rendered

    def _rendered_in_background(self, task: asyncio.Task[Rendered]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("a merged document was not rendered again: %s", task.exception())

    async def _render(
        self,
        repository: str,
        key: K,
        entry: Entry[V],
        variant: Hashable,
        render: Callable[[V], Rendered],
        looked: bool = False,
    ) -> Rendered:
        """Made by ``render``, unless the store keeps it (not asked again when the caller ``looked``)."""
        sealed = self._store if isinstance(entry.fingerprint, bytes) else None
        rendered = None
        if sealed is not None and not looked:
            assert isinstance(entry.fingerprint, bytes)
            kept = await sealed.get(repository, key, variant, entry.fingerprint)
            rendered = kept[0] if kept is not None else None
        if rendered is None:
            value = await self.value(entry)
            assert value is not None, "only found documents are rendered"
            rendered = await offload(entry.size, lambda: render(value))
            self.renders += 1
            if sealed is not None:
                assert isinstance(entry.fingerprint, bytes)
                await sealed.put(repository, key, variant, entry.fingerprint, rendered, entry.listing)
        self._add(repository, key, entry, variant, rendered)
        return rendered

    def _add(self, repository: str, key: K, entry: Entry[V], variant: Hashable, rendered: Rendered) -> None:
        """``rendered`` becomes ``entry``'s rendering of ``variant``, counted against the memory budget."""
        if len(entry.renders) >= MAX_RENDERINGS:
            entry.renders.clear()
        entry.renders[variant] = rendered
        entry.provisional.pop(variant, None)
        slot = (repository, key)
        if self._entries.get(slot) is entry:
            self._keep(slot, entry)
        elif entry.oversized:
            copy = self._released.get(slot)
            if copy is not None and copy.fingerprint == entry.fingerprint:
                self._release(slot, entry)  # its released copy gets this rendering too


class _Releasing(LRUCache[K, V]):
    """An LRU of entries by weight that hands each entry it drops to ``release``."""

    def __init__(self, budget: int, release: Callable[[K, V], None]) -> None:
        super().__init__(budget, getsizeof=Entry.weight)
        self._on_drop = release

    def popitem(self) -> tuple[K, V]:
        slot, entry = super().popitem()
        self._on_drop(slot, entry)
        return slot, entry


def _merged_size(resolution: Resolution[V]) -> int:
    if resolution.merged_size is None:
        return PARSED_FACTOR * resolution.size
    return resolution.merged_size


def _listed(listing: bytes, variant: Hashable) -> str:
    return hashlib.sha1(listing + b"\0" + repr(variant).encode()).hexdigest()


def _with_hidden(fingerprint: object, hidden: frozenset[str]) -> object:
    """The fingerprint of a view: a status change hides or shows versions with the same answers."""
    if isinstance(fingerprint, bytes):
        listed = b"\0".join(sorted(v.encode() for v in hidden))
        return hashlib.sha1(fingerprint + b"\0hidden\0" + listed).digest()
    return (fingerprint, hidden)
