"""The aiohttp application: middlewares, health and metrics, the /v1 API and the routes of every
registered format."""

from __future__ import annotations

from aiohttp import web

from proxy.api import routes as api
from proxy.auth.authorizer import AUTHORIZER, Authorizer
from proxy.auth.middleware import auth_middleware
from proxy.daemon import Daemon
from proxy.formats.registry import FORMATS
from proxy.server import health, metrics, status
from proxy.server.errors import error_middleware
from proxy.server.offline import offline_middleware


def build_app(daemon: Daemon) -> web.Application:
    # metrics outermost, so it sees the status the error middleware settled on.
    # auth innermost: its refusals are answers the error middleware leaves alone.
    middlewares = [metrics.metrics_middleware, error_middleware, auth_middleware(FORMATS)]
    if daemon.config.server.offline:
        middlewares.insert(1, offline_middleware)  # sees the error middleware's JSON answers
    app = web.Application(middlewares=middlewares, client_max_size=1024**3)
    app[AUTHORIZER] = Authorizer.open(daemon.config, daemon.serving.root, daemon.serving.keyring)
    app.on_cleanup.append(lambda app: _close_authorizer(app[AUTHORIZER]))
    health.add_routes(app, daemon.readiness)
    status.add_routes(app, daemon)
    metrics.add_routes(app, daemon.usage, daemon.formats)
    for served in daemon.formats.values():
        served.add_routes(app)
    api.add_routes(app)
    return app


async def _close_authorizer(authorizer: Authorizer) -> None:
    authorizer.close()
