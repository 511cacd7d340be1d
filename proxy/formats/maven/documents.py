"""Merged maven-metadata.xml of a repository: resolved along its chain, rendered once per change.

``resolve()`` walks the chain: a local repository contributes what its catalog holds (the versions of
the package it publishes or has cached; for a SNAPSHOT version, metadata made from the timestamped
builds it holds), an upstream its own document through the Fetcher (TTL, revalidation, stale-if-error;
a body that is not metadata is a 502 and never cached). The answers are merged (``metadata.merge``) and
rendered; the rendered bytes, their gzip form and their checksums are kept in memory.

Version-level SNAPSHOT metadata of a local repository is always made from the builds it holds, never
taken from what a client uploaded: the build number and timestamps in it are then those of files the
repository really has, whatever a client sent.

Concurrency: one refresh per document at a time (single flight); readers within ``RECHECK`` seconds of
the last refresh get the kept rendering without touching the catalog or the Fetcher. A refresh that
merges to the same document keeps the same bytes (and ETag). ``invalidate()`` (on every deploy) drops
everything, and a refresh that started before it does not store its result.
"""

from __future__ import annotations

import gzip
import time
from dataclasses import dataclass

from cachetools import LRUCache

from proxy.daemon import Daemon
from proxy.formats.maven import checksums
from proxy.formats.maven.metadata import (
    MavenMetadata,
    artifact_metadata,
    merge,
    parse,
    render,
    snapshot_metadata,
)
from proxy.formats.maven.paths import ChecksumAlgorithm, MetadataPath, upstream_url
from proxy.repository.resolve import resolve
from proxy.store.catalog import PackageCoordinate, PackageRecord
from proxy.store.singleflight import SingleFlight
from proxy.upstream.base import Upstream

RECHECK = 30.0  # seconds a rendering is served before the chain is asked again (at most the metadata TTL)
KEPT_DOCUMENTS = 20_000


@dataclass(frozen=True)
class Rendered:
    body: bytes
    gzipped: bytes
    checksums: dict[ChecksumAlgorithm, str]
    stale: bool  # some upstream's part was served from cache past its TTL

    @property
    def etag(self) -> str:
        return self.checksums["sha256"][:32]


@dataclass(frozen=True)
class _Kept:
    fresh_until: float
    merged: MavenMetadata | None
    rendered: Rendered | None


class MetadataDocuments:
    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._recheck = min(RECHECK, daemon.config.cache.metadata_ttl)
        self._kept: LRUCache[tuple[str, str], _Kept] = LRUCache(KEPT_DOCUMENTS)
        self._refreshing: SingleFlight[Rendered | None] = SingleFlight()
        self._generation = 0

    def invalidate(self) -> None:
        self._generation += 1
        self._kept.clear()

    async def rendered(self, repository: str, path: MetadataPath) -> Rendered | None:
        """The merged document, or None when no place of the chain has one. Raises NoUpstreamAnswered
        when every upstream failed and nothing is known."""
        key = (repository, path.document_path)
        kept = self._kept.get(key)
        if kept is not None and kept.fresh_until > time.monotonic():
            return kept.rendered
        return await self._refreshing.do(key, lambda: self._refresh(key, repository, path, kept))

    async def _refresh(
        self, key: tuple[str, str], repository: str, path: MetadataPath, kept: _Kept | None
    ) -> Rendered | None:
        generation = self._generation
        coordinate = PackageCoordinate("maven", path.group, path.artifact or "")
        resolution = await resolve(
            self._daemon.store,
            self._daemon.chain.places(repository),
            coordinate,
            lambda _repository, record: _local_document(record, path),
            lambda upstream: self._remote_document(upstream, path),
        )
        merged = (
            merge((doc for _, doc in resolution.found), resolution.unlisted) if resolution.found else None
        )
        if (
            kept is not None
            and kept.merged == merged
            and (kept.rendered is None or kept.rendered.stale == resolution.stale)
        ):
            rendered = kept.rendered
        else:
            rendered = _render(merged, resolution.stale) if merged is not None else None
        if generation == self._generation:
            self._kept[key] = _Kept(time.monotonic() + self._recheck, merged, rendered)
        return rendered

    async def _remote_document(
        self, upstream: Upstream, path: MetadataPath
    ) -> tuple[MavenMetadata, bool] | None:
        fetched = await self._daemon.fetcher.metadata(
            upstream, "maven", upstream_url(path.document_path), parse
        )
        if fetched is None:
            return None
        return fetched.parsed(), fetched.stale


def _local_document(record: PackageRecord, path: MetadataPath) -> MavenMetadata | None:
    """What a local repository's catalog says for this metadata path (published or cached versions)."""
    if path.artifact is None:
        return None
    versions = {v: pv for v, pv in record.versions.items() if pv.status == "Published"}
    if path.version is not None:
        held = versions.get(path.version)
        return snapshot_metadata(path.group, path.artifact, path.version, held.assets) if held else None
    if not versions:
        return None
    return artifact_metadata(path.group, path.artifact, {v: pv.published_time for v, pv in versions.items()})


def _render(doc: MavenMetadata, stale: bool) -> Rendered:
    body = render(doc)
    return Rendered(body, gzip.compress(body, mtime=0), checksums.of_bytes(body), stale)
