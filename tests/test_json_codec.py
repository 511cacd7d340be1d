"""The JSON codec reads and writes what ``json`` does, and its shaped reading checks what it skips."""

from __future__ import annotations

import json
from typing import Any, TypedDict

import msgspec
import pytest

from proxy.formats.common import json_codec


class _Shape(TypedDict, total=False):
    kept: dict[str, Any]


SHAPE = msgspec.json.Decoder(_Shape)


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": [1, 2.5, "x", null, true], "b": {"c": {}}}',
        b'{"big": 123456789012345678901234567890}',
        b'{"nan": NaN, "inf": -Infinity}',
        b'{"lone": "\\ud800"}',
        '{"text": "caf\u00e9"}'.encode(),
    ],
)
def test_loads_reads_what_json_reads(body: bytes) -> None:
    got, want = json_codec.loads(body), json.loads(body)
    assert json.dumps(got) == json.dumps(want)  # NaN != NaN: compare as written


@pytest.mark.parametrize("body", [b'{"a": [1,}', b"\xff", b'{"a": 1', b""])
def test_loads_refuses_what_json_refuses(body: bytes) -> None:
    with pytest.raises(ValueError):
        json.loads(body)
    with pytest.raises(ValueError):
        json_codec.loads(body)


def test_dumps_is_compact_utf8_and_reads_back() -> None:
    doc = {"a": [1, 2], "é": "ü", "big": 2**70}
    assert json_codec.dumps(doc) == json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def test_loads_as_keeps_only_the_shape() -> None:
    body = b'{"kept": {"x": 1}, "skipped": {"deep": [1, 2, {"y": "z"}]}}'
    assert json_codec.loads_as(body, SHAPE) == {"kept": {"x": 1}}


@pytest.mark.parametrize(
    "body",
    [
        b'{"kept": {}, "skipped": [1, 2,}',  # broken JSON where nothing is kept
        b'{"kept": {}, "skipped": "\xff"}',  # not UTF-8 where nothing is kept
        b'{"kept": [1]}',  # not the shape
        b"[]",
    ],
)
def test_loads_as_checks_what_it_skips(body: bytes) -> None:
    with pytest.raises(ValueError):
        json_codec.loads_as(body, SHAPE)


def test_loads_as_reads_what_only_json_reads() -> None:
    assert json_codec.loads_as(b'{"kept": {"n": NaN}, "skipped": Infinity}', SHAPE)["kept"].keys() == {"n"}
    with pytest.raises(ValueError):
        json_codec.loads_as(b'{"kept": NaN}', SHAPE)
