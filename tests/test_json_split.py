"""The streaming JSON splitter (proxy.formats.common.json_split): whatever the document and however its
bytes are cut into chunks, the skeleton with the extracted strings put back is what ``json.loads`` reads
from the whole document; broken documents are refused, never misread."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.formats.common.json_split import (
    JsonSplitError,
    JsonSplitter,
    Path,
    SkeletonTooLarge,
    TooDeep,
    placeholder,
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEYS = st.sampled_from(["data", "a", "_attachments", "x/y", 'q"', "é", "\U0001f600", "\\"])
KEYS = KEYS | st.text(max_size=4)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=25,
)


class Collect:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.closed = False

    def write(self, text: str) -> None:
        assert not self.closed
        self.parts.append(text)

    def close(self) -> None:
        self.closed = True


def wanted(path: Path) -> bool:
    """Strings under a key "data" anywhere, and every second element of an array."""
    return bool(path) and (path[-1] == "data" or (isinstance(path[-1], int) and path[-1] % 2 == 1))


def split(body: bytes, cuts: list[int], max_skeleton: int = 1 << 20) -> tuple[Any, list[Collect]]:
    sinks: list[Collect] = []

    def extract(path: Path) -> Collect | None:
        if not wanted(path):
            return None
        sinks.append(Collect())
        return sinks[-1]

    splitter = JsonSplitter(extract, max_skeleton=max_skeleton)
    at = 0
    for cut in [*sorted(cuts), len(body)]:
        splitter.feed(body[at:cut])
        at = max(at, cut)
    skeleton = json.loads(splitter.finish().decode("utf-8", "surrogatepass"))
    assert splitter.extracted == len(sinks) and all(s.closed for s in sinks)
    return skeleton, sinks


def put_back(value: Any, sinks: list[Collect], path: Path = ()) -> Any:
    if isinstance(value, dict):
        return {k: put_back(v, sinks, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [put_back(v, sinks, (*path, i)) for i, v in enumerate(value)]
    if isinstance(value, str) and wanted(path):
        return "".join(sinks[int(value)].parts)
    return value


def chunked(body: bytes, cuts: list[int]) -> list[int]:
    return [c % (len(body) + 1) for c in cuts]


@FAST
@given(DOCUMENTS, st.lists(st.integers(0, 10_000), max_size=12), st.booleans(), st.booleans())
def test_skeleton_and_extracted_strings_are_the_document(doc, cuts, ascii_only, escape_slashes) -> None:
    text = json.dumps(doc, ensure_ascii=ascii_only)
    if escape_slashes:
        text = text.replace("/", "\\/")
    body = text.encode("utf-8", "surrogatepass")
    skeleton, sinks = split(body, chunked(body, cuts))
    assert put_back(skeleton, sinks) == json.loads(body)


@FAST
@given(st.text(max_size=40), st.lists(st.integers(0, 400), max_size=8))
def test_extracted_strings_with_every_escape_survive_any_cut(value, cuts) -> None:
    body = json.dumps({"data": value, "after": [1, value]}).encode()  # \uXXXX for everything non-ASCII
    skeleton, sinks = split(body, chunked(body, cuts))
    assert "".join(sinks[0].parts) == value and "".join(sinks[1].parts) == value
    assert skeleton["data"] == placeholder(0) and skeleton["after"] == [1, placeholder(1)]


@pytest.mark.parametrize("cut", range(1, 20))
def test_a_surrogate_pair_cut_anywhere_is_one_character(cut: int) -> None:
    body = b'{"data": "a\\ud83d\\ude00b"}'
    _, [sink] = split(body, [cut])
    assert "".join(sink.parts) == "a\U0001f600b"


@FAST
@given(DOCUMENTS, st.data())
def test_a_document_cut_short_or_broken_is_refused(doc, data) -> None:
    body = json.dumps({"data": "xyz", "doc": doc}).encode()
    cut = data.draw(st.integers(0, len(body) - 1))
    with pytest.raises((JsonSplitError, json.JSONDecodeError)):
        split(body[:cut], [])


@pytest.mark.parametrize(
    "body",
    [
        b'{"data": "a\\qb"}',  # invalid escape in an extracted string
        b'{"data": "a\\u12zzb"}',
        b'{"data": "a\x01b"}',  # raw control character
        b'{"data": "a\xffb"}',  # not UTF-8
        b'{"data": "a\\u00"}',
        b'{"a": "x"]',
        b'{"data": "abc"',
        b'{"data": "abc"}}',
        b"]",
    ],
)
def test_broken_documents_are_refused(body: bytes) -> None:
    for cuts in ([], list(range(len(body)))):
        with pytest.raises((JsonSplitError, json.JSONDecodeError)):
            split(body, cuts)


def test_the_skeleton_and_the_depth_are_capped() -> None:
    with pytest.raises(SkeletonTooLarge):
        split(json.dumps({"readme": "x" * 2000, "data": "y" * 5000}).encode(), [], max_skeleton=1000)
    _, [sink] = split(json.dumps({"readme": "x" * 100, "data": "y" * 5000}).encode(), [], 1000)
    assert "".join(sink.parts) == "y" * 5000
    with pytest.raises(TooDeep):
        split(b"[" * 100_000 + b"]" * 100_000, [])
