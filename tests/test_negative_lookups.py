"""Negative lookups, shared by every format: a "not found" every upstream of a chain answered is
remembered per repository and asset path (``first_found``), a document's 404 per upstream
(``Fetcher.metadata``); fresh, it saves asking; past its time-to-live it answers again, as a 404, only
for upstreams that cannot be reached and that gave that answer; a miss nobody answered stays a
failure (502). The memory is bounded."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from proxy.repository.chain import Place
from proxy.repository.errors import NoUpstreamAnswered
from proxy.repository.fetch import Fetcher, NotFoundMemory
from proxy.repository.resolve import first_found
from proxy.store.protocols import CachedDocument, PackageRecord
from proxy.upstream.base import UpstreamUnavailable
from tests.test_shared_mechanics import COORD, Catalog, Upstream

POM = "org/example/hello/0.1/hello-0.1.pom"


class Metadata:
    """An in-memory MetadataService."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, ...], CachedDocument] = {}

    async def get(self, *key: str) -> CachedDocument | None:
        return self.entries.get(key)

    async def put(self, doc: CachedDocument, *key: str) -> None:
        self.entries[key] = doc

    async def delete(self, *key: str) -> None:
        self.entries.pop(key, None)


class Upstreams:
    """Two upstreams whose answers a test sets: "missing", "down" or a found value."""

    def __init__(self) -> None:
        self.up1, self.up2 = Upstream("up1"), Upstream("up2")
        self.answers = {"up1": "missing", "up2": "missing"}
        self.asked: list[str] = []

    def places(self, *extra: Upstream) -> tuple[Place, ...]:
        return (
            Place("dev"),
            *(Place(u.name, u) for u in (self.up1, self.up2, *extra)),  # type: ignore[arg-type]
        )

    async def remote(self, upstream: Upstream) -> str | None:
        self.asked.append(upstream.name)
        answer = self.answers.get(upstream.name, "down")
        if answer == "down":
            raise UpstreamUnavailable(upstream.name, "connection failed (Connection refused)")
        return None if answer == "missing" else answer


async def nothing_local(record: PackageRecord) -> str | None:
    return None


async def walk(
    memory: NotFoundMemory, upstreams: Upstreams, *extra: Upstream, path: str = POM, repository: str = "dev"
) -> str | None:
    return await first_found(  # type: ignore[arg-type]
        Catalog({}),  # type: ignore[arg-type]
        upstreams.places(*extra),
        COORD,
        nothing_local,
        upstreams.remote,  # type: ignore[arg-type]
        lookup=memory.lookup(repository, "maven", path),
    )


async def test_a_miss_every_upstream_answered_is_remembered_and_stands_in_while_they_are_down() -> None:
    memory, upstreams = NotFoundMemory(Metadata(), ttl=60.0), Upstreams()
    assert await walk(memory, upstreams) is None
    assert upstreams.asked == ["up1", "up2"]
    absence = await memory.lookup("dev", "maven", POM).recall()
    assert absence is not None and absence.upstreams == {"up1", "up2"}
    # fresh: nobody is asked, even when they are down
    upstreams.answers = {"up1": "down", "up2": "down"}
    assert await walk(memory, upstreams) is None
    assert upstreams.asked == ["up1", "up2"]
    # past its time-to-live: asked again; down, the remembered answer stands in for theirs
    memory.ttl = 0.0
    assert await walk(memory, upstreams) is None
    assert upstreams.asked == ["up1", "up2", "up1", "up2"]
    # a miss nobody ever answered is a failure, not a made-up 404
    with pytest.raises(NoUpstreamAnswered, match="up1"):
        await walk(memory, upstreams, path="org/example/hello/0.2/hello-0.2.pom")
    # another repository's memory is its own
    with pytest.raises(NoUpstreamAnswered):
        await walk(memory, upstreams, repository="other")


async def test_an_upstream_that_never_answered_is_not_spoken_for() -> None:
    memory, upstreams = NotFoundMemory(Metadata(), ttl=0.0), Upstreams()
    assert await walk(memory, upstreams) is None
    # the chain gained an upstream since; it is down: nobody knows what it has
    upstreams.answers = {"up1": "missing", "up2": "missing"}
    with pytest.raises(NoUpstreamAnswered, match="up3"):
        await walk(memory, upstreams, Upstream("up3"))
    # one that answered then is down now, the others still say not found: still not found
    upstreams.answers = {"up1": "down", "up2": "missing"}
    assert await walk(memory, upstreams) is None
    # even a fresh memory does not speak for an upstream added since: that one is asked
    memory.ttl = 60.0
    upstreams.answers, upstreams.asked = {"up1": "missing", "up2": "missing", "up3": "missing"}, []
    assert await walk(memory, upstreams, Upstream("up3")) is None
    assert upstreams.asked == ["up1", "up2", "up3"]
    absence = await memory.lookup("dev", "maven", POM).recall()
    assert absence is not None and absence.upstreams == {"up1", "up2", "up3"}


async def test_a_path_found_again_is_forgotten() -> None:
    memory, upstreams = NotFoundMemory(Metadata(), ttl=0.0), Upstreams()
    assert await walk(memory, upstreams) is None
    upstreams.answers = {"up1": "missing", "up2": "published since"}
    assert await walk(memory, upstreams) == "published since"
    assert await memory.lookup("dev", "maven", POM).recall() is None
    upstreams.answers = {"up1": "down", "up2": "down"}
    with pytest.raises(NoUpstreamAnswered):
        await walk(memory, upstreams)


async def test_the_memory_is_bounded_dropping_the_oldest() -> None:
    metadata = Metadata()
    memory = NotFoundMemory(metadata, ttl=60.0)
    memory.BUCKETS, memory.PER_BUCKET = 2, 3
    paths = [f"org/example/hello/{n}/hello-{n}.pom" for n in range(20)]
    for path in paths:
        await memory.lookup("dev", "maven", path).remember(["up1"])
    remembered = [p for p in paths if await memory.lookup("dev", "maven", p).recall() is not None]
    buckets: dict[tuple[str, ...], list[str]] = {}
    for path in paths:
        buckets.setdefault(memory._key(memory.lookup("dev", "maven", path)), []).append(path)
    assert len(metadata.entries) == len(buckets) == 2
    # in each bucket, the latest three
    assert remembered == [p for p in paths if p in {q for group in buckets.values() for q in group[-3:]}]


class Response:
    def __init__(self, status: int) -> None:
        self.status = status
        self.headers: dict[str, str] = {}

    async def aread(self) -> bytes:
        return b"{}"


class DocumentUpstream:
    name = "up"
    formats = frozenset({"npm"})

    def __init__(self) -> None:
        self.status: int | None = 404  # None: unreachable
        self.asked = 0

    @contextlib.asynccontextmanager
    async def open(
        self, format: str, url: str, headers: dict[str, str] | None = None
    ) -> AsyncIterator[Response]:
        self.asked += 1
        if self.status is None:
            raise UpstreamUnavailable(self.name, "connection failed (Connection refused)")
        yield Response(self.status)


async def test_a_documents_404_stands_in_while_its_upstream_is_down() -> None:
    upstream = DocumentUpstream()
    fetcher = Fetcher(Metadata(), None, metadata_ttl=300.0, not_found_ttl=60.0)  # type: ignore[arg-type]
    url = "https://registry.example.com/e2e-nowhere"
    assert await fetcher.metadata(upstream, "npm", url, lambda body: body) is None  # type: ignore[arg-type]
    upstream.status = None
    assert await fetcher.metadata(upstream, "npm", url, lambda body: body) is None  # type: ignore[arg-type]
    assert upstream.asked == 1  # fresh: not asked
    stale = Fetcher(fetcher._metadata, None, metadata_ttl=300.0, not_found_ttl=0.0)  # type: ignore[arg-type]
    assert await stale.metadata(upstream, "npm", url, lambda body: body) is None  # type: ignore[arg-type]
    assert upstream.asked == 2
    with pytest.raises(UpstreamUnavailable):  # never answered
        await stale.metadata(upstream, "npm", f"{url}-2", lambda body: body)  # type: ignore[arg-type]
