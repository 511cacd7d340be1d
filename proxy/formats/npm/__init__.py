"""The npm format: ``/npm/{repo}/`` as an npm registry root (packuments, tarballs, publish, dist-tags)."""

from __future__ import annotations

from proxy.formats.format import Services
from proxy.formats.npm import details
from proxy.formats.npm.names import full_name
from proxy.formats.npm.routes import NpmService
from proxy.repository.details import ReadAsset, VersionDetails
from proxy.store.protocols import PackageCoordinate, PackageVersionRecord


class Npm:
    name = "npm"

    def token_authorization(self, username: str, token: str) -> str:
        return f"Bearer {token}"  # what npm sends for ``:_authToken``; the user name plays no part

    def display_name(self, coordinate: PackageCoordinate) -> str:
        return full_name(coordinate)

    def coordinate(self, namespace: str | None, name: str) -> PackageCoordinate:
        return details.coordinate(namespace, name)

    async def version_details(
        self, coordinate: PackageCoordinate, version: PackageVersionRecord, read: ReadAsset
    ) -> VersionDetails:
        return await details.version_details(coordinate, version, read)

    def serve(self, services: Services) -> NpmService:
        return NpmService(services)


FORMAT = Npm()
