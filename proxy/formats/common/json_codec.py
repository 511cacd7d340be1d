"""JSON documents read and written fast: orjson, with the standard library behind it for what orjson
refuses and the standard library accepts, so a document reads and writes as it would with ``json``.

orjson reads strict RFC 8259 JSON several times faster than ``json``. The standard library also takes
lone surrogates, ``NaN`` and nesting past orjson's 1,024 levels: those (rare, usually broken)
documents go to it and pass or fail exactly as before, so ``loads`` raises ``json.JSONDecodeError`` (a
ValueError), ``UnicodeDecodeError`` or ``RecursionError`` as ``json.loads`` does. One difference is
left: orjson reads an integer past 64 bits as a float where ``json`` keeps an int; no field of npm or
PyPI metadata holds one.

``dumps`` writes compact UTF-8, as ``json.dumps(separators=(",", ":"), ensure_ascii=False)`` does, and
falls back the same way for what orjson cannot write (integers past 64 bits, keys that are not strings).
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(body: bytes | str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


def dumps(doc: Any) -> bytes:
    try:
        return orjson.dumps(doc)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
