"""Walking a repository's chain for one package: what each place has, in chain order.

``resolve`` (merged documents: every place's answer) and ``first_found`` (assets: the first place
that has it) are the only walks; formats never order places themselves.

Format handlers give two functions - what a local repository has (from the catalog), what an upstream
has (through the Fetcher) - and get back the non-empty answers in chain order, ready to merge. The
rules that are the same for every format live here: upstreams are asked concurrently but merged in
order; a package published in a local repository of the chain blocks upstream versions
(origin controls); an upstream that fails is skipped when others answer, and reported; an upstream
of another format is not asked at all (CodeArtifact repositories are polyglot, so one repository's
upstreams may mix formats: for this package such an upstream simply has nothing).

Statuses (``proxy.repository.status``) are applied here too, once for every format: ``resolve`` hands
``local`` a repository's listed versions only and names in ``Resolution.unlisted`` the versions the
chain's repositories keep out of listings (the format's merge drops them from upstream documents as
well: a cached upstream version with a local status); ``first_found`` for one version answers None
when the first repository of the chain that has the version forbids fetching it.

Negative lookups (``proxy.repository.fetch.NotFoundMemory``) are kept here too: when every upstream
``first_found`` asked answered "not found", the asset path is remembered for the repository; while
that is fresh the upstreams are not asked again, and past it, when the upstreams that answered then
cannot be reached now, the walk answers "not found" again (a 404) instead of failing (a 502). A miss
that no upstream ever answered still fails: the proxy never makes up a 404.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from proxy.repository.chain import Place
from proxy.repository.errors import NoUpstreamAnswered, UpstreamInvalid
from proxy.repository.fetch import AssetLookup
from proxy.repository.origin import upstream_blocked
from proxy.repository.status import listed_record, unfetchable, unlisted_versions
from proxy.store.protocols import CatalogService, PackageCoordinate, PackageRecord
from proxy.upstream.base import Upstream, UpstreamUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class Resolution(Generic[T]):
    found: list[tuple[Place, T]] = field(default_factory=list)
    failed: list[Exception] = field(default_factory=list)  # why the upstreams that could not answer
    stale: bool = False  # some answer was served from cache past its TTL
    unlisted: frozenset[str] = frozenset()  # versions kept out of listings by the chain's repositories


async def resolve(
    catalog: CatalogService,
    places: tuple[Place, ...],
    coordinate: PackageCoordinate,
    local: Callable[[str, PackageRecord], T | None],
    remote: Callable[[Upstream], Awaitable[tuple[T, bool] | None]],
) -> Resolution[T]:
    """``local(repository, record)`` -> what that repository publishes of the package, or None.
    ``remote(upstream)`` -> (document, stale) or None when the upstream does not have the package."""
    records = await local_records(catalog, places, coordinate)
    blocked = any(upstream_blocked(record) for record in records.values())
    asked = [p for p in places if serves(p, coordinate) and not blocked]
    answers = await _each([remote(p.upstream) for p in asked if p.upstream])
    by_name = dict(zip((p.name for p in asked), answers, strict=True))

    result: Resolution[T] = Resolution()
    result.unlisted = frozenset(unlisted_versions(r for r in records.values() if r is not None))
    for place in places:
        if place.is_repository:
            record = records[place.name]
            doc = local(place.name, listed_record(record)) if record is not None else None
            if doc is not None:
                result.found.append((place, doc))
            continue
        if place.name not in by_name:
            continue
        answer = by_name[place.name]
        if isinstance(answer, UpstreamUnavailable | UpstreamInvalid):
            log.warning("%s", answer)
            result.failed.append(answer)
        elif isinstance(answer, BaseException):
            raise answer
        elif answer is not None:
            doc, stale = answer
            result.found.append((place, doc))
            result.stale = result.stale or stale
    if not result.found and result.failed:
        raise NoUpstreamAnswered.of(result.failed)
    return result


async def _each(calls: list[Awaitable[T]]) -> list[T | BaseException]:
    """What each call returned or raised, run concurrently; a lone call (a chain with one upstream) is
    awaited as it is, without a task to schedule."""
    if len(calls) == 1:
        try:
            return [await calls[0]]
        except Exception as exc:
            return [exc]
    return await asyncio.gather(*calls, return_exceptions=True)


def serves(place: Place, coordinate: PackageCoordinate) -> bool:
    """Whether ``place`` is an upstream to ask for ``coordinate`` (one that serves its format)."""
    return place.upstream is not None and coordinate.format in place.upstream.formats


class UpstreamsBlocked(Exception):
    """A local repository of the chain publishes the package: its origin configuration blocks upstream
    versions, so nothing may be taken from an upstream."""

    def __init__(self, repository: str) -> None:
        super().__init__(repository)
        self.repository = repository


async def local_records(
    catalog: CatalogService, places: tuple[Place, ...], coordinate: PackageCoordinate
) -> dict[str, PackageRecord | None]:
    """The package's record in every local repository of the chain, in chain order."""
    return {p.name: await catalog.package(p.name, coordinate) for p in places if p.is_repository}


async def first_found(
    catalog: CatalogService,
    places: tuple[Place, ...],
    coordinate: PackageCoordinate,
    local: Callable[[PackageRecord], Awaitable[T | None]],
    remote: Callable[[Upstream], Awaitable[T | None]],
    go_on: Callable[[], bool] = lambda: True,
    version: str | None = None,
    lookup: AssetLookup | None = None,
) -> T | None:
    """The first place of the chain that has something: ``local(record)`` for each local repository
    that holds the package, then, unless one of them blocks upstreams (UpstreamsBlocked), ``remote``
    for each upstream in order. An upstream that fails (UpstreamUnavailable) is skipped while
    ``go_on()`` (the caller can still take another upstream's answer); when none has it and some
    failed, NoUpstreamAnswered, unless ``lookup`` (the asset path in the repository asked) remembers
    that each of the failed upstreams answered "not found" before. None: no place has it, or
    ``version`` (the version the asset belongs to, when the caller knows it) is Archived or Disposed
    in the first repository that has it."""
    records = await local_records(catalog, places, coordinate)
    if version is not None and unfetchable((r for r in records.values() if r is not None), version):
        return None
    for record in records.values():
        if record is not None and (found := await local(record)) is not None:
            return found
    blocking = next((name for name, record in records.items() if upstream_blocked(record)), None)
    if blocking is not None:
        raise UpstreamsBlocked(blocking)
    absence = await lookup.recall() if lookup is not None else None
    upstreams = [place.name for place in places if serves(place, coordinate)]
    # Fresh, and every upstream of the chain said so (one added since has not been asked).
    if (
        absence is not None
        and lookup is not None
        and lookup.memory.fresh(absence)
        and absence.covers(upstreams)
    ):
        return None
    failures: list[Exception] = []
    failed: list[str] = []
    answered: list[str] = []  # the upstreams that answered "not found"
    for place in places:
        if place.upstream is None or not serves(place, coordinate):
            continue
        try:
            found = await remote(place.upstream)
        except UpstreamUnavailable as exc:
            if not go_on():
                raise
            log.warning("%s", exc)
            failures.append(exc)
            failed.append(place.name)
            continue
        if found is not None:
            if absence is not None and lookup is not None:
                await lookup.forget()
            return found
        answered.append(place.name)
    if failures:
        if absence is not None and absence.covers(failed):
            assert lookup is not None
            log.warning(
                "%s of repository %s was in none of its upstreams when last asked: still missing",
                lookup.path,
                lookup.repository,
            )
            return None
        raise NoUpstreamAnswered.of(failures)
    if lookup is not None and answered:
        await lookup.remember(answered)
    return None
