"""Property tests (hypothesis): the parsers of what upstreams send (packuments, simple pages in HTML
and JSON, maven-metadata.xml, checksum files, core METADATA) and of what clients publish (npm publish
documents) take arbitrary, structured-but-wrong and truncated input. Each either answers or raises
the one exception its caller turns into a 4xx or a 502; never anything else (which would be a 500),
and never with memory out of proportion to the input.

Examples are few per property (the suite must stay fast); the strategies aim at the shapes that
matter (JSON of the right outline with the wrong types, valid documents cut short)."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.formats.maven.checksums import parse_checksum
from proxy.formats.maven.metadata import parse as parse_maven_metadata
from proxy.formats.maven.metadata import render as render_maven_metadata
from proxy.formats.npm.metadata import PlaceDocument, merge, parse_packument, render_abbreviated, render_full
from proxy.formats.npm.names import parse_name
from proxy.formats.npm.publish import PublishRefused
from proxy.formats.pypi.coremeta import metadata_mismatch
from proxy.formats.pypi.pages import parse_page
from tests.fakes.daemon import RunningDaemon, start_daemon, write_config
from tests.npm_publish import parse_publish

FAST = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def bounded(parse: Callable[[bytes], Any], body: bytes, allowed: tuple[type[BaseException], ...]) -> None:
    """``parse(body)`` answers or raises one of ``allowed``, using memory in proportion to the input."""
    tracemalloc.start()
    try:
        parse(body)
    except allowed:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < 64 * len(body) + 4 * 1024**2, f"{peak} bytes to parse {len(body)}"


def truncations(document: bytes) -> st.SearchStrategy[bytes]:
    return st.integers(min_value=0, max_value=len(document)).map(lambda n: document[:n])


# ---- npm packuments -----------------------------------------------------------------------------
VERSION_DOC = st.fixed_dictionaries(
    {},
    optional={
        "name": json_values,
        "version": json_values,
        "dependencies": json_values,
        "dist": st.fixed_dictionaries(
            {}, optional={"tarball": json_values, "integrity": json_values, "shasum": json_values}
        )
        | json_values,
    },
)
PACKUMENTS = st.fixed_dictionaries(
    {},
    optional={
        "name": json_values,
        "dist-tags": st.dictionaries(st.text(max_size=8), json_values, max_size=3) | json_values,
        "versions": st.dictionaries(st.text(max_size=8), VERSION_DOC | json_values, max_size=3) | json_values,
        "time": st.dictionaries(st.text(max_size=8), json_values, max_size=3) | json_values,
        "_attachments": json_values,
    },
)
GOOD_PACKUMENT = json.dumps(
    {
        "name": "left-pad",
        "dist-tags": {"latest": "1.0.0"},
        "versions": {
            "1.0.0": {
                "name": "left-pad",
                "version": "1.0.0",
                "dist": {
                    "tarball": "https://registry.example.com/left-pad/-/left-pad-1.0.0.tgz",
                    "shasum": "ab",
                },
            }
        },
        "time": {"1.0.0": "2024-01-01T00:00:00.000Z"},
    }
).encode()


def packument_pipeline(body: bytes) -> None:
    """What the proxy does with an upstream packument: parse, merge with another place, render."""
    doc = parse_packument(body)
    package = parse_name("left-pad")
    merged = merge(package, [PlaceDocument("up", True, doc), PlaceDocument("other", True, doc)])
    render_full(merged, "http://127.0.0.1/npm/dev/left-pad/-/")
    render_abbreviated(merged, "http://127.0.0.1/npm/dev/left-pad/-/")


@FAST
@given(PACKUMENTS)
def test_packuments_of_the_right_outline_with_wrong_types(doc: dict) -> None:
    bounded(packument_pipeline, json.dumps(doc).encode(), (ValueError,))


@FAST
@given(st.binary(max_size=300) | truncations(GOOD_PACKUMENT))
def test_packuments_that_are_not_json_or_cut_short(body: bytes) -> None:
    bounded(packument_pipeline, body, (ValueError,))


# ---- simple pages -----------------------------------------------------------------------------------
GOOD_HTML = (
    b'<!DOCTYPE html><html><body><a href="https://files.example.com/demo-1.0-py3-none-any.whl#sha256='
    + b"a" * 64
    + b'" data-requires-python="&gt;=3.8" data-dist-info-metadata="sha256='
    + b"b" * 64
    + b'">demo-1.0-py3-none-any.whl</a></body></html>'
)
GOOD_JSON = json.dumps(
    {
        "meta": {"api-version": "1.1"},
        "name": "demo",
        "files": [
            {
                "filename": "demo-1.0.tar.gz",
                "url": "https://files.example.com/demo-1.0.tar.gz",
                "hashes": {"sha256": "c" * 64},
                "requires-python": ">=3.8",
                "core-metadata": {"sha256": "d" * 64},
                "yanked": False,
            }
        ],
    }
).encode()
JSON_FILES = st.fixed_dictionaries(
    {},
    optional={
        "filename": json_values,
        "url": json_values | st.just("https://files.example.com/demo-1.0.tar.gz"),
        "hashes": json_values,
        "requires-python": json_values,
        "core-metadata": json_values,
        "dist-info-metadata": json_values,
        "yanked": json_values,
    },
)


@FAST
@given(
    st.fixed_dictionaries(
        {"files": st.lists(JSON_FILES | json_values, max_size=3)}, optional={"meta": json_values}
    )
)
def test_json_simple_pages_with_wrong_types(doc: dict) -> None:
    bounded(lambda body: parse_page(body, "demo"), json.dumps(doc).encode(), (ValueError,))


@FAST
@given(
    st.binary(max_size=300)
    | truncations(GOOD_HTML)
    | truncations(GOOD_JSON)
    | st.text(max_size=300).map(str.encode)
)
def test_simple_pages_that_are_broken_or_cut_short(body: bytes) -> None:
    bounded(lambda b: parse_page(b, "demo"), body, (ValueError,))


# ---- maven-metadata.xml and checksum files -------------------------------------------------------
GOOD_METADATA = (
    b"<?xml version='1.0'?><metadata><groupId>org.example</groupId><artifactId>hello</artifactId>"
    b"<versioning><latest>1.1</latest><release>1.1</release><versions><version>1.0</version>"
    b"<version>1.1</version></versions><lastUpdated>20240101000000</lastUpdated>"
    b"<snapshot><timestamp>20240101.000000</timestamp><buildNumber>3</buildNumber></snapshot>"
    b"<snapshotVersions><snapshotVersion><extension>jar</extension><value>1.1-20240101.000000-3</value>"
    b"<updated>20240101000000</updated></snapshotVersion></snapshotVersions></versioning></metadata>"
)


def maven_pipeline(body: bytes) -> None:
    render_maven_metadata(parse_maven_metadata(body))


@FAST
@given(st.binary(max_size=300) | truncations(GOOD_METADATA) | st.text(max_size=300).map(str.encode))
def test_maven_metadata_broken_or_cut_short(body: bytes) -> None:
    bounded(maven_pipeline, body, (ValueError,))


@FAST
@given(
    st.lists(
        st.sampled_from(["metadata", "versioning", "versions", "version", "snapshot", "buildNumber"]),
        max_size=8,
    ),
    st.text(max_size=20),
)
def test_maven_metadata_with_elements_in_odd_places(tags: list[str], text: str) -> None:
    inner = (
        "".join(f"<{t}>" for t in tags)
        + text.replace("<", "").replace("&", "")
        + "".join(f"</{t}>" for t in reversed(tags))
    )
    bounded(maven_pipeline, f"<metadata>{inner}</metadata>".encode(), (ValueError,))


@FAST
@given(st.binary(max_size=200), st.sampled_from(["md5", "sha1", "sha256", "sha512"]))
def test_checksum_files(body: bytes, algorithm: str) -> None:
    bounded(lambda b: parse_checksum(b, algorithm), body, (ValueError,))  # type: ignore[arg-type]


# ---- core METADATA ----------------------------------------------------------------------------------
GOOD_CORE = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nRequires-Dist: idna (>=2)\n\nA description.\n"


@FAST
@given(st.binary(max_size=300) | truncations(GOOD_CORE) | st.text(max_size=300).map(str.encode))
def test_core_metadata_never_raises(body: bytes) -> None:
    bounded(lambda b: metadata_mismatch(b, "demo", "1.0"), body, ())


# ---- npm publish documents --------------------------------------------------------------------------
GOOD_PUBLISH = json.dumps(
    {
        "name": "left-pad",
        "dist-tags": {"latest": "1.0.0"},
        "versions": {"1.0.0": {"name": "left-pad", "version": "1.0.0", "dist": {}}},
        "_attachments": {"left-pad-1.0.0.tgz": {"data": "aGVsbG8=", "length": 5}},
    }
).encode()
PUBLISHES = st.fixed_dictionaries(
    {"name": st.just("left-pad") | json_values},
    optional={
        "dist-tags": json_values,
        "versions": st.dictionaries(
            st.sampled_from(["1.0.0", "x", ""]), VERSION_DOC | json_values, max_size=2
        )
        | json_values,
        "_attachments": st.dictionaries(
            st.sampled_from(["left-pad-1.0.0.tgz", "other.tgz"]),
            st.fixed_dictionaries(
                {}, optional={"data": json_values | st.just("aGVsbG8="), "length": json_values}
            )
            | json_values,
            max_size=2,
        )
        | json_values,
    },
)


@FAST
@given(PUBLISHES)
def test_publish_documents_with_wrong_types_are_refused_cleanly(doc: dict) -> None:
    package = parse_name("left-pad", new=True)
    bounded(lambda body: parse_publish(package, body), json.dumps(doc).encode(), (PublishRefused,))


@FAST
@given(st.binary(max_size=300) | truncations(GOOD_PUBLISH) | st.integers(1, 50_000).map(lambda n: b"[" * n))
def test_publish_bodies_broken_cut_short_or_nested_deep(body: bytes) -> None:
    package = parse_name("left-pad", new=True)
    bounded(lambda b: parse_publish(package, b), body, (PublishRefused,))


# ---- publishes over HTTP: whatever a client sends, never a 500 -----------------------------------
@pytest.fixture(scope="module")
def publish_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    home = tmp_path_factory.mktemp("publish-properties")
    daemon = start_daemon(write_config(home, "[repository.local]\npublish = true\n"), home / "d.log")
    yield daemon
    daemon.stop()


FIELD_VALUES = st.text(max_size=30) | st.sampled_from(
    ["1.0", "demo", "bdist_wheel", "sdist", "py3", "2.1", ""]
)
FILENAMES = (
    st.text(max_size=40)
    | st.sampled_from(["demo-1.0-py3-none-any.whl", "demo-1.0.tar.gz", "../demo-1.0.tar.gz", "demo-1.0.zip"])
).filter(lambda name: "\r" not in name and "\n" not in name and '"' not in name)


@FAST
@given(
    st.dictionaries(
        st.sampled_from(
            ["name", "version", "filetype", "pyversion", "metadata_version", "sha256_digest", "summary"]
        ),
        FIELD_VALUES,
    ),
    FILENAMES,
    st.binary(max_size=200),
)
def test_twine_uploads_of_any_shape_are_never_a_500(
    publish_daemon: RunningDaemon, fields: dict[str, str], filename: str, content: bytes
) -> None:
    form = {":action": "file_upload", "protocol_version": "1", **fields}
    try:
        response = httpx.post(
            f"{publish_daemon.url}/pypi/local/",
            data=form,
            files={"content": (filename, content, "application/octet-stream")},
            timeout=30,
        )
    except (UnicodeEncodeError, ValueError):  # httpx cannot write that filename into a header
        return
    assert response.status_code < 500, response.text


MAVEN_PATHS = st.lists(
    st.text(alphabet="abcdefghij.-_0123456789", min_size=1, max_size=10), min_size=1, max_size=5
).map("/".join) | st.sampled_from(
    [
        "org/example/demo/1.0/demo-1.0.jar",
        "org/example/demo/1.0/demo-1.0.jar.sha1",
        "org/example/demo/maven-metadata.xml",
        "org/example/demo/maven-metadata.xml.md5",
        "org/example/demo/1.0-SNAPSHOT/demo-1.0-20240101.000000-1.jar",
    ]
)


@FAST
@given(MAVEN_PATHS, st.binary(max_size=200) | truncations(GOOD_METADATA))
def test_maven_deploys_of_any_shape_are_never_a_500(
    publish_daemon: RunningDaemon, path: str, body: bytes
) -> None:
    response = httpx.put(f"{publish_daemon.url}/maven/local/{path}", content=body, timeout=30)
    assert response.status_code < 500, response.text


@FAST
@given(
    PUBLISHES.map(lambda doc: json.dumps(doc).encode()) | st.binary(max_size=200) | truncations(GOOD_PUBLISH)
)
def test_npm_publishes_of_any_shape_are_never_a_500(publish_daemon: RunningDaemon, body: bytes) -> None:
    response = httpx.put(f"{publish_daemon.url}/npm/local/left-pad", content=body, timeout=30)
    assert response.status_code < 500, response.text
