"""Maven assets (jars, POMs, any classifier and extension): from the store when a local repository of
the chain holds them, else from the first upstream in chain order that has them, verified and stored.

The chain is walked by ``proxy.repository.resolve.first_found``: the catalog of every local repository
of the chain, in order (published packages, and what earlier requests cached into them). A package
published in a local repository of the chain blocks upstream versions (origin controls): its assets come
only from there. Otherwise the upstreams are tried in order; a 404 moves on to the next, an upstream
that fails is skipped and, when no other has the asset, the answer is a 502 (never a 404). Before
downloading, the upstream's ``.sha1`` (or ``.sha256`` when it has no ``.sha1``) is read; the download
(``Fetcher.asset``) is committed only if the digests match, else it is a 502 and nothing is stored. The
GET that starts a download receives it as it arrives, its last piece only after the check; once bytes
went out, a failure cuts the transfer short instead of moving on to the next upstream. The asset is
recorded in the catalog of the repository the client asked. A path no upstream has is remembered by
the chain walk (negative lookups, ``proxy.repository.resolve``), so a build that went through while
the upstreams were up also goes through while they are down: Maven goes on without a POM that is
missing (it asks for some while it picks versions), but stops on an error.

The shared asset locator (``proxy.formats.common.locator``) keeps the warm map and the single flight
(one checksum read, one download, one catalog write per asset) and serves the bytes.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from aiohttp import web

from proxy.formats.common.assets import StreamedAsset
from proxy.formats.common.locator import AssetLocator, held
from proxy.formats.format import Services
from proxy.formats.maven import checksums
from proxy.formats.maven.paths import ArtifactPath, ChecksumAlgorithm, upstream_url
from proxy.repository.errors import NoUpstreamAnswered, UpstreamInvalid
from proxy.repository.packages import asset_record, record_fetched_asset
from proxy.repository.resolve import UpstreamsBlocked, first_found
from proxy.store.protocols import AssetRecord, BlobInfo, PackageCoordinate, PackageRecord
from proxy.upstream.base import Upstream, UpstreamUnavailable

log = logging.getLogger(__name__)

VERIFIED_BY: tuple[ChecksumAlgorithm, ...] = (
    "sha1",
    "sha256",
)  # upstream checksum files, in preference order
_CONTENT_TYPES = {
    "pom": "text/xml",
    "xml": "text/xml",
    "jar": "application/java-archive",
    "war": "application/java-archive",
    "ear": "application/java-archive",
    "module": "application/json",
    "json": "application/json",
    "asc": "text/plain",
}


def content_type(filename: str) -> str:
    return _CONTENT_TYPES.get(filename.rsplit(".", 1)[-1], "application/octet-stream")


def coordinate_of(path: ArtifactPath) -> PackageCoordinate:
    return PackageCoordinate("maven", path.group, path.artifact)


class Assets:
    def __init__(self, services: Services) -> None:
        self._services = services
        self._locator: AssetLocator[ArtifactPath] = AssetLocator(
            services.blobs, self._locate, leases=services.leases
        )
        services.warm.add("maven assets", self._locator)

    async def serve(self, request: web.Request, repository: str, path: ArtifactPath) -> web.StreamResponse:
        return await self._locator.serve(request, repository, _asset(path), content_type(path.filename))

    async def locate(self, repository: str, path: ArtifactPath) -> AssetRecord:
        """The asset's record (its blob, size and digests), fetching it first when no place holds it."""
        return await self._locator.locate(repository, _asset(path))

    @property
    def located(self) -> int:
        """Assets located so far (not in the warm map)."""
        return self._locator.located

    def forget(self, repository: str, path: ArtifactPath) -> None:
        self._locator.forget(repository, _asset(path))

    def forget_package(self, package: PackageCoordinate) -> None:
        """Forget where the assets of ``package`` were found, in every repository."""
        self._locator.forget_where(lambda path: coordinate_of(path) == package)

    def forget_all(self) -> None:
        """Forget where every asset was found in every repository."""
        self._locator.forget_all()

    async def _locate(self, repository: str, path: ArtifactPath, sink: StreamedAsset | None) -> AssetRecord:
        coordinate = coordinate_of(path)
        taken_from: list[str] = []

        async def local(record: PackageRecord) -> AssetRecord | None:
            return await held(self._services.blobs, _held(record, path))

        async def remote(upstream: Upstream) -> AssetRecord | None:
            info = await self._download(upstream, path, sink)
            if info is None:
                return None
            taken_from.append(upstream.name)
            return asset_record(path.filename, info)

        # Once bytes went out, no other upstream can go on with the client's transfer.
        def go_on() -> bool:
            return sink is None or not sink.started

        places = self._services.chain.places(repository)
        lookup = self._services.fetcher.not_found.lookup(repository, "maven", path.asset_path)
        try:
            asset = await first_found(
                self._services.catalog,
                places,
                coordinate,
                local,
                remote,
                go_on,
                version=path.version,
                lookup=lookup,
            )
        except UpstreamsBlocked as exc:
            raise web.HTTPNotFound(
                reason=f"{path.filename} is not in repository {exc.repository}, where "
                f"{path.group}:{path.artifact} is published; its origin configuration blocks upstream "
                "versions"
            ) from None
        except NoUpstreamAnswered as exc:
            raise exc.about(path.asset_path) from None
        if asset is None:
            raise web.HTTPNotFound(
                reason=f"{path.asset_path} is not in repository {repository} or its upstreams"
            )
        if taken_from:
            catalog = self._services.catalog
            await record_fetched_asset(catalog, repository, coordinate, path.version, asset, taken_from[0])
        return asset

    async def _download(
        self, upstream: Upstream, path: ArtifactPath, sink: StreamedAsset | None
    ) -> BlobInfo | None:
        url = upstream_url(path.asset_path)
        expected = await self._expected_digest(upstream, url)

        if expected is None:  # no checksum file beside it: the upstream's checksum policy decides
            return await self._services.fetcher.asset(upstream, "maven", url, None, sink)
        algorithm, digest = expected

        def check(info: BlobInfo) -> str | None:
            actual = checksums.of_blob(info, algorithm)
            if actual == digest:
                return None
            return f"{path.asset_path}: {algorithm} is {actual}, its .{algorithm} file says {digest}"

        return await self._services.fetcher.asset(upstream, "maven", url, check, sink)

    async def _expected_digest(self, upstream: Upstream, url: str) -> tuple[ChecksumAlgorithm, str] | None:
        """The digest the upstream's own checksum file declares, if it offers one. Read afresh for each
        download (a wrong one must not outlive the failed download), never cached."""
        for algorithm in VERIFIED_BY:
            async with upstream.open("maven", f"{url}.{algorithm}") as response:
                if response.status in (404, 410):
                    continue
                if response.status != 200:
                    raise UpstreamUnavailable(
                        upstream.name, f"answered {response.status} for {url}.{algorithm}"
                    )
                body = await response.aread()
            try:
                return algorithm, checksums.parse_checksum(body, algorithm)
            except ValueError as exc:
                raise UpstreamInvalid(
                    f"upstream {upstream.name} sent a broken {url}.{algorithm}: {exc}"
                ) from None
        return None


def _asset(path: ArtifactPath) -> ArtifactPath:
    """The asset a path names (a checksum's path names the asset it is of)."""
    return replace(path, checksum=None) if path.checksum is not None else path


def _held(record: PackageRecord | None, path: ArtifactPath) -> AssetRecord | None:
    if record is None or path.version not in record.versions:
        return None
    return record.versions[path.version].assets.get(path.filename)
