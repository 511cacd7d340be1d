"""The Maven format: ``/maven/{repo}/`` in the Maven 2 layout (assets, checksums, merged
maven-metadata.xml, ``mvn deploy``)."""

from __future__ import annotations

from proxy.formats.format import Services
from proxy.formats.maven import details
from proxy.formats.maven.routes import MavenService
from proxy.repository.details import ReadAsset, VersionDetails
from proxy.store.protocols import PackageCoordinate, PackageVersionRecord
from proxy.upstream.http import basic_authorization


class Maven:
    name = "maven"

    def token_authorization(self, username: str, token: str) -> str:
        return basic_authorization(username, token)  # Maven speaks Basic only: the token is the password

    def display_name(self, coordinate: PackageCoordinate) -> str:
        return f"{coordinate.namespace}:{coordinate.name}"

    def coordinate(self, namespace: str | None, name: str) -> PackageCoordinate:
        return details.coordinate(namespace, name)

    async def version_details(
        self, coordinate: PackageCoordinate, version: PackageVersionRecord, read: ReadAsset
    ) -> VersionDetails:
        return await details.version_details(coordinate, version, read)

    def serve(self, services: Services) -> MavenService:
        return MavenService(services)


FORMAT = Maven()
