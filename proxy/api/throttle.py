"""The request-rate limit of /v1: a token bucket per caller, ``[api] requests_per_second`` and ``burst``.

A caller is the principal that signed the request (known once the auth middleware has run), or, for an
anonymous caller, its client address (the peer of the connection: behind a reverse proxy every caller
is that proxy's address, so raise the limit there). A request over the limit is answered 429
ThrottlingException with ``Retry-After`` (the model's ``retryAfterSeconds``), before its handler or its
forwarding to a fronted domain runs; the aws CLI and the SDKs retry it by themselves. The data plane
(npm, pip, mvn) is never throttled: one install is hundreds of requests.

Buckets live in a ``cachetools.TTLCache`` whose time-to-live is the time an empty bucket takes to fill:
a bucket dropped for being idle that long would be full anyway, so idle callers cost no memory and
lose nothing. Past ``MAX_CALLERS`` live buckets the least recently used one is dropped (it starts full
again).

Concurrency: event loop only (the middleware and ``admit`` never await between reading and writing a
bucket).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from cachetools import TTLCache

from proxy.api.binding import operation_of
from proxy.api.errors import ApiError
from proxy.auth.authorizer import CALLER
from proxy.config.model import ApiConfig

MAX_CALLERS = 100_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class Throttle:
    """Token buckets by caller key. ``admit(key)`` takes a token: 0.0 when there was one, else the
    seconds until there will be."""

    def __init__(self, limits: ApiConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._buckets: TTLCache[str, _Bucket] = TTLCache(
            MAX_CALLERS, ttl=limits.burst / limits.requests_per_second, timer=clock
        )

    def admit(self, key: str) -> float:
        rate, burst = self.limits.requests_per_second, float(self.limits.burst)
        now = self._clock()
        bucket = self._buckets.get(key) or _Bucket(burst, now)
        bucket.tokens = min(burst, bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        self._buckets[key] = bucket  # setting restarts its time to live: it expires once it is full
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / rate


THROTTLE = web.AppKey("api_throttle", Throttle)


def install(app: web.Application, limits: ApiConfig) -> None:
    """Throttle the /v1 requests of ``app`` (``refusal``, asked by ``proxy.api.routes``' middleware)."""
    app[THROTTLE] = Throttle(limits)


def caller_key(request: web.Request) -> str:
    """The bucket of a request: its signing principal, else its client address."""
    principal = CALLER.get() if operation_of(request) is not None else None
    if principal is not None and not principal.anonymous:
        return f"principal:{principal.name}"
    return f"address:{request.remote or 'local'}"


def throttled(limits: ApiConfig, wait: float) -> ApiError:
    retry_after = max(1, math.ceil(wait))
    return ApiError(
        "ThrottlingException",
        f"Rate exceeded: this proxy answers at most {limits.requests_per_second:g} /v1 requests a second "
        f"per caller (bursts of {limits.burst}; [api] requests_per_second and burst); "
        f"retry after {retry_after} s",
        retryAfterSeconds=retry_after,
    )


def refusal(request: web.Request) -> web.Response | None:
    """The 429 for a /v1 request over its caller's limit; None: admitted (a token taken)."""
    throttle = request.app[THROTTLE]
    wait = throttle.admit(caller_key(request))
    return throttled(throttle.limits, wait).response() if wait > 0 else None
