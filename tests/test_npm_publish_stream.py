"""npm publishes stream into the store (proxy.formats.npm.publish_body): any key order, several
attachments, escaped slashes; a bad, cut short, oversized or refused body leaves no blob behind.

One daemon (a subprocess, so its store's blob count is what /metrics says) with a small
``max_publish_size`` serves every test of the module."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from proxy.formats.common.json_split import placeholder
from proxy.formats.npm.integrity import sri
from proxy.formats.npm.publish import PublishRefused
from proxy.formats.npm.publish_body import PublishBody
from tests.fakes.daemon import RunningDaemon, eventually, start_daemon, write_config

LIMIT = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    home: Path = tmp_path_factory.mktemp("npm-publish-stream")
    config = write_config(home, "[repository.local]\npublish = true\n")
    config.write_text(config.read_text().replace("[server]\n", f"[server]\nmax_publish_size = {LIMIT}\n"))
    running = start_daemon(config, home / "d.log")
    yield running
    running.stop()
    assert "Traceback" not in running.log_text()


def version_doc(name: str, version: str, data: bytes) -> dict[str, object]:
    dist = {
        "integrity": sri("sha512", hashlib.sha512(data).hexdigest()),
        "shasum": hashlib.sha1(data).hexdigest(),
    }
    return {"name": name, "version": version, "dist": dist}


def attachment(data: bytes) -> dict[str, object]:
    return {
        "content_type": "application/octet-stream",
        "data": base64.b64encode(data).decode(),
        "length": len(data),
    }


def one_version(name: str, data: bytes, *, attachments_first: bool = False) -> str:
    """A publish document of version 1.0.0 of ``name`` with ``data`` as its tarball."""
    versions = {"1.0.0": version_doc(name, "1.0.0", data)}
    attachments = {f"{name}-1.0.0.tgz": attachment(data)}
    if attachments_first:
        return json.dumps({"_attachments": attachments, "versions": versions, "name": name})
    return json.dumps({"versions": versions, "_attachments": attachments, "name": name})


def put(daemon: RunningDaemon, name: str, body: bytes | Iterator[bytes]) -> httpx.Response:
    return httpx.put(
        f"{daemon.url}/npm/local/{name}",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )


def unchanged(daemon: RunningDaemon, before: int) -> bool:
    eventually(lambda: daemon.blob_count() == before)
    return True


def test_attachments_first_several_of_them_with_escaped_slashes(daemon: RunningDaemon) -> None:
    one, two = os.urandom(300 * 1024), os.urandom(70_000) + b"\xff\xfe" * 1000  # "/" in their base64
    doc = {
        "_attachments": {"stream-a-1.0.0.tgz": attachment(one), "stream-a-2.0.0.tgz": attachment(two)},
        "versions": {
            "1.0.0": version_doc("stream-a", "1.0.0", one),
            "2.0.0": version_doc("stream-a", "2.0.0", two),
        },
        "dist-tags": {"latest": "2.0.0"},
        "name": "stream-a",
    }
    text = json.dumps(doc)
    assert "/" in text
    response = put(daemon, "stream-a", text.replace("/", "\\/").encode())
    assert response.status_code == 201, response.text
    packument = httpx.get(f"{daemon.url}/npm/local/stream-a", timeout=30).json()
    assert packument["dist-tags"]["latest"] == "2.0.0"
    for version, data in (("1.0.0", one), ("2.0.0", two)):
        tarball = httpx.get(packument["versions"][version]["dist"]["tarball"], timeout=30)
        assert tarball.status_code == 200 and tarball.content == data


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda text: text.replace('"data": "', '"data": "*', 1), "not valid base64"),
        (lambda text: text.replace('"data": "', '"data": "QQ==', 1), "not valid base64"),  # padding inside
        (lambda text: text.replace('", "length"', 'Q", "length"', 1), "not valid base64"),  # a partial group
        (lambda text: text[: len(text) // 2], "not a JSON document"),  # cut inside the tarball
        (lambda text: text[:-1], "not a JSON document"),
        (lambda text: text.replace('"name": "stream-b"}', '"name": "stream-b",}', 1), "not a JSON document"),
    ],
)
def test_bad_base64_and_broken_bodies_are_400_and_leave_no_blob(
    daemon: RunningDaemon, damage, reason
) -> None:
    data = os.urandom(200 * 1024)
    text = one_version("stream-b", data)
    before = daemon.blob_count()
    response = put(daemon, "stream-b", damage(text).encode())
    assert response.status_code == 400, response.text
    assert reason in response.json()["error"]
    assert unchanged(daemon, before)


def test_a_chunked_publish_past_the_limit_is_413_and_leaves_no_blob(daemon: RunningDaemon) -> None:
    data = os.urandom(LIMIT)  # its base64 alone is a third over the limit
    body = one_version("stream-c", data).encode()
    before = daemon.blob_count()

    def chunks() -> Iterator[bytes]:  # no Content-Length: only counting what streams can stop it
        for at in range(0, len(body), 64 * 1024):
            yield body[at : at + 64 * 1024]

    response = put(daemon, "stream-c", chunks())
    assert response.status_code == 413, response.text
    assert "max_publish_size" in response.json()["error"]
    assert unchanged(daemon, before)


def test_refused_documents_leave_no_blob(daemon: RunningDaemon) -> None:
    one, two = os.urandom(100 * 1024), os.urandom(100 * 1024)
    versions = {
        "1.0.0": version_doc("stream-d", "1.0.0", one),
        "2.0.0": version_doc("stream-d", "2.0.0", two),
    }
    before = daemon.blob_count()
    # A tarball that no version names: version 2.0.0 has none.
    unreferenced = {
        "name": "stream-d",
        "versions": versions,
        "_attachments": {"stream-d-1.0.0.tgz": attachment(one), "other-2.0.0.tgz": attachment(two)},
    }
    response = put(daemon, "stream-d", json.dumps(unreferenced).encode())
    assert (
        response.status_code == 400 and "no tarball attached for stream-d 2.0.0" in response.json()["error"]
    )
    # The wrong digests.
    wrong = dict(unreferenced, _attachments={f"stream-d-{v}.tgz": attachment(two) for v in versions})
    response = put(daemon, "stream-d", json.dumps(wrong).encode())
    assert response.status_code == 400 and "does not match its declared digests" in response.json()["error"]
    assert unchanged(daemon, before)
    # Published once; the same version again (other bytes) is 409 and stores nothing.
    good = dict(
        unreferenced,
        _attachments={f"stream-d-{v}.tgz": attachment(d) for v, d in (("1.0.0", one), ("2.0.0", two))},
    )
    assert put(daemon, "stream-d", json.dumps(good).encode()).status_code == 201
    after = daemon.blob_count()
    assert after == before + 2
    three = os.urandom(1000)
    again = {
        "name": "stream-d",
        "versions": {"2.0.0": version_doc("stream-d", "2.0.0", three)},
        "_attachments": {"stream-d-2.0.0.tgz": attachment(three)},
    }
    response = put(daemon, "stream-d", json.dumps(again).encode())
    assert response.status_code == 409, response.text
    assert unchanged(daemon, after)


def test_a_client_that_leaves_mid_body_leaves_no_blob(daemon: RunningDaemon) -> None:
    data = os.urandom(500 * 1024)
    body = one_version("stream-e", data).encode()
    before = daemon.blob_count()
    port = int(daemon.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(
            b"PUT /npm/local/stream-e HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[: len(body) // 2]
        )
    assert unchanged(daemon, before)
    assert httpx.get(f"{daemon.url}/npm/local/stream-e", timeout=30).status_code == 404


def test_the_body_reader_holds_a_chunk_not_the_publish() -> None:
    data = os.urandom(12 * 1024 * 1024)
    body = one_version("stream-f", data, attachments_first=True).encode()
    chunk = 256 * 1024
    digest, size = hashlib.sha512(), 0
    tracemalloc.start()
    try:
        reader = PublishBody()
        for at in range(0, len(body), chunk):
            for _, piece in reader.feed(body[at : at + chunk]):
                digest.update(piece)
                size += len(piece)
        doc = reader.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (size, digest.hexdigest()) == (len(data), hashlib.sha512(data).hexdigest())
    assert doc["_attachments"]["stream-f-1.0.0.tgz"]["data"] == placeholder(0)
    assert peak < 8 * chunk  # a few chunks' worth, whatever the tarball's size (here 16 MiB of base64)


def test_a_packument_past_the_document_cap_is_413_while_it_streams() -> None:
    reader = PublishBody(max_document=4096)
    reader.feed(b'{"name": "stream-g", "readme": "' + b"x" * 2048)
    with pytest.raises(PublishRefused) as refused:
        reader.feed(b"x" * 4096)  # refused here, not at the end of the body
    assert refused.value.status == 413
