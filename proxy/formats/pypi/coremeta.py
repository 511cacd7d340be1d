"""Core metadata files (PEP 658): taking ``*.dist-info/METADATA`` out of a stored wheel, writing the
metadata of an uploaded sdist from the upload's form fields, and checking that metadata names the
project and version it is filed under.

A stored blob is encrypted and can only be read forward, so ``zipfile`` reads it through ``_BlobFile``:
a seekable view that streams the decrypted blob, restarts the stream on a backward seek, and keeps the
blob's tail in memory (a wheel's central directory and, as wheel builders write ``.dist-info`` last,
usually its METADATA too): one pass over the wheel in the common case, and no plaintext ever written
to disk. Blocking: call these from a worker thread.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator, Mapping, Sequence

from packaging.metadata import parse_email
from packaging.version import InvalidVersion, Version

from proxy.formats.pypi.names import normalize, parse_filename
from proxy.store.blobs import BlobReader, BlobStore

MAX_METADATA_SIZE = 16 * 1024 * 1024  # a METADATA file larger than this is a zip bomb, not metadata
_TAIL_SIZE = 8 * 1024 * 1024
_BUFFER_SIZE = 256 * 1024


class _BlobFile(io.RawIOBase):
    def __init__(self, blobs: BlobStore, blob_id: str) -> None:
        super().__init__()
        self._blobs = blobs
        self._blob_id = blob_id
        self._reader: BlobReader | None = None
        self._chunks: Iterator[bytes] = iter(())
        self._chunk = b""
        self._chunk_start = 0
        self._restart()
        assert self._reader is not None
        self._size = self._reader.size
        self._tail_start = max(0, self._size - _TAIL_SIZE)
        self._tail: bytes | None = None
        self._pos = 0

    def _restart(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._reader = self._blobs.reader(self._blob_id)
        self._chunks = iter(self._reader)
        self._chunk, self._chunk_start = b"", 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        wanted = min(len(buffer), self._size - self._pos)
        if wanted <= 0:
            return 0
        if self._pos >= self._tail_start:
            tail = self._read_tail()
            data = tail[self._pos - self._tail_start : self._pos - self._tail_start + wanted]
        else:
            data = self._stream(self._pos, min(wanted, self._tail_start - self._pos))
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def _read_tail(self) -> bytes:
        if self._tail is None:
            parts, position = [], self._tail_start
            while part := self._stream(position, _BUFFER_SIZE):
                parts.append(part)
                position += len(part)
            self._tail = b"".join(parts)
        return self._tail

    def _stream(self, position: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``position`` from the forward stream (b"" at the end)."""
        if position < self._chunk_start:
            self._restart()
        while position >= self._chunk_start + len(self._chunk):
            self._chunk_start += len(self._chunk)
            self._chunk = next(self._chunks, b"")
            if not self._chunk:
                return b""
        offset = position - self._chunk_start
        return self._chunk[offset : offset + size]

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        super().close()


def wheel_metadata(blobs: BlobStore, blob_id: str, filename: str) -> bytes:
    """The METADATA file of the stored wheel ``filename``; ValueError when it is not a readable wheel.
    BlobMissing/BlobCorrupt pass through."""
    parsed = parse_filename(filename)
    if parsed is None or parsed.kind != "wheel":
        raise ValueError(f"{filename} is not a wheel filename")
    with _BlobFile(blobs, blob_id) as raw:
        try:
            with zipfile.ZipFile(io.BufferedReader(raw, _BUFFER_SIZE)) as wheel:
                info = _metadata_entry(wheel, parsed.project)
                if info.file_size > MAX_METADATA_SIZE:
                    raise ValueError(f"{info.filename} is {info.file_size} bytes; too large for metadata")
                return wheel.read(info)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
            raise ValueError(f"{filename} is not a readable wheel: {exc}") from None


def _metadata_entry(wheel: zipfile.ZipFile, project: str) -> zipfile.ZipInfo:
    found = [
        i
        for i in wheel.infolist()
        if i.filename.count("/") == 1 and i.filename.endswith(".dist-info/METADATA")
    ]
    if len(found) > 1:  # a wheel vendoring other .dist-info directories: take the project's own
        found = [
            i
            for i in found
            if normalize(i.filename.split("/")[0][: -len(".dist-info")].rpartition("-")[0]) == project
        ]
    if len(found) != 1:
        raise ValueError("the wheel has no single .dist-info/METADATA")
    return found[0]


def metadata_mismatch(data: bytes, project: str, version: str) -> str | None:
    """Why the core metadata ``data`` does not describe ``project`` (normalized) ``version``, or None."""
    raw, _unparsed = parse_email(data)
    name, declared = raw.get("name"), raw.get("version")
    if not name or not declared:
        return "its METADATA has no Name or Version"
    try:
        same_version = Version(declared) == Version(version)
    except InvalidVersion:
        return f"its METADATA has an invalid version {declared!r}"
    if normalize(name) != project or not same_version:
        return f"its METADATA describes {name} {declared}, not {project} {version}"
    return None


# Upload form fields (the legacy upload API's names) -> core metadata fields, in the spec's order.
_FORM_FIELDS = (
    ("metadata_version", "Metadata-Version"),
    ("name", "Name"),
    ("version", "Version"),
    ("dynamic", "Dynamic"),
    ("platform", "Platform"),
    ("supported_platform", "Supported-Platform"),
    ("summary", "Summary"),
    ("description_content_type", "Description-Content-Type"),
    ("keywords", "Keywords"),
    ("home_page", "Home-page"),
    ("download_url", "Download-URL"),
    ("author", "Author"),
    ("author_email", "Author-email"),
    ("maintainer", "Maintainer"),
    ("maintainer_email", "Maintainer-email"),
    ("license", "License"),
    ("license_expression", "License-Expression"),
    ("license_file", "License-File"),
    ("classifiers", "Classifier"),
    ("requires_dist", "Requires-Dist"),
    ("requires_python", "Requires-Python"),
    ("requires_external", "Requires-External"),
    ("project_urls", "Project-URL"),
    ("provides_extra", "Provides-Extra"),
    ("provides_dist", "Provides-Dist"),
    ("obsoletes_dist", "Obsoletes-Dist"),
)


def form_metadata(fields: Mapping[str, Sequence[str]]) -> bytes:
    """Core metadata written from an upload's form fields (for an sdist, whose PKG-INFO twine sent so)."""
    lines = []
    for form_name, header in _FORM_FIELDS:
        for value in fields.get(form_name, ()):
            if value.strip():
                lines.append(f"{header}: {' '.join(value.split())}")
    description = next(iter(fields.get("description", ())), "")
    return ("\n".join(lines) + "\n\n" + description).encode()


def sdist_metadata_is_static(fields: Mapping[str, Sequence[str]]) -> bool:
    """Whether an sdist's metadata can stand for what building it yields: Metadata-Version 2.2 or
    later (PEP 643) and no field marked Dynamic. Only then is it advertised (PEP 658)."""
    try:
        version = Version(next(iter(fields.get("metadata_version", ())), "1.0"))
    except InvalidVersion:
        return False
    return version >= Version("2.2") and not any(v.strip() for v in fields.get("dynamic", ()))
