"""Reading an upstream's project page: PEP 503 HTML (stdlib ``html.parser``, or for a plain page regular
expressions that read exactly what it reads) or PEP 691 JSON, into the model's ``DistFile`` list.
Pages list thousands of files: the per-file work is kept to a few dictionary look-ups and one match
each where the usual shapes allow, the general (slower) path for anything else.

A page that is not what it claims (not UTF-8, no HTML markup at all, JSON without a ``files`` list, a
malformed hash) raises ValueError: the Fetcher then answers 502 and caches nothing. Files whose name is
not a wheel or sdist of the project asked for are left out, as pip leaves them out. URLs are kept as the
page wrote them (resolved against a ``<base href>`` if any, but possibly still relative): they are
resolved against the page's URL only when a file is downloaded, so a page cached from an upstream
that is unreachable now can still be served.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from html import unescape
from html.parser import HTMLParser
from typing import Any, TypedDict
from urllib.parse import unquote, urljoin, urlsplit

import msgspec

from proxy.formats.common import json_codec
from proxy.formats.pypi.names import belongs
from proxy.formats.pypi.simple import DistFile

_HEX = re.compile(r"^[0-9a-f]+$")
_LOWER_HEX = re.compile(r"[0-9a-f]+")
_URL_UNUSUAL = re.compile(r"[\t\r\n?#\[\]]")
_HASH_LENGTHS = {"md5": 32, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128}


def parse_page(body: bytes, project: str) -> list[DistFile]:
    """The files an upstream lists for ``project`` (normalized); ValueError for a broken page."""
    try:
        # JSON is read from the bytes (checked to be UTF-8 there), without a copy of the page as text.
        files = _parse_json(body) if body.lstrip().startswith(b"{") else _parse_html(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError("the project page is not UTF-8") from None
    return [f for f in files if belongs(f.filename, project)]


def _check_hashes(hashes: dict[str, object], filename: str, metadata: bool = False) -> dict[str, str]:
    """The hashes with lowercase algorithms and digests (``hashes`` itself when they are already,
    as usual); ``metadata``: they are those of ``filename``'s PEP 658 file. ValueError: a value that is
    not text (whichever comes first), or a digest that is not hex of its algorithm's length."""
    for algorithm, value in hashes.items():
        if not (
            isinstance(value, str)
            and algorithm.islower()
            and _LOWER_HEX.fullmatch(value)
            and len(value) == _HASH_LENGTHS.get(algorithm, len(value))
        ):
            return _checked_copy(hashes, filename, metadata)
    return hashes  # type: ignore[return-value]  # every value is text, checked above


def _checked_copy(hashes: Mapping[str, object], filename: str, metadata: bool) -> dict[str, str]:
    if not all(isinstance(v, str) for v in hashes.values()):
        raise ValueError(f"malformed {'metadata hashes' if metadata else 'hashes'} for {filename}")
    suffix = ".metadata" if metadata else ""
    checked = {}
    for algorithm, value in hashes.items():
        assert isinstance(value, str)
        algorithm, value = algorithm.lower(), value.lower()
        expected = _HASH_LENGTHS.get(algorithm)
        if not _HEX.match(value) or (expected is not None and len(value) != expected):
            raise ValueError(f"malformed {algorithm} hash for {filename}{suffix}")
        checked[algorithm] = value
    return checked


def _filename(url: str) -> str:
    """The last segment of the URL's path, unquoted."""
    last = url.rpartition("/")[2]
    # What urlsplit's path ends with, read without it for the usual URL: ASCII, nothing it strips or
    # removes, no query, fragment or IPv6 host, no scheme in the last segment, and the netloc, if any,
    # followed by a path.
    netloc = url.find("//")
    if (
        url[:1] > " "
        and url.isascii()
        and _URL_UNUSUAL.search(url) is None
        and ":" not in last
        and (netloc < 0 or url.find("/", netloc + 2) >= 0)
    ):
        return unquote(last)
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1])


# -- HTML -------------------------------------------------------------------------------------------
class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[dict[str, str | None]] = []
        self.base: str | None = None
        self.tags = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags += 1
        if tag == "a":
            self.anchors.append(dict(attrs))
        elif tag == "base" and self.base is None:
            self.base = dict(attrs).get("href")


# Simple pages as indexes write them, read with regular expressions instead of ``HTMLParser`` (several
# times faster), to exactly the same start tags and attributes: only a page made of nothing but text
# without "<", ``<!DOCTYPE html>``, end tags and start tags of the names below whose attributes are
# absent or double-quoted without "<" or ">" (entities unescaped as HTMLParser does). Any other page
# (comments, scripts, other quoting, stray "<") goes to HTMLParser.
_WS = r"[ \t\n\r\f]"
_PLAIN_ATTR = rf"{_WS}+[A-Za-z][-A-Za-z0-9_:.]*(?:=\"[^\"<>]*\")?"
_PLAIN_PAGE = re.compile(
    rf"(?:[^<]++|<!(?:DOCTYPE|doctype) html>|</[A-Za-z][A-Za-z0-9]*{_WS}*>"
    rf"|<[A-Za-z][A-Za-z0-9]*(?:{_PLAIN_ATTR})*+{_WS}*/?>)*+"
)
_PLAIN_START = re.compile(rf"<([A-Za-z][A-Za-z0-9]*)((?:{_PLAIN_ATTR})*+){_WS}*/?>")
_PLAIN_ATTRS = re.compile(rf"{_WS}+([A-Za-z][-A-Za-z0-9_:.]*)(?:=\"([^\"<>]*)\")?")
_PLAIN_TAGS = frozenset(("html", "head", "body", "meta", "title", "h1", "h2", "a", "br", "base", "p", "div"))

Anchors = tuple[list[dict[str, str | None]], str | None, int]  # anchors' attributes, base href, start tags


def _plain_anchors(text: str) -> Anchors | None:
    """What ``_Anchors`` reads from a plain page (see above); None for any other page."""
    if _PLAIN_PAGE.fullmatch(text) is None:
        return None
    anchors: list[dict[str, str | None]] = []
    base: str | None = None
    tags = 0
    for tag in _PLAIN_START.finditer(text):
        name = tag[1].lower()
        if name not in _PLAIN_TAGS:
            return None
        tags += 1
        if name == "title" and text[text.find("<", tag.end()) :][:7].lower() != "</title":
            return None  # a title holding tags: read as text by some HTMLParser versions
        if name == "a" or (name == "base" and base is None):
            attrs: dict[str, str | None] = {}
            for attr in _PLAIN_ATTRS.finditer(tag[2]):
                value = attr[2]
                attrs[attr[1].lower()] = unescape(value) if value and "&" in value else value
            if name == "a":
                anchors.append(attrs)
            else:
                base = attrs.get("href")
    return anchors, base, tags


def _html_anchors(text: str) -> Anchors:
    plain = _plain_anchors(text)
    if plain is not None:
        return plain
    parser = _Anchors()
    parser.feed(text)
    parser.close()
    return parser.anchors, parser.base, parser.tags


def _parse_html(text: str) -> list[DistFile]:
    anchors, base, tags = _html_anchors(text)
    if tags == 0:
        raise ValueError("the project page has no HTML markup")
    files = []
    for attrs in anchors:
        href = attrs.get("href")
        if not href:
            continue
        url, _, fragment = href.partition("#")
        if base:
            url = urljoin(base, url)
        filename = _filename(url)
        algorithm, _, digest = fragment.partition("=")
        hashes = _check_hashes({algorithm: digest}, filename) if digest else {}
        files.append(
            DistFile(
                filename,
                url,
                hashes,
                attrs.get("data-requires-python") or None,
                (attrs.get("data-yanked") or "") if "data-yanked" in attrs else None,
                _html_metadata(attrs, filename),
            )
        )
    return files


def _html_metadata(attrs: Mapping[str, str | None], filename: str) -> dict[str, str] | None:
    # PEP 714's name first; PEP 658's older name is what indexes wrote before it.
    value = attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata"))
    if value is None or value.lower() == "false":
        return None
    algorithm, _, digest = value.partition("=")
    return _check_hashes({algorithm: digest}, filename, metadata=True) if digest else {}


# -- JSON (PEP 691) ---------------------------------------------------------------------------------
# What a file entry gives a ``DistFile``: the rest of the page (sizes, upload times, provenance, the
# project's versions) is checked to be JSON and skipped, never built. An entry that is not an object is
# kept, to be refused.
_JsonFile = TypedDict(  # type: ignore[misc]
    "_JsonFile",
    dict.fromkeys(
        ("url", "filename", "hashes", "yanked", "requires-python", "core-metadata", "dist-info-metadata"), Any
    ),
    total=False,
)


_JsonEntry = _JsonFile | str | int | float | bool | list[Any] | None  # type: ignore[misc]


class _JsonPage(TypedDict, total=False):
    files: list[_JsonEntry]  # type: ignore[valid-type]


class _JsonEntries(TypedDict, total=False):
    files: list[msgspec.Raw]


# A page's entries are read one at a time from their place in the body (``msgspec.Raw``: checked to be
# JSON, not built): the dictionaries a page of thousands of files makes on the way to its DistFiles
# never all exist at once, among the strings that the DistFiles keep.
_JSON_ENTRIES = msgspec.json.Decoder(_JsonEntries)
_JSON_ENTRY = msgspec.json.Decoder(_JsonEntry)
_JSON_SHAPE = msgspec.json.Decoder(_JsonPage)


def _parse_json(body: bytes) -> list[DistFile]:
    try:
        try:
            doc: dict[str, list[Any]] = json_codec.loads_as(body, _JSON_ENTRIES)
        except ValueError:  # what only the standard library reads (then read whole), or a broken page
            doc = json_codec.loads_as(body, _JSON_SHAPE)
    except RecursionError:
        raise ValueError("the project page is nested too deeply") from None
    if "files" not in doc:
        raise ValueError("the project page has no files list")
    return [_json_file(_JSON_ENTRY.decode(e) if type(e) is msgspec.Raw else e) for e in doc["files"]]


def _json_file(entry: Any) -> DistFile:
    url = entry.get("url") if isinstance(entry, dict) else None
    if not isinstance(url, str):
        raise ValueError("a file entry of the project page has no url")
    url = url.partition("#")[0]
    filename = entry.get("filename")
    if not isinstance(filename, str):
        filename = _filename(url)
    hashes = entry.get("hashes", {})
    if not isinstance(hashes, dict):
        raise ValueError(f"malformed hashes for {filename}")
    yanked = entry.get("yanked", False)
    requires_python = entry.get("requires-python")
    metadata = entry["core-metadata"] if "core-metadata" in entry else entry.get("dist-info-metadata")
    return DistFile(
        filename,
        url,
        _check_hashes(hashes, filename),
        requires_python if isinstance(requires_python, str) and requires_python else None,
        (yanked if isinstance(yanked, str) else "") if yanked else None,
        _json_metadata(metadata, filename),
    )


def _json_metadata(value: Any, filename: str) -> dict[str, str] | None:
    if isinstance(value, dict):
        return _check_hashes(value, filename, metadata=True)
    return {} if value is True else None
