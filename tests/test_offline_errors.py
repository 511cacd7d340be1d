"""The one error mapping (proxy.server.errors) answers an offline miss itself: a chain whose upstreams
were all offline (``NoUpstreamAnswered.offline``, or an ``UpstreamOffline`` on its own) is a 404 that
says the proxy is offline; any upstream that really failed keeps it a 502."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from proxy.repository.errors import NoUpstreamAnswered
from proxy.server.errors import error_middleware
from proxy.upstream.base import UpstreamUnavailable
from proxy.upstream.offline import UpstreamOffline


@pytest.mark.parametrize(
    ("raised", "status"),
    [
        (NoUpstreamAnswered.of([UpstreamOffline("a"), UpstreamOffline("b")]), 404),
        (NoUpstreamAnswered.of([UpstreamOffline("a")]).about("org/x/1.0/x-1.0.pom"), 404),
        (UpstreamOffline("a"), 404),
        (NoUpstreamAnswered.of([UpstreamOffline("a"), UpstreamUnavailable("b", "timed out")]), 502),
        (NoUpstreamAnswered.of([UpstreamUnavailable("b", "timed out")]).about("x"), 502),
        (UpstreamUnavailable("b", "offline"), 502),  # a reason is not a kind
    ],
)
async def test_offline_misses_are_404_and_failures_502(raised: Exception, status: int) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        raise raised

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/{tail:.*}", handler)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/npm/dev/left-pad")
        assert response.status == status
        error = (await response.json())["error"]
        assert ("the proxy is offline" in error) == (status == 404)
        if status == 404:
            assert "/npm/dev/left-pad" in error
        else:
            assert "upstream 'b' unavailable" in error
