"""Offline mode (``[server] offline = true`` or ``serve --offline``): no upstream connection at all.

Every configured upstream is replaced by an ``OfflineUpstream`` that opens nothing: asking it raises
``UpstreamOffline`` (an ``UpstreamUnavailable`` with the reason ``offline``), so the format handlers
serve what the store holds (metadata past its TTL as stale-if-error) and treat a miss as an upstream
failure; when only offline upstreams failed (``NoUpstreamAnswered.offline``), the server's one error
mapping (``proxy.server.errors``) answers the 404 it is, saying the proxy is offline. No CodeArtifact
client, token provider or HTTP session is created, so not even CodeArtifact's API is called.

Concurrency: built once at start; stateless.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from types import MappingProxyType

from proxy.config import model
from proxy.config.model import Format
from proxy.upstream.base import Upstream, UpstreamResponse, UpstreamUnavailable
from proxy.upstream.registry import Upstreams

OFFLINE = "offline"


class UpstreamOffline(UpstreamUnavailable):
    """Asked an upstream of an offline daemon: not a failure of the upstream, there is none to ask."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream, OFFLINE)


class OfflineUpstream:
    """An upstream of an offline daemon: never connects; every use raises ``UpstreamOffline``."""

    def __init__(self, name: str, formats: frozenset[Format]) -> None:
        self.name = name
        self.formats = formats

    async def endpoint(self, format: Format) -> str:
        raise UpstreamOffline(self.name)

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
        raise UpstreamOffline(self.name)
        yield  # an async generator, as the protocol's context manager needs  # pragma: no cover


def build_offline_upstreams(config: model.Config, formats: Collection[Format]) -> Upstreams:
    """Every ``[upstream.NAME]`` of ``config`` as an ``OfflineUpstream``, and no token providers;
    ``formats``: every format served (a CodeArtifact repository serves them all)."""
    every_format = frozenset(formats)
    by_name: dict[str, Upstream] = {}
    for name, upstream in config.upstreams.items():
        served = every_format if isinstance(upstream, model.CodeArtifactUpstream) else {upstream.format}
        by_name[name] = OfflineUpstream(name, frozenset(served))
    return Upstreams(MappingProxyType(by_name), MappingProxyType({}), ())
