"""The aiohttp application: middlewares, health and metrics, the routes of every registered format and
the /v1 CodeArtifact API."""

from __future__ import annotations

from aiohttp import web

from proxy.api import routes as api
from proxy.api.services import ApiServices
from proxy.auth.authorizer import AUTHORIZER, Authorizer
from proxy.auth.middleware import auth_middleware
from proxy.daemon import Daemon
from proxy.formats.registry import FORMATS
from proxy.server import health, metrics, status
from proxy.server.errors import error_middleware
from proxy.server.limits import body_limit_middleware


def build_app(daemon: Daemon) -> web.Application:
    # metrics outermost, so it sees the status the error middleware settled on.
    # auth innermost: its refusals are answers the error middleware leaves alone.
    max_body = daemon.config.server.max_publish_size
    limit = body_limit_middleware(max_body)
    middlewares = [metrics.metrics_middleware, error_middleware, limit, auth_middleware(FORMATS)]
    app = web.Application(middlewares=middlewares, client_max_size=max_body)
    app[AUTHORIZER] = Authorizer.open(
        daemon.config, daemon.serving.root, daemon.serving.keyring, daemon.repositories
    )
    app.on_cleanup.append(lambda app: _close_authorizer(app[AUTHORIZER]))
    health.add_routes(app, daemon.readiness)
    status.add_routes(app, daemon)
    metrics.add_routes(app, daemon.usage, daemon.formats)
    for served in daemon.formats.values():
        served.add_routes(app)
    api.add_routes(app, _api_services(daemon))
    return app


def _api_services(daemon: Daemon) -> ApiServices:
    config = daemon.config
    return ApiServices(
        domain=config.domain,
        source=config.source,
        upstreams=config.upstreams,
        codeartifact=config.codeartifact,
        repositories=daemon.repositories,
        catalog=daemon.services.catalog,
        blobs=daemon.services.blobs,
        usage=daemon.usage,
        invalidate=daemon.invalidate,
        chain=daemon.chain,
        keyring=daemon.serving.keyring,
        public_url=config.server.public_url,
        limits=config.api,
    )


async def _close_authorizer(authorizer: Authorizer) -> None:
    authorizer.close()
