"""``npm publish`` and ``npm dist-tag`` into a repository with ``publish = true``.

npm publishes with ``PUT /{name}``: a packument holding the new version documents, ``dist-tags`` and
``_attachments`` (base64 tarballs with their length). The body is streamed (``publish_body``): each
tarball is decoded into the store as it arrives, never held whole, and its digests come from the store's
writer. Each attachment is then checked against its declared length, ``dist.integrity`` and
``dist.shasum``; the tarball is stored as published (pinned, never evicted) and the version recorded
with its version document as metadata. An existing version is refused (409, as npm expects), and so is
a package whose origin controls block publishing (one first fetched from an upstream). The body counts
against ``server.max_publish_size`` as it streams (413), with or without a Content-Length.

Nothing is left behind by a refused publish: tarballs are committed only after every check of the
document passed, held (``BlobService.hold``) until the catalog recorded them, and removed again when
the catalog refuses (``release``). A body that breaks off or is not a publish document aborts them.

Concurrency: the checks run again inside the catalog's read-modify-write (``update_published``), so two
publishes of one version racing each other record one and refuse the other.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from aiohttp import StreamReader
from aiohttp.http_exceptions import HttpProcessingError

from proxy.formats.npm.integrity import Digests, mismatch, sri
from proxy.formats.npm.metadata import Document
from proxy.formats.npm.names import InvalidName, PackageName, check_version
from proxy.formats.npm.publish_body import PublishBody
from proxy.repository.errors import Refused as PublishRefused
from proxy.repository.origin import publish_refusal
from proxy.repository.packages import asset_record, published_version, update_published
from proxy.store.protocols import AssetIngest, BlobInfo, BlobService, CatalogService, PackageRecord
from proxy.store.store import offload

# Body bytes scanned per hop to a worker thread: large enough that the hops cost nothing, small enough
# that a publish holds little memory.
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class NewVersion:
    version: str
    document: Document  # the version document as recorded (dist holds the digests we computed)
    attachment: int  # which tarball of the body (``PublishBody.tarballs``)


@dataclass(frozen=True)
class PublishRequest:
    versions: list[NewVersion]
    dist_tags: dict[str, str]


def check_publish(package: PackageName, doc: object, tarballs: Sequence[BlobInfo]) -> PublishRequest:
    """Check npm's publish document (``PublishBody.finish``) against the tarballs it carried, as stored
    (``tarballs[i]``: the i-th attachment); raises PublishRefused (400) with the reason."""
    if not isinstance(doc, dict):
        raise PublishRefused(400, "the publish request is not a JSON object")
    if doc.get("name") != package.full:
        raise PublishRefused(
            400, f"the document's name {doc.get('name')!r} is not the package {package.full!r}"
        )
    versions, attachments = doc.get("versions"), doc.get("_attachments")
    if not isinstance(versions, dict) or not versions:
        raise PublishRefused(400, "the publish request holds no version")
    if not isinstance(attachments, dict) or not attachments:
        raise PublishRefused(
            400, "the publish request holds no tarball (_attachments); only publishing is supported"
        )
    new = [
        _new_version(package, v, vdoc, _attachment(package, v, attachments, len(versions)), tarballs)
        for v, vdoc in versions.items()
    ]
    tags = doc.get("dist-tags")
    published = {v.version for v in new}
    dist_tags = {t: v for t, v in tags.items() if v in published} if isinstance(tags, dict) else {}
    return PublishRequest(new, dist_tags)


def _attachment(
    package: PackageName, version: str, attachments: dict[str, Any], count: int
) -> dict[str, Any]:
    for key in (f"{package.full}-{version}.tgz", package.tarball_file(version)):
        if isinstance(attachments.get(key), dict):
            return attachments[key]
    if count == 1 and len(attachments) == 1:
        only = next(iter(attachments.values()))
        if isinstance(only, dict):
            return only
    raise PublishRefused(400, f"no tarball attached for {package.full} {version}")


def _new_version(
    package: PackageName,
    version: str,
    vdoc: object,
    attachment: dict[str, Any],
    tarballs: Sequence[BlobInfo],
) -> NewVersion:
    try:
        check_version(version)
    except InvalidName as exc:
        raise PublishRefused(400, str(exc)) from None
    if not isinstance(vdoc, dict) or vdoc.get("version") != version or vdoc.get("name") != package.full:
        raise PublishRefused(400, f"version document {version} does not name {package.full} {version}")
    data = attachment.get("data")  # a string was taken out of the body: it is the tarball's index
    index = int(data) if isinstance(data, str) else None
    if index is None or tarballs[index].size == 0:
        raise PublishRefused(400, f"the tarball of {version} is empty")
    tarball = tarballs[index]
    length = attachment.get("length")
    if length is not None and length != tarball.size:
        raise PublishRefused(
            400, f"the tarball of {version} has {tarball.size} bytes, not the {length} declared"
        )
    dist = vdoc.get("dist") if isinstance(vdoc.get("dist"), dict) else {}
    digests = Digests(tarball.sha512, tarball.sha256, tarball.sha1)
    problem = mismatch(_text(dist.get("integrity")), _text(dist.get("shasum")), digests)
    if problem is not None:
        raise PublishRefused(400, f"the tarball of {version} does not match its declared digests: {problem}")
    recorded = {k: v for k, v in dist.items() if k != "tarball"} | {
        "integrity": sri("sha512", tarball.sha512),
        "shasum": tarball.sha1,
    }
    document = {k: v for k, v in vdoc.items() if k != "dist"} | {"dist": recorded}
    return NewVersion(version, document, index)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


# -- receiving ------------------------------------------------------------------------------------
async def _chunks(content: StreamReader, max_size: int) -> AsyncIterator[bytes]:
    """The body in chunks of about ``CHUNK`` bytes; 413 once more than ``max_size`` arrived, 400 when
    the body breaks off (the client went away, a malformed chunked encoding)."""
    batch = bytearray()
    received = 0
    while True:
        try:
            data = await content.readany()
        except (ConnectionError, HttpProcessingError):
            raise PublishRefused(400, "the publish request's body ended early; nothing was stored") from None
        received += len(data)
        if received > max_size:
            raise PublishRefused(
                413,
                f"the publish request is over the limit of {max_size} bytes "
                "(server.max_publish_size); nothing was stored",
            )
        batch += data
        if not data or len(batch) >= CHUNK:
            if batch:
                yield bytes(batch)
                batch.clear()
            if not data:
                return


def _write(writers: list[AssetIngest], pieces: list[tuple[int, bytes]]) -> None:
    for index, data in pieces:
        writers[index].write(data)


async def _receive(
    content: StreamReader, max_size: int, blobs: BlobService, stack: AsyncExitStack
) -> tuple[object, list[AssetIngest]]:
    """Stream the body: the parsed document, and one uncommitted writer per tarball (aborted with
    ``stack``); raises PublishRefused."""
    body = PublishBody()
    writers: list[AssetIngest] = []
    async for chunk in _chunks(content, max_size):
        # Scanning, decoding, hashing and encrypting a megabyte would hold up other requests.
        pieces = await offload(len(chunk), functools.partial(body.feed, chunk))
        while len(writers) < len(body.tarballs):
            writers.append(await stack.enter_async_context(blobs.ingest()))
        await offload(sum(len(d) for _, d in pieces), functools.partial(_write, writers, pieces))
    doc = await offload(CHUNK, body.finish)
    while len(writers) < len(body.tarballs):  # empty ones, which no chunk wrote to
        writers.append(await stack.enter_async_context(blobs.ingest()))
    return doc, writers


# -- recording ------------------------------------------------------------------------------------
def _refuse_existing(
    record: PackageRecord | None, repository: str, package: PackageName, versions: list[str]
) -> None:
    refusal = publish_refusal(record, repository, package.full)
    if refusal is not None:
        raise PublishRefused(409, refusal)
    taken = [v for v in versions if record is not None and v in record.versions]
    if taken:
        raise PublishRefused(
            409, f"cannot publish over the previously published versions: {', '.join(taken)}"
        )


async def publish(
    catalog: CatalogService,
    blobs: BlobService,
    repository: str,
    package: PackageName,
    content: StreamReader,
    max_size: int,
) -> None:
    """Take the publish body streaming from ``content`` (at most ``max_size`` bytes): store the tarballs
    (pinned) and record the versions and dist-tags; raises PublishRefused (400, 409, 413), and then
    leaves no tarball in the store."""
    async with AsyncExitStack() as stack:
        doc, writers = await _receive(content, max_size, blobs, stack)
        request = check_publish(package, doc, [writer.finish() for writer in writers])
        versions = [v.version for v in request.versions]
        _refuse_existing(await catalog.package(repository, package.coordinate), repository, package, versions)
        stored: dict[int, BlobInfo] = {}
        held: list[str] = []
        refused = False
        try:
            for new in request.versions:
                if new.attachment not in stored:
                    writer = writers[new.attachment]
                    stored[new.attachment] = await writer.commit(published=True)
                    if writer.created:  # a refusal below removes it again (see BlobService.release)
                        blobs.hold(stored[new.attachment].blob_id)
                        held.append(stored[new.attachment].blob_id)
            await _record(catalog, repository, package, request, stored)
        except PublishRefused:
            refused = True  # only a refusal: after another failure the catalog may reference the blob
            raise
        finally:
            for blob_id in held:
                blobs.release(blob_id, refused=refused)


async def _record(
    catalog: CatalogService,
    repository: str,
    package: PackageName,
    request: PublishRequest,
    stored: dict[int, BlobInfo],
) -> None:
    versions = [v.version for v in request.versions]
    recorded = [
        published_version(
            new.version,
            repository,
            [asset_record(package.tarball_file(new.version), stored[new.attachment])],
            new.document,
        )
        for new in request.versions
    ]

    def change(current: PackageRecord) -> None:
        _refuse_existing(current if current.versions else None, repository, package, versions)
        for version in recorded:
            current.versions[version.version] = version
        current.dist_tags.update(request.dist_tags)
        if "latest" not in current.dist_tags:
            current.dist_tags["latest"] = versions[-1]

    await update_published(catalog, repository, package.coordinate, change)


def _published_record(record: PackageRecord | None, repository: str, package: PackageName) -> PackageRecord:
    if record is None or not any(v.origin.origin_type == "INTERNAL" for v in record.versions.values()):
        raise PublishRefused(404, f"package {package.full} is not published in repository {repository}")
    return record


async def set_dist_tag(
    catalog: CatalogService, repository: str, package: PackageName, tag: str, version: str | None
) -> None:
    """``npm dist-tag add`` (``version``) or ``rm`` (None) on a package published in ``repository``."""
    if version is None and tag == "latest":
        raise PublishRefused(400, "the latest dist-tag cannot be removed")

    def change(record: PackageRecord) -> None:
        _published_record(record if record.versions else None, repository, package)
        if version is None:
            if tag not in record.dist_tags:
                raise PublishRefused(404, f"package {package.full} has no dist-tag {tag!r}")
            del record.dist_tags[tag]
            return
        if version not in record.versions:
            raise PublishRefused(
                404, f"package {package.full} has no version {version} in repository {repository}"
            )
        record.dist_tags[tag] = version

    current = await catalog.package(repository, package.coordinate)
    _published_record(current, repository, package)
    await update_published(catalog, repository, package.coordinate, change)
