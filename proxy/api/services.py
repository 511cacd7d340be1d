"""What the /v1 handlers may use: the domain's configuration, the repository registry and the storage
services, never the Daemon. Built once per application by ``proxy.server.app``; read-only."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

from proxy.api.binding import Call
from proxy.config.model import ApiConfig, CodeArtifactDomain, DomainConfig, Upstream
from proxy.repository.chain import ResolutionChain
from proxy.repository.registry import RepositoryRegistry
from proxy.store.backends import LedgerFigures, SharedFigures
from proxy.store.keyring import KeyRing
from proxy.store.protocols import BlobService, CatalogService, PackageCoordinate


@dataclass(frozen=True)
class ApiServices:
    domain: DomainConfig  # [domain]: the proxy's own domain
    source: str  # the configuration file, named in refusals of config-defined repositories
    upstreams: Mapping[str, Upstream]  # [upstream.X] tables, by name
    codeartifact: Mapping[str, CodeArtifactDomain]  # [codeartifact.X]: the fronted domains
    repositories: RepositoryRegistry
    catalog: CatalogService
    blobs: BlobService
    usage: LedgerFigures | SharedFigures  # the store's bytes, for DescribeDomain
    invalidate: Callable[[PackageCoordinate], None]  # drop a package's merged views (its format's caches)
    public_url: str | None  # server.public_url, the base of GetRepositoryEndpoint's answer
    chain: ResolutionChain  # CopyPackageVersions' includeFromUpstream looks along it
    keyring: KeyRing  # seals paging tokens (opaque, tamper-checked)
    limits: ApiConfig  # [api]: the request-rate limit (proxy.api.throttle)


API = web.AppKey("api_services", ApiServices)


def services(call: Call) -> ApiServices:
    return call.request.app[API]
