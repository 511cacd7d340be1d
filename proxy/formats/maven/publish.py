"""``mvn deploy``: PUT of assets, checksum files and maven-metadata.xml into a ``publish = true`` repository.

What Maven sends, in order: each file (``.pom``, ``.jar``, ...) then its ``.sha1`` and ``.md5``; then
the artifact-level ``maven-metadata.xml`` (after a GET of the current one), for a SNAPSHOT first the
version-level one; all with preemptive Basic credentials, ``Expect: 100-continue`` and no Content-Type.

- An asset streams into the store and is committed as published (never evicted), then recorded in the
  repository's catalog as a published package version (CodeArtifact's origin defaults for a new package).
- Refusals (409), decided before the body is sent when the client waits for ``100 Continue``:
  the package came from an upstream and its origin configuration blocks publishing; the file already
  exists in a release version (release versions are immutable). SNAPSHOT versions take any number of
  timestamped builds (a build sent again replaces it).
- A checksum file must match the stored bytes' digest (400 otherwise, as CodeArtifact).
- maven-metadata.xml is checked to be well-formed metadata (400 otherwise) and its checksum files are
  checked against it, but it is not stored: the proxy serves metadata merged from what the repository
  holds (see ``documents``), so it cannot disagree with the files that are really there.

Concurrency: the catalog update re-checks the refusals inside the catalog's read-modify-write, so two
concurrent deploys of one release file cannot both win.
"""

from __future__ import annotations

from aiohttp import web
from cachetools import LRUCache

from proxy.formats.common.http import BodyLimit
from proxy.formats.format import Services
from proxy.formats.maven import checksums
from proxy.formats.maven.assets import Assets, coordinate_of
from proxy.formats.maven.documents import MetadataDocuments
from proxy.formats.maven.metadata import parse
from proxy.formats.maven.paths import ArtifactPath, ChecksumAlgorithm, MavenPath, MetadataPath
from proxy.formats.maven.versions import is_snapshot
from proxy.repository.errors import Refused as DeployRefused
from proxy.repository.origin import publish_refusal
from proxy.repository.packages import asset_record, published_version, update_published
from proxy.store.protocols import PackageCoordinate, PackageRecord

CHUNK = 1 << 16
SMALL_BODY = 1 << 20  # checksum files and maven-metadata.xml
REMEMBERED_UPLOADS = 10_000


class Deployer:
    def __init__(self, services: Services, assets: Assets, documents: MetadataDocuments) -> None:
        self._services = services
        self._assets = assets
        self._documents = documents
        # (repository, metadata path) -> checksums of the maven-metadata.xml a client last uploaded there
        self._uploaded: LRUCache[tuple[str, str], dict[ChecksumAlgorithm, str]] = LRUCache(REMEMBERED_UPLOADS)

    async def precheck(self, repository: str, path: MavenPath) -> None:
        """Refusals that need no body (raise DeployRefused): sent instead of ``100 Continue``."""
        repo = self._services.repositories[repository]
        if not repo.publish:
            raise DeployRefused(403, f"repository {repository} does not accept deploys (publish = false)")
        if isinstance(path, ArtifactPath) and path.checksum is None:
            record = await self._services.catalog.package(repository, coordinate_of(path))
            _refuse(record, repository, path)

    async def deploy(self, request: web.Request, repository: str, path: MavenPath) -> None:
        await self.precheck(repository, path)
        if isinstance(path, MetadataPath):
            body = await _read_small(request)
            if path.checksum is None:
                await self._metadata(repository, path, body)
            else:
                self._metadata_checksum(repository, path, path.checksum, body)
        elif path.checksum is None:
            await self._asset(request, repository, path)
        else:
            await self._asset_checksum(repository, path, path.checksum, await _read_small(request))

    async def _asset(self, request: web.Request, repository: str, path: ArtifactPath) -> None:
        limit = BodyLimit(request.client_max_size)
        async with self._services.blobs.ingest() as writer:
            async for chunk in request.content.iter_chunked(CHUNK):
                writer.write(limit.count(chunk))
            writer.finish()
            info = await writer.commit(published=True)
        asset = asset_record(path.filename, info)

        def change(record: PackageRecord) -> None:
            _refuse(record, repository, path)
            version = record.versions.get(path.version)
            if version is None:
                version = record.versions[path.version] = published_version(path.version, repository, [], {})
            version.assets[asset.name] = asset

        await update_published(self._services.catalog, repository, coordinate_of(path), change)
        self._assets.forget(repository, path)
        self._documents.invalidate(coordinate_of(path))

    async def _asset_checksum(
        self, repository: str, path: ArtifactPath, algorithm: ChecksumAlgorithm, body: bytes
    ) -> None:
        uploaded = _checksum(body, algorithm, path.filename)
        record = await self._services.catalog.package(repository, coordinate_of(path))
        version = record.versions.get(path.version) if record else None
        asset = version.assets.get(path.filename) if version else None
        if asset is None:
            raise DeployRefused(
                400, f"no {path.filename} in repository {repository} to check this checksum against"
            )
        stored = checksums.of_asset(asset, algorithm)
        if uploaded != stored:
            raise DeployRefused(
                400,
                f"checksum mismatch for {path.filename}: uploaded {algorithm} {uploaded}, "
                f"the stored file has {stored}",
            )

    async def _metadata(self, repository: str, path: MetadataPath, body: bytes) -> None:
        try:
            parse(body)
        except ValueError as exc:
            raise DeployRefused(400, f"{path.document_path}: {exc}") from None
        self._uploaded[(repository, path.document_path)] = checksums.of_bytes(body)
        self._documents.invalidate(PackageCoordinate("maven", path.group, path.artifact or ""))

    def _metadata_checksum(
        self, repository: str, path: MetadataPath, algorithm: ChecksumAlgorithm, body: bytes
    ) -> None:
        uploaded = _checksum(body, algorithm, path.document_path)
        known = self._uploaded.get((repository, path.document_path))
        if known is not None and known[algorithm] != uploaded:
            raise DeployRefused(
                400,
                f"checksum mismatch for {path.document_path}: uploaded {algorithm} {uploaded}, "
                f"the uploaded file has {known[algorithm]}",
            )


def _refuse(record: PackageRecord | None, repository: str, path: ArtifactPath) -> None:
    reason = publish_refusal(record, repository, f"{path.group}:{path.artifact}")
    if reason is not None:
        raise DeployRefused(409, reason)
    if record is None or is_snapshot(path.version) or path.version not in record.versions:
        return
    if path.filename in record.versions[path.version].assets:
        raise DeployRefused(
            409,
            f"{path.group}:{path.artifact} {path.version} already has {path.filename} in repository "
            f"{repository}; a release version cannot be changed",
        )


def _checksum(body: bytes, algorithm: ChecksumAlgorithm, name: str) -> str:
    try:
        return checksums.parse_checksum(body, algorithm)
    except ValueError as exc:
        raise DeployRefused(400, f"{name}.{algorithm}: {exc}") from None


async def _read_small(request: web.Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(CHUNK):
        size += len(chunk)
        if size > SMALL_BODY:
            raise DeployRefused(
                413, f"{request.path}: a checksum or metadata file larger than {SMALL_BODY} bytes"
            )
        chunks.append(chunk)
    return b"".join(chunks)
