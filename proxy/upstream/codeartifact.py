"""A CodeArtifact repository as an upstream (``[upstream.NAME]`` with ``codeartifact = DOMAIN``).

Requests go to the repository endpoint GetRepositoryEndpoint gave for the format, with the
domain's token sent the way the format's clients send it (``TokenScheme``, given by the format
registry; user ``aws``, as ``aws codeartifact login`` configures each client).

A rejected token is replaced once per request: on 401 or 403 the token is invalidated (the
provider refreshes once however many requests saw it), and the request is sent again with the
fresh one. Some CodeArtifact endpoints answer a stale token with 404, so a 404 to a token that is
near expiry (or already replaced) is retried the same way. A second rejection is
``UpstreamUnavailable``; so is having no token at all (the provider's reason: no credentials,
access denied, throttled, unreachable).

Concurrency: shared by all requests; the token provider and endpoint cache do the coordination.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

from proxy.codeartifact.domain import DomainError
from proxy.codeartifact.endpoint import RepositoryEndpoints
from proxy.codeartifact.token import TokenProvider
from proxy.config.model import ChecksumPolicy, Format
from proxy.upstream.base import (
    REJECTED_CREDENTIALS,
    UpstreamResponse,
    UpstreamUnavailable,
    absolute_url,
    ensure_authorized,
)
from proxy.upstream.http import Authorization, UpstreamHttp, origin

log = logging.getLogger(__name__)


# A format's way of sending a token: (username, token) -> the Authorization header's value.
TokenScheme = Callable[[str, str], str]
CODEARTIFACT_USERNAME = "aws"


class CodeArtifactRepositoryUpstream:
    """Serves every format of ``schemes`` (each by its own repository endpoint)."""

    def __init__(
        self,
        name: str,
        repository: str,
        tokens: TokenProvider,
        endpoints: RepositoryEndpoints,
        http: UpstreamHttp,
        schemes: Mapping[Format, TokenScheme],
    ) -> None:
        self.name = name
        self.formats: frozenset[Format] = frozenset(schemes)
        self._schemes = schemes
        self.checksum_policy: ChecksumPolicy = "require"  # CodeArtifact always declares digests
        self.repository = repository
        self._tokens = tokens
        self._endpoints = endpoints
        self._http = http

    async def endpoint(self, format: Format) -> str:
        try:
            return await self._endpoints.get(self.repository, format)
        except DomainError as exc:
            raise unavailable(self.name, exc) from None

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
        async with await self._send(format, url, method, headers, content) as response:
            yield response

    async def _send(
        self, format: Format, url: str, method: str, headers: Mapping[str, str] | None, content: bytes | None
    ) -> UpstreamResponse:
        # The token first: without one there is no point asking for the endpoint.
        token = await self._token()
        base = await self.endpoint(format)
        target = absolute_url(base, url)
        response = await self._attempt(format, base, target, method, headers, content, token)
        # An answer from another origin (no token sent there, e.g. S3 after a redirect) says nothing
        # about the token.
        stale = origin(response.url) == origin(base) and (
            response.status in REJECTED_CREDENTIALS
            or (response.status == 404 and self._tokens.near_expiry(token))
        )
        if stale:
            log.debug(
                "upstream %r: HTTP %d to the token; retrying with a fresh one", self.name, response.status
            )
            await response.aclose()
            await self._tokens.invalidate(token)
            token = await self._token()
            response = await self._attempt(format, base, target, method, headers, content, token)
        return await ensure_authorized(response)

    async def _attempt(
        self,
        format: Format,
        base: str,
        target: str,
        method: str,
        headers: Mapping[str, str] | None,
        content: bytes | None,
        token: str,
    ) -> UpstreamResponse:
        authorization = Authorization.for_url(self._schemes[format](CODEARTIFACT_USERNAME, token), base)
        return await self._http.send(
            self.name, target, method=method, headers=headers, content=content, authorization=authorization
        )

    async def _token(self) -> str:
        try:
            return await self._tokens.token()
        except DomainError as exc:
            raise unavailable(self.name, exc) from None


def unavailable(upstream: str, exc: DomainError) -> UpstreamUnavailable:
    """What a client may be told when the CodeArtifact API failed: the short reason only. The detail
    (botocore's message: the endpoint URL, the domain, the owner's account id, an ARN) goes to the log.
    ``exc.domain`` is the name of the [codeartifact.NAME] table, not the CodeArtifact domain."""
    log.warning("upstream %r: %s", upstream, exc)
    return UpstreamUnavailable(upstream, f"codeartifact domain {exc.domain!r}: {exc.reason}")
