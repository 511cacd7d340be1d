"""Distribution files and their core metadata files (PEP 658), served from the store.

A file: from the store when a repository of the chain holds it (remembered in memory after the first
lookup, so a warm request reads no catalog), else downloaded from the upstream that the merged project
page names for it, through ``fetcher.asset``: verified against the digests that page declared before
it is committed (a mismatch is a 502 and nothing is stored), and recorded in the requesting
repository's catalog. The GET that started the download receives the file while it is stored, its last
piece only after the check (``fetch_streaming``): a large wheel's first bytes do not wait for its last
ones, so a client's read timeout does not run out. A mismatch found after bytes went out cuts the
transfer short; the other requests are served from the store. After a wheel is downloaded its
``*.dist-info/METADATA`` is taken out and stored as ``<wheel>.metadata``, so the page offers PEP 658
metadata for it from then on and pip resolves without downloading wheels again; unless the chain holds
that file already (the upstream's own, which pip fetches before the wheel), which then stays.

A ``.metadata`` file: the one the chain holds when its sha256 is the one the page declares, else the
upstream's own PEP 658 file, verified against the declared hash and streamed like a file.

Verification covers the digests the store computes (sha256, sha512, sha1, md5); a page that declares
only others (blake2b, say) cannot be checked. Filenames are immutable (neither PyPI nor CodeArtifact
lets one be reused), so a held file is served without consulting the page.

The shared asset locator (``proxy.formats.common.locator``) keeps the warm map and serves; its single
flight per (repository, file) is the download's, and the Fetcher adds one per upstream URL. Recording
and extraction happen inside that flight: the requests that waited for it are
served from the store after it, and the one that started it returns only then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from urllib.parse import urljoin

from aiohttp import web

from proxy.formats.common.assets import StreamedAsset
from proxy.formats.common.locator import AssetLocator, held
from proxy.formats.format import Services
from proxy.formats.pypi.coremeta import metadata_mismatch, wheel_metadata
from proxy.formats.pypi.merge import Offer, Project
from proxy.formats.pypi.names import METADATA_SUFFIX, coordinate, parse_filename
from proxy.formats.pypi.project import ProjectViews
from proxy.formats.pypi.records import find_held
from proxy.repository.packages import asset_record, record_fetched_asset
from proxy.repository.resolve import local_records
from proxy.store.protocols import AssetRecord, BlobError, BlobInfo, BlobService

log = logging.getLogger(__name__)

DIST_CONTENT_TYPE = "application/octet-stream"
METADATA_CONTENT_TYPE = "text/plain; charset=utf-8"
_MAX_REMEMBERED = 65536
_VERIFIABLE = ("sha256", "sha512", "sha1", "md5")  # the digests the store computes (BlobInfo)


def digest_mismatch(declared: Mapping[str, str], info: BlobInfo, filename: str) -> str | None:
    """Why the downloaded ``info`` is not the file the index declared, or None."""
    for algorithm, expected in declared.items():
        if algorithm in _VERIFIABLE and getattr(info, algorithm) != expected:
            return f"{filename} has {algorithm} {getattr(info, algorithm)}, the index declared {expected}"
    return None


def _version(filename: str) -> str:
    """The version a listed file belongs to (listed files always have parseable names)."""
    parsed = parse_filename(filename)
    if parsed is None:
        raise ValueError(f"{filename} is not a distribution filename")
    return parsed.version


async def store_bytes(blobs: BlobService, data: bytes, *, published: bool) -> BlobInfo:
    async with blobs.ingest() as writer:
        writer.write(data)
        return await writer.commit(published=published)


class Files:
    def __init__(self, services: Services, views: ProjectViews) -> None:
        self._services = services
        self._views = views
        # Keyed by (project, filename): a file's name is used once, and the project is checked with it.
        self._locator: AssetLocator[tuple[str, str]] = AssetLocator(
            services.blobs, self._locate, _MAX_REMEMBERED, leases=services.leases
        )
        services.warm.add("pypi files", self._locator)

    @property
    def located(self) -> int:
        """Files located so far (not in the warm map)."""
        return self._locator.located

    def forget_project(self, project: str) -> None:
        """Forget where the files of ``project`` were found, in every repository."""
        self._locator.forget_where(lambda key: key[0] == project)

    def forget_all(self) -> None:
        """Forget where every asset was found in every repository."""
        self._locator.forget_all()

    def remember(self, repository: str, project: str, asset: AssetRecord) -> None:
        self._locator.remember(repository, (project, asset.name), asset)

    async def serve(
        self, request: web.Request, repository: str, project: str, filename: str
    ) -> web.StreamResponse:
        if filename.endswith(METADATA_SUFFIX):
            content_type = METADATA_CONTENT_TYPE
        else:
            parsed = parse_filename(filename)
            if parsed is None or parsed.project != project:
                raise web.HTTPNotFound(reason=f"{filename} is not a distribution file of project {project}")
            content_type = DIST_CONTENT_TYPE
        return await self._locator.serve(request, repository, (project, filename), content_type)

    async def _locate(self, repository: str, key: tuple[str, str], sink: StreamedAsset | None) -> AssetRecord:
        project, filename = key
        if filename.endswith(METADATA_SUFFIX):
            return await self._locate_metadata(repository, project, filename, sink)
        found = await self._find_held(repository, project, _version(filename), filename)
        if (stored := await held(self._services.blobs, found)) is not None:
            return stored
        offer, _ = await self._listed(repository, project, filename)
        if offer.source.upstream is None:
            raise web.HTTPBadGateway(
                reason=f"{filename}, published in repository {offer.source.place}, is missing from the store "
                "(see `codeartifact-proxy verify`)"
            )
        return await self._download(repository, project, offer, sink)

    async def _find_held(
        self, repository: str, project: str, version: str, filename: str
    ) -> AssetRecord | None:
        places = self._services.chain.places(repository)
        records = await local_records(self._services.catalog, places, coordinate(project))
        return find_held([r for r in records.values() if r is not None], version, filename)

    async def _listed(self, repository: str, project: str, filename: str) -> tuple[Offer, Project]:
        """The offer of ``filename`` on the merged page, and that page's project; 404 when not listed."""
        listed = await self._views.value(await self._views.get(repository, project))
        offer = listed.offers.get(filename) if listed is not None else None
        if offer is None or listed is None:
            raise web.HTTPNotFound(
                reason=f"{filename} is not listed for project {project} in repository {repository}"
            )
        return offer, listed

    async def _download(
        self, repository: str, project: str, offer: Offer, sink: StreamedAsset | None
    ) -> AssetRecord:
        filename = offer.file.filename
        info = await self._get_from_upstream(offer, "", offer.file.hashes, filename, sink)
        asset = await self._record(repository, project, offer, asset_record(filename, info))
        if filename.endswith(".whl") and not await self._find_held(
            repository, project, _version(filename), filename + METADATA_SUFFIX
        ):
            await self._extract_metadata(repository, project, offer, asset)
        self._views.invalidate(project)
        return asset

    async def _extract_metadata(
        self, repository: str, project: str, offer: Offer, wheel: AssetRecord
    ) -> None:
        blobs = self._services.blobs
        try:
            data = await asyncio.to_thread(
                lambda: wheel_metadata(blobs.open_seekable(wheel.blob_id), wheel.name)
            )
            problem = metadata_mismatch(data, project, _version(wheel.name))
        except (ValueError, BlobError) as exc:
            problem = str(exc)
        if problem is not None:
            log.warning("no core metadata taken from %s: %s", wheel.name, problem)
            return
        info = await store_bytes(blobs, data, published=False)
        await self._record(repository, project, offer, asset_record(wheel.name + METADATA_SUFFIX, info))

    async def _record(self, repository: str, project: str, offer: Offer, asset: AssetRecord) -> AssetRecord:
        """Record an asset of the offered file's version, fetched through its upstream."""
        version = _version(offer.file.filename)
        catalog, upstream = self._services.catalog, offer.source.place
        await record_fetched_asset(catalog, repository, coordinate(project), version, asset, upstream)
        return asset

    async def _get_from_upstream(
        self,
        offer: Offer,
        suffix: str,
        declared: Mapping[str, str],
        filename: str,
        sink: StreamedAsset | None = None,
    ) -> BlobInfo:
        upstream = offer.source.upstream
        assert upstream is not None
        page = urljoin(await upstream.endpoint("pypi"), offer.source.page_path)
        url = urljoin(page, offer.file.url) + suffix
        # A distribution file listed without a hash is left to the upstream's checksum policy.
        verifiable = bool(suffix) or any(algorithm in _VERIFIABLE for algorithm in declared)
        info = await self._services.fetcher.asset(
            upstream,
            "pypi",
            url,
            (lambda got: digest_mismatch(declared, got, filename)) if verifiable else None,
            sink,
        )
        if info is None:
            raise web.HTTPBadGateway(
                reason=f"upstream {upstream.name} lists {filename} but answered 404 for it"
            )
        return info

    # -- core metadata files (PEP 658) --------------------------------------------------------------
    async def _locate_metadata(
        self, repository: str, project: str, filename: str, sink: StreamedAsset | None
    ) -> AssetRecord:
        """The chain's copy when its sha256 is the one the page declares, else the upstream's own."""
        offer, _ = await self._listed(repository, project, filename[: -len(METADATA_SUFFIX)])
        declared = offer.file.core_metadata
        if declared is None:
            raise web.HTTPNotFound(reason=f"no core metadata is known for {offer.file.filename}")
        # From the catalog, not the view: a view kept across a download does not list what it held.
        copy = await self._find_held(repository, project, _version(offer.file.filename), filename)
        if copy is not None and declared.get("sha256") not in (None, copy.hashes["SHA-256"]):
            copy = None  # not the file the page declares
        if (stored := await held(self._services.blobs, copy)) is not None:
            return stored
        if offer.source.upstream is None:
            raise web.HTTPBadGateway(
                reason=f"{filename} is missing from the store (see `codeartifact-proxy verify`)"
            )
        return await self._download_metadata(repository, project, offer, declared, sink)

    async def _download_metadata(
        self,
        repository: str,
        project: str,
        offer: Offer,
        declared: Mapping[str, str],
        sink: StreamedAsset | None,
    ) -> AssetRecord:
        filename = offer.file.filename + METADATA_SUFFIX
        info = await self._get_from_upstream(offer, METADATA_SUFFIX, declared, filename, sink)
        asset = await self._record(repository, project, offer, asset_record(filename, info))
        self._views.invalidate(project)
        return asset
