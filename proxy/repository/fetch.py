"""Fetching from upstreams through the store: metadata documents with freshness, revalidation,
not-found caching and stale-if-error; assets downloaded into the store, verified before commit; and
the memory of "not found" answers (``NotFoundMemory``) that the chain walk consults.

Negative lookups: a remembered "not found" (an upstream's 404 for a document, or every upstream of a
repository's chain answering 404 for an asset path) saves asking again while it is fresh
(``[cache] not_found_ttl``); past that the upstreams are asked again, and when they cannot be reached
the remembered answer stands in for theirs, a 404 like the one they gave. Only an answer somebody
gave is ever repeated: a miss no upstream ever answered stays a failure (a 502), never a 404.

Concurrency rule: concurrent misses for one document or one asset cost one upstream request (single
flight keyed by upstream and URL). An asset is committed to the store only after its digests matched
what its metadata declared. The request that started a download may pass an ``AssetSink``: it
receives the bytes while they are written to the store, except the last piece, which is held back
until the digests matched, so a client never receives a complete copy of bytes that failed
verification. The other requests wait for the commit and are served from the store.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

from proxy.config.model import Format
from proxy.repository.errors import UpstreamInvalid
from proxy.store.protocols import BlobInfo, BlobService, CachedDocument, MetadataService
from proxy.store.singleflight import SingleFlight
from proxy.store.store import offload
from proxy.upstream.base import Upstream, UpstreamUnavailable
from proxy.upstream.checksum_policy import unverified

log = logging.getLogger(__name__)

T = TypeVar("T")

NOT_FOUND_TTL = 60.0  # seconds a remembered "not found" saves asking again ([cache] not_found_ttl)
_ABSENT = "not-found"  # metadata entries of NotFoundMemory: (this, repository, format, bucket)


class AssetSink(Protocol):
    """Where the first requester of an asset gets its bytes while they are being stored.

    ``start`` comes before the first ``write``, with the size when the upstream announced it; ``end``
    comes only after the bytes were verified. A download that fails after ``start`` gets no ``end``:
    the sink's owner then aborts its client's transfer. A sink never raises: a client that went away
    must not stop the download that others wait for."""

    async def start(self, size: int | None) -> None: ...

    async def write(self, chunk: bytes) -> None: ...

    async def end(self) -> None: ...


class Fetched(Generic[T]):
    """An upstream's document: its cached copy, and its parsed form, made at most once (a document just
    fetched was parsed when it was checked). Without ``keep_body`` the body is let go once parsed: a
    format that needs only the parsed form does not hold a large page twice while it merges."""

    def __init__(
        self,
        doc: CachedDocument,
        stale: bool,
        parse: Callable[[bytes], T],
        parsed: T | None = None,
        keep_body: bool = True,
    ) -> None:
        self.doc = doc
        self.stale = stale  # served past its TTL because the upstream could not be reached
        self._parse = parse
        self._parsed = parsed
        self._keep_body = keep_body
        self._digest: bytes | None = None
        if parsed is not None:
            self._parsed_now()

    def parsed(self) -> T:
        if self._parsed is None:
            self._parsed = self._parse(self.doc.body)
            self._parsed_now()
        return self._parsed

    def digest(self) -> bytes:
        """``body_digest`` of the body: the one made when it was fetched (kept with the cached copy), so
        telling whether it changed costs no hashing; made here only for a copy cached without one."""
        if self._digest is None:
            doc = self.doc
            self._digest = bytes.fromhex(doc.digest) if doc.digest is not None else body_digest(doc.body)
        return self._digest

    def _parsed_now(self) -> None:
        if not self._keep_body:
            self.digest()  # while the body is there to hash, for a copy cached without a digest
            self.doc = self.doc.head()


@dataclass(frozen=True)
class Absence:
    """A remembered "not found": when it was last confirmed, and the upstreams that all answered so."""

    recorded_at: float
    upstreams: frozenset[str]

    def covers(self, failed: Iterable[str]) -> bool:
        """Whether it may stand in for the answers of the ``failed`` upstreams: each of them said "not
        found" then (a chain that gained an upstream since has one nobody heard from)."""
        return set(failed) <= self.upstreams


class NotFoundMemory:
    """Asset paths that no upstream of a repository's chain has, per repository and format.

    Sealed in the store's metadata like every cached document, so it outlives a restart and is shared
    by the processes of a shared store. Bounded: a path falls in one of ``BUCKETS`` entries (by a hash
    of the path) that keeps at most ``PER_BUCKET`` paths, the oldest confirmed dropped first.

    Concurrency: writes of one process are serialised by a lock (read, change, write one bucket);
    processes sharing a store may overwrite each other's bucket, which loses a memory (the next miss
    asks the upstreams again), never invents one."""

    BUCKETS = 1024
    PER_BUCKET = 64

    def __init__(self, metadata: MetadataService, ttl: float) -> None:
        self._metadata = metadata
        self.ttl = ttl
        self._lock = asyncio.Lock()

    def lookup(self, repository: str, format: Format, path: str) -> AssetLookup:
        """The memory of one asset path of a repository's chain (``path`` as the repository serves it)."""
        return AssetLookup(self, repository, format, path)

    def fresh(self, absence: Absence, now: float | None = None) -> bool:
        return (now if now is not None else time.time()) - absence.recorded_at < self.ttl

    async def recall(self, lookup: AssetLookup) -> Absence | None:
        entry = (await self._bucket(lookup)).get(lookup.path)
        return None if entry is None else Absence(entry[0], frozenset(entry[1]))

    async def remember(self, lookup: AssetLookup, upstreams: Iterable[str]) -> None:
        async with self._lock:
            bucket = await self._bucket(lookup)
            bucket[lookup.path] = (time.time(), sorted(upstreams))
            while len(bucket) > self.PER_BUCKET:
                del bucket[min(bucket, key=lambda path: bucket[path][0])]
            await self._store(lookup, bucket)

    async def forget(self, lookup: AssetLookup) -> None:
        async with self._lock:
            bucket = await self._bucket(lookup)
            if bucket.pop(lookup.path, None) is not None:
                await self._store(lookup, bucket)

    def _key(self, lookup: AssetLookup) -> tuple[str, ...]:
        number = int.from_bytes(hashlib.sha256(lookup.path.encode()).digest()[:4], "big") % self.BUCKETS
        return (_ABSENT, lookup.repository, lookup.format, str(number))

    async def _bucket(self, lookup: AssetLookup) -> dict[str, tuple[float, list[str]]]:
        doc = await self._metadata.get(*self._key(lookup))
        if doc is None:
            return {}
        try:
            entries = json.loads(doc.body)
            return {path: (float(at), [str(u) for u in names]) for path, (at, names) in entries.items()}
        except (ValueError, TypeError, AttributeError):
            log.warning("unreadable not-found memory of repository %s: dropped", lookup.repository)
            return {}

    async def _store(self, lookup: AssetLookup, bucket: dict[str, tuple[float, list[str]]]) -> None:
        key = self._key(lookup)
        if bucket:
            await self._metadata.put(CachedDocument(200, json.dumps(bucket).encode()), *key)
        else:
            await self._metadata.delete(*key)


@dataclass(frozen=True)
class AssetLookup:
    """One asset path of a repository's chain, as ``NotFoundMemory`` remembers it."""

    memory: NotFoundMemory
    repository: str
    format: Format
    path: str

    async def recall(self) -> Absence | None:
        return await self.memory.recall(self)

    async def remember(self, upstreams: Iterable[str]) -> None:
        await self.memory.remember(self, upstreams)

    async def forget(self) -> None:
        await self.memory.forget(self)


class Fetcher:
    """Upstream documents and assets through the store. ``not_found_ttl``: seconds a remembered "not
    found" (a document's 404, an asset path of ``not_found``) is taken as it is before asking again."""

    def __init__(
        self,
        metadata: MetadataService,
        blobs: BlobService,
        metadata_ttl: float,
        not_found_ttl: float = NOT_FOUND_TTL,
    ) -> None:
        self._metadata = metadata
        self._blobs = blobs
        self._ttl = metadata_ttl
        self._not_found_ttl = not_found_ttl
        self.not_found = NotFoundMemory(metadata, not_found_ttl)
        self._documents: SingleFlight[Fetched[Any] | None] = SingleFlight()
        self._assets: SingleFlight[BlobInfo | None] = SingleFlight()

    # -- metadata ---------------------------------------------------------------------------------
    async def metadata(
        self,
        upstream: Upstream,
        format: Format,
        url: str,
        parse: Callable[[bytes], T],
        accept: str | None = None,
        keep_body: bool = True,
    ) -> Fetched[T] | None:
        """The upstream's document at ``url``, asked for with ``accept`` when given; None when the
        upstream does not have it. ``keep_body``: see ``Fetched`` (the same for every caller of a URL).

        ``parse`` raises ValueError for a body that is not a well-formed document of its kind; such a
        body is never cached. Raises UpstreamUnavailable (or UpstreamInvalid) when the upstream failed and
        no earlier copy is cached. Concurrent callers for one URL share the parsed document: they must
        not change it.
        """
        key = ("metadata", upstream.name, format, url)
        cached = await self._metadata.get(*key)
        if cached is not None and cached.age() < (self._ttl if cached.status == 200 else self._not_found_ttl):
            return Fetched(cached, False, parse, keep_body=keep_body) if cached.status == 200 else None
        return await self._documents.do(
            key, lambda: self._refresh(key, upstream, format, url, cached, parse, accept, keep_body)
        )

    async def _refresh(
        self,
        key: tuple[str, ...],
        upstream: Upstream,
        format: Format,
        url: str,
        cached: CachedDocument | None,
        parse: Callable[[bytes], T],
        accept: str | None,
        keep_body: bool,
    ) -> Fetched[T] | None:
        headers = {"Accept-Encoding": "gzip"}
        if accept is not None:
            headers["Accept"] = accept
        if cached is not None and cached.status == 200:
            if cached.etag:
                headers["If-None-Match"] = cached.etag
            if cached.last_modified:
                headers["If-Modified-Since"] = cached.last_modified
        parsed: T | None = None
        try:
            async with upstream.open(format, url, headers=headers) as response:
                if response.status == 304 and cached is not None:
                    doc = cached.refreshed(time.time())
                elif response.status in (404, 410):
                    doc = CachedDocument(404, b"")
                elif response.status == 200:
                    body = await response.aread()
                    try:
                        # A large one off the loop; hashed there too, once, for ``Fetched.digest``.
                        parsed, digest = await offload(len(body), lambda: _checked(parse, body))
                    except ValueError as exc:
                        raise UpstreamInvalid(
                            f"upstream {upstream.name} sent a broken document: {exc}"
                        ) from None
                    doc = CachedDocument(
                        200,
                        body,
                        etag=response.headers.get("ETag"),
                        last_modified=response.headers.get("Last-Modified"),
                        content_type=response.headers.get("Content-Type"),
                        digest=digest,
                    )
                else:
                    raise UpstreamUnavailable(upstream.name, f"answered {response.status}")
        except (UpstreamUnavailable, UpstreamInvalid) as exc:
            if cached is not None and cached.status == 200:
                log.warning("serving stale metadata: %s", exc)
                return Fetched(cached, True, parse, keep_body=keep_body)
            if cached is not None and isinstance(exc, UpstreamUnavailable):
                log.warning("%s; it had no %s when last asked, taken as still missing", exc, asset_name(url))
                return None
            raise
        await self._metadata.put(doc, *key)
        return Fetched(doc, False, parse, parsed, keep_body) if doc.status == 200 else None

    # -- assets -----------------------------------------------------------------------------------
    async def asset(
        self,
        upstream: Upstream,
        format: Format,
        url: str,
        check: Callable[[BlobInfo], str | None] | None,
        sink: AssetSink | None = None,
    ) -> BlobInfo | None:
        """Download the asset at ``url`` into the store and return its blob; None when the upstream does
        not have it. ``check`` returns None when the digests match what the metadata declared, else the
        reason, and then nothing is stored and UpstreamInvalid is raised. ``check`` None says the
        metadata declares no digest for the asset: the upstream's ``checksum_policy`` then decides
        (``"require"``: refused like a mismatch; ``"warn"``: stored with a logged warning). ``sink`` is
        used only when this call starts the download (see AssetSink)."""
        key = ("asset", upstream.name, format, url)
        return await self._assets.do(key, lambda: self._download(upstream, format, url, check, sink))

    async def _download(
        self,
        upstream: Upstream,
        format: Format,
        url: str,
        check: Callable[[BlobInfo], str | None] | None,
        sink: AssetSink | None,
    ) -> BlobInfo | None:
        async with self._blobs.ingest() as writer, upstream.open(format, url) as response:
            if response.status in (404, 410):
                return None
            if response.status != 200:
                raise UpstreamUnavailable(upstream.name, f"answered {response.status} for an asset")
            # A length announced for the encoded body says nothing about the decoded one.
            announced = (
                None if response.headers.get("Content-Encoding") else response.headers.get("Content-Length")
            )
            expected = int(announced) if announced is not None and announced.isdigit() else None
            relay = _Relay(sink, expected)
            async for chunk in response.aiter_bytes():
                writer.write(chunk)
                await relay.pass_on(chunk)
            info = writer.finish()
            if expected is not None and expected != info.size:
                raise UpstreamInvalid(
                    f"upstream {upstream.name} sent {info.size} of {expected} announced bytes (truncated)"
                )
            # Named by its file name only: an upstream URL may name a CodeArtifact domain and owner.
            problem = unverified(upstream, asset_name(url)) if check is None else check(info)
            if problem is not None:
                log.error("upstream %s sent an asset that fails verification: %s", upstream.name, problem)
                raise UpstreamInvalid(f"upstream {upstream.name}: {problem}")
            await relay.release()
            return await writer.commit(published=False)


def body_digest(body: bytes) -> bytes:
    """What tells one document's body from another's: BLAKE2b-256, as fast as a hash gets on any CPU
    (SHA-256 needs the CPU's SHA extensions to come close; SHA-1 is slower than both)."""
    return hashlib.blake2b(body, digest_size=32).digest()


def _checked(parse: Callable[[bytes], T], body: bytes) -> tuple[T, str]:
    """``body`` parsed (ValueError when it is not a document of its kind) and ``body_digest`` (hex)."""
    return parse(body), body_digest(body).hex()


def asset_name(url: str) -> str:
    """The file name at the end of an asset's URL, for messages."""
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or "an asset"


class _Relay:
    """Passes a download on to a sink one piece late, so the last piece waits for verification."""

    def __init__(self, sink: AssetSink | None, size: int | None) -> None:
        self._sink = sink
        self._size = size
        self._held: bytes | None = None
        self._started = False

    async def pass_on(self, chunk: bytes) -> None:
        if self._sink is None:
            return
        if self._held is not None:
            await self._send(self._held)
        self._held = chunk

    async def release(self) -> None:
        """The asset was verified: the held piece and the end go to the sink."""
        if self._sink is None:
            return
        await self._send(self._held or b"")
        await self._sink.end()

    async def _send(self, chunk: bytes) -> None:
        assert self._sink is not None
        if not self._started:
            self._started = True
            await self._sink.start(self._size)
        await self._sink.write(chunk)
