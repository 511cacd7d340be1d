"""The /v1 routes: importing each API module registers its operations; ``add_routes`` routes them."""

from __future__ import annotations

from aiohttp import web

from proxy.api import binding, package_versions, packages

API_MODULES = (packages, package_versions)


def add_routes(app: web.Application) -> None:
    binding.add_routes(app)
