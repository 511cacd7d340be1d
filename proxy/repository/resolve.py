"""Walking a repository's chain for one package: what each place has, in chain order.

Format handlers give two functions - what a local repository has (from the catalog), what an upstream
has (through the Fetcher) - and get back the non-empty answers in chain order, ready to merge. The
rules that are the same for every format live here: upstreams are asked concurrently but merged in
order; a package published in a local repository of the chain blocks upstream versions
(origin controls); an upstream that fails is skipped when others answer, and reported. Statuses
(``proxy.repository.status``): a local repository answers with its listed versions only, and
``Resolution.unlisted`` names the versions the chain's repositories keep out of listings, which the
format drops from the upstreams' documents too (a cached upstream version with a local status).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from proxy.repository.chain import Place
from proxy.repository.fetch import UpstreamInvalid
from proxy.repository.origin import upstream_blocked
from proxy.repository.status import listed_record, unlisted_versions
from proxy.store.catalog import PackageCoordinate, PackageRecord
from proxy.store.store import Store
from proxy.upstream.base import Upstream, UpstreamUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")


class NoUpstreamAnswered(Exception):
    """Every place failed and none had the package: a 502 (never a 404, which would be a lie)."""


@dataclass
class Resolution(Generic[T]):
    found: list[tuple[Place, T]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # reasons of the upstreams that could not answer
    stale: bool = False  # some answer was served from cache past its TTL
    unlisted: dict[str, str] = field(default_factory=dict)  # version -> its status, hidden from listings


async def resolve(
    store: Store,
    places: tuple[Place, ...],
    coordinate: PackageCoordinate,
    local: Callable[[str, PackageRecord], T | None],
    remote: Callable[[Upstream], Awaitable[tuple[T, bool] | None]],
) -> Resolution[T]:
    """``local(repository, record)`` -> what that repository publishes of the package, or None.
    ``remote(upstream)`` -> (document, stale) or None when the upstream does not have the package."""
    records = {p.name: store.catalog.package(p.name, coordinate) for p in places if p.is_repository}
    blocked = any(upstream_blocked(record) for record in records.values())
    asked = [p for p in places if not p.is_repository and not blocked]
    answers = await asyncio.gather(*(remote(p.upstream) for p in asked if p.upstream), return_exceptions=True)
    by_name = dict(zip((p.name for p in asked), answers, strict=True))

    result: Resolution[T] = Resolution()
    result.unlisted = unlisted_versions(r for r in records.values() if r is not None)
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
            result.failed.append(str(answer))
        elif isinstance(answer, BaseException):
            raise answer
        elif answer is not None:
            doc, stale = answer
            result.found.append((place, doc))
            result.stale = result.stale or stale
    if not result.found and result.failed:
        raise NoUpstreamAnswered("; ".join(result.failed))
    return result
