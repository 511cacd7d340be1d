"""The one HTTP client for every upstream (aiohttp): pooling, timeouts, retries, redirects, credentials.

- Each upstream has its own connection pool (``max_connections_per_upstream``), pooled per origin
  within it; past ``IDLE_KEPT`` idle connections an origin, those idle ``IDLE_SURPLUS_SECONDS`` are
  closed (a burst reuses its own; what it leaves does not hold TLS buffers for the keep-alive time).
  Connect and read timeouts apply, and ``BodyLimits`` bound what a body may cost.
- GET and HEAD are retried on connection errors, timeouts, 5xx and 429, with exponential back-off
  and jitter, or after ``Retry-After`` when the upstream says so (capped). Other methods are sent once.
- Bodies stream: ``send`` returns once the headers are in; nothing here reads a whole asset.
- Redirects are followed by hand, so that credentials go only where they belong: the
  ``Authorization`` header is sent only to URLs of the origin it was given for (scheme, host,
  port, with ``:443``/``:80`` the same as no port). CodeArtifact redirects asset downloads to
  pre-signed S3 URLs on another host, and S3 refuses a request that carries one.
- It honours HTTP_PROXY/HTTPS_PROXY/NO_PROXY (read once at start; build farms reach AWS through a
  proxy; user info in the proxy URL becomes Proxy-Authorization) and SSL_CERT_FILE/SSL_CERT_DIR
  (OpenSSL's default verify paths).
- Cookies are neither kept nor sent: upstreams are package registries, not sessions.
- It never fetches from a link-local address (169.254.0.0/16, fe80::/10, and IPv6 spellings of
  169.254.0.0/16: IPv4-mapped, IPv4-compatible, NAT64), whether a URL names one or a host name
  resolves to one, and it checks the address each connection actually reached before sending on
  it: cloud instance metadata and credentials are served there, and URLs come from upstream
  documents (``dist.tarball``, redirects) that the proxy does not control.
- Pre-signed URLs are secrets for their lifetime: logs show URLs as scheme://host/path only, the
  response's ``url`` has no query, and a log filter strips queries from the client library's own
  log records.

Why aiohttp and not httpx (which the design card also names): on a cold ``npm ci`` every tarball costs
two upstream requests, and httpx's connection pool cost 1.3-1.75 ms of CPU per request on the one
event-loop thread (it polls every pooled connection on each request), about ten times aiohttp's.

Concurrency: one ``UpstreamHttp`` per process, used from the event loop by any number of requests.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import functools
import ipaddress
import logging
import random
import re
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, unquote, urljoin, urlsplit
from urllib.request import getproxies_environment, proxy_bypass_environment

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ClientRequest, ConnectionKey
from aiohttp.resolver import DefaultResolver

from proxy.upstream.base import (
    BodyLimits,
    LinkLocalRefused,
    UpstreamResponse,
    UpstreamUnavailable,
    safe_url,
    transport_failure,
)

log = logging.getLogger(__name__)

IDLE_KEPT = 4  # idle connections to an origin kept past a burst (GuardedConnector)
IDLE_SURPLUS_SECONDS = 0.25  # how long the others stay idle before they are closed

USER_AGENT = "codeartifact-proxy"
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int | None]


@dataclass(frozen=True)
class HttpSettings:
    connect_timeout: float = 10.0
    read_timeout: float = 60.0  # between two reads, not for a whole body
    retries: int = 3  # extra attempts for GET/HEAD
    backoff_base: float = 0.5
    backoff_cap: float = 10.0
    retry_after_cap: float = 30.0
    max_redirects: int = 5
    # Each upstream has its own pool, so one that stalls cannot take the connections of the others.
    max_connections_per_upstream: int = 32
    body: BodyLimits = field(default_factory=BodyLimits)


@dataclass(frozen=True)
class Authorization:
    """An ``Authorization`` header value and the origin it may be sent to."""

    value: str = field(repr=False)
    origin: Origin

    @classmethod
    def for_url(cls, value: str, url: str) -> Authorization:
        return cls(value, origin(url))


def basic_authorization(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def origin(url: str | SplitResult) -> Origin:
    """(scheme, host, port) with the scheme's default port filled in."""
    parts = urlsplit(url) if isinstance(url, str) else url
    scheme = parts.scheme.lower()
    return scheme, parts.hostname or "", parts.port or _DEFAULT_PORTS.get(scheme)


def backoff_delay(failures: int, base: float, cap: float, rng: Callable[[], float] = random.random) -> float:
    """Exponential back-off with "equal jitter": between half and all of min(cap, base * 2**(n-1))."""
    ceiling = min(cap, base * 2 ** min(failures - 1, 32))
    return ceiling / 2 + rng() * ceiling / 2


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), None if absent or bad."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for: IPv4-mapped (``::ffff:a.b.c.d``), IPv4-compatible
    (``::a.b.c.d``, deprecated but still routed by some stacks) or NAT64 (``64:ff9b::a.b.c.d``), whose
    packets reach that IPv4 host. None for other IPv6 addresses."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    packed = int(address)
    if packed >> 32 == 0 and packed > 1:  # ::a.b.c.d, not :: or ::1
        return ipaddress.IPv4Address(packed & 0xFFFFFFFF)
    if any(address in network for network in _NAT64):
        return ipaddress.IPv4Address(packed & 0xFFFFFFFF)
    return None


@functools.lru_cache(maxsize=1024)  # asked for every request; an upstream has few hosts
def link_local(host: str) -> bool:
    """Whether ``host`` (an address or a name) is a link-local address in any of its spellings."""
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            return inner.is_link_local
    return address.is_link_local


class GuardedConnector(aiohttp.TCPConnector):
    """A connector that checks the address each new connection reached before anything is sent on it:
    the last word on link-local addresses, whatever spelling a URL used or a resolver answered with.
    A connection through a forward proxy reaches the proxy, which is checked the same way."""

    def __init__(
        self, *, forbidden: Callable[[str], bool] = link_local, idle_kept: int = IDLE_KEPT, **kwargs: object
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._forbidden = forbidden
        self._idle_kept = idle_kept
        self._surplus_check: asyncio.TimerHandle | None = None

    def _release(self, key: ConnectionKey, protocol: ResponseHandler, *, should_close: bool = False) -> None:
        super()._release(key, protocol, should_close=should_close)
        idle = self._conns.get(key)
        if idle is not None and len(idle) > self._idle_kept and self._surplus_check is None:
            self._surplus_check = self._loop.call_later(IDLE_SURPLUS_SECONDS, self._close_surplus)

    def _close_surplus(self) -> None:
        """Close the connections idle for ``IDLE_SURPLUS_SECONDS`` past ``idle_kept`` an origin, the
        longest idle first: a burst reuses its connections, and the surplus it leaves is not kept for the
        whole keep-alive time (a TLS connection holds about half a MiB of buffers)."""
        self._surplus_check = None
        now, waiting = time.monotonic(), False  # aiohttp stamps a released connection by time.monotonic
        for key, idle in list(self._conns.items()):
            while len(idle) > self._idle_kept and now - idle[0][1] >= IDLE_SURPLUS_SECONDS:
                protocol, _ = idle.popleft()
                protocol.close()
            waiting = waiting or len(idle) > self._idle_kept
            if not idle:
                del self._conns[key]
        if waiting and not self._closed:
            self._surplus_check = self._loop.call_later(IDLE_SURPLUS_SECONDS, self._close_surplus)

    async def _create_direct_connection(  # type: ignore[override]
        self, req: ClientRequest, traces: list[Any], timeout: aiohttp.ClientTimeout, **kwargs: Any
    ) -> tuple[asyncio.Transport, ResponseHandler]:
        transport, protocol = await super()._create_direct_connection(req, traces, timeout, **kwargs)
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        if self._forbidden(address):
            transport.close()
            refused = LinkLocalRefused(f"refused: {req.url.host} connected to a link-local address")
            raise aiohttp.ClientConnectorError(req.connection_key, refused)
        return transport, protocol


class GuardedResolver(AbstractResolver):
    """Name resolution without link-local answers (see LinkLocalRefused)."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = [a for a in await self._inner.resolve(host, port, family) if not link_local(a["host"])]
        if not answers:
            raise LinkLocalRefused(f"refused: {host} resolves only to link-local addresses")
        return answers

    async def close(self) -> None:
        await self._inner.close()


@dataclass(frozen=True)
class ProxyRoute:
    url: str  # without user info
    authorization: str | None = field(default=None, repr=False)  # Proxy-Authorization

    def place_authorization(self, url: str, headers: dict[str, str]) -> Mapping[str, str] | None:
        """Plain HTTP goes to the proxy as is, so its credentials go with the request; HTTPS gets a
        CONNECT tunnel, and they go only on the CONNECT (returned), never through the tunnel."""
        if self.authorization is None:
            return None
        if url.lower().startswith("https:"):
            return {"Proxy-Authorization": self.authorization}
        headers["Proxy-Authorization"] = self.authorization
        return None


class EnvironmentProxies:
    """The forward proxies the environment names, decided once per (scheme, host). aiohttp's own
    ``trust_env`` reads the environment again, in a worker thread, for every request."""

    def __init__(self) -> None:
        self._proxies = getproxies_environment()
        self._routes: dict[tuple[str, str], ProxyRoute | None] = {}

    def route(self, parts: SplitResult) -> ProxyRoute | None:
        key = (parts.scheme.lower(), parts.hostname or "")
        if key not in self._routes:
            self._routes[key] = self._decide(*key)
        return self._routes[key]

    def _decide(self, scheme: str, host: str) -> ProxyRoute | None:
        proxy = self._proxies.get(scheme)
        if not proxy or proxy_bypass_environment(host, self._proxies):
            return None
        parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if parts.username is None:
            return ProxyRoute(proxy)
        credentials = basic_authorization(unquote(parts.username), unquote(parts.password or ""))
        return ProxyRoute(safe_url(proxy), credentials)


class UpstreamHttp:
    """Create it on the event loop that will use it (an aiohttp session belongs to one loop)."""

    def __init__(
        self,
        settings: HttpSettings | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings or HttpSettings()
        self._sleep = sleep
        self._proxies = EnvironmentProxies()
        self._resolver = GuardedResolver()
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        install_log_redaction()

    async def send(
        self,
        upstream: str,
        url: str,
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        authorization: Authorization | None = None,
    ) -> UpstreamResponse:
        """Send with retries and redirects; the caller closes the response (see proxy.upstream.base)."""
        method = method.upper()
        # Callers never pass credentials through headers: only ``authorization`` knows where they may go.
        plain = {k: v for k, v in (headers or {}).items() if k.lower() != "authorization"}
        attempts = 1 + (self.settings.retries if method in IDEMPOTENT_METHODS else 0)
        attempt = 0
        while True:
            attempt += 1
            retry_after = None
            try:
                response, final_url = await self._follow(upstream, method, url, plain, content, authorization)
            except (aiohttp.ClientError, TimeoutError) as exc:
                failure = transport_failure(exc)
            else:
                if response.status < 500 and response.status != 429:
                    return UpstreamResponse(upstream, response, final_url, self.settings.body)
                failure = f"HTTP {response.status}"
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                response.release()
            if attempt >= attempts:
                raise UpstreamUnavailable(upstream, failure)
            s = self.settings
            if retry_after is None:
                delay = backoff_delay(attempt, s.backoff_base, s.backoff_cap)
            else:
                delay = min(retry_after, s.retry_after_cap)
            log.info(
                "upstream %r: %s %s: %s; retry %d of %d in %.1f s",
                upstream,
                method,
                safe_url(url),
                failure,
                attempt,
                attempts - 1,
                delay,
            )
            await self._sleep(delay)

    def _session(self, upstream: str) -> aiohttp.ClientSession:
        """The upstream's own connection pool, made on first use (on the event loop)."""
        session = self._sessions.get(upstream)
        if session is None:
            s = self.settings
            session = aiohttp.ClientSession(
                connector=GuardedConnector(
                    limit=s.max_connections_per_upstream, limit_per_host=0, resolver=self._resolver
                ),
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=s.connect_timeout, sock_read=s.read_timeout
                ),
                headers={"User-Agent": USER_AGENT},
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            self._sessions[upstream] = session
        return session

    async def aclose(self) -> None:
        for session in self._sessions.values():
            await session.close()
        await self._resolver.close()  # given to the connector, so not closed with it

    async def _follow(
        self,
        upstream: str,
        method: str,
        url: str,
        headers: Mapping[str, str],
        content: bytes | None,
        authorization: Authorization | None,
    ) -> tuple[aiohttp.ClientResponse, str]:
        for _ in range(self.settings.max_redirects + 1):
            parts = urlsplit(url)
            host = parts.hostname or ""
            if link_local(host):
                raise UpstreamUnavailable(upstream, f"refused: {host} is a link-local address")
            hop_headers = dict(headers)
            if authorization is not None and origin(parts) == authorization.origin:
                hop_headers["Authorization"] = authorization.value
            proxy = self._proxies.route(parts)
            tunnel_headers = proxy.place_authorization(url, hop_headers) if proxy else None
            response = await self._session(upstream).request(
                method,
                url,
                headers=hop_headers,
                data=content,
                allow_redirects=False,
                proxy=proxy.url if proxy else None,
                proxy_headers=tunnel_headers,
            )
            location = response.headers.get("Location")
            if response.status not in REDIRECT_STATUSES or location is None:
                if log.isEnabledFor(logging.DEBUG):  # safe_url() is not free, and this is every request
                    log.debug("upstream %r: %s %s -> %d", upstream, method, safe_url(url), response.status)
                return response, url
            response.release()
            target = urljoin(url, location)
            log.debug(
                "upstream %r: %s %s -> %d to %s%s",
                upstream,
                method,
                safe_url(url),
                response.status,
                safe_url(target),
                "" if origin(target) == origin(url) else " (another origin)",
            )
            if response.status == 303 or (response.status in (301, 302) and method not in IDEMPOTENT_METHODS):
                method, content = ("HEAD" if method == "HEAD" else "GET"), None
            url = target
        raise UpstreamUnavailable(upstream, f"more than {self.settings.max_redirects} redirects")


_URL_QUERY = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#'\"<>]*)\?[^\s'\"<>]*")


class _RedactQueries(logging.Filter):
    """Strips the query from URLs in a record: a pre-signed URL is a credential."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _URL_QUERY.sub(r"\1?<redacted>", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


# Filters on a logger do not see its children's records: name each logger that prints URLs.
_HTTP_LIBRARY_LOGGERS = ("aiohttp.client", "aiohttp.internal")


def install_log_redaction() -> None:
    """Idempotent: attach the query-stripping filter to the HTTP libraries' loggers."""
    for name in _HTTP_LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, _RedactQueries) for existing in logger.filters):
            logger.addFilter(_RedactQueries())
