"""The upstream interface: what format handlers and the resolution chain use to reach an upstream.

An upstream is a CodeArtifact repository (``proxy.upstream.codeartifact``) or a plain registry
by URL (``proxy.upstream.registry``); both implement ``Upstream``:

    name: str                              # the [upstream.NAME] table
    formats: frozenset[Format]             # formats it serves; others are a programming error
    async endpoint(format) -> str          # base URL for that format, ends with "/"
    open(format, url, *, method="GET", headers=None, content=None)
        -> async context manager of UpstreamResponse

``url`` is relative to ``endpoint(format)`` (e.g. ``"lodash"``, ``"simple/requests/"``,
``"org/x/y/1.0/y-1.0.pom"``) or absolute (e.g. a ``dist.tarball`` or a PyPI file URL taken from
metadata). Credentials (a CodeArtifact token, a registry password) are attached only to URLs of
the same origin as the endpoint (scheme, host and port; ``:443``/``:80`` written out or not);
a redirect to another origin (CodeArtifact's pre-signed S3 URLs) is followed without them.
``headers`` must not carry credentials: an ``Authorization`` header there is dropped.

The response (``UpstreamResponse``): ``status``, ``headers``, ``url`` (the final URL, without its
query: a pre-signed URL is never handed out), ``aiter_bytes()`` to stream the body (never buffer an
asset), ``aread()`` for small bodies (metadata). Bodies come decoded (no Content-Encoding), so
``Content-Length``/``Content-Encoding`` in ``headers`` describe the wire, not ``aiter_bytes()``.

What ``open`` answers, and what it raises:
- a response for 2xx, 304, 404/410 and other 4xx: "not found" is a 404 response, not an error;
- ``UpstreamUnavailable`` for everything that means the upstream failed rather than the package
  is missing: connection errors, timeouts, 5xx and 429 (after retries for GET/HEAD), too many
  redirects, credentials rejected (401/403/407; for CodeArtifact after one refresh and retry), no
  CodeArtifact token to be had (no credentials, access denied, ...). Reading the body can raise it
  too (connection lost, truncated body). Its message names the upstream and never holds a token.

Concurrency: upstreams are shared by all requests on the event loop; they keep no per-request state.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol
from urllib.parse import urljoin, urlsplit, urlunsplit

import aiohttp

from proxy.config.model import Format

REJECTED_CREDENTIALS = frozenset({401, 403, 407})


class UpstreamUnavailable(Exception):
    """The upstream failed (as opposed to answering "not found")."""

    def __init__(self, upstream: str, reason: str) -> None:
        self.upstream = upstream
        self.reason = reason
        super().__init__(f"upstream {upstream!r} unavailable: {reason}")


@dataclass(frozen=True)
class BodyLimits:
    """What an upstream's body may cost, checked while it streams (decoded bytes, after gzip):
    ``max_document_size`` for bodies read whole (``aread``: metadata, checksum files); and a floor on
    throughput for every body, ``min_throughput`` bytes/s on average once ``throughput_grace`` seconds
    have passed, so an upstream that drips holds neither a connection nor its waiting clients for
    ever (the read timeout only bounds the gap between two reads).

    A fetch goes on when the clients that asked for it leave: what it fetches is stored (an asset,
    a document in the metadata cache) and the next client is served from there. These limits, not
    the clients, are what end a fetch that is not worth its wait."""

    max_document_size: int = 128 * 1024**2
    min_throughput: float = 1024.0
    throughput_grace: float = 30.0
    document_deadline: float = 300.0  # for a whole document (``aread``), however it trickles in


class UpstreamResponse:
    """An upstream's answer with the body not read yet; an async context manager that closes it."""

    def __init__(
        self,
        upstream: str,
        response: aiohttp.ClientResponse,
        final_url: str,
        limits: BodyLimits | None = None,
    ) -> None:
        self.upstream = upstream
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers
        self._final_url = final_url
        self._response = response
        self._limits = limits or BodyLimits()

    @functools.cached_property
    def url(self) -> str:
        """The final URL as it may be logged or handed on (no query: it can be a pre-signed URL)."""
        return safe_url(self._final_url)

    async def aiter_bytes(self, chunk_size: int = 256 * 1024) -> AsyncIterator[bytes]:
        """The body as it arrives, in pieces of at most ``chunk_size`` bytes. Raises
        UpstreamUnavailable when it arrives slower than ``BodyLimits`` allows."""
        limits = self._limits
        started, received = time.monotonic(), 0
        try:
            async for chunk in self._response.content.iter_chunked(chunk_size):
                received += len(chunk)
                elapsed = time.monotonic() - started
                if elapsed > limits.throughput_grace and received < limits.min_throughput * elapsed:
                    self._response.close()
                    raise UpstreamUnavailable(
                        self.upstream, f"too slow ({received} bytes in {elapsed:.0f} s)"
                    )
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamUnavailable(self.upstream, transport_failure(exc)) from None

    async def aread(self) -> bytes:
        """The whole body, for documents; raises UpstreamUnavailable past ``max_document_size`` decoded
        bytes (a gzip bomb or a runaway document), before buffering more than that, or when it takes
        longer than ``document_deadline``."""
        cap = self._limits.max_document_size
        declared = self.headers.get("Content-Length", "")
        if declared.isdigit() and "Content-Encoding" not in self.headers and int(declared) > cap:
            self._response.close()
            raise UpstreamUnavailable(self.upstream, f"document larger than {cap} bytes")
        body = bytearray()
        deadline = time.monotonic() + self._limits.document_deadline
        async for chunk in self.aiter_bytes():
            body += chunk
            if len(body) > cap:
                self._response.close()
                raise UpstreamUnavailable(self.upstream, f"document larger than {cap} bytes")
            if time.monotonic() > deadline:
                self._response.close()
                raise UpstreamUnavailable(
                    self.upstream, f"document not received within {self._limits.document_deadline:.0f} s"
                )
        return bytes(body)

    async def aclose(self) -> None:
        # Returns the connection to the pool when the body was read to its end, else closes it.
        self._response.release()

    async def __aenter__(self) -> UpstreamResponse:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<UpstreamResponse {self.upstream} {self.status} {self.url}>"


def absolute_url(endpoint: str, url: str) -> str:
    """``url`` resolved against ``endpoint`` (see the module docstring); most are absolute already
    (tarball and file URLs from metadata), and those are taken as they are without parsing."""
    return url if url.startswith(("https://", "http://")) else urljoin(endpoint, url)


def safe_url(url: str) -> str:
    """The URL as it may be logged or handed on: no user info, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class LinkLocalRefused(OSError):
    """A URL that leads to a link-local address, where cloud instance metadata and credentials are
    served (EC2 instance metadata, ECS task credentials): no upstream URL, tarball URL or redirect
    may make the proxy fetch from there."""


def transport_failure(exc: BaseException) -> str:
    """Why a request got no answer, in words that name no URL (a pre-signed URL is a secret)."""
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, LinkLocalRefused):
        return str(exc.os_error)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "host name not resolved"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "timed out connecting"
    if isinstance(exc, TimeoutError):
        return "timed out waiting for data"
    if isinstance(exc, aiohttp.ClientConnectorError):
        # The OSError's own text names the address; the errno's does not.
        code = exc.os_error.errno
        return f"connection failed ({os.strerror(code) if code else type(exc.os_error).__name__})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "connection closed by the upstream"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "body not received completely"
    if isinstance(exc, aiohttp.InvalidURL):
        return "invalid URL"
    return f"connection failed ({type(exc).__name__})"


class Upstream(Protocol):
    name: str
    formats: frozenset[Format]

    async def endpoint(self, format: Format) -> str: ...

    def open(
        self,
        format: Format,
        url: str,
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> AbstractAsyncContextManager[UpstreamResponse]: ...


async def ensure_authorized(response: UpstreamResponse) -> UpstreamResponse:
    """Turn a response that rejects our credentials into ``UpstreamUnavailable``."""
    if response.status in REJECTED_CREDENTIALS:
        await response.aclose()
        raise UpstreamUnavailable(response.upstream, f"credentials rejected (HTTP {response.status})")
    return response
