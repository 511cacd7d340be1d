"""Splitting a JSON document while it streams in: the string values at chosen paths go, decoded, to
sinks as they arrive; everything else is copied into a small "skeleton" document, where each of those
strings is replaced by a placeholder (``placeholder(n)`` for the n-th one, counted from 0).

It is how a large request body that is mostly one or two huge strings (an npm publish: base64
tarballs inside a JSON packument) is taken in without ever holding it whole: the skeleton is parsed with
``json`` afterwards, and the extracted strings never are.

The scanner is deliberately small. It tracks only what it needs to know where a string value sits:
string boundaries and escapes, nesting (objects and arrays), object keys and array indexes. It checks
the extracted strings fully (escapes, control characters, UTF-8) and leaves the rest of the grammar to
``json.loads`` of the skeleton, which is valid exactly when the document is: it is the document with
some valid strings replaced by other valid strings. Key paths are compared decoded (``"\\u0064ata"`` is
``data``), and the n-th placeholder of the parsed skeleton is the n-th string extracted, so duplicate
keys resolve as ``json.loads`` resolves them (the last wins).

Limits: the skeleton is capped (``SkeletonTooLarge``), and so is the nesting depth (``TooDeep``).

Concurrency: a splitter is one document's state; feed it from one thread at a time. Sinks are called
from ``feed``, in the thread that calls it.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

PathItem = str | int | None  # an object key (None: not a valid key), or an array index
Path = tuple[PathItem, ...]

# Outside strings only these bytes change the scanner's state; all else is copied as it comes.
_STRUCTURAL = re.compile(rb'["{}\[\],:]')
# A run of string content that ends on an escape boundary: plain bytes, whole \uXXXX, whole \X escapes.
_STRING_BODY = re.compile(rb'(?:[^"\\]+|\\u[0-9A-Fa-f]{4}|\\[^u])*')
_HIGH_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abAB][0-9A-Fa-f]{2}")
_CONTROL = re.compile(r"[\x00-\x1f]")
_LONGEST_ESCAPE = 6  # \uXXXX

_OUTSIDE, _KEY, _COPY, _EXTRACT = range(4)


class JsonSplitError(ValueError):
    """The document is not JSON (or ends early); the message says where it went wrong."""


class TooDeep(JsonSplitError):
    """Objects and arrays nest deeper than the splitter's ``max_depth``."""


class SkeletonTooLarge(Exception):
    """The document without its extracted strings is larger than the splitter's ``max_skeleton``."""


class StringSink(Protocol):
    """Where one extracted string goes: its decoded text in pieces, then ``close`` at its end."""

    def write(self, text: str) -> None: ...

    def close(self) -> None: ...


def placeholder(index: int) -> str:
    """What stands in the skeleton for the ``index``-th extracted string."""
    return str(index)


@dataclass
class _Frame:
    kind: int  # ord("{") or ord("[")
    key: PathItem = None  # an object's current key
    expecting_key: bool = False
    index: int = 0  # an array's current index

    @property
    def item(self) -> PathItem:
        return self.key if self.kind == ord("{") else self.index


class JsonSplitter:
    """``feed`` the document's bytes in chunks of any size, then ``finish`` for the skeleton.

    ``extract(path)`` is asked for each string value (never for keys) with its path from the root
    (keys and array indexes); a sink it returns takes that string, None leaves it in the skeleton."""

    def __init__(
        self,
        extract: Callable[[Path], StringSink | None],
        *,
        max_skeleton: int,
        max_depth: int = 256,
    ) -> None:
        self._extract = extract
        self._max_skeleton = max_skeleton
        self._max_depth = max_depth
        self._skeleton = bytearray()
        self._stack: list[_Frame] = []
        self._mode = _OUTSIDE
        self._tail = b""  # bytes of an escape (or a high surrogate) that the next chunk completes
        self._key = bytearray()
        self._sink: StringSink | None = None
        self._utf8 = codecs.getincrementaldecoder("utf-8")("surrogatepass")
        self._offset = 0  # bytes of the document before the current chunk, for error messages
        self.extracted = 0  # strings handed to sinks so far

    def feed(self, data: bytes) -> None:
        """Scan the next bytes of the document; raises JsonSplitError, TooDeep or SkeletonTooLarge."""
        buf = self._tail + data if self._tail else data
        start = self._offset - len(self._tail)
        self._tail = b""
        pos = 0
        while pos < len(buf):
            if self._mode == _OUTSIDE:
                pos = self._outside(buf, pos, start)
            elif self._mode == _EXTRACT:
                pos = self._extracted_string(buf, pos, start)
            else:
                pos = self._copied_string(buf, pos, start)
        self._offset += len(data)

    def finish(self) -> bytes:
        """The skeleton; raises JsonSplitError when the document ended inside a string or container."""
        if self._mode != _OUTSIDE or self._tail:
            raise JsonSplitError(f"the document ends inside a string (at byte {self._offset})")
        if self._stack:
            raise JsonSplitError(f"the document ends inside an object or array (at byte {self._offset})")
        return bytes(self._skeleton)

    # -- scanning ---------------------------------------------------------------------------------
    def _emit(self, data: bytes) -> None:
        self._skeleton += data
        if len(self._skeleton) > self._max_skeleton:
            raise SkeletonTooLarge(
                f"the document without its extracted strings is over {self._max_skeleton} bytes"
            )

    def _outside(self, buf: bytes, pos: int, start: int) -> int:
        """Copy up to and including the next structural byte and act on it; the new position."""
        found = _STRUCTURAL.search(buf, pos)
        if found is None:
            self._emit(buf[pos:])
            return len(buf)
        at = found.start()
        byte = buf[at]
        self._emit(buf[pos:at])
        top = self._stack[-1] if self._stack else None
        if byte == ord('"'):
            self._string_starts(top)
            return at + 1
        self._emit(buf[at : at + 1])
        if byte in b"{[":
            if len(self._stack) >= self._max_depth:
                raise TooDeep(f"the document nests deeper than {self._max_depth} levels")
            self._stack.append(_Frame(byte, expecting_key=byte == ord("{")))
        elif byte in b"}]":
            if top is None or top.kind != (ord("{") if byte == ord("}") else ord("[")):
                raise JsonSplitError(f"unbalanced {chr(byte)!r} at byte {start + at}")
            self._stack.pop()
        elif byte == ord(",") and top is not None:
            top.key, top.expecting_key, top.index = None, top.kind == ord("{"), top.index + 1
        elif byte == ord(":") and top is not None:
            top.expecting_key = False
        return at + 1

    def _string_starts(self, top: _Frame | None) -> None:
        if top is not None and top.expecting_key:
            self._mode = _KEY
            self._key.clear()
            self._emit(b'"')
            return
        sink = self._extract(tuple(frame.item for frame in self._stack))
        if sink is None:
            self._mode = _COPY
            self._emit(b'"')
            return
        self._mode = _EXTRACT
        self._sink = sink
        self._utf8.reset()
        self._emit(json.dumps(placeholder(self.extracted)).encode())
        self.extracted += 1

    def _escape_boundary(self, buf: bytes, end: int, start: int) -> int | None:
        """Where string content scanned up to ``end`` stops: ``end`` at a quote, None when the rest of
        ``buf`` (an escape cut by the chunk's end) must wait for the next chunk."""
        if end < len(buf) and buf[end] == ord("\\"):
            if len(buf) - end >= _LONGEST_ESCAPE:
                raise JsonSplitError(f"invalid escape in a string at byte {start + end}")
            return None
        return end if end < len(buf) else None

    def _copied_string(self, buf: bytes, pos: int, start: int) -> int:
        end = _STRING_BODY.match(buf, pos).end()  # type: ignore[union-attr]  # matches the empty run
        self._emit(buf[pos:end])
        if self._mode == _KEY:
            self._key += buf[pos:end]
        quote = self._escape_boundary(buf, end, start)
        if quote is None:
            self._tail = buf[end:]
            return len(buf)
        self._emit(b'"')
        if self._mode == _KEY:
            self._stack[-1].key = _decode_key(bytes(self._key))
        self._mode = _OUTSIDE
        return quote + 1

    def _extracted_string(self, buf: bytes, pos: int, start: int) -> int:
        end = _STRING_BODY.match(buf, pos).end()  # type: ignore[union-attr]
        quote = self._escape_boundary(buf, end, start)
        if quote is None and end - pos >= _LONGEST_ESCAPE and _ends_with_high_surrogate(buf, pos, end):
            end -= _LONGEST_ESCAPE  # kept until the next chunk says whether a low surrogate follows
        text = self._decode(buf[pos:end], final=quote is not None, at=start + pos)
        assert self._sink is not None
        if text:
            self._sink.write(text)
        if quote is None:
            self._tail = buf[end:]
            return len(buf)
        self._sink.close()
        self._sink = None
        self._mode = _OUTSIDE
        return quote + 1

    def _decode(self, raw: bytes, *, final: bool, at: int) -> str:
        """Decoded string content (``raw`` ends on an escape boundary); raises JsonSplitError."""
        try:
            text = self._utf8.decode(raw, final)
        except UnicodeDecodeError:
            raise JsonSplitError(f"a string is not UTF-8 near byte {at}") from None
        if "\\" not in text:
            if _CONTROL.search(text):
                raise JsonSplitError(f"a control character in a string near byte {at}")
            return text
        try:
            return str(json.loads(f'"{text}"'))
        except ValueError:
            raise JsonSplitError(f"invalid escape or control character in a string near byte {at}") from None


def _ends_with_high_surrogate(buf: bytes, pos: int, end: int) -> bool:
    """Whether the escape-aligned content ``buf[pos:end]`` ends with a ``\\uD800``-``\\uDBFF`` escape
    (whose low half, in the next chunk, ``json`` would join to it)."""
    if not _HIGH_SURROGATE_ESCAPE.fullmatch(buf, end - _LONGEST_ESCAPE, end):
        return False
    backslashes = 0  # the backslash starts an escape only if an even number of backslashes precede it
    at = end - _LONGEST_ESCAPE - 1
    while at >= pos and buf[at] == ord("\\"):
        backslashes += 1
        at -= 1
    return backslashes % 2 == 0


def _decode_key(raw: bytes) -> str | None:
    """An object key as ``json`` decodes it; None when it does not decode (the skeleton will not parse)."""
    try:
        text = raw.decode("utf-8", "surrogatepass")
        return text if "\\" not in text else str(json.loads(f'"{text}"'))
    except ValueError:
        return None
