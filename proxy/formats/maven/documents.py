"""Merged maven-metadata.xml of a repository: resolved along its chain, rendered once per change.

``resolve()`` walks the chain: a local repository contributes what its catalog holds (the versions of
the package it publishes or has cached; for a SNAPSHOT version, metadata made from the timestamped
builds it holds), an upstream its own document through the Fetcher (TTL, revalidation, stale-if-error;
a body that is not metadata is a 502 and never cached). The answers are merged (``metadata.merge``) and
rendered; the rendered bytes, their gzip form and their checksums are kept in memory.

Version-level SNAPSHOT metadata of a local repository is always made from the builds it holds, never
taken from what a client uploaded: the build number and timestamps in it are then those of files the
repository really has, whatever a client sent.

The documents live in the shared merged-document cache (``proxy.formats.common.documents``: single
flight, generation, memory budget): readers within ``RECHECK`` seconds of the last refresh get the kept
rendering without touching the catalog or the Fetcher. A refresh that merges to the same document
keeps the same bytes (and ETag). ``invalidate(package)`` (on every deploy) drops the package's
documents, and a refresh that started before it does not store its result.
"""

from __future__ import annotations

import time
from dataclasses import replace

from proxy.formats.common.documents import MergedDocuments, Rendered, Resolution
from proxy.formats.format import Services
from proxy.formats.maven import checksums
from proxy.formats.maven.metadata import (
    MavenMetadata,
    artifact_metadata,
    merge,
    parse,
    render,
    snapshot_metadata,
)
from proxy.formats.maven.paths import MetadataPath, upstream_url
from proxy.repository.resolve import resolve
from proxy.store.protocols import PackageCoordinate, PackageRecord
from proxy.upstream.base import Upstream

RECHECK = 30.0  # seconds a rendering is served before the chain is asked again (at most the metadata TTL)


class MetadataDocuments:
    def __init__(self, services: Services) -> None:
        self._services = services
        self._recheck = min(RECHECK, services.metadata_ttl)
        self._documents: MergedDocuments[MetadataPath, MavenMetadata] = MergedDocuments(
            self._resolve, _package, budget=services.documents_memory
        )
        services.warm.add("maven metadata", self._documents)

    @property
    def resolved(self) -> int:
        """Documents resolved along the chain so far (not fresh in memory)."""
        return self._documents.resolved

    def invalidate(self, package: PackageCoordinate) -> None:
        """Forget the package's documents (artifact and SNAPSHOT version level) in every repository."""
        self._documents.invalidate(f"{package.namespace}:{package.name}")

    def invalidate_all(self) -> None:
        """Forget every merged view in every repository."""
        self._documents.invalidate_all()

    async def rendered(self, repository: str, path: MetadataPath) -> tuple[Rendered, bool] | None:
        """The merged document and whether some upstream's part of it is stale; None when no place of
        the chain has one. Raises NoUpstreamAnswered when every upstream failed and nothing is known."""
        key = replace(path, checksum=None)
        entry = await self._documents.get(repository, key)
        if not entry.found:
            return None
        return await self._documents.rendered(repository, key, entry, None, _render), entry.stale

    async def _resolve(self, repository: str, path: MetadataPath) -> Resolution[MavenMetadata]:
        coordinate = PackageCoordinate("maven", path.group, path.artifact or "")
        resolution = await resolve(
            self._services.catalog,
            self._services.chain.places(repository),
            coordinate,
            lambda _repository, record: _local_document(record, path),
            lambda upstream: self._remote_document(upstream, path),
        )
        hidden = resolution.unlisted
        merged = merge((doc for _, doc in resolution.found), hidden) if resolution.found else None
        # The merged document is its own fingerprint: an unchanged one keeps its rendering and ETag.
        return Resolution(
            merged,
            time.time() + self._recheck,
            resolution.stale,
            0,
            lambda _: merged,
            hidden,
            merged is not None,
        )

    async def _remote_document(
        self, upstream: Upstream, path: MetadataPath
    ) -> tuple[MavenMetadata, bool] | None:
        fetched = await self._services.fetcher.metadata(
            upstream, "maven", upstream_url(path.document_path), parse
        )
        if fetched is None:
            return None
        return fetched.parsed(), fetched.stale


def _package(path: MetadataPath) -> str:
    return f"{path.group}:{path.artifact or ''}"


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


def _render(doc: MavenMetadata) -> Rendered:
    body = render(doc)
    return Rendered.of(body, "text/xml", checksums.of_bytes(body))
