"""The npm format: ``/npm/{repo}/`` as an npm registry root (packuments, tarballs, publish, dist-tags)."""

from __future__ import annotations

from proxy.formats.common import actions
from proxy.formats.common.base import BaseFormat
from proxy.formats.format import Services
from proxy.formats.npm import details
from proxy.formats.npm.names import full_name
from proxy.formats.npm.routes import NpmService
from proxy.store.protocols import PackageCoordinate


class Npm(BaseFormat):
    name = "npm"

    def token_authorization(self, username: str, token: str) -> str:
        return f"Bearer {token}"  # what npm sends for ``:_authToken``; the user name plays no part

    # npm says "your authentication token seems to be invalid" to a Bearer challenge.
    token_challenge = "Bearer"

    def action(self, method: str, path: str) -> str:
        if path.startswith("-/npm/v1/security/"):
            return actions.READ  # npm's audit asks with a POST but changes nothing
        action = actions.http_action(method)
        if action == actions.PUBLISH and "/dist-tags/" in f"/{path}":
            return actions.PUT_METADATA
        return action

    def display_name(self, coordinate: PackageCoordinate) -> str:
        return full_name(coordinate)

    def serve(self, services: Services) -> NpmService:
        return NpmService(services)


FORMAT = Npm(details)
