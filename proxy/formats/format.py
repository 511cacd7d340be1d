"""The format seam: what a format (npm, PyPI, Maven, ...) is to the rest of the proxy, and what it
receives to do its work.

A format is a package under ``proxy/formats/`` whose ``FORMAT`` object satisfies ``Format``; the one
line that registers it is in ``proxy.formats.registry``. The server, the metrics, the upstreams'
authorization and the configuration's ``format =`` all iterate that registry; none of them names a
format.

``Format.serve(services)`` builds the format's per-application state (its merged-document cache, its
asset locator) from the narrow ``Services`` it is handed, never the composition root, and returns a
``FormatService``: its routes under ``/NAME/{repo}/`` and ``invalidate``, which drops one package's
merged view in every repository (after a publish, or when a repository's upstreams change).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from proxy.formats.common.warm import WarmParts
from proxy.repository.chain import ResolutionChain
from proxy.repository.details import ReadAsset, VersionDetails
from proxy.repository.fetch import Fetcher
from proxy.store.protocols import (
    AssetLeases,
    BlobService,
    CatalogService,
    MetadataService,
    PackageCoordinate,
    PackageRecord,
    PackageVersionRecord,
)
from proxy.store.repositories import RepositoryRecord
from proxy.upstream.base import Upstream


@dataclass(frozen=True)
class Services:
    """What a format may use. Shared by every format of one application; read-only."""

    repositories: Mapping[str, RepositoryRecord]  # the repositories served, by name (changes at run time)
    chain: ResolutionChain  # each repository's places in resolution order
    upstreams: Mapping[str, Upstream]  # by name, as chains name them
    fetcher: Fetcher  # upstream documents and assets through the store
    catalog: CatalogService
    blobs: BlobService
    metadata: MetadataService
    leases: AssetLeases  # single flight of asset fetches across every daemon of the store (the locator's)
    metadata_ttl: float  # seconds an upstream document is fresh (cache.metadata_ttl)
    public_url: str | None  # server.public_url: the base of every link handed to clients, when set
    documents_memory: int  # bytes of merged documents each format keeps in memory (cache.documents_memory)
    warm: WarmParts  # where a format adds what keeps memory (merged documents, asset locators), by name


class FormatService(Protocol):
    """One format's state in one application."""

    def add_routes(self, app: web.Application) -> None:
        """Register the format's handlers, all under ``/{name}/``."""
        ...

    def invalidate(self, package: PackageCoordinate) -> None:
        """Forget the package's merged view and where its assets were found, in every repository (after
        a publish, or a /v1 change of its versions or statuses): the next request resolves it again."""
        ...

    def invalidate_all(self) -> None:
        """Forget every merged view and every remembered asset location in every repository: a
        repository was created, changed or deleted, so any chain may differ."""
        ...


class Format(Protocol):
    """A package format, as registered in ``proxy.formats.registry``."""

    @property
    def name(self) -> str:
        """``npm``, ``pypi``, ...: the URL prefix, the metrics label, ``format =`` in the configuration,
        the upstream endpoint's format and ``PackageCoordinate.format``."""
        ...

    def token_authorization(self, username: str, token: str) -> str:
        """The ``Authorization`` value this format's clients send with a token (a CodeArtifact token,
        with user ``aws``; a registry's ``token``, with its configured user): what upstreams get too."""
        ...

    def display_name(self, coordinate: PackageCoordinate) -> str:
        """A package's name as this format's users write it (``@scope/name``, ``group:artifact``)."""
        ...

    def coordinate(self, namespace: str | None, name: str) -> PackageCoordinate:
        """The catalog coordinate of a /v1 call's ``namespace`` and ``package`` (normalised as the
        catalog keeps them)."""
        ...

    async def version_details(
        self, coordinate: PackageCoordinate, version: PackageVersionRecord, read: ReadAsset
    ) -> VersionDetails:
        """What the version's metadata says (summary, licenses, home page, readme, dependencies), read
        from its stored record and, where the format keeps it only there, its assets (``read``)."""
        ...

    def versions_copied(self, record: PackageRecord, versions: Collection[str]) -> None:
        """``versions`` were copied into ``record`` (CopyPackageVersions, inside the catalog change):
        update what else of the package depends on its versions (npm: the ``latest`` dist-tag)."""
        ...

    @property
    def token_challenge(self) -> str:
        """The ``WWW-Authenticate`` scheme (``Basic``, ``Bearer``) answering a refused token, the one
        that makes this format's clients say the token is the problem."""
        ...

    def action(self, method: str, path: str) -> str:
        """The CodeArtifact action (``proxy.formats.common.actions``) a ``method`` request to
        ``/{name}/{repo}/{path}`` needs: what authorization checks it against."""
        ...

    def serve(self, services: Services) -> FormatService: ...
