"""The Maven format: ``/maven/{repo}/`` in the Maven 2 layout (assets, checksums, merged
maven-metadata.xml, ``mvn deploy``)."""

from __future__ import annotations

from proxy.formats.common.base import BaseFormat
from proxy.formats.format import Services
from proxy.formats.maven import details
from proxy.formats.maven.routes import MavenService
from proxy.store.protocols import PackageCoordinate


class Maven(BaseFormat):
    name = "maven"

    def display_name(self, coordinate: PackageCoordinate) -> str:
        return f"{coordinate.namespace}:{coordinate.name}"

    def serve(self, services: Services) -> MavenService:
        return MavenService(services)


FORMAT = Maven(details)
