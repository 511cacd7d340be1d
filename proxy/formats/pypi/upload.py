"""``twine upload``: the legacy upload API (one multipart/form-data POST per file, ``:action=file_upload``).

The file part (``content``) streams into the store while it is hashed, whatever order the parts come
in; nothing holds the file in memory. Then the upload is checked: project name (PEP 508) and version
(PEP 440), the filename names that project and version, ``filetype`` fits the filename, and every
declared digest (``sha256_digest``, ``blake2_256_digest``, ``md5_digest``; at least one) matches the
bytes. The file is committed as published (never evicted), its core metadata stored next to it (a
wheel's own METADATA, which must name the same project and version; for an sdist, written from the
form fields, which twine takes from its PKG-INFO) and the package version recorded.

Refusals, all with the reason (in the JSON body and in the status line, where twine shows it): 403
when the repository does not take uploads; 400 for a bad upload; 400 ``File already exists`` for a
filename already there (as PyPI answers, and what upload tools that skip existing files look for);
400 for a package whose origin configuration blocks publishing (not 409, which those tools would take
for "already there" and skip silently). A wheel whose METADATA cannot be read is refused after its
blob was committed; that blob is referenced by nothing and ``gc`` removes it.

Concurrency: the catalog change is one atomic read-modify-write (``update_published``), so of two
concurrent uploads of one file exactly one succeeds.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from proxy.formats.common.http import BodyLimit
from proxy.formats.pypi.coremeta import (
    form_metadata,
    metadata_mismatch,
    sdist_metadata_is_static,
    wheel_metadata,
)
from proxy.formats.pypi.files import store_bytes
from proxy.formats.pypi.names import (
    METADATA_SUFFIX,
    DistFilename,
    coordinate,
    is_valid_name,
    normalize,
    parse_filename,
    parse_version,
)
from proxy.formats.pypi.records import file_entry
from proxy.repository.errors import Refused as UploadRefused
from proxy.repository.origin import publish_refusal
from proxy.repository.packages import asset_record, published_version, update_published
from proxy.store.protocols import (
    AssetIngest,
    AssetRecord,
    BlobInfo,
    BlobService,
    CatalogService,
    PackageRecord,
)

_CHUNK = 256 * 1024
_MAX_FIELDS_SIZE = 16 * 1024 * 1024  # all form fields together (a long description included)
_FILETYPES = {"bdist_wheel": "wheel", "sdist": "sdist"}


@dataclass(frozen=True)
class Published:
    project: str  # normalized
    file: AssetRecord


@dataclass
class _Form:
    fields: dict[str, list[str]]
    filename: str | None = None
    blake2_256: str | None = None

    def one(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[0] if values else None


async def publish(
    catalog: CatalogService, blobs: BlobService, repository: str, request: web.Request
) -> Published:
    """Take one uploaded file into ``repository``; raises UploadRefused."""
    try:
        reader = await request.multipart()
    except (AssertionError, ValueError, KeyError):
        raise UploadRefused(400, "the upload must be multipart/form-data (the legacy upload API)") from None
    async with blobs.ingest() as writer:
        try:
            form = await _read_form(reader, writer, BodyLimit(request.client_max_size))
        except ValueError as exc:
            raise UploadRefused(400, f"malformed upload: {exc}") from None
        except HttpProcessingError as exc:  # a part's headers that do not parse (control characters)
            raise UploadRefused(400, f"malformed upload: {exc.message}") from None
        info = writer.finish()
        parsed = _check(form, info)
        blob = await writer.commit(published=True)
    if writer.created:
        blobs.hold(blob.blob_id)  # a refusal below removes the blob again (see BlobService.release)
    refused = False
    try:
        return await _record(catalog, blobs, repository, form, parsed, blob)
    except UploadRefused:
        refused = True  # only a refusal: after another failure the catalog may reference the blob
        raise
    finally:
        if writer.created:
            blobs.release(blob.blob_id, refused=refused)


async def _record(
    catalog: CatalogService,
    blobs: BlobService,
    repository: str,
    form: _Form,
    parsed: DistFilename,
    blob: BlobInfo,
) -> Published:
    """Check the committed file's metadata and add it to the repository; raises UploadRefused."""
    filename = form.filename
    assert filename is not None
    metadata = await _core_metadata(blobs, form, parsed, blob, filename)
    metadata_blob = await store_bytes(blobs, metadata, published=True)
    file = asset_record(filename, blob)
    entry = file_entry(
        form.one("requires_python") or None,
        core_metadata=parsed.kind == "wheel" or sdist_metadata_is_static(form.fields),
    )
    change = _add_file(
        repository, parsed, file, asset_record(filename + METADATA_SUFFIX, metadata_blob), entry
    )
    await update_published(catalog, repository, coordinate(parsed.project), change)
    return Published(parsed.project, file)


def _add_file(
    repository: str, parsed: DistFilename, file: AssetRecord, metadata: AssetRecord, entry: dict[str, Any]
) -> Callable[[PackageRecord], None]:
    """The catalog change that adds an uploaded file (and its metadata) to its package version."""

    def change(record: PackageRecord) -> None:
        refusal = publish_refusal(record, repository, parsed.project)
        if refusal is not None:
            raise UploadRefused(400, refusal)
        if any(file.name in version.assets for version in record.versions.values()):
            raise UploadRefused(
                400,
                f"File already exists: {file.name} is in repository {repository}; a filename is used once",
            )
        version = record.versions.setdefault(
            parsed.version, published_version(parsed.version, repository, [], {})
        )
        if version.origin.origin_type != "INTERNAL":
            raise UploadRefused(
                400, f"{parsed.project} {parsed.version} in repository {repository} came from an upstream"
            )
        version.assets[file.name] = file
        version.assets[metadata.name] = metadata
        version.metadata.setdefault("files", {})[file.name] = entry

    return change


async def _read_form(reader: MultipartReader, writer: AssetIngest, limit: BodyLimit) -> _Form:
    form = _Form({})
    budget = _MAX_FIELDS_SIZE
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise ValueError("nested multipart parts are not part of the upload API")
        if part.name == "content":
            if form.filename is not None:
                raise ValueError("more than one file in one upload")
            form.filename = part.filename or ""
            form.blake2_256 = await _stream_file(part, writer, limit)
        elif part.filename is not None:
            await part.release()  # other files (a detached signature): not kept
        elif part.name:
            value = bytearray()
            while chunk := await part.read_chunk(_CHUNK):
                value += limit.count(chunk)
                if len(value) > budget:
                    raise ValueError("form fields too large")
            budget -= len(value)
            form.fields.setdefault(part.name, []).append(value.decode("utf-8", "replace"))
    return form


async def _stream_file(part: BodyPartReader, writer: AssetIngest, limit: BodyLimit) -> str:
    blake2 = hashlib.blake2b(digest_size=32)
    while chunk := await part.read_chunk(_CHUNK):
        writer.write(limit.count(chunk))
        blake2.update(chunk)
    return blake2.hexdigest()


def _check(form: _Form, info: BlobInfo) -> DistFilename:
    """The checked filename of the upload; raises UploadRefused with the first problem found."""
    action = form.one(":action")
    if action != "file_upload":
        raise UploadRefused(400, f"unsupported :action {action!r}; this index takes file_upload")
    name, version = form.one("name"), form.one("version")
    if not name or not is_valid_name(name):
        raise UploadRefused(400, f"invalid project name {name!r}")
    parsed_version = parse_version(version or "")
    if parsed_version is None:
        raise UploadRefused(400, f"invalid version {version!r}: not a PEP 440 version")
    filename = form.filename
    if filename is None:
        raise UploadRefused(400, "the upload has no file (form field 'content')")
    clean = not any(c in filename for c in "/\\\x00")
    parsed = parse_filename(filename) if clean else None
    if parsed is None:
        raise UploadRefused(400, f"{filename!r} is not a wheel or sdist filename")
    if parsed.project != normalize(name) or parsed.version != str(parsed_version):
        raise UploadRefused(400, f"filename {filename} does not match project {name} version {version}")
    filetype = form.one("filetype")
    if filetype is not None and _FILETYPES.get(filetype) != parsed.kind:
        raise UploadRefused(400, f"filetype {filetype} does not fit {filename}")
    if info.size == 0:
        raise UploadRefused(400, f"{filename} is empty")
    _check_digests(form.fields, {"sha256": info.sha256, "md5": info.md5, "blake2_256": form.blake2_256 or ""})
    return parsed


def _check_digests(fields: Mapping[str, Sequence[str]], actual: Mapping[str, str]) -> None:
    declared = {a: fields[f"{a}_digest"][0].strip().lower() for a in actual if fields.get(f"{a}_digest")}
    if not declared:
        raise UploadRefused(400, "the upload declares no digest (sha256_digest)")
    for algorithm, value in declared.items():
        if value != actual[algorithm]:
            raise UploadRefused(400, f"{algorithm}_digest does not match the uploaded file")


async def _core_metadata(
    blobs: BlobService, form: _Form, parsed: DistFilename, blob: BlobInfo, filename: str
) -> bytes:
    if parsed.kind == "sdist":
        return form_metadata(form.fields)
    try:
        data = await asyncio.to_thread(lambda: wheel_metadata(blobs.open_seekable(blob.blob_id), filename))
    except ValueError as exc:
        raise UploadRefused(400, f"not a valid wheel: {exc}") from None
    problem = metadata_mismatch(data, parsed.project, parsed.version)
    if problem is not None:
        raise UploadRefused(400, f"{filename}: {problem}")
    return data
