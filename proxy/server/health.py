"""/healthz (the process answers) and /readyz (every component can do its work; 503 names which can't)."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from proxy.daemon import Readiness

READINESS = web.AppKey("readiness", Callable[[], list[Readiness]])


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    items = request.app[READINESS]()
    ready = all(item.ready for item in items)
    body = {
        "status": "ready" if ready else "not ready",
        "components": [
            {"name": item.component, "ready": item.ready, **({"reason": item.reason} if item.reason else {})}
            for item in items
        ],
    }
    return web.json_response(body, status=200 if ready else 503)


def add_routes(app: web.Application, readiness: Callable[[], list[Readiness]]) -> None:
    app[READINESS] = readiness
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
