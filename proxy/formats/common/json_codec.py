"""JSON documents read and written fast: msgspec, with the standard library behind it for what msgspec
refuses and the standard library accepts, so a document reads and writes as it would with ``json``.

msgspec reads strict RFC 8259 JSON several times faster than ``json``. The standard library also takes
``NaN``, ``Infinity`` and lone surrogates: those (rare, usually broken) documents go to it and pass or
fail exactly as before, so ``loads`` raises ``json.JSONDecodeError`` (a ValueError),
``UnicodeDecodeError`` or ``RecursionError`` as ``json.loads`` does.

``loads_as`` reads only what a shape declares (a ``TypedDict`` whose keys are the fields wanted):
the rest of the document is checked to be JSON and skipped without building it, which is most of the
cost of a large document. It reads every document ``loads`` reads, the body being checked to be UTF-8
first (skipped strings are not decoded), and raises a ValueError for what does not have the shape.

``dumps`` writes compact UTF-8, as ``json.dumps(separators=(",", ":"), ensure_ascii=False)`` does, and
falls back the same way for what msgspec cannot write.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


def loads(body: bytes | str) -> Any:
    try:
        return _decode(body)
    except msgspec.DecodeError:
        return json.loads(body)


def loads_as(body: bytes, shape: msgspec.json.Decoder[T]) -> T:
    """``body`` read by ``shape`` (a ``msgspec.json.Decoder`` of a ``TypedDict``)."""
    if not body.isascii():  # registries escape what is not ASCII: most bodies need no copy to check
        body.decode()  # UnicodeDecodeError, as ``json`` would raise
    try:
        return shape.decode(body)
    except msgspec.ValidationError:
        raise
    except msgspec.DecodeError:
        doc = json.loads(body)  # what only the standard library reads, or its error
    try:
        return msgspec.convert(doc, shape.type)
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc)) from None


def dumps(doc: Any) -> bytes:
    try:
        return _encode(doc)
    except (TypeError, OverflowError):
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
