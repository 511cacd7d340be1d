"""The base URL handed to clients: ``server.public_url`` when set, else the request's own scheme and
Host, so every link a client receives points back at the proxy."""

from __future__ import annotations

from aiohttp import web

from proxy.server.context import DAEMON


def base_url(request: web.Request) -> str:
    public = request.app[DAEMON].config.server.public_url
    if public:
        return public
    return f"{request.scheme}://{request.host}/"
