"""The mechanics every format shares: the merged-document cache (proxy.formats.common.documents), the
chain walk for assets (proxy.repository.resolve.first_found), and the format registry."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import threading
import time
from collections.abc import Callable

import pytest

from proxy.formats.common.documents import (
    ENTRY_OVERHEAD,
    PARSED_FACTOR,
    MergedDocuments,
    Rendered,
    RenderStore,
    Resolution,
)
from proxy.formats.common.locator import AssetLocator
from proxy.formats.registry import FORMATS, format_names, token_schemes
from proxy.repository.chain import Place
from proxy.repository.errors import NoUpstreamAnswered
from proxy.repository.origin import PUBLISHED_DEFAULT
from proxy.repository.resolve import UpstreamsBlocked, first_found, resolve
from proxy.store.protocols import (
    AssetRecord,
    CachedDocument,
    PackageCoordinate,
    PackageRecord,
    PackageVersionOrigin,
    PackageVersionRecord,
)
from proxy.store.singleflight import OneProcessLeases
from proxy.upstream.base import UpstreamUnavailable


class Chain:
    """A resolve function whose answers a test sets, counting how often it was asked."""

    def __init__(self) -> None:
        self.answer: str | None = "one"
        self.fails = False
        self.calls = 0
        self.merges = 0
        self.gate: asyncio.Event | None = None
        self.hidden: frozenset[str] = frozenset()

    async def resolve(self, repository: str, key: str) -> Resolution[str]:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fails:
            raise NoUpstreamAnswered("upstream 'up' unavailable: HTTP 500")
        answer = self.answer

        def merge(hidden: frozenset[str]) -> str | None:
            self.merges += 1
            return None if answer is None else f"{key}:{answer}" + "".join(f"-{v}" for v in sorted(hidden))

        return Resolution(answer, time.time() + 60, False, len(answer or ""), merge, self.hidden)


def documents(chain: Chain, **kw: object) -> MergedDocuments[str, str]:
    return MergedDocuments(chain.resolve, lambda key: key, budget=1024**2, **kw)  # type: ignore[arg-type]


async def test_a_fresh_view_is_served_from_memory_and_rendered_once() -> None:
    chain = Chain()
    docs = documents(chain)
    entry = await docs.get("dev", "lodash")
    assert entry.value == "lodash:one" and (await docs.get("dev", "lodash")) is entry
    renders = 0

    def render(value: str) -> Rendered:
        nonlocal renders
        renders += 1
        return Rendered.of(value.encode(), "text/plain")

    first = await docs.rendered("dev", "lodash", entry, "base", render)
    assert await docs.rendered("dev", "lodash", entry, "base", render) is first
    assert renders == 1 and chain.calls == 1
    assert first.etag and first.gzipped != first.body


async def test_a_view_weighs_its_answers_until_merged_then_what_the_format_says_it_takes() -> None:
    sizes: dict[str, int | None] = {"estimated": 5000, "default": None}

    async def resolve(repository: str, key: str) -> Resolution[str]:
        def merge(hidden: frozenset[str]) -> str:
            return key

        return Resolution(key, time.time() + 60, False, 1000, merge, found=True, merged_size=sizes[key])

    docs: MergedDocuments[str, str] = MergedDocuments(resolve, lambda key: key, budget=1024**2)
    for key, merged in (("estimated", 5000), ("default", PARSED_FACTOR * 1000)):
        entry = await docs.get("dev", key)
        assert entry.weight() == ENTRY_OVERHEAD + 1000
        await docs.value(entry)
        assert entry.weight() == ENTRY_OVERHEAD + merged


class SizedChain(Chain):
    """Answers that weigh ``weight`` bytes merged: a few views fill a small budget."""

    def __init__(self, weight: int) -> None:
        super().__init__()
        self.weight = weight

    async def resolve(self, repository: str, key: str) -> Resolution[str]:
        resolution = await super().resolve(repository, key)
        resolution.found, resolution.merged_size = resolution.merge(frozenset()) is not None, self.weight
        self.merges -= 1  # that merge only told whether it is found
        return resolution


def plain(value: str) -> Rendered:
    return Rendered.of(value.encode() * 100, "text/plain")


async def test_a_view_dropped_for_memory_is_served_warm_from_its_renderings_and_merged_again_on_use() -> None:
    chain = SizedChain(weight=10_000)
    docs: MergedDocuments[str, str] = MergedDocuments(chain.resolve, lambda key: key, budget=100_000)
    first = await docs.get("dev", "a")
    rendered = await docs.rendered("dev", "a", first, "v", plain)
    for key in ("b", "c"):  # 25,000 bytes for merged views: "a", the least recently used, is dropped
        await docs.rendered("dev", key, await docs.get("dev", key), "v", plain)
    calls, merges = chain.calls, chain.merges
    released = await docs.get("dev", "a")
    assert released is not first and released.released and released.weight() < 2 * ENTRY_OVERHEAD
    assert (await docs.rendered("dev", "a", released, "v", plain)).gzipped == rendered.gzipped
    assert released.renders["v"].body == rendered.body
    assert (chain.calls, chain.merges) == (calls, merges)  # served warm: nothing resolved or merged

    assert await docs.value(released) == "a:one"  # what needs the merged view resolves it again
    assert (chain.calls, chain.merges) == (calls + 1, merges + 1) and not released.released
    assert await docs.value(first) == "a:one"  # whoever held the view when it was dropped still has it


async def test_a_released_view_keeps_what_its_locator_makes_of_the_merged_value() -> None:
    chain = SizedChain(weight=90_000)  # larger than the merged views' quarter: released once rendered
    docs: MergedDocuments[str, str] = MergedDocuments(
        chain.resolve, lambda key: key, budget=100_000, locator=lambda merged: merged.encode()
    )
    entry = await docs.get("dev", "big")
    await docs.rendered("dev", "big", entry, "v", plain)
    calls, merges = chain.calls, chain.merges
    warm = await docs.get("dev", "big")
    assert warm.released and warm.located == b"big:one"  # read without resolving or merging again
    assert warm.weight() >= len(b"big:one") and (chain.calls, chain.merges) == (calls, merges)
    assert await docs.value(warm) == "big:one" and chain.merges == merges + 1  # the value: merged again


async def test_a_view_larger_than_the_budget_is_served_and_its_renderings_kept() -> None:
    chain = SizedChain(weight=90_000)
    docs: MergedDocuments[str, str] = MergedDocuments(chain.resolve, lambda key: key, budget=100_000)
    entry = await docs.get("dev", "big")
    assert not entry.released and await docs.value(entry) == "big:one"
    await docs.rendered("dev", "big", entry, "v", plain)
    calls = chain.calls
    warm = await docs.get("dev", "big")
    assert warm.released and warm.renders["v"].gzipped == entry.renders["v"].gzipped
    assert chain.calls == calls


async def test_a_released_view_is_forgotten_when_its_package_changes() -> None:
    chain = SizedChain(weight=40_000)
    docs: MergedDocuments[str, str] = MergedDocuments(chain.resolve, lambda key: key, budget=100_000)
    for key in ("a", "b", "c"):
        await docs.rendered("dev", key, await docs.get("dev", key), "v", plain)
    assert (await docs.get("dev", "a")).released
    docs.invalidate("a")
    chain.answer = "two"
    again = await docs.get("dev", "a")
    assert not again.released and await docs.value(again) == "a:two"


async def test_concurrent_misses_share_one_refresh() -> None:
    chain = Chain()
    chain.gate = asyncio.Event()
    docs = documents(chain)
    waiting = [asyncio.ensure_future(docs.get("dev", "lodash")) for _ in range(20)]
    await asyncio.sleep(0)
    chain.gate.set()
    entries = await asyncio.gather(*waiting)
    assert chain.calls == 1 and all(e is entries[0] for e in entries)


async def test_an_unchanged_fingerprint_keeps_the_view_and_its_renderings() -> None:
    chain = Chain()
    docs = documents(chain)
    entry = await docs.get("dev", "lodash")
    rendered = await docs.rendered("dev", "lodash", entry, None, lambda v: Rendered.of(v.encode(), "x"))
    entry.expires = 0  # due: the chain is asked again and answers the same
    again = await docs.get("dev", "lodash")
    assert again is entry and chain.calls == 2 and chain.merges == 1
    assert again.renders[None] is rendered


async def test_a_status_change_with_the_same_answers_merges_again_without_the_hidden_versions() -> None:
    chain = Chain()
    docs = documents(chain)
    entry = await docs.get("dev", "lodash")
    chain.hidden = frozenset({"1.0.0"})  # the fingerprint of the answers is unchanged
    entry.expires = 0
    again = await docs.get("dev", "lodash")
    assert again is not entry and again.value == "lodash:one-1.0.0" and chain.merges == 2


async def test_invalidate_all_forgets_every_package_in_every_repository() -> None:
    chain = Chain()
    docs = documents(chain)
    kept = [await docs.get(repository, name) for repository in ("dev", "prod") for name in ("a", "b")]
    docs.invalidate_all()
    chain.answer = "two"
    again = [await docs.get(repository, name) for repository in ("dev", "prod") for name in ("a", "b")]
    assert all(e.value and e.value.endswith(":two") for e in again)
    assert all(old is not new for old, new in zip(kept, again, strict=True))


async def test_invalidate_forgets_the_package_in_every_repository_and_beats_a_refresh_in_flight() -> None:
    chain = Chain()
    docs = documents(chain)
    await docs.get("dev", "lodash")
    await docs.get("prod", "lodash")
    docs.invalidate("lodash")
    chain.answer = "two"
    assert (await docs.get("prod", "lodash")).value == "lodash:two"

    chain.gate = asyncio.Event()
    docs.invalidate("lodash")
    chain.answer = "three"
    slow = asyncio.ensure_future(docs.get("dev", "lodash"))  # resolves with "three" once released
    await asyncio.sleep(0)
    docs.invalidate("lodash")  # a publish lands while that refresh is in flight
    chain.gate.set()
    assert (await slow).value == "lodash:three"  # its waiter is answered...
    chain.answer = "four"
    assert (await docs.get("dev", "lodash")).value == "lodash:four"  # ...but it was not kept


async def test_a_refresh_in_flight_is_kept_when_another_package_is_invalidated() -> None:
    chain = Chain()
    chain.gate = asyncio.Event()
    docs = documents(chain)
    slow = asyncio.ensure_future(docs.get("dev", "lodash"))
    await asyncio.sleep(0)
    docs.invalidate("react")  # e.g. a file of another package was cached meanwhile
    chain.gate.set()
    entry = await slow
    assert (await docs.get("dev", "lodash")) is entry and chain.calls == 1


async def test_a_failed_refresh_serves_the_last_view_only_when_the_format_asks_for_it() -> None:
    for keep in (None, 10.0):
        chain = Chain()
        docs = documents(chain, keep_on_failure=keep)
        entry = await docs.get("dev", "lodash")
        entry.expires = 0
        chain.fails = True
        if keep is None:
            with pytest.raises(NoUpstreamAnswered):
                await docs.get("dev", "lodash")
            continue
        served = await docs.get("dev", "lodash")
        assert served.value == "lodash:one" and served.stale
        assert served.expires > time.time() + 5  # asked again only after the retry delay


class Catalog:
    def __init__(self, records: dict[str, PackageRecord]) -> None:
        self.records = records

    async def package(self, repository: str, coordinate: PackageCoordinate) -> PackageRecord | None:
        return self.records.get(repository)


class Upstream:
    def __init__(self, name: str, formats: frozenset[str] = frozenset({"maven"})) -> None:
        self.name = name
        self.formats = formats


COORD = PackageCoordinate("maven", "org.example", "hello")


async def test_first_found_asks_local_repositories_then_upstreams_in_order() -> None:
    up1, up2 = Upstream("up1"), Upstream("up2")
    places = (Place("dev"), Place("up1", up1), Place("up2", up2))  # type: ignore[arg-type]
    asked: list[str] = []

    async def local(record: PackageRecord) -> str | None:
        return None

    async def remote(upstream: Upstream) -> str | None:
        asked.append(upstream.name)
        if upstream is up1:
            raise UpstreamUnavailable("up1", "HTTP 503")
        return "from up2"

    catalog = Catalog({"dev": PackageRecord(COORD)})
    assert await first_found(catalog, places, COORD, local, remote) == "from up2"  # type: ignore[arg-type]
    assert asked == ["up1", "up2"]

    async def nowhere(upstream: Upstream) -> str | None:
        if upstream is up1:
            raise UpstreamUnavailable("up1", "HTTP 503")
        return None

    with pytest.raises(NoUpstreamAnswered, match="up1"):
        await first_found(catalog, places, COORD, local, nowhere)  # type: ignore[arg-type]
    with pytest.raises(UpstreamUnavailable):  # the caller cannot take another upstream's answer
        await first_found(catalog, places, COORD, local, nowhere, lambda: False)  # type: ignore[arg-type]


async def test_upstreams_of_another_format_are_not_asked_by_either_walk() -> None:
    npm, maven = Upstream("npm-up", frozenset({"npm"})), Upstream("maven-up")
    places = (Place("npm-up", npm), Place("maven-up", maven))  # type: ignore[arg-type]
    asked: list[str] = []

    async def remote(upstream: Upstream) -> str | None:
        asked.append(upstream.name)
        return f"from {upstream.name}"

    async def remote_doc(upstream: Upstream) -> tuple[str, bool] | None:
        return await remote(upstream), False  # type: ignore[return-value]

    async def local(record: PackageRecord) -> str | None:
        return None

    catalog = Catalog({})
    assert await first_found(catalog, places, COORD, local, remote) == "from maven-up"  # type: ignore[arg-type]
    resolution = await resolve(catalog, places, COORD, lambda name, record: None, remote_doc)  # type: ignore[arg-type]
    assert [place.name for place, _ in resolution.found] == ["maven-up"]
    assert asked == ["maven-up", "maven-up"]


async def test_first_found_takes_nothing_from_upstreams_for_a_package_published_in_the_chain() -> None:
    published = PackageRecord(COORD)
    published.origin_configuration = PUBLISHED_DEFAULT
    places = (Place("dev"), Place("up", Upstream("up")))  # type: ignore[arg-type]

    async def local(record: PackageRecord) -> str | None:
        return None

    async def remote(upstream: Upstream) -> str | None:
        raise AssertionError("an upstream was asked")

    with pytest.raises(UpstreamsBlocked) as blocked:
        await first_found(Catalog({"dev": published}), places, COORD, local, remote)  # type: ignore[arg-type]
    assert blocked.value.repository == "dev"


async def test_the_chain_walk_applies_statuses_once_for_every_format() -> None:
    record = PackageRecord(COORD)
    external = PackageVersionOrigin("EXTERNAL", "up")
    for version, status in (("1.0", "Published"), ("1.1", "Unlisted"), ("1.2", "Archived")):
        record.versions[version] = PackageVersionRecord(version, external, status)
    places = (Place("dev"), Place("up", Upstream("up")))  # type: ignore[arg-type]
    catalog = Catalog({"dev": record})
    listed: list[list[str]] = []

    def local(_repository: str, seen: PackageRecord) -> str:
        listed.append(sorted(seen.versions))
        return "dev"

    async def remote(upstream: Upstream) -> tuple[str, bool]:
        return "up", False  # the upstream still lists every version

    walked = await resolve(catalog, places, COORD, local, remote)  # type: ignore[arg-type]
    assert listed == [["1.0"]] and walked.unlisted == {"1.1", "1.2"}

    async def held(_record: PackageRecord) -> str:
        return "stored"

    async def fetched(upstream: Upstream) -> str:
        return "fetched"

    for version, found in (("1.1", "stored"), ("1.2", None), ("9.9", "stored")):
        got = await first_found(catalog, places, COORD, held, fetched, version=version)  # type: ignore[arg-type]
        assert got == found, version


def test_the_registry_drives_names_and_token_schemes() -> None:
    assert format_names() == ("npm", "pypi", "maven")
    schemes = token_schemes()
    assert schemes["npm"]("aws", "tok") == "Bearer tok"
    assert schemes["pypi"]("aws", "tok").startswith("Basic ")
    coordinate = PackageCoordinate("npm", "scope", "name")
    assert {f.name: f.display_name(coordinate) for f in FORMATS}["npm"] == "@scope/name"
    assert {f.name: f.display_name(PackageCoordinate("maven", "g", "a")) for f in FORMATS}["maven"] == "g:a"


async def test_the_asset_locator_forgets_one_package_or_everything() -> None:
    located: list[tuple[str, tuple[str, str]]] = []

    async def locate(repository: str, key: tuple[str, str], _sink: object) -> AssetRecord:
        located.append((repository, key))
        return AssetRecord(name=key[1], size=1, blob_id="b" * 64, hashes={})

    locator: AssetLocator[tuple[str, str]] = AssetLocator(
        None,  # type: ignore[arg-type]
        locate,
        leases=OneProcessLeases(),
    )
    keys = [("left-pad", "left-pad-1.0.0.tgz"), ("lodash", "lodash-4.0.0.tgz")]
    for key in keys:
        await locator.locate("dev", key)
    locator.forget_where(lambda key: key[0] == "left-pad")
    for key in keys:
        await locator.locate("dev", key)
    assert located == [("dev", keys[0]), ("dev", keys[1]), ("dev", keys[0])]
    locator.forget_all()
    for key in keys:
        await locator.locate("dev", key)
    assert located[3:] == [("dev", keys[0]), ("dev", keys[1])]


class Metadata:
    """An in-memory metadata service (the store's, without sealing)."""

    def __init__(self) -> None:
        self.docs: dict[tuple[str, ...], CachedDocument] = {}

    async def get(self, *key: str) -> CachedDocument | None:
        return self.docs.get(key)

    async def put(self, doc: CachedDocument, *key: str) -> None:
        self.docs[key] = doc

    async def delete(self, *key: str) -> None:
        self.docs.pop(key, None)


class DigestChain(Chain):
    async def resolve(self, repository: str, key: str) -> Resolution[str]:
        resolution = await super().resolve(repository, key)
        resolution.fingerprint = hashlib.sha1(str(resolution.fingerprint).encode()).digest()
        resolution.found = self.answer is not None  # known without merging
        return resolution


async def test_sealed_renderings_serve_a_new_cache_until_the_fingerprint_changes(monkeypatch) -> None:
    metadata = Metadata()
    renders: list[str] = []
    decompressed: list[int] = []
    decompress = gzip.decompress
    monkeypatch.setattr(gzip, "decompress", lambda data: decompressed.append(len(data)) or decompress(data))

    def render(value: str) -> Rendered:
        renders.append(value)
        return Rendered.of(value.encode(), "text/plain")

    def restarted(chain: Chain) -> MergedDocuments[str, str]:
        return documents(chain, store=RenderStore(metadata, "test", lambda key: key))  # type: ignore[arg-type]

    chain = DigestChain()
    first = restarted(chain)
    made = await first.rendered("dev", "lodash", await first.get("dev", "lodash"), "base", render)
    assert renders == ["lodash:one"] and len(metadata.docs) == 1

    again = restarted(chain)  # a restart: nothing in memory, the same store
    entry = await again.get("dev", "lodash")
    served = await again.rendered("dev", "lodash", entry, "base", render)
    # Served as gzip clients take it, without decompressing; the plain body made when asked for, and not
    # kept (only clients that take no gzip ask): it weighs its gzipped bytes only.
    assert (served.gzipped, served.etag, decompressed) == (made.gzipped, made.etag, [])
    assert served.body == made.body and served.body == made.body and len(decompressed) == 2
    assert served.weight() == len(served.gzipped)
    assert renders == ["lodash:one"] and again.renders == 0 and chain.merges == 1  # not merged either

    chain.answer = "two"  # what the view lists changed: the sealed rendering is not served
    changed = restarted(chain)
    served = await changed.rendered("dev", "lodash", await changed.get("dev", "lodash"), "base", render)
    assert served.body == b"lodash:two" and renders == ["lodash:one", "lodash:two"]


async def test_invalidate_resolves_again_and_keeps_the_renderings_of_an_unchanged_view() -> None:
    chain = Chain()
    docs = documents(chain)
    entry = await docs.get("dev", "lodash")
    rendered = await docs.rendered("dev", "lodash", entry, None, lambda v: Rendered.of(v.encode(), "x"))
    docs.invalidate("lodash")  # e.g. a file was cached: the chain answers the same
    again = await docs.get("dev", "lodash")
    assert again is entry and chain.calls == 2 and again.renders[None] is rendered


async def test_variants_sharing_a_sealed_slot_are_never_served_for_each_other() -> None:
    metadata = Metadata()
    made: list[str] = []

    def render_for(variant: str) -> Callable[[str], Rendered]:
        def render(value: str) -> Rendered:
            made.append(variant)
            return Rendered.of(f"{value}@{variant}".encode(), "text/plain")

        return render

    def restarted() -> MergedDocuments[str, str]:
        store = RenderStore(metadata, "test", lambda key: key, lambda variant: "one slot")
        return documents(DigestChain(), store=store)  # type: ignore[arg-type]

    for variant in ("http://a/", "http://b/", "http://b/"):
        docs = restarted()
        served = await docs.rendered(
            "dev", "lodash", await docs.get("dev", "lodash"), variant, render_for(variant)
        )
        assert served.body == f"lodash:one@{variant}".encode()
    assert made == ["http://a/", "http://b/"] and len(metadata.docs) == 1  # the last one kept the slot


class DetailChain(DigestChain):
    """A chain whose answers have a listing and a detail (PyPI: what held files complete)."""

    def __init__(self) -> None:
        super().__init__()
        self.detail = "a"

    async def resolve(self, repository: str, key: str) -> Resolution[str]:
        resolution = await super().resolve(repository, key)
        assert isinstance(resolution.fingerprint, bytes)
        resolution.listing = resolution.fingerprint
        resolution.fingerprint = hashlib.sha1(resolution.fingerprint + self.detail.encode()).digest()
        detail = self.detail
        merge = resolution.merge
        resolution.merge = lambda hidden: f"{merge(hidden)}+{detail}"
        return resolution


async def test_refinements_due_together_are_made_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("proxy.formats.common.documents.REFINE_SECONDS", 0.01)
    monkeypatch.setattr("proxy.store.store.INLINE_BYTES", 0)  # every rendering in a worker thread
    running, most = 0, 0
    lock = threading.Lock()

    def render(value: str) -> Rendered:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return Rendered.of(value.encode(), "text/plain")

    chain = DetailChain()
    docs = documents(chain, store=RenderStore(Metadata(), "test", lambda key: key))  # type: ignore[arg-type]
    keys = [f"project-{i}" for i in range(6)]
    for key in keys:
        await docs.rendered("dev", key, await docs.get("dev", key), "base", render)
    chain.detail = "b"  # every page gains a detail at once, as after an install's downloads
    for key in keys:
        docs.invalidate(key)
        await docs.rendered("dev", key, await docs.get("dev", key), "base", render)  # the last one, at once
    for _ in range(500):
        if docs.renders == 2 * len(keys):
            break
        await asyncio.sleep(0.01)
    assert docs.renders == 2 * len(keys) and most == 1


async def test_a_change_of_detail_only_serves_the_last_rendering_while_the_new_one_is_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("proxy.formats.common.documents.REFINE_SECONDS", 0.01)
    metadata = Metadata()

    def render(value: str) -> Rendered:
        return Rendered.of(value.encode(), "text/plain")

    def restarted(chain: Chain) -> MergedDocuments[str, str]:
        return documents(chain, store=RenderStore(metadata, "test", lambda key: key))  # type: ignore[arg-type]

    async def page(docs: MergedDocuments[str, str]) -> bytes:
        return (await docs.rendered("dev", "lodash", await docs.get("dev", "lodash"), "base", render)).body

    chain = DetailChain()
    docs = restarted(chain)
    assert await page(docs) == b"lodash:one+a"
    chain.detail = "b"  # e.g. a wheel was cached and its metadata taken out
    docs.invalidate("lodash")
    assert await page(docs) == b"lodash:one+a"  # still true, if less complete: served at once
    for _ in range(500):
        if docs.renders == 2:
            break
        await asyncio.sleep(0.01)
    assert await page(docs) == b"lodash:one+b" and docs.renders == 2

    chain.detail = "c"  # changed while no daemon held the view: the store's rendering stands in
    fresh = restarted(chain)
    assert await page(fresh) == b"lodash:one+b" and fresh.renders == 0
    for _ in range(500):
        if fresh.renders == 1:
            break
        await asyncio.sleep(0.01)
    assert await page(fresh) == b"lodash:one+c"

    chain.answer = "two"  # what is listed changed: nothing stale is served
    listed = restarted(chain)
    assert await page(listed) == b"lodash:two+c"
