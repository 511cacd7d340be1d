"""The simple repository API's model and its two renderings: one ``ProjectPage`` (or project list)
becomes PEP 503 HTML or PEP 691 JSON, so both always say the same thing.

What a file carries: its URL with ``#sha256=`` (PEP 503), ``requires-python`` (HTML-escaped in HTML),
yanked with its reason (PEP 592), and the hashes of its core metadata file (PEP 658), written under
both the PEP 714 name (``core-metadata``) and the older one (``dist-info-metadata``), which pip
versions before 23.3 still read. Renderers are pure functions of the model.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

from proxy.formats.common import json_codec
from proxy.formats.pypi.negotiate import Representation

API_VERSION = "1.0"
HASH_PREFERENCE = ("sha256", "sha512", "sha384", "sha224", "sha1", "md5")  # the one a URL fragment names
_NO_HASHES: Mapping[str, str] = MappingProxyType({})
BATCH = 512  # files of a page rendered at a time


class DistFile(NamedTuple):
    """One distribution file of a project, as the simple API lists it. Immutable; a named tuple
    because pages list thousands of them and it is made several times faster than a dataclass."""

    filename: str
    url: str  # upstream pages: as the page wrote it (maybe relative)
    hashes: Mapping[str, str] = _NO_HASHES  # algorithm -> lowercase hex
    requires_python: str | None = None
    yanked: str | None = None  # None: not yanked; "" yanked without a reason
    core_metadata: Mapping[str, str] | None = None  # None: no PEP 658 file; else its hashes ({}: unknown)


@dataclass(frozen=True)
class ProjectPage:
    name: str  # normalized
    files: tuple[DistFile, ...]
    # Where clients fetch a file, by filename (the proxy's URL); None: the file's own ``url``.
    file_url: Callable[[str], str] | None = None

    def url(self, file: DistFile) -> str:
        """Where clients fetch ``file`` (one of ``files``) from."""
        return file.url if self.file_url is None else self.file_url(file.filename)


def render_project(page: ProjectPage, representation: Representation) -> bytes:
    """The page's bytes, written ``BATCH`` files at a time: a page of thousands of files never has an
    entry built for each of them at once, only its bytes."""
    file_url = page.file_url
    files = page.files
    out = bytearray()
    if representation == "json":
        head = _json({"meta": {"api-version": API_VERSION}, "name": page.name, "files": []})
        out += head[: -len(b"]}")]  # the files go into the empty list that ends the document
    else:
        head, tail = _html(f"Links for {page.name}", "\0").split(b"\0")
        out += head
    for start in range(0, len(files), BATCH):
        batch = files[start : start + BATCH]
        urls = [f.url for f in batch] if file_url is None else [file_url(f.filename) for f in batch]
        if representation == "json":
            out += b"," if start else b""
            out += _json([_json_file(f, url) for f, url in zip(batch, urls, strict=True)])[1:-1]
        else:
            out += "".join(_html_link(f, url) for f, url in zip(batch, urls, strict=True)).encode()
    out += b"]}" if representation == "json" else tail
    return bytes(out)


def render_index(projects: Iterable[str], representation: Representation) -> bytes:
    names = sorted(set(projects))
    if representation == "json":
        return _json({"meta": {"api-version": API_VERSION}, "projects": [{"name": n} for n in names]})
    links = "".join(f'    <a href="{html.escape(n)}/">{html.escape(n)}</a><br/>\n' for n in names)
    return _html("Simple index", links)


def _json(doc: dict[str, Any]) -> bytes:
    return json_codec.dumps(doc)


def _json_file(file: DistFile, url: str) -> dict[str, Any]:
    # A parsed page's hashes are dicts already: written as they are (nobody changes them).
    hashes = file.hashes if type(file.hashes) is dict else dict(file.hashes)
    entry: dict[str, Any] = {"filename": file.filename, "url": url, "hashes": hashes}
    if file.requires_python:
        entry["requires-python"] = file.requires_python
    metadata = file.core_metadata
    if metadata is not None:
        value: Mapping[str, str] | bool = (metadata if type(metadata) is dict else dict(metadata)) or True
        entry["core-metadata"] = value
        entry["dist-info-metadata"] = value
    entry["yanked"] = False if file.yanked is None else (file.yanked or True)
    return entry


def _html(title: str, body: str) -> bytes:
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
        f"    <title>{html.escape(title)}</title>\n  </head>\n  <body>\n"
        f"    <h1>{html.escape(title)}</h1>\n{body}  </body>\n</html>\n"
    ).encode()


def _fragment(hashes: Mapping[str, str]) -> str:
    for algorithm in HASH_PREFERENCE:
        if algorithm in hashes:
            return f"#{algorithm}={hashes[algorithm]}"
    return ""


def _html_link(file: DistFile, url: str) -> str:
    attributes = [f'href="{html.escape(url + _fragment(file.hashes))}"']
    if file.requires_python:
        attributes.append(f'data-requires-python="{html.escape(file.requires_python)}"')
    if file.core_metadata is not None:
        value = html.escape(_fragment(file.core_metadata)[1:] or "true")
        attributes.append(f'data-dist-info-metadata="{value}" data-core-metadata="{value}"')
    if file.yanked is not None:
        attributes.append(f'data-yanked="{html.escape(file.yanked)}"')
    return f"    <a {' '.join(attributes)}>{html.escape(file.filename)}</a><br/>\n"
