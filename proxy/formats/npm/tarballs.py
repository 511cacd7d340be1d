"""Serving package tarballs: from the store when the repository's catalog has them, else fetched from
the place the merged packument took the version from, verified, stored and recorded.

Warm path: an in-memory map (repository, package, file) -> asset, so a warm tarball costs no catalog
read, only the blob's streaming. A blob found gone (evicted, broken) drops the entry and the tarball is
located again.

Cold path: the catalog (an earlier fetch or a publish into this repository), then the merged
packument's VersionSource: a version published in a local repository of the chain is served from that
repository's asset; an upstream version is downloaded with ``Fetcher.asset`` and checked against
``dist.integrity``/``dist.shasum`` before anything is committed. The client whose GET started the
download receives the tarball while it is stored (``StreamedAsset``), its last piece only after the
check; a mismatch then aborts its transfer (or is a 502 when nothing was sent yet), names the upstream
in the log, and nothing is stored or recorded.

Concurrency: concurrent misses for one tarball share one locate (single flight keyed by repository,
package and file), so 100 clients cost one upstream fetch and one catalog write; all but the first
are served from the store once the tarball is committed.
"""

from __future__ import annotations

from functools import partial

from aiohttp import web
from cachetools import LRUCache

from proxy.daemon import Daemon
from proxy.formats.npm.integrity import Digests, mismatch
from proxy.formats.npm.metadata import VersionSource
from proxy.formats.npm.names import PackageName
from proxy.formats.npm.packuments import Packuments
from proxy.repository.packages import asset_record, find_asset, record_fetched_asset
from proxy.server.assets import StreamedAsset, serve_asset
from proxy.store.blobs import BlobInfo
from proxy.store.catalog import AssetRecord
from proxy.store.singleflight import SingleFlight

CONTENT_TYPE = "application/octet-stream"
KNOWN_TARBALLS = 200_000  # entries of the warm map; each is a few hundred bytes


class Tarballs:
    def __init__(self, daemon: Daemon, packuments: Packuments) -> None:
        self._daemon = daemon
        self._packuments = packuments
        self._known: LRUCache[tuple[str, str, str], AssetRecord] = LRUCache(KNOWN_TARBALLS)
        self._locating: SingleFlight[AssetRecord] = SingleFlight()

    def forget_all(self) -> None:
        """Forget where every tarball was found (a repository's upstream list changed)."""
        self._known.clear()

    async def serve(
        self, request: web.Request, repository: str, package: PackageName, file: str
    ) -> web.StreamResponse:
        key = (repository, package.full, file)
        locate = partial(self._locate_once, key, repository, package, file)
        return await serve_asset(request, self._daemon.store, CONTENT_TYPE, self._known, key, locate)

    async def _locate_once(
        self,
        key: tuple[str, str, str],
        repository: str,
        package: PackageName,
        file: str,
        sink: StreamedAsset | None,
    ) -> AssetRecord:
        """One locate per tarball however many requests ask at once; only the first one's sink is used."""
        asset = await self._locating.do(key, lambda: self._locate(repository, package, file, sink))
        self._known[key] = asset
        return asset

    async def _locate(
        self, repository: str, package: PackageName, file: str, sink: StreamedAsset | None
    ) -> AssetRecord:
        version = package.version_of(file)
        assert version is not None, "the path parser only lets tarball names of the package through"
        stored = await self._stored(repository, package, version, file)
        if stored is not None:
            return stored
        entry = await self._packuments.lookup(repository, package)
        if entry.packument is None or version not in entry.packument.versions:
            raise web.HTTPNotFound(
                reason=f"package {package.full} has no version {version} in repository {repository}"
            )
        source = entry.packument.sources[version]
        if not source.upstream:
            published = await self._stored(source.place, package, version, file)
            if published is None:
                raise web.HTTPNotFound(
                    reason=f"tarball of {package.full} {version} is missing from repository {source.place}"
                )
            return published
        info = await self._fetch(source, package, version, sink)
        asset = asset_record(file, info)
        store = self._daemon.store
        await record_fetched_asset(store, repository, package.coordinate, version, asset, source.place)
        return asset

    async def _stored(
        self, repository: str, package: PackageName, version: str, file: str
    ) -> AssetRecord | None:
        store = self._daemon.store
        asset = await find_asset(store, repository, package.coordinate, version, file)
        # One stat of a local file: cheaper inline than a hop to a worker thread.
        if asset is None or not store.has_blob(asset.blob_id):
            return None
        return asset

    async def _fetch(
        self, source: VersionSource, package: PackageName, version: str, sink: StreamedAsset | None
    ) -> BlobInfo:
        upstream = self._daemon.upstreams[source.place]
        if not source.tarball:
            raise web.HTTPBadGateway(
                reason=f"upstream {source.place} lists {package.full} {version} without a tarball URL"
            )

        def check(info: BlobInfo) -> str | None:
            problem = mismatch(source.integrity, source.shasum, Digests(info.sha512, info.sha256, info.sha1))
            return f"tarball of {package.full} {version}: {problem}" if problem else None

        info = await self._daemon.fetcher.asset(upstream, "npm", source.tarball, check, sink)
        if info is None:
            raise web.HTTPBadGateway(
                reason=f"upstream {source.place} lists {package.full} {version} but has no tarball for it"
            )
        return info
