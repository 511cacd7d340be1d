"""A repository's upstream resolution chain, as CodeArtifact resolves it.

The chain starts with the repository itself, then its upstreams in the configured order, depth first:
an upstream that is another local repository brings its own upstreams in place. A place reached twice
is visited once (the first time). Format handlers walk this list; they never order anything themselves.

The repositories come from the registry, which changes at run time: ``forget`` (an ``on_change``
callback of the registry) drops the chains computed so far. Used from the event loop only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from proxy.repository.registry import RepositoryRegistry
from proxy.upstream.base import Upstream


@dataclass(frozen=True)
class Place:
    """One step of a chain: a local repository (its published packages) or an upstream."""

    name: str
    upstream: Upstream | None = None  # None: a local repository of this proxy

    @property
    def is_repository(self) -> bool:
        return self.upstream is None


class ResolutionChain:
    def __init__(self, registry: RepositoryRegistry, upstreams: Mapping[str, Upstream]) -> None:
        self._registry = registry
        self._upstreams = upstreams
        self._cache: dict[str, tuple[Place, ...]] = {}
        registry.on_change(self.forget)

    def forget(self, _repository: str = "") -> None:
        """Drop every computed chain: a change to one repository changes the chains of those that
        reach it through their upstreams."""
        self._cache.clear()

    def places(self, repository: str) -> tuple[Place, ...]:
        if repository not in self._cache:
            seen: set[str] = set()
            self._cache[repository] = tuple(self._walk(repository, seen))
        return self._cache[repository]

    def _walk(self, name: str, seen: set[str]) -> list[Place]:
        if name in seen:
            return []
        seen.add(name)
        repository = self._registry.get(name)
        if repository is None:
            return [Place(name, self._upstreams[name])]
        places = [Place(name)]
        for upstream in repository.upstreams:
            places.extend(self._walk(upstream, seen))
        return places
