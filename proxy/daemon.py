"""The composition root: one Daemon wires configuration, the store, the upstreams and the registered
formats together, and owns their life cycle. Nothing else reads configuration globally.

What the formats get is ``services`` (``proxy.formats.format.Services``): the chain, the fetcher and
the storage services, never the Daemon. ``formats`` is each registered format's state, by name;
``invalidate`` drops one package's merged view through its format."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from proxy.auth.policy_store import PolicyStore
from proxy.auth.policy_store import entry_name as policies_entry
from proxy.codeartifact.token import DomainHealth
from proxy.config.model import Config
from proxy.formats.common import warm
from proxy.formats.common.warm import WarmParts
from proxy.formats.format import FormatService, Services
from proxy.formats.registry import FORMATS, format_names, token_schemes
from proxy.repository.chain import ResolutionChain
from proxy.repository.fetch import Fetcher
from proxy.repository.registry import RepositoryRegistry
from proxy.store.backends import LedgerFigures, ServingStore, SharedFigures, open_serving
from proxy.store.catalog import PackageCoordinate
from proxy.store.metadata import WriteBehind
from proxy.store.repositories import RepositoryEntries
from proxy.upstream.base import BodyLimits, Upstream
from proxy.upstream.http import HttpSettings, UpstreamHttp
from proxy.upstream.offline import build_offline_upstreams
from proxy.upstream.registry import build_upstreams

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Readiness:
    """One component's readiness for /readyz."""

    component: str
    ready: bool
    reason: str | None = None


class Daemon:
    def __init__(self, config: Config, serving: ServingStore, upstreams: Mapping[str, Upstream]) -> None:
        self.config = config
        self.serving = serving
        self.store = serving.local  # the one-host store (maintenance tests look into it); None if shared
        self.upstreams = upstreams
        storage = serving.services
        # The domain's repositories: the data plane looks a repository up here, never in the config.
        local = serving.local
        if local:
            entries = serving.repositories or RepositoryEntries(local.catalog.index, local.keyring)
            self.policies = PolicyStore.open(serving.root, serving.keyring, serving.policies)
        else:
            # Here: asyncpg only for a shared store.
            from proxy.store.postgres import POLICIES_CHANNEL, PostgresEntry, PostgresRepositoryEntries

            entries = PostgresRepositoryEntries.of(storage.catalog)  # read when the app starts (open)
            self.policies = PolicyStore(  # read when the app starts (start)
                PostgresEntry.of(storage.catalog, policies_entry(serving.keyring), POLICIES_CHANNEL),
                serving.keyring,
            )
        self.repositories = RepositoryRegistry(config, entries)
        self.chain = ResolutionChain(self.repositories, upstreams)
        # One process on a one-host store: metadata is written after the answer, drained at close.
        metadata = (
            WriteBehind(local.metadata)
            if local is not None and config.server.workers <= 1
            else storage.metadata
        )
        self.warm = WarmParts()
        self.fetcher = Fetcher(metadata, storage.blobs, config.cache.metadata_ttl, config.cache.not_found_ttl)
        self.services = Services(
            repositories=self.repositories,
            chain=self.chain,
            upstreams=upstreams,
            fetcher=self.fetcher,
            catalog=storage.catalog,
            blobs=storage.blobs,
            metadata=metadata,
            leases=serving.leases,
            metadata_ttl=config.cache.metadata_ttl,
            public_url=config.server.public_url,
            documents_memory=config.cache.documents_memory,
            warm=self.warm,
        )
        self.formats: dict[str, FormatService] = {f.name: f.serve(self.services) for f in FORMATS}
        self.repositories.on_change(self._repository_changed)
        self._checks: list[Callable[[], list[Readiness]]] = [self._store_readiness]
        self._closers: list[Callable[[], Awaitable[None]]] = (
            [metadata.drain] if isinstance(metadata, WriteBehind) else []
        )
        self._reloaders: list[Callable[[], None]] = []
        # Each CodeArtifact domain's token state (for the status endpoint); none offline.
        self.domain_health: Callable[[], list[DomainHealth]] = list

    @classmethod
    async def open(cls, config: Config) -> Daemon:
        store = await open_serving(config.store, config.cache, workers=config.server.workers)
        try:
            daemon = await cls._open(config, store)
        except BaseException:
            await store.close()
            raise
        try:
            await daemon._hear_changes()
            await daemon._warm_start()
        except BaseException:
            await daemon.close()
            raise
        return daemon

    @classmethod
    async def _open(cls, config: Config, store: ServingStore) -> Daemon:
        if config.server.offline:
            return cls._open_offline(config, store)
        http = UpstreamHttp(HttpSettings(body=BodyLimits(max_document_size=config.cache.max_document_size)))
        upstreams = build_upstreams(config, http, token_schemes())
        await upstreams.start()
        daemon = cls(config, store, upstreams.by_name)
        daemon._closers.extend([upstreams.stop, http.aclose])
        daemon.add_readiness_check(lambda: [_domain_readiness(h) for h in upstreams.health()])
        daemon._reloaders.append(upstreams.retry_now)
        daemon.domain_health = upstreams.health
        return daemon

    @classmethod
    def _open_offline(cls, config: Config, store: ServingStore) -> Daemon:
        """No HTTP session, CodeArtifact client or token provider: nothing that could connect."""
        log.info("offline: no upstream connection; serving what the store holds")
        daemon = cls(config, store, build_offline_upstreams(config, format_names()).by_name)
        daemon.add_readiness_check(
            lambda: [Readiness("upstreams", True, "offline: no upstream is asked (server.offline)")]
        )
        return daemon

    async def _warm_start(self) -> None:
        """A store this process owns alone: what the last daemon kept in memory is restored, and what
        this one holds is kept when it stops (``proxy.formats.common.warm``)."""
        store = self.store
        if store is None or store.workers:
            return
        fingerprint = await asyncio.to_thread(warm.fingerprint_of, self.config)
        await warm.restore(self.warm, store, fingerprint)
        self._closers.append(lambda: warm.keep(self.warm, store, fingerprint))

    @property
    def usage(self) -> LedgerFigures | SharedFigures:
        """The store's blob count, cached size and total size (for /metrics and /-/status)."""
        return self.serving.figures

    def invalidate(self, package: PackageCoordinate) -> None:
        """Forget ``package``'s merged view in every repository (its format's caches)."""
        self.formats[package.format].invalidate(package)

    async def _hear_changes(self) -> None:
        """A shared store: what any daemon publishes or changes (this one too) drops this daemon's merged
        views of that package and where its assets were found, as soon as the change commits."""
        if self.serving.changes is None:
            return
        listening = await self.serving.changes.listen(self._package_changed, self._changes_lost)
        self._closers.insert(0, listening.stop)

    def _package_changed(self, _repository: str, package: PackageCoordinate) -> None:
        # Every repository's view: the package may reach other repositories through their chains.
        if package.format in self.formats:
            self.invalidate(package)

    def _changes_lost(self) -> None:
        """Changes may have been missed (the store's connection dropped): forget every merged view."""
        for served in self.formats.values():
            served.invalidate_all()

    def _repository_changed(self, _repository: str) -> None:
        """A repository was created, changed or deleted: every merged view that reached it through a
        chain may be wrong now, in every format."""
        for served in self.formats.values():
            served.invalidate_all()

    def reload(self) -> None:
        """SIGHUP: retry what failed now (e.g. credentials that were fixed), without a restart."""
        for reloader in self._reloaders:
            reloader()

    async def close(self) -> None:
        for closer in self._closers:
            await closer()
        await self.serving.close()

    def add_readiness_check(self, check: Callable[[], list[Readiness]]) -> None:
        self._checks.append(check)

    def readiness(self) -> list[Readiness]:
        return [item for check in self._checks for item in check()]

    def _store_readiness(self) -> list[Readiness]:
        root = self.serving.root
        writable = os.access(root / "tmp", os.W_OK)
        damaged = len(self.store.damaged) if self.store is not None else 0
        reason = None if writable else f"cache directory {root} is not writable"
        if damaged:
            reason = (
                f"damaged: {damaged} published blob(s) missing or corrupt; run `codeartifact-proxy verify`"
            )
        return [Readiness("store", writable and not damaged, reason)]


def _domain_readiness(health: DomainHealth) -> Readiness:
    return Readiness(f"codeartifact.{health.name}", health.healthy, health.reason)
