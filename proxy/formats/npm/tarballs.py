"""Serving package tarballs: from the store when the repository's catalog has them, else fetched from
the place the merged packument took the version from, verified, stored and recorded.

The shared asset locator (``proxy.formats.common.locator``) keeps the warm map, the single flight and
the serving; this module says where a tarball comes from.

Cold path: the catalog (an earlier fetch or a publish into this repository), then the merged
packument's VersionSource: a version published in a local repository of the chain is served from that
repository's asset; an upstream version is downloaded with ``Fetcher.asset`` and checked against
``dist.integrity``/``dist.shasum`` before anything is committed. The client whose GET started the
download receives the tarball while it is stored (``StreamedAsset``), its last piece only after the
check; a mismatch then aborts its transfer (or is a 502 when nothing was sent yet), names the upstream
in the log, and nothing is stored or recorded.
"""

from __future__ import annotations

from aiohttp import web

from proxy.formats.common.assets import StreamedAsset
from proxy.formats.common.locator import AssetLocator, held
from proxy.formats.format import Services
from proxy.formats.npm.integrity import Digests, declares_digest, mismatch
from proxy.formats.npm.metadata import VersionSource
from proxy.formats.npm.names import PackageName
from proxy.formats.npm.packuments import Packuments
from proxy.repository.packages import asset_record, find_asset, record_fetched_asset
from proxy.store.protocols import AssetRecord, BlobInfo

CONTENT_TYPE = "application/octet-stream"


class Tarballs:
    def __init__(self, services: Services, packuments: Packuments) -> None:
        self._services = services
        self._packuments = packuments
        self._locator: AssetLocator[tuple[PackageName, str]] = AssetLocator(
            services.blobs, self._locate_key, leases=services.leases
        )
        services.warm.add("npm tarballs", self._locator)

    @property
    def located(self) -> int:
        """Tarballs located so far (not in the warm map)."""
        return self._locator.located

    def forget_package(self, package: str) -> None:
        """Forget where the tarballs of ``package`` (its full name) were found, in every repository."""
        self._locator.forget_where(lambda key: key[0].full == package)

    def forget_all(self) -> None:
        """Forget where every asset was found in every repository."""
        self._locator.forget_all()

    async def serve(
        self, request: web.Request, repository: str, package: PackageName, file: str
    ) -> web.StreamResponse:
        return await self._locator.serve(request, repository, (package, file), CONTENT_TYPE)

    async def _locate_key(
        self, repository: str, key: tuple[PackageName, str], sink: StreamedAsset | None
    ) -> AssetRecord:
        package, file = key
        return await self._locate(repository, package, file, sink)

    async def _locate(
        self, repository: str, package: PackageName, file: str, sink: StreamedAsset | None
    ) -> AssetRecord:
        version = package.version_of(file)
        assert version is not None, "the path parser only lets tarball names of the package through"
        stored = await self._stored(repository, package, version, file)
        if stored is not None:
            return stored
        source = await self._packuments.source(await self._packuments.lookup(repository, package), version)
        if source is None:
            raise web.HTTPNotFound(
                reason=f"package {package.full} has no version {version} in repository {repository}"
            )
        if not source.upstream:
            published = await self._stored(source.place, package, version, file)
            if published is None:
                raise web.HTTPNotFound(
                    reason=f"tarball of {package.full} {version} is missing from repository {source.place}"
                )
            return published
        info = await self._fetch(source, package, version, sink)
        asset = asset_record(file, info)
        await record_fetched_asset(
            self._services.catalog, repository, package.coordinate, version, asset, source.place
        )
        return asset

    async def _stored(
        self, repository: str, package: PackageName, version: str, file: str
    ) -> AssetRecord | None:
        asset = await find_asset(self._services.catalog, repository, package.coordinate, version, file)
        return await held(self._services.blobs, asset)

    async def _fetch(
        self, source: VersionSource, package: PackageName, version: str, sink: StreamedAsset | None
    ) -> BlobInfo:
        upstream = self._services.upstreams[source.place]
        if not source.tarball:
            raise web.HTTPBadGateway(
                reason=f"upstream {source.place} lists {package.full} {version} without a tarball URL"
            )

        def check(info: BlobInfo) -> str | None:
            problem = mismatch(source.integrity, source.shasum, Digests(info.sha512, info.sha256, info.sha1))
            return f"tarball of {package.full} {version}: {problem}" if problem else None

        declared = declares_digest(source.integrity, source.shasum)  # else the upstream's checksum policy
        info = await self._services.fetcher.asset(
            upstream, "npm", source.tarball, check if declared else None, sink
        )
        if info is None:
            raise web.HTTPBadGateway(
                reason=f"upstream {source.place} lists {package.full} {version} but has no tarball for it"
            )
        return info
