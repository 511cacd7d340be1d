"""Core metadata files (PEP 658): taking ``*.dist-info/METADATA`` out of a stored wheel, writing the
metadata of an uploaded sdist from the upload's form fields, and checking that metadata names the
project and version it is filed under.

A stored wheel is read through the seekable file the store offers (``BlobService.open_seekable``).
Blocking: call these from a worker thread.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping, Sequence

from packaging.metadata import parse_email
from packaging.version import InvalidVersion, Version

from proxy.formats.pypi.names import normalize, parse_filename

MAX_METADATA_SIZE = 16 * 1024 * 1024  # a METADATA file larger than this is a zip bomb, not metadata
_BUFFER_SIZE = 256 * 1024


def wheel_metadata(raw: io.RawIOBase, filename: str) -> bytes:
    """The METADATA file of the stored wheel ``filename``; ValueError when it is not a readable wheel.
    ``raw`` is the stored wheel, seekable (it is closed here). BlobMissing/BlobCorrupt pass through."""
    parsed = parse_filename(filename)
    if parsed is None or parsed.kind != "wheel":
        raise ValueError(f"{filename} is not a wheel filename")
    with raw:
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
