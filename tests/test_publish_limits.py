"""``server.max_publish_size`` bounds every publish body as it streams, not only one that announces its
Content-Length: a chunked Maven deploy or twine upload past the limit is a 413 and leaves no blob; a
dist-tag body is one version, read up to 1 KiB. (npm publishes: tests/test_npm_publish_stream.py, whose
daemon these tests share.)"""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx

from tests.fakes.daemon import RunningDaemon
from tests.fakes.pypi_index import make_wheel
from tests.test_npm_publish_stream import LIMIT, daemon  # noqa: F401 - the fixture (a small limit)


def chunked(body: bytes) -> Iterator[bytes]:
    """``body`` with no Content-Length: only counting what streams in can stop it."""
    for at in range(0, len(body), 64 * 1024):
        yield body[at : at + 64 * 1024]


def assert_refused_whole(response: httpx.Response, running: RunningDaemon, blobs_before: int) -> None:
    assert response.status_code == 413, response.text
    assert "max_publish_size" in response.text
    assert running.blob_count() == blobs_before


def test_a_chunked_maven_deploy_past_the_limit_is_413_and_leaves_no_blob(daemon: RunningDaemon) -> None:  # noqa: F811
    before = daemon.blob_count()
    url = f"{daemon.url}/maven/local/org/example/big/1.0/big-1.0.jar"
    response = httpx.put(url, content=chunked(os.urandom(LIMIT + 1)), timeout=30)
    assert_refused_whole(response, daemon, before)
    assert httpx.get(url, timeout=30).status_code == 404
    small = httpx.put(url, content=chunked(os.urandom(LIMIT // 2)), timeout=30)
    assert small.status_code == 201, small.text


def test_a_chunked_twine_upload_past_the_limit_is_413_and_leaves_no_blob(daemon: RunningDaemon) -> None:  # noqa: F811
    before = daemon.blob_count()
    filename, wheel = make_wheel("big-wheel", "1.0", payload_size=LIMIT + 1)
    assert len(wheel) > LIMIT
    form = httpx.Request(
        "POST",
        f"{daemon.url}/pypi/local/",
        data={":action": "file_upload", "protocol_version": "1", "name": "big-wheel", "version": "1.0"},
        files={"content": (filename, wheel, "application/octet-stream")},
    )
    form.read()
    headers = {"Content-Type": form.headers["Content-Type"]}
    response = httpx.post(
        f"{daemon.url}/pypi/local/", content=chunked(form.content), headers=headers, timeout=30
    )
    assert_refused_whole(response, daemon, before)


def test_a_dist_tag_body_is_one_version(daemon: RunningDaemon) -> None:  # noqa: F811
    url = f"{daemon.url}/npm/local/-/package/some-package/dist-tags/beta"
    response = httpx.put(url, content=chunked(b'"' + b"1" * 4096 + b'"'), timeout=30)
    assert response.status_code == 413, response.text
    assert "at most 1024 bytes" in response.text
