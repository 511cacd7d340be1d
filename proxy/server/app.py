"""The aiohttp application: middlewares and the routes of every part of the external contract."""

from __future__ import annotations

from aiohttp import web

from proxy.api import routes as api
from proxy.daemon import Daemon
from proxy.formats import maven, npm, pypi
from proxy.formats.maven.routes import MAVEN
from proxy.formats.npm.routes import NPM
from proxy.formats.pypi.routes import PYPI
from proxy.server import health, metrics
from proxy.server.context import DAEMON
from proxy.server.errors import error_middleware


def build_app(daemon: Daemon) -> web.Application:
    # metrics outermost, so it sees the status the error middleware settled on.
    app = web.Application(middlewares=[metrics.metrics_middleware, error_middleware], client_max_size=1024**3)
    app[DAEMON] = daemon
    health.add_routes(app)
    metrics.add_routes(app, daemon.store.ledger)
    npm.add_routes(app)
    maven.add_routes(app)
    pypi.add_routes(app)
    api.add_routes(app)
    daemon.repositories.on_change(lambda _repository: _forget_merged_views(app))
    return app


def _forget_merged_views(app: web.Application) -> None:
    """A repository changed: every merged view that reached it through a chain may be wrong now."""
    app[NPM].packuments.invalidate_all()
    app[NPM].tarballs.forget_all()
    app[PYPI].views.invalidate_all()
    app[PYPI].files.forget_all()
    app[MAVEN].documents.invalidate()
    app[MAVEN].assets.forget_all()
