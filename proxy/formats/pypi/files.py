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

Concurrency: downloads are single flight per (repository, file); the Fetcher adds single flight per
upstream URL. Recording and extraction happen inside that flight: the requests that waited for it are
served from the store after it, and the one that started it returns only then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from urllib.parse import urljoin

from aiohttp import web
from cachetools import LRUCache

from proxy.daemon import Daemon
from proxy.formats.pypi.coremeta import metadata_mismatch, wheel_metadata
from proxy.formats.pypi.merge import Offer, Project
from proxy.formats.pypi.names import METADATA_SUFFIX, coordinate, parse_filename
from proxy.formats.pypi.project import ProjectViews
from proxy.formats.pypi.records import find_held
from proxy.repository.fetch import UpstreamInvalid
from proxy.repository.packages import asset_record, record_fetched_asset
from proxy.repository.resolve import NoUpstreamAnswered
from proxy.server.assets import StreamedAsset, blob_response, fetch_streaming
from proxy.store.blobs import BlobError, BlobInfo
from proxy.store.catalog import AssetRecord
from proxy.store.singleflight import SingleFlight
from proxy.store.store import Store
from proxy.upstream.base import UpstreamUnavailable

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


async def store_bytes(store: Store, data: bytes, *, published: bool) -> BlobInfo:
    async with store.ingest() as writer:
        writer.write(data)
        return await writer.commit(published=published)


class Files:
    def __init__(self, daemon: Daemon, views: ProjectViews) -> None:
        self._daemon = daemon
        self._views = views
        self._held: LRUCache[tuple[str, str], AssetRecord] = LRUCache(maxsize=_MAX_REMEMBERED)
        self._downloads: SingleFlight[AssetRecord] = SingleFlight()

    def forget_all(self) -> None:
        """Forget where every file was found (a repository's upstream list changed)."""
        self._held.clear()

    def remember(self, repository: str, asset: AssetRecord) -> None:
        self._held[(repository, asset.name)] = asset

    async def serve(
        self, request: web.Request, repository: str, project: str, filename: str
    ) -> web.StreamResponse:
        try:
            if filename.endswith(METADATA_SUFFIX):
                return await self._serve_metadata(request, repository, project, filename)
            return await self._serve_file(request, repository, project, filename)
        except (UpstreamUnavailable, UpstreamInvalid, NoUpstreamAnswered) as exc:
            raise web.HTTPBadGateway(reason=_one_line(str(exc))) from None

    # -- distribution files -------------------------------------------------------------------------
    async def _serve_file(
        self, request: web.Request, repository: str, project: str, filename: str
    ) -> web.StreamResponse:
        parsed = parse_filename(filename)
        if parsed is None or parsed.project != project:
            raise web.HTTPNotFound(reason=f"{filename} is not a distribution file of project {project}")
        held = self._held.get((repository, filename)) or await self._find_held(
            repository, project, parsed.version, filename
        )
        if held is not None:
            response = await self._respond(request, held)
            if response is not None:
                self.remember(repository, held)
                return response
            self._held.pop((repository, filename), None)  # evicted or broken: fetch it again
        return await self._fetch_and_respond(
            request, DIST_CONTENT_TYPE, partial(self._fetch, repository, project, filename)
        )

    async def _find_held(
        self, repository: str, project: str, version: str, filename: str
    ) -> AssetRecord | None:
        store, places = self._daemon.store, self._daemon.chain.places(repository)
        key = coordinate(project)
        records = [
            r for p in places if p.is_repository and (r := store.catalog.package(p.name, key)) is not None
        ]
        return find_held(records, version, filename)

    async def _fetch(
        self, repository: str, project: str, filename: str, sink: StreamedAsset | None
    ) -> AssetRecord:
        offer, _ = await self._listed(repository, project, filename)
        if offer.source.upstream is None:
            raise web.HTTPBadGateway(
                reason=f"{filename}, published in repository {offer.source.place}, is missing from the store "
                "(see `codeartifact-proxy verify`)"
            )
        return await self._downloads.do(
            (repository, filename), lambda: self._download(repository, project, offer, sink)
        )

    async def _listed(self, repository: str, project: str, filename: str) -> tuple[Offer, Project]:
        """The offer of ``filename`` on the merged page, and that page's project; 404 when not listed."""
        view = await self._views.get(repository, project)
        offer = view.project.offers.get(filename) if view.project is not None else None
        if offer is None or view.project is None:
            raise web.HTTPNotFound(
                reason=f"{filename} is not listed for project {project} in repository {repository}"
            )
        return offer, view.project

    async def _download(
        self, repository: str, project: str, offer: Offer, sink: StreamedAsset | None
    ) -> AssetRecord:
        filename = offer.file.filename
        info = await self._get_from_upstream(offer, "", offer.file.hashes, filename, sink)
        asset = await self._record(repository, project, offer, asset_record(filename, info))
        self.remember(repository, asset)
        if filename.endswith(".whl") and not await self._find_held(
            repository, project, _version(filename), filename + METADATA_SUFFIX
        ):
            await self._extract_metadata(repository, project, offer, asset)
        self._views.invalidate(project)
        return asset

    async def _extract_metadata(
        self, repository: str, project: str, offer: Offer, wheel: AssetRecord
    ) -> None:
        store = self._daemon.store
        try:
            data = await asyncio.to_thread(wheel_metadata, store.blobs, wheel.blob_id, wheel.name)
            problem = metadata_mismatch(data, project, _version(wheel.name))
        except (ValueError, BlobError) as exc:
            problem = str(exc)
        if problem is not None:
            log.warning("no core metadata taken from %s: %s", wheel.name, problem)
            return
        info = await store_bytes(store, data, published=False)
        await self._record(repository, project, offer, asset_record(wheel.name + METADATA_SUFFIX, info))

    async def _record(self, repository: str, project: str, offer: Offer, asset: AssetRecord) -> AssetRecord:
        """Record an asset of the offered file's version, fetched through its upstream."""
        version = _version(offer.file.filename)
        store, upstream = self._daemon.store, offer.source.place
        await record_fetched_asset(store, repository, coordinate(project), version, asset, upstream)
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
        info = await self._daemon.fetcher.asset(
            upstream, "pypi", url, lambda got: digest_mismatch(declared, got, filename), sink
        )
        if info is None:
            raise web.HTTPBadGateway(
                reason=f"upstream {upstream.name} lists {filename} but answered 404 for it"
            )
        return info

    # -- core metadata files (PEP 658) --------------------------------------------------------------
    async def _serve_metadata(
        self, request: web.Request, repository: str, project: str, filename: str
    ) -> web.StreamResponse:
        offer, listed = await self._listed(repository, project, filename[: -len(METADATA_SUFFIX)])
        declared = offer.file.core_metadata
        if declared is None:
            raise web.HTTPNotFound(reason=f"no core metadata is known for {offer.file.filename}")
        held = listed.held.get(filename)
        if held is not None and declared.get("sha256") in (None, held.hashes["SHA-256"]):
            response = await self._respond(request, held)
            if response is not None:
                return response
        if offer.source.upstream is None:
            raise web.HTTPBadGateway(
                reason=f"{filename} is missing from the store (see `codeartifact-proxy verify`)"
            )

        def fetch(sink: StreamedAsset | None) -> Awaitable[AssetRecord]:
            return self._downloads.do(
                (repository, filename),
                lambda: self._download_metadata(repository, project, offer, declared, sink),
            )

        return await self._fetch_and_respond(request, METADATA_CONTENT_TYPE, fetch)

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

    async def _fetch_and_respond(
        self,
        request: web.Request,
        content_type: str,
        fetch: Callable[[StreamedAsset | None], Awaitable[AssetRecord]],
    ) -> web.StreamResponse:
        """A download, streamed to the client that started it; the others are served from the store."""
        fetched = await fetch_streaming(request, content_type, fetch)
        if isinstance(fetched, web.StreamResponse):
            return fetched
        response = await self._respond(request, fetched)
        if response is None:  # evicted in the instant since it was fetched
            raise web.HTTPBadGateway(
                reason=f"{fetched.name} vanished from the store while being served; retry"
            )
        return response

    async def _respond(self, request: web.Request, asset: AssetRecord) -> web.StreamResponse | None:
        content_type = METADATA_CONTENT_TYPE if asset.name.endswith(METADATA_SUFFIX) else DIST_CONTENT_TYPE
        return await blob_response(
            request, self._daemon.store, asset.blob_id, asset.size, content_type, asset.hashes["SHA-256"]
        )


def _one_line(text: str) -> str:
    return " ".join(text.split())
