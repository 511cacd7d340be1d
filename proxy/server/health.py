"""/healthz (the process answers) and /readyz (every component can do its work; 503 names which can't)."""

from __future__ import annotations

from aiohttp import web

from proxy.server.context import DAEMON


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    items = request.app[DAEMON].readiness()
    ready = all(item.ready for item in items)
    body = {
        "status": "ready" if ready else "not ready",
        "components": [
            {"name": item.component, "ready": item.ready, **({"reason": item.reason} if item.reason else {})}
            for item in items
        ],
    }
    return web.json_response(body, status=200 if ready else 503)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
