"""The aiohttp application: middlewares and the routes of every part of the external contract."""

from __future__ import annotations

from aiohttp import web

from proxy.daemon import Daemon
from proxy.formats import maven, npm, pypi
from proxy.server import health, metrics, status
from proxy.server.context import DAEMON
from proxy.server.errors import error_middleware
from proxy.server.offline import offline_middleware


def build_app(daemon: Daemon) -> web.Application:
    # metrics outermost, so it sees the status the error middleware settled on.
    middlewares = [metrics.metrics_middleware, error_middleware]
    if daemon.config.server.offline:
        middlewares.insert(1, offline_middleware)  # sees the error middleware's JSON answers
    app = web.Application(middlewares=middlewares, client_max_size=1024**3)
    app[DAEMON] = daemon
    health.add_routes(app)
    status.add_routes(app)
    metrics.add_routes(app, daemon.store.ledger)
    npm.add_routes(app)
    maven.add_routes(app)
    pypi.add_routes(app)
    return app
