"""The /v1 routes: importing each API module registers its operations; ``add_routes`` routes them.

One middleware (``_v1``) admits every /v1 request by the request-rate limit (``proxy.api.throttle``);
then operations on a ``[codeartifact.X]`` domain the proxy fronts are answered by CodeArtifact
(``proxy.api.fronted``), before any local handler runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

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

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
API_MODULES = (domains, repositories, packages, package_versions, tokens, policies)


def add_routes(app: web.Application, services: ApiServices) -> None:
    app[API] = services
    # The repositories of a shared store are read (and followed) before the first request is served.
    app.on_startup.append(lambda _app: services.repositories.open())
    app.on_cleanup.append(lambda _app: services.repositories.close())
    throttle.install(app, services.limits)
    fronted.install(app)
    app.middlewares.append(_v1)
    binding.add_routes(app)


@web.middleware
async def _v1(request: web.Request, handler: Handler) -> web.StreamResponse:
    """/v1's own steps, one prefix check for every other request: the rate limit first (a fronted
    domain's calls count too), then forwarding to a fronted domain."""
    if not request.path.startswith("/v1/"):
        return await handler(request)
    refused = throttle.refusal(request)
    if refused is not None:
        return refused
    return await fronted.answer(request, handler)
