"""The aiohttp application: middlewares, health and metrics, and the routes of every registered format."""

from __future__ import annotations

from aiohttp import web

from proxy.daemon import Daemon
from proxy.server import health, metrics
from proxy.server.errors import error_middleware


def build_app(daemon: Daemon) -> web.Application:
    # metrics outermost, so it sees the status the error middleware settled on.
    app = web.Application(middlewares=[metrics.metrics_middleware, error_middleware], client_max_size=1024**3)
    health.add_routes(app, daemon.readiness)
    metrics.add_routes(app, daemon.usage, daemon.formats)
    for served in daemon.formats.values():
        served.add_routes(app)
    return app
