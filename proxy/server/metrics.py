"""/metrics in Prometheus text format. Labels are coarse (a registered format's name, ``v1`` or
``other``, and the status class), never paths, package names or anything a client sent, so no secret
and no unbounded label set can reach them."""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Protocol

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from proxy.server.errors import Handler

METRICS = web.AppKey("metrics", "Metrics")
_API = "v1"  # the CodeArtifact API's prefix, labelled like a format


class StoreUsage(Protocol):
    @property
    def blob_count(self) -> int: ...

    @property
    def cached_size(self) -> int: ...


class Metrics:
    def __init__(self, ledger: StoreUsage, formats: Collection[str]) -> None:
        self._labels = frozenset((*formats, _API))
        self.registry = CollectorRegistry()
        blobs = Gauge(
            "codeartifact_proxy_store_blobs",
            "Blobs in the store: one per distinct content, published or cached.",
            registry=self.registry,
        )
        blobs.set_function(lambda: ledger.blob_count)
        cached = Gauge(
            "codeartifact_proxy_store_cached_bytes",
            "Bytes of cached content (evicted past cache.max_size; published content is not counted).",
            registry=self.registry,
        )
        cached.set_function(lambda: ledger.cached_size)
        self.requests = Counter(
            "codeartifact_proxy_requests",
            "Requests served, by format and status class.",
            ("format", "status"),
            registry=self.registry,
        )
        self.duration = Histogram(
            "codeartifact_proxy_request_duration_seconds",
            "Time to the end of the response, by format.",
            ("format",),
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )

        # The labelled series, looked up once: ``labels()`` costs more than the count itself, on every
        # request. Both label sets are bounded (the formats' names, five status classes).
        self._counted: dict[tuple[str, int], Counter] = {}
        self._timed: dict[str, Histogram] = {}

    def observe(self, path: str, status: int, seconds: float) -> None:
        first = path.split("/", 2)[1] if path.count("/") >= 1 else ""
        fmt = first if first in self._labels else "other"
        status_class = status // 100
        counted = self._counted.get((fmt, status_class))
        if counted is None:
            counted = self._counted[(fmt, status_class)] = self.requests.labels(fmt, f"{status_class}xx")
        timed = self._timed.get(fmt)
        if timed is None:
            timed = self._timed[fmt] = self.duration.labels(fmt)
        counted.inc()
        timed.observe(seconds)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        request.app[METRICS].observe(request.path, status, time.perf_counter() - start)


async def metrics_endpoint(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_routes(app: web.Application, usage: StoreUsage, formats: Collection[str]) -> None:
    """``formats``: the first path segments counted under their own label (the formats' names)."""
    app[METRICS] = Metrics(usage, formats)
    app.router.add_get("/metrics", metrics_endpoint)
