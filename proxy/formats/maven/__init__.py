"""The Maven format: ``/maven/{repo}/`` in the Maven 2 layout (assets, checksums, merged
maven-metadata.xml, ``mvn deploy``)."""

from __future__ import annotations

from proxy.formats.common.actions import http_action
from proxy.formats.format import Services
from proxy.formats.maven import details
from proxy.formats.maven.routes import MavenService
from proxy.store.protocols import PackageCoordinate
from proxy.upstream.http import basic_authorization


class Maven:
    name = "maven"

    def token_authorization(self, username: str, token: str) -> str:
        return basic_authorization(username, token)  # Maven speaks Basic only: the token is the password

    token_challenge = "Basic"  # its clients retry with their credentials on a Basic challenge

    def action(self, method: str, path: str) -> str:
        return http_action(method)

    def display_name(self, coordinate: PackageCoordinate) -> str:
        return f"{coordinate.namespace}:{coordinate.name}"

    # The /v1 API's format knowledge (proxy.formats.maven.details).
    coordinate = staticmethod(details.coordinate)
    version_details = staticmethod(details.version_details)
    versions_copied = staticmethod(details.versions_copied)

    def serve(self, services: Services) -> MavenService:
        return MavenService(services)


FORMAT = Maven()
