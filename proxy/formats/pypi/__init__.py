"""The PyPI format: the simple repository API (PEP 503/691, with PEP 592 yanking and PEP 658/714 core
metadata), files, and ``twine upload``, served through a repository's upstream chain.

Modules: ``routes`` (handlers), ``project`` (a project resolved, merged and rendered per repository),
``files`` (distribution and metadata files), ``upload`` (twine), ``simple`` (the model and its HTML
and JSON renderings), ``pages`` (reading upstream pages), ``merge`` (the chain's merge rules),
``records`` (PyPI in the catalog), ``coremeta`` (core metadata files), ``negotiate`` (``Accept``),
``names`` (project names and filenames).
"""

from __future__ import annotations

from proxy.formats.common.actions import http_action
from proxy.formats.format import Services
from proxy.formats.pypi import details
from proxy.formats.pypi.routes import PypiService
from proxy.store.protocols import PackageCoordinate
from proxy.upstream.http import basic_authorization


class Pypi:
    name = "pypi"

    def token_authorization(self, username: str, token: str) -> str:
        return basic_authorization(username, token)  # pip speaks Basic only: the token is the password

    token_challenge = "Basic"  # its clients retry with their credentials on a Basic challenge

    def action(self, method: str, path: str) -> str:
        return http_action(method)

    def display_name(self, coordinate: PackageCoordinate) -> str:
        return coordinate.name

    # The /v1 API's format knowledge (proxy.formats.pypi.details).
    coordinate = staticmethod(details.coordinate)
    version_details = staticmethod(details.version_details)
    versions_copied = staticmethod(details.versions_copied)

    def serve(self, services: Services) -> PypiService:
        return PypiService(services)


FORMAT = Pypi()
