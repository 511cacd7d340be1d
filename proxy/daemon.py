"""The composition root: one Daemon wires configuration, the store and (through later layers) the
upstreams together, and owns their life cycle. Nothing else reads configuration globally."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from proxy.codeartifact.token import DomainHealth
from proxy.config.model import Config
from proxy.repository.chain import ResolutionChain
from proxy.repository.fetch import Fetcher
from proxy.store.store import Store
from proxy.upstream.base import Upstream
from proxy.upstream.http import UpstreamHttp
from proxy.upstream.registry import build_upstreams

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Readiness:
    """One component's readiness for /readyz."""

    component: str
    ready: bool
    reason: str | None = None


class Daemon:
    def __init__(self, config: Config, store: Store, upstreams: Mapping[str, Upstream]) -> None:
        self.config = config
        self.store = store
        self.upstreams = upstreams
        self.chain = ResolutionChain(config, upstreams)
        self.fetcher = Fetcher(store, config.cache.metadata_ttl)
        self._checks: list[Callable[[], list[Readiness]]] = [self._store_readiness]
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._reloaders: list[Callable[[], None]] = []

    @classmethod
    async def open(cls, config: Config) -> Daemon:
        if config.store.shared:
            from proxy.store.backends import SharedStoreUnavailable  # asyncpg, only for a shared store

            # The formats still use the one-host store's synchronous classes; the shared backends
            # (proxy.store.backends) serve the storage protocols, which they do not use yet.
            raise SharedStoreUnavailable(
                "catalog", "serving from a shared store is not built yet (verify and gc work on one)"
            )
        store = await asyncio.to_thread(Store.open, config.cache)
        store.group_commits(asyncio.get_running_loop())
        http = UpstreamHttp()
        upstreams = build_upstreams(config, http)
        await upstreams.start()
        daemon = cls(config, store, upstreams.by_name)
        daemon._closers.extend([upstreams.stop, http.aclose])
        daemon.add_readiness_check(lambda: [_domain_readiness(h) for h in upstreams.health()])
        daemon._reloaders.append(upstreams.retry_now)
        return daemon

    def reload(self) -> None:
        """SIGHUP: retry what failed now (e.g. credentials that were fixed), without a restart."""
        for reloader in self._reloaders:
            reloader()

    async def close(self) -> None:
        for closer in self._closers:
            await closer()
        await asyncio.to_thread(self.store.close)

    def add_readiness_check(self, check: Callable[[], list[Readiness]]) -> None:
        self._checks.append(check)

    def readiness(self) -> list[Readiness]:
        return [item for check in self._checks for item in check()]

    def _store_readiness(self) -> list[Readiness]:
        writable = os.access(self.store.root / "tmp", os.W_OK)
        return [
            Readiness(
                "store", writable, None if writable else f"cache directory {self.store.root} is not writable"
            )
        ]


def _domain_readiness(health: DomainHealth) -> Readiness:
    return Readiness(f"codeartifact.{health.name}", health.healthy, health.reason)
