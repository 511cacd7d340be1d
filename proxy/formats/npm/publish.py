"""``npm publish`` and ``npm dist-tag`` into a repository with ``publish = true``.

npm publishes with ``PUT /{name}``: a packument holding the new version documents, ``dist-tags`` and
``_attachments`` (base64 tarballs with their length). Each attachment is checked against its declared
length, ``dist.integrity`` and ``dist.shasum``; the tarball is stored as published (pinned, never
evicted) and the version recorded with its version document as metadata. An existing version is
refused (409, as npm expects), and so is a package whose origin controls block publishing (one first
fetched from an upstream).

Concurrency: the checks run again inside the catalog's read-modify-write (``update_published``), so two
publishes of one version racing each other record one and refuse the other; the loser's blob is left
unreferenced for ``gc``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from proxy.formats.npm.integrity import Digests, mismatch, sri
from proxy.formats.npm.metadata import Document
from proxy.formats.npm.names import InvalidName, PackageName, check_version
from proxy.repository.errors import Refused as PublishRefused
from proxy.repository.origin import publish_refusal
from proxy.repository.packages import asset_record, published_version, update_published
from proxy.store.protocols import BlobService, CatalogService, PackageRecord
from proxy.store.store import offload


@dataclass(frozen=True)
class NewVersion:
    version: str
    document: Document  # the version document as recorded (dist holds the digests we computed)
    tarball: bytes


@dataclass(frozen=True)
class PublishRequest:
    versions: list[NewVersion]
    dist_tags: dict[str, str]


def parse_publish(package: PackageName, body: bytes) -> PublishRequest:
    """Check npm's publish document and its attachments; raises PublishRefused (400) with the reason."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PublishRefused(400, "the publish request is not a JSON document") from None
    except RecursionError:  # nested deeper than the parser goes: no publish document is
        raise PublishRefused(400, "the publish request is nested too deeply") from None
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
        _new_version(package, v, vdoc, _attachment(package, v, attachments, len(versions)))
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


def _new_version(package: PackageName, version: str, vdoc: object, attachment: dict[str, Any]) -> NewVersion:
    try:
        check_version(version)
    except InvalidName as exc:
        raise PublishRefused(400, str(exc)) from None
    if not isinstance(vdoc, dict) or vdoc.get("version") != version or vdoc.get("name") != package.full:
        raise PublishRefused(400, f"version document {version} does not name {package.full} {version}")
    data = attachment.get("data")
    try:
        tarball = base64.b64decode(data if isinstance(data, str) else "", validate=True)
    except (binascii.Error, ValueError):
        raise PublishRefused(400, f"the tarball of {version} is not valid base64") from None
    if not tarball:
        raise PublishRefused(400, f"the tarball of {version} is empty")
    length = attachment.get("length")
    if length is not None and length != len(tarball):
        raise PublishRefused(
            400, f"the tarball of {version} has {len(tarball)} bytes, not the {length} declared"
        )
    sha512, sha1 = hashlib.sha512(tarball).hexdigest(), hashlib.sha1(tarball).hexdigest()
    dist = vdoc.get("dist") if isinstance(vdoc.get("dist"), dict) else {}
    digests = Digests(sha512, hashlib.sha256(tarball).hexdigest(), sha1)
    problem = mismatch(_text(dist.get("integrity")), _text(dist.get("shasum")), digests)
    if problem is not None:
        raise PublishRefused(400, f"the tarball of {version} does not match its declared digests: {problem}")
    recorded = {k: v for k, v in dist.items() if k != "tarball"} | {
        "integrity": sri("sha512", sha512),
        "shasum": sha1,
    }
    document = {k: v for k, v in vdoc.items() if k != "dist"} | {"dist": recorded}
    return NewVersion(version, document, tarball)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


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
    request: PublishRequest,
) -> None:
    """Store the tarballs (pinned) and record the versions and dist-tags; raises PublishRefused (409)."""
    coordinate = package.coordinate
    versions = [v.version for v in request.versions]
    record = await catalog.package(repository, coordinate)
    _refuse_existing(record, repository, package, versions)
    recorded = []
    for new in request.versions:
        async with blobs.ingest() as writer:
            # Encrypting and hashing a large tarball takes long enough to hold up other requests.
            await offload(len(new.tarball), functools.partial(writer.write, new.tarball))
            info = await writer.commit(published=True)
        asset = asset_record(package.tarball_file(new.version), info)
        recorded.append(published_version(new.version, repository, [asset], new.document))

    def change(current: PackageRecord) -> None:
        _refuse_existing(current if current.versions else None, repository, package, versions)
        for version in recorded:
            current.versions[version.version] = version
        current.dist_tags.update(request.dist_tags)
        if "latest" not in current.dist_tags:
            current.dist_tags["latest"] = versions[-1]

    await update_published(catalog, repository, coordinate, change)


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
