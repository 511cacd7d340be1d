"""The /v1 routes: importing each API module registers its operations; ``add_routes`` routes them.

Every /v1 request is first admitted by the request-rate limit (``proxy.api.throttle``). Operations
on a ``[codeartifact.X]`` domain the proxy fronts are answered by CodeArtifact
(``proxy.api.fronted``), before any local handler runs.
"""

from __future__ import annotations

from aiohttp import web

from proxy.api import (
    binding,
    domains,
    fronted,
    package_versions,
    packages,
    policies,
    repositories,
    throttle,
    tokens,
)
from proxy.api.services import API, ApiServices

API_MODULES = (domains, repositories, packages, package_versions, tokens, policies)


def add_routes(app: web.Application, services: ApiServices) -> None:
    app[API] = services
    # The repositories of a shared store are read (and followed) before the first request is served.
    app.on_startup.append(lambda _app: services.repositories.open())
    app.on_cleanup.append(lambda _app: services.repositories.close())
    throttle.install(app, services.limits)  # before forwarding: a fronted domain's calls count too
    fronted.install(app)
    binding.add_routes(app)
