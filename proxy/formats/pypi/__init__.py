"""The PyPI format: the simple repository API (PEP 503/691, with PEP 592 yanking and PEP 658/714 core
metadata), files, and ``twine upload``, served through a repository's upstream chain.

Modules: ``routes`` (handlers), ``project`` (a project resolved, merged and rendered per repository),
``files`` (distribution and metadata files), ``upload`` (twine), ``simple`` (the model and its HTML
and JSON renderings), ``pages`` (reading upstream pages), ``merge`` (the chain's merge rules),
``records`` (PyPI in the catalog), ``coremeta`` (core metadata files), ``negotiate`` (``Accept``),
``names`` (project names and filenames).
"""

from __future__ import annotations

from proxy.formats.common.base import BaseFormat
from proxy.formats.format import Services
from proxy.formats.pypi import details
from proxy.formats.pypi.routes import PypiService
from proxy.store.protocols import PackageCoordinate


class Pypi(BaseFormat):
    name = "pypi"

    def display_name(self, coordinate: PackageCoordinate) -> str:
        return coordinate.name

    def serve(self, services: Services) -> PypiService:
        return PypiService(services)


FORMAT = Pypi(details)
