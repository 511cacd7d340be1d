"""Maven assets (jars, POMs, any classifier and extension): from the store when a local repository of
the chain holds them, else from the first upstream in chain order that has them, verified and stored.

Cold path: the catalog of every local repository of the chain, in order (published packages, and
what earlier requests cached into them). A package published in a local repository of the chain
blocks upstream versions (origin controls): its assets come only from there. Otherwise the upstreams
are tried in order; a 404 moves on to the next, an upstream that fails is skipped and, when no other
has the asset, the answer is a 502 (never a 404). Before downloading, the upstream's ``.sha1`` (or
``.sha256`` when it has no ``.sha1``) is read; the download (``Fetcher.asset``) is committed only if
the digests match, else it is a 502 and nothing is stored. The GET that starts a download receives it
as it arrives, its last piece only after the check (``serve_asset``); once bytes went out, a failure
cuts the transfer short instead of moving on to the next upstream. The asset is recorded in the catalog of
the repository the client asked. An upstream's "not there" is remembered in the store's metadata cache
(see ``_fetch``), so a build that went through while the upstreams were up also goes through while
they are down.

Warm path: an in-memory map (repository, path) -> asset, so a warm asset costs no catalog read, only
the blob's streaming. A blob found gone (evicted, broken) drops the entry and the asset is located again.

Concurrency: concurrent misses for one asset share one locate (single flight keyed by repository and
path): one checksum read, one download, one catalog write.
"""

from __future__ import annotations

import logging
from functools import partial

from aiohttp import web
from cachetools import LRUCache

from proxy.daemon import Daemon
from proxy.formats.maven import checksums
from proxy.formats.maven.paths import ArtifactPath, ChecksumAlgorithm, upstream_url
from proxy.repository.fetch import NOT_FOUND_TTL, UpstreamInvalid
from proxy.repository.origin import upstream_blocked
from proxy.repository.packages import asset_record, record_fetched_asset
from proxy.repository.status import unfetchable
from proxy.server.assets import StreamedAsset, serve_asset
from proxy.store.blobs import BlobInfo
from proxy.store.catalog import AssetRecord, PackageCoordinate, PackageRecord
from proxy.store.metadata import CachedDocument
from proxy.store.singleflight import SingleFlight
from proxy.upstream.base import Upstream, UpstreamUnavailable

log = logging.getLogger(__name__)

KNOWN_ASSETS = 200_000  # entries of the warm map; each is a few hundred bytes
_NOT_FOUND = "maven-asset-not-found"  # metadata cache entries: (this, upstream, asset path) -> a 404
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
    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._known: LRUCache[tuple[str, str], AssetRecord] = LRUCache(KNOWN_ASSETS)
        self._locating: SingleFlight[AssetRecord] = SingleFlight()

    async def serve(self, request: web.Request, repository: str, path: ArtifactPath) -> web.StreamResponse:
        key = (repository, path.asset_path)
        locate = partial(self.locate, repository, path)
        return await serve_asset(
            request, self._daemon.store, content_type(path.filename), self._known, key, locate
        )

    async def locate(
        self, repository: str, path: ArtifactPath, sink: StreamedAsset | None = None
    ) -> AssetRecord:
        """The asset's record (its blob, size and digests), fetching it first when no place holds it. A
        download goes to ``sink`` as it arrives when this call starts it (see ``fetch_streaming``)."""
        key = (repository, path.asset_path)
        asset = self._known.get(key)
        if asset is None:
            asset = await self._locating.do(key, lambda: self._locate(repository, path, sink))
            self._known[key] = asset
        return asset

    def forget(self, repository: str, path: ArtifactPath) -> None:
        self._known.pop((repository, path.asset_path), None)

    async def _locate(self, repository: str, path: ArtifactPath, sink: StreamedAsset | None) -> AssetRecord:
        store = self._daemon.store
        places = self._daemon.chain.places(repository)
        coordinate = coordinate_of(path)
        records = {p.name: store.catalog.package(p.name, coordinate) for p in places if p.is_repository}
        refused = unfetchable((r for r in records.values() if r is not None), path.version)
        if refused is not None:
            raise web.HTTPNotFound(reason=f"{path.group}:{path.artifact} {path.version} is {refused}")
        for record in records.values():
            held = _held(record, path)
            if held is not None and store.has_blob(held.blob_id):
                return held
        blocking = next((name for name, record in records.items() if upstream_blocked(record)), None)
        if blocking is not None:
            raise web.HTTPNotFound(
                reason=f"{path.filename} is not in repository {blocking}, where {path.group}:{path.artifact} "
                "is published; its origin configuration blocks upstream versions"
            )
        failures: list[str] = []
        for place in places:
            if place.upstream is None:
                continue
            try:
                info = await self._fetch(place.upstream, path, sink)
            except UpstreamUnavailable as exc:
                if sink is not None and sink.started:
                    raise  # the client has part of this upstream's file: no other upstream can go on with it
                log.warning("%s", exc)
                failures.append(str(exc))
                continue
            if info is not None:
                asset = asset_record(path.filename, info)
                await record_fetched_asset(store, repository, coordinate, path.version, asset, place.name)
                return asset
        if failures:
            raise web.HTTPBadGateway(reason=f"{path.asset_path}: " + "; ".join(failures))
        raise web.HTTPNotFound(reason=f"{path.asset_path} is not in repository {repository} or its upstreams")

    async def _fetch(
        self, upstream: Upstream, path: ArtifactPath, sink: StreamedAsset | None
    ) -> BlobInfo | None:
        """The asset from this upstream; None when it does not have it. A "not there" is remembered: for
        NOT_FOUND_TTL it saves asking again, and past that it stands in for the answer while the upstream
        cannot be reached (Maven goes on without an optional POM that is missing, but stops on an error)."""
        store = self._daemon.store
        key = (_NOT_FOUND, upstream.name, path.asset_path)
        absent = store.metadata.get(*key)
        if absent is not None and absent.age() < NOT_FOUND_TTL:
            return None
        try:
            info = await self._download(upstream, path, sink)
        except UpstreamUnavailable as exc:
            if absent is None or (sink is not None and sink.started):
                raise
            log.warning(
                "%s; %s was not there when last asked, so it is taken as still missing", exc, path.asset_path
            )
            return None
        if info is None:
            store.metadata.put(CachedDocument(404, b""), *key)
        elif absent is not None:
            store.metadata.delete(*key)
        return info

    async def _download(
        self, upstream: Upstream, path: ArtifactPath, sink: StreamedAsset | None
    ) -> BlobInfo | None:
        url = upstream_url(path.asset_path)
        expected = await self._expected_digest(upstream, url)

        def check(info: BlobInfo) -> str | None:
            if expected is None:
                return None
            algorithm, digest = expected
            actual = checksums.of_blob(info, algorithm)
            if actual == digest:
                return None
            return f"{path.asset_path}: {algorithm} is {actual}, its .{algorithm} file says {digest}"

        return await self._daemon.fetcher.asset(upstream, "maven", url, check, sink)

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


def _held(record: PackageRecord | None, path: ArtifactPath) -> AssetRecord | None:
    if record is None or path.version not in record.versions:
        return None
    return record.versions[path.version].assets.get(path.filename)
