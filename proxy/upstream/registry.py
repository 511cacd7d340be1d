"""Plain registries by URL as upstreams, and ``build_upstreams``: every configured upstream at once.

A plain registry (``[upstream.NAME]`` with ``format`` and ``url``) serves one format. Its optional
credentials are sent, to the registry's origin only, as:
- ``username``/``password``: ``Basic username:password``;
- ``token``: the way the format's clients send a token (its ``TokenScheme``), with ``username``
  (default ``token``) as user name where the scheme has one (Basic with the token as password).

``build_upstreams`` builds one ``DomainClient``, ``TokenProvider`` and ``RepositoryEndpoints``
per ``[codeartifact.NAME]`` domain and one upstream per ``[upstream.NAME]``; the composition root
starts and stops the token providers through the returned ``Upstreams`` and asks it for health.

Concurrency: built once at start (or reload) on the event loop, then read-only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import MappingProxyType

from proxy.codeartifact.domain import DomainClient
from proxy.codeartifact.endpoint import RepositoryEndpoints
from proxy.codeartifact.token import DomainHealth, TokenProvider
from proxy.config import model
from proxy.config.model import Format
from proxy.upstream.base import Upstream, UpstreamResponse, absolute_url, ensure_authorized
from proxy.upstream.codeartifact import CodeArtifactRepositoryUpstream, TokenScheme
from proxy.upstream.http import Authorization, UpstreamHttp, basic_authorization

DEFAULT_TOKEN_USERNAME = "token"


def registry_authorization_value(scheme: TokenScheme, credentials: model.Credentials) -> str | None:
    if credentials.token:
        return scheme(credentials.username or DEFAULT_TOKEN_USERNAME, credentials.token)
    if credentials.username or credentials.password:
        return basic_authorization(credentials.username or "", credentials.password or "")
    return None


class RegistryUpstream:
    def __init__(
        self,
        name: str,
        format: Format,
        url: str,
        credentials: model.Credentials,
        http: UpstreamHttp,
        scheme: TokenScheme,
        checksum_policy: model.ChecksumPolicy = "warn",
    ) -> None:
        self.name = name
        self.checksum_policy = checksum_policy
        self.formats: frozenset[Format] = frozenset({format})
        self._endpoint = url if url.endswith("/") else url + "/"
        value = registry_authorization_value(scheme, credentials)
        self._authorization = Authorization.for_url(value, self._endpoint) if value else None
        self._http = http

    async def endpoint(self, format: Format) -> str:
        self._check(format)
        return self._endpoint

    @asynccontextmanager
    async def open(
        self,
        format: Format,
        url: str,
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> AsyncIterator[UpstreamResponse]:
        self._check(format)
        response = await self._http.send(
            self.name,
            absolute_url(self._endpoint, url),
            method=method,
            headers=headers,
            content=content,
            authorization=self._authorization,
        )
        async with await ensure_authorized(response) as checked:
            yield checked

    def _check(self, format: Format) -> None:
        if format not in self.formats:
            raise ValueError(f"upstream {self.name!r} serves {', '.join(sorted(self.formats))}, not {format}")


@dataclass(frozen=True)
class Upstreams:
    """The configured upstreams by name, and the token provider of each CodeArtifact domain."""

    by_name: Mapping[str, Upstream]
    token_providers: Mapping[str, TokenProvider]
    _clients: tuple[DomainClient, ...]

    async def start(self) -> None:
        for provider in self.token_providers.values():
            await provider.start()

    async def stop(self) -> None:
        for provider in self.token_providers.values():
            await provider.stop()
        for client in self._clients:
            client.close()

    def health(self) -> list[DomainHealth]:
        return [provider.health() for provider in self.token_providers.values()]

    def retry_now(self) -> None:
        for provider in self.token_providers.values():
            provider.retry_now()


def build_upstreams(
    config: model.Config, http: UpstreamHttp, schemes: Mapping[Format, TokenScheme]
) -> Upstreams:
    """Every configured upstream; ``schemes``: how each format sends a token (the format registry's)."""
    clients = {name: DomainClient(domain) for name, domain in config.codeartifact.items()}
    providers = {name: TokenProvider(config.codeartifact[name], client) for name, client in clients.items()}
    endpoints = {name: RepositoryEndpoints(client) for name, client in clients.items()}
    by_name: dict[str, Upstream] = {}
    for name, upstream in config.upstreams.items():
        if isinstance(upstream, model.CodeArtifactUpstream):
            by_name[name] = CodeArtifactRepositoryUpstream(
                name,
                upstream.repository,
                providers[upstream.codeartifact],
                endpoints[upstream.codeartifact],
                http,
                schemes,
            )
        else:
            by_name[name] = RegistryUpstream(
                name,
                upstream.format,
                upstream.url,
                upstream.credentials,
                http,
                schemes[upstream.format],
                upstream.checksum_policy,
            )
    return Upstreams(MappingProxyType(by_name), MappingProxyType(providers), tuple(clients.values()))
