"""Every /v1 operation module, imported so its handlers register, and the routes of them all."""

from __future__ import annotations

from aiohttp import web

from proxy.api import binding, policies, tokens

__all__ = ["add_routes", "policies", "tokens"]


def add_routes(app: web.Application) -> None:
    binding.add_routes(app)
