"""Plain registries by URL as upstreams, and ``build_upstreams``: every configured upstream at once.

A plain registry (``[upstream.NAME]`` with ``format`` and ``url``) serves one format. Its optional
credentials are sent, to the registry's origin only, as:
- ``username``/``password``: ``Basic username:password``;
- ``token``: the way the format's clients send a token (its ``TokenScheme``), with ``username``
  (default ``token``) as user name where the scheme has one (Basic with the token as password);
- ``token_file``: the same, with the token read from a file (0600) and read again whenever the file
  changes, so a token that expires (a proxy token of a farm daemon, at most 12 hours) is refreshed
  outside the daemon, e.g. by ``aws codeartifact get-authorization-token`` writing the file, without a
  restart. A file that cannot be read again keeps the token read before, with a warning (never the
  token) in the log.

``build_upstreams`` builds one ``DomainClient``, ``TokenProvider`` and ``RepositoryEndpoints``
per ``[codeartifact.NAME]`` domain and one upstream per ``[upstream.NAME]``; the composition root
starts and stops the token providers through the returned ``Upstreams`` and asks it for health.

Concurrency: built once at start (or reload) on the event loop, then read-only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

from proxy.codeartifact.domain import DomainClient
from proxy.codeartifact.endpoint import RepositoryEndpoints
from proxy.codeartifact.token import DomainHealth, TokenProvider
from proxy.config import model
from proxy.config.loader import SecretFileError, read_secret_file
from proxy.config.model import Format
from proxy.upstream.base import Upstream, UpstreamResponse, absolute_url, ensure_authorized
from proxy.upstream.codeartifact import CodeArtifactRepositoryUpstream, TokenScheme
from proxy.upstream.http import Authorization, UpstreamHttp, basic_authorization

log = logging.getLogger(__name__)

DEFAULT_TOKEN_USERNAME = "token"


class TokenFile:
    """A token kept in a file and read again when the file changes (checked with one ``stat`` a
    request, on the event loop: a ``stat`` of a local file does not wait)."""

    def __init__(self, upstream: str, path: Path, token: str) -> None:
        self._upstream = upstream
        self._path = path
        self.token = token
        self._seen = self._identity()

    def _identity(self) -> tuple[int, int, int] | None:
        try:
            info = os.stat(self._path)
        except OSError:
            return None
        return info.st_ino, info.st_size, info.st_mtime_ns

    def changed(self) -> bool:
        """Whether the file changed since last read; if so, reads it (``token``) or, when that fails,
        logs why and keeps the token it had."""
        identity = self._identity()
        if identity == self._seen:
            return False
        self._seen = identity
        try:
            token, info = read_secret_file(self._path, "token")
        except SecretFileError as error:
            log.warning("upstream %s: %s; the token read before is used", self._upstream, error)
            return False
        self._seen = info.st_ino, info.st_size, info.st_mtime_ns
        if token == self.token:
            return False
        self.token = token
        log.info("upstream %s: token read again from %s", self._upstream, self._path)
        return True


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
        self._credentials = credentials
        self._scheme = scheme
        self._token_file = (
            TokenFile(name, credentials.token_file, credentials.token or "")
            if credentials.token_file is not None
            else None
        )
        self._authorization = self._authorize(credentials)
        self._http = http

    def _authorize(self, credentials: model.Credentials) -> Authorization | None:
        value = registry_authorization_value(self._scheme, credentials)
        return Authorization.for_url(value, self._endpoint) if value else None

    def _current_authorization(self) -> Authorization | None:
        if self._token_file is not None and self._token_file.changed():
            self._credentials = replace(self._credentials, token=self._token_file.token)
            self._authorization = self._authorize(self._credentials)
        return self._authorization

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
            authorization=self._current_authorization(),
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
