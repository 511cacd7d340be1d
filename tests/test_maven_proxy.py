"""/maven/{repo}/ over HTTP: the proxy as a subprocess, fake plain Maven repositories as upstreams.

Assets and checksums, chain order, verification against the upstream's .sha1 before anything is
stored, broken upstream metadata, merging, stale metadata, single flight, and deploys (PUT) with their
refusals. The real mvn is in test_maven_e2e.py.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from aiohttp.test_utils import TestClient, TestServer

from proxy.config.loader import load_config
from proxy.daemon import Daemon
from proxy.formats.maven.metadata import parse
from proxy.formats.registry import format_names
from proxy.server.app import build_app
from tests.fakes.daemon import RunningDaemon, download_past_a_stall, start_daemon, write_config
from tests.fakes.maven_repository import FakeMavenRepository

JAR = "org/example/hello/1.0/hello-1.0.jar"
JAR_BYTES = b"PK\x03\x04 a jar of hello 1.0" + bytes(range(256)) * 40
POM = "org/example/hello/1.0/hello-1.0.pom"
POM_BYTES = (
    b"<project><groupId>org.example</groupId><artifactId>hello</artifactId><version>1.0</version></project>"
)
METADATA = "org/example/hello/maven-metadata.xml"


@pytest.fixture
def fakes() -> Iterator[Callable[[], FakeMavenRepository]]:
    started: list[FakeMavenRepository] = []

    def make() -> FakeMavenRepository:
        fake = FakeMavenRepository().start()
        started.append(fake)
        return fake

    yield make
    for fake in started:
        fake.close()


@pytest.fixture
def upstream(fakes: Callable[[], FakeMavenRepository]) -> FakeMavenRepository:
    fake = fakes()
    fake.add(JAR, JAR_BYTES)
    fake.add(POM, POM_BYTES)
    return fake


def proxy_config(*upstreams: FakeMavenRepository, publish: bool = True) -> str:
    tables = "".join(
        f'[upstream.up{i}]\nformat = "maven"\nurl = "{u.url}"\n\n' for i, u in enumerate(upstreams)
    )
    names = ", ".join(f'"up{i}"' for i in range(len(upstreams)))
    return f"{tables}[repository.dev]\nupstreams = [{names}]\npublish = {str(publish).lower()}\n\n"


def start(tmp_path: Path, body: str, *, ttl: str = "5m") -> RunningDaemon:
    config = write_config(tmp_path, body, metadata_ttl=ttl)
    return start_daemon(config, tmp_path / f"daemon-{time.monotonic_ns()}.log")


@pytest.fixture
def daemons() -> Iterator[list[RunningDaemon]]:
    running: list[RunningDaemon] = []
    yield running
    for daemon in running:
        if daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait()


@pytest.fixture
def proxy(tmp_path: Path, upstream: FakeMavenRepository, daemons: list[RunningDaemon]) -> httpx.Client:
    daemon = start(tmp_path, proxy_config(upstream))
    daemons.append(daemon)
    return httpx.Client(base_url=f"{daemon.url}/maven/dev/", timeout=30)


# -- reading --------------------------------------------------------------------------------------
def test_assets_and_their_checksums(proxy: httpx.Client, upstream: FakeMavenRepository) -> None:
    head = proxy.head(JAR)
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(JAR_BYTES))
    assert head.content == b""
    got = proxy.get(JAR)
    assert got.status_code == 200 and got.content == JAR_BYTES
    assert got.headers["Content-Type"] == "application/java-archive"
    for algorithm in ("md5", "sha1", "sha256", "sha512"):
        answer = proxy.get(f"{JAR}.{algorithm}")
        assert answer.status_code == 200
        assert answer.text == hashlib.new(algorithm, JAR_BYTES).hexdigest()
    assert proxy.get(POM).content == POM_BYTES
    assert proxy.get(f"{POM}.sha1").text == hashlib.sha1(POM_BYTES).hexdigest()
    # one download each, verified against the upstream's .sha1 read first
    assert upstream.count(JAR) == 1 and upstream.count(f"{JAR}.sha1") == 1
    assert upstream.count(f"{JAR}.md5") == 0 and upstream.count(f"{JAR}.sha512") == 0


def test_checksums_when_the_upstream_has_none(proxy: httpx.Client, upstream: FakeMavenRepository) -> None:
    upstream.fault(f"{JAR}.sha1", "not_found")
    upstream.fault(f"{JAR}.sha256", "not_found")
    assert proxy.get(f"{JAR}.sha512").text == hashlib.sha512(JAR_BYTES).hexdigest()
    assert proxy.get(JAR).content == JAR_BYTES
    assert upstream.count(JAR) == 1


def test_sha256_is_used_when_there_is_no_sha1(proxy: httpx.Client, upstream: FakeMavenRepository) -> None:
    upstream.fault(f"{JAR}.sha1", "not_found")
    upstream.fault(f"{JAR}.sha256", "wrong_checksum")
    assert proxy.get(JAR).status_code == 502


def test_unknown_repository_and_bad_paths(proxy: httpx.Client) -> None:
    assert proxy.get("/maven/nope/" + JAR).status_code == 404
    for bad in (
        "org/example/hello/1.0/other-1.0.jar",
        "org/x/maven-metadata.xml/x",
        "org/%2e%2e/a/1/a-1.jar",
    ):
        answer = proxy.get(bad)
        assert answer.status_code == 400, bad
        assert "error" in answer.json()
    assert proxy.get("org/example/absent/1.0/absent-1.0.jar").status_code == 404


def test_first_upstream_in_order_wins(
    tmp_path: Path, fakes: Callable[[], FakeMavenRepository], daemons: list[RunningDaemon]
) -> None:
    first, second, third = fakes(), fakes(), fakes()
    second.add(JAR, b"second's bytes")
    third.add(JAR, b"third's bytes")
    daemon = start(tmp_path, proxy_config(first, second, third))
    daemons.append(daemon)
    client = httpx.Client(base_url=f"{daemon.url}/maven/dev/")
    assert client.get(JAR).content == b"second's bytes"
    assert first.count(f"{JAR}.sha1") == 1  # asked, did not have it
    assert third.count(JAR) == 0 and third.count(f"{JAR}.sha1") == 0


@pytest.mark.parametrize("fault", ["wrong_bytes", "truncated"])
def test_a_bad_download_is_a_502_and_not_stored(
    proxy: httpx.Client, upstream: FakeMavenRepository, fault: str
) -> None:
    upstream.fault(JAR, fault)  # type: ignore[arg-type]
    answer = proxy.get(JAR)
    assert answer.status_code == 502
    assert "upstream" in answer.json()["error"]
    upstream.fault(JAR, "not_found")  # nothing of it was stored: with the upstream's copy gone, a 404
    assert proxy.get(JAR).status_code == 404


BIG_JAR = "org/example/big/1.0/big-1.0.jar"


def test_a_miss_reaches_the_client_while_the_upstream_is_still_sending(
    proxy: httpx.Client, upstream: FakeMavenRepository, daemons: list[RunningDaemon]
) -> None:
    data = os.urandom(2 * 1024 * 1024)
    upstream.add(BIG_JAR, data)
    upstream.fault(BIG_JAR, "stall")  # the first MiB, then nothing until released
    url = f"{daemons[-1].url}/maven/dev/{BIG_JAR}"
    assert download_past_a_stall(url, len(data), upstream.stalled, daemons[-1].blob_count) == data
    assert proxy.get(BIG_JAR).content == data  # from the store
    assert upstream.count(BIG_JAR) == 1


def test_a_lying_upstream_cuts_a_streamed_miss_short_and_nothing_is_stored(
    proxy: httpx.Client, upstream: FakeMavenRepository, daemons: list[RunningDaemon]
) -> None:
    upstream.add(BIG_JAR, os.urandom(2 * 1024 * 1024))
    upstream.fault(BIG_JAR, "wrong_bytes")  # the last byte differs from what the .sha1 says
    with pytest.raises(httpx.TransportError), proxy.stream("GET", BIG_JAR) as response:
        assert response.status_code == 200  # the first bytes went out before the last one was seen
        response.read()
    assert daemons[-1].blob_count() == 0
    assert "fails verification" in daemons[-1].log_text()
    upstream.fault(BIG_JAR, "not_found")  # nothing of it was stored: with the upstream's copy gone, a 404
    assert proxy.get(BIG_JAR).status_code == 404


@pytest.mark.parametrize("fault", ["wrong_checksum", "html"])
def test_a_wrong_or_broken_sha1_is_a_502_and_nothing_stored(
    proxy: httpx.Client, upstream: FakeMavenRepository, fault: str
) -> None:
    upstream.fault(f"{JAR}.sha1", fault)  # type: ignore[arg-type]
    assert proxy.get(JAR).status_code == 502
    assert proxy.get(f"{JAR}.sha1").status_code == 502
    downloads = upstream.count(JAR)
    upstream.fault(f"{JAR}.sha1", None)
    assert proxy.get(JAR).content == JAR_BYTES
    assert upstream.count(JAR) == downloads + 1  # downloaded again: nothing of the refused one was kept


@pytest.mark.parametrize("fault", ["html", "broken_xml", "status500"])
def test_broken_upstream_metadata_is_a_502_and_not_stored(
    proxy: httpx.Client, upstream: FakeMavenRepository, fault: str
) -> None:
    upstream.fault(METADATA, fault)  # type: ignore[arg-type]
    answer = proxy.get(METADATA)
    assert answer.status_code == 502
    assert "error" in answer.json()
    upstream.fault(METADATA, None)
    answer = proxy.get(METADATA)
    assert answer.status_code == 200
    assert parse(answer.content).versions == ("1.0",)


def test_metadata_is_merged_across_the_chain(
    tmp_path: Path, fakes: Callable[[], FakeMavenRepository], daemons: list[RunningDaemon]
) -> None:
    first, second = fakes(), fakes()
    for fake, versions in (
        (first, ["1.0", "1.0-beta", "2.0-SNAPSHOT"]),
        (second, ["1.0.1", "1.0-alpha-1", "1.0"]),
    ):
        for version in versions:
            fake.add(f"org/example/hello/{version}/hello-{version}.pom", b"<project/>")
    daemon = start(tmp_path, proxy_config(first, second))
    daemons.append(daemon)
    client = httpx.Client(base_url=f"{daemon.url}/maven/dev/")
    answer = client.get(METADATA)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/xml")
    doc = parse(answer.content)
    assert doc.versions == ("1.0-alpha-1", "1.0-beta", "1.0", "1.0.1", "2.0-SNAPSHOT")
    assert (doc.latest, doc.release) == ("2.0-SNAPSHOT", "1.0.1")
    assert doc.last_updated is not None
    # checksums of exactly the served bytes; gzip to clients that take it; 304 on the ETag
    assert client.get(f"{METADATA}.sha1").text == hashlib.sha1(answer.content).hexdigest()
    raw = client.get(METADATA, headers={"Accept-Encoding": "gzip"})
    assert raw.headers["Content-Encoding"] == "gzip"
    etag = raw.headers["ETag"]
    assert client.get(METADATA, headers={"If-None-Match": etag}).status_code == 304
    with httpx.stream("GET", f"{daemon.url}/maven/dev/{METADATA}", headers={"Accept-Encoding": "gzip"}) as r:
        assert gzip.decompress(b"".join(r.iter_raw())) == answer.content
    requests = first.count(METADATA) + second.count(METADATA)
    for _ in range(3):
        assert client.get(METADATA).content == answer.content
    assert first.count(METADATA) + second.count(METADATA) == requests  # rendered once, kept


def test_stale_metadata_when_every_upstream_fails(
    tmp_path: Path, upstream: FakeMavenRepository, daemons: list[RunningDaemon]
) -> None:
    daemon = start(tmp_path, proxy_config(upstream), ttl="1s")
    daemons.append(daemon)
    client = httpx.Client(base_url=f"{daemon.url}/maven/dev/", timeout=30)
    fresh = client.get(METADATA)
    assert fresh.status_code == 200 and "Warning" not in fresh.headers
    assert client.get("org/example/other/maven-metadata.xml").status_code == 404
    upstream.stop()
    time.sleep(1.2)
    stale = client.get(METADATA)
    assert stale.status_code == 200
    assert parse(stale.content).versions == ("1.0",)
    assert "Stale" in stale.headers["Warning"]
    # never fetched, nothing known: a 502 naming the failure, not a 404
    never = client.get("org/example/never/maven-metadata.xml")
    assert never.status_code == 502 and "up0" in never.json()["error"]


def test_concurrent_misses_cost_one_download(proxy: httpx.Client, upstream: FakeMavenRepository) -> None:
    upstream.fault(JAR, "slow")
    url = str(proxy.base_url.join(JAR))

    async def many() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*(client.get(url) for _ in range(20)))

    answers = asyncio.run(many())
    assert all(a.status_code == 200 and a.content == JAR_BYTES for a in answers)
    assert upstream.count(JAR) == 1
    assert upstream.count(f"{JAR}.sha1") == 1


async def test_a_known_miss_stays_a_miss_while_upstreams_fail(
    tmp_path: Path, upstream: FakeMavenRepository
) -> None:
    # The "not there" memory is stale at once, so the upstream is asked again each time.
    config = write_config(tmp_path, proxy_config(upstream))
    config.write_text(config.read_text().replace("[cache]\n", '[cache]\nnot_found_ttl = "0s"\n', 1))
    daemon = await Daemon.open(load_config(config, formats=format_names()))
    missing, never = "org/example/hello/0.1/hello-0.1.pom", "org/example/hello/0.2/hello-0.2.pom"
    try:
        async with TestClient(TestServer(build_app(daemon))) as client:
            assert (await client.get(f"/maven/dev/{missing}")).status == 404
            for path in (missing, never):
                upstream.fault(f"{path}.sha1", "forbidden")
            # Maven goes on without a POM that is not there, but stops on an error: the miss stays a miss
            assert (await client.get(f"/maven/dev/{missing}")).status == 404
            assert (await client.get(f"/maven/dev/{never}")).status == 502
    finally:
        await daemon.close()


# -- deploying ------------------------------------------------------------------------------------
LIB = "org/example/lib"


def _put(client: httpx.Client, path: str, body: bytes) -> httpx.Response:
    return client.put(path, content=body, headers={"Authorization": "Basic dTpw"})


def _deploy(client: httpx.Client, path: str, body: bytes) -> None:
    assert _put(client, path, body).status_code == 201, path
    for algorithm in ("sha1", "md5"):
        checksum = hashlib.new(algorithm, body).hexdigest().encode()
        assert _put(client, f"{path}.{algorithm}", checksum).status_code == 201, path


def test_deploy_a_release(proxy: httpx.Client) -> None:
    jar = f"{LIB}/1.0/lib-1.0.jar"
    _deploy(proxy, jar, b"lib 1.0 jar")
    _deploy(proxy, f"{LIB}/1.0/lib-1.0.pom", b"<project/>")
    assert proxy.get(jar).content == b"lib 1.0 jar"
    assert proxy.get(f"{jar}.sha256").text == hashlib.sha256(b"lib 1.0 jar").hexdigest()
    metadata = (
        b"<metadata><groupId>org.example</groupId><artifactId>lib</artifactId><versioning><versions>"
        b"<version>1.0</version><version>0.1</version></versions></versioning></metadata>"
    )
    _deploy(proxy, f"{LIB}/maven-metadata.xml", metadata)
    served = parse(proxy.get(f"{LIB}/maven-metadata.xml").content)
    assert served.versions == ("1.0",)  # what the repository holds, not what the client claimed
    assert (served.latest, served.release) == ("1.0", "1.0")
    # a release file cannot be replaced
    refused = _put(proxy, jar, b"other bytes")
    assert refused.status_code == 409
    assert "release" in refused.json()["error"]
    assert proxy.get(jar).content == b"lib 1.0 jar"


def test_deploy_checks_checksums_and_metadata(proxy: httpx.Client) -> None:
    jar = f"{LIB}/2.0/lib-2.0.jar"
    assert _put(proxy, jar, b"two").status_code == 201
    wrong = _put(proxy, f"{jar}.sha1", hashlib.sha1(b"other").hexdigest().encode())
    assert wrong.status_code == 400 and "mismatch" in wrong.json()["error"]
    assert _put(proxy, f"{jar}.sha1", b"<html>not a checksum</html>").status_code == 400
    assert (
        _put(proxy, f"{LIB}/2.0/lib-2.0.pom.sha1", hashlib.sha1(b"x").hexdigest().encode()).status_code == 400
    )
    assert _put(proxy, f"{LIB}/maven-metadata.xml", b"<html><body>no</body></html>").status_code == 400
    good = b"<metadata><groupId>org.example</groupId></metadata>"
    assert _put(proxy, f"{LIB}/maven-metadata.xml", good).status_code == 201
    assert (
        _put(proxy, f"{LIB}/maven-metadata.xml.sha1", hashlib.sha1(b"x").hexdigest().encode()).status_code
        == 400
    )
    assert (
        _put(proxy, f"{LIB}/maven-metadata.xml.sha1", hashlib.sha1(good).hexdigest().encode()).status_code
        == 201
    )


def test_snapshot_builds_and_their_metadata(proxy: httpx.Client) -> None:
    version = f"{LIB}/1.1-SNAPSHOT"
    assert proxy.get(f"{version}/maven-metadata.xml").status_code == 404
    for build, stamp in ((1, "20261125.100000"), (2, "20261125.110000")):
        _deploy(proxy, f"{version}/lib-1.1-{stamp}-{build}.jar", f"build {build}".encode())
        _deploy(proxy, f"{version}/lib-1.1-{stamp}-{build}.pom", b"<project/>")
        _deploy(proxy, f"{version}/maven-metadata.xml", b"<metadata/>")
    doc = parse(proxy.get(f"{version}/maven-metadata.xml").content)
    assert doc.version == "1.1-SNAPSHOT"
    assert doc.snapshot is not None and (doc.snapshot.timestamp, doc.snapshot.build_number) == (
        "20261125.110000",
        2,
    )
    assert {(v.extension, v.value) for v in doc.snapshot_versions} == {
        ("jar", "1.1-20261125.110000-2"),
        ("pom", "1.1-20261125.110000-2"),
    }
    assert proxy.get(f"{version}/lib-1.1-20261125.100000-1.jar").content == b"build 1"
    assert parse(proxy.get(f"{LIB}/maven-metadata.xml").content).versions == ("1.1-SNAPSHOT",)
    # a SNAPSHOT build sent again replaces it
    assert _put(proxy, f"{version}/lib-1.1-20261125.110000-2.jar", b"build 2 again").status_code == 201
    assert proxy.get(f"{version}/lib-1.1-20261125.110000-2.jar").content == b"build 2 again"


def test_origin_controls(proxy: httpx.Client, upstream: FakeMavenRepository) -> None:
    # a package cached from an upstream cannot be deployed over
    assert proxy.get(JAR).status_code == 200
    refused = _put(proxy, "org/example/hello/1.1/hello-1.1.jar", b"mine")
    assert refused.status_code == 409 and "publish=BLOCK" in refused.json()["error"]
    # a package deployed here takes no versions from upstreams any more
    upstream.add(f"{LIB}/0.9/lib-0.9.jar", b"upstream lib")
    upstream.add(f"{LIB}/0.9/lib-0.9.pom", b"<project/>")
    _deploy(proxy, f"{LIB}/1.0/lib-1.0.jar", b"lib 1.0 jar")
    assert parse(proxy.get(f"{LIB}/maven-metadata.xml").content).versions == ("1.0",)
    blocked = proxy.get(f"{LIB}/0.9/lib-0.9.jar")
    assert blocked.status_code == 404 and "origin configuration" in blocked.json()["error"]
    assert upstream.count(f"{LIB}/0.9/lib-0.9.jar") == 0


def test_deploy_needs_a_publishing_repository(
    tmp_path: Path, upstream: FakeMavenRepository, daemons: list[RunningDaemon]
) -> None:
    daemon = start(tmp_path, proxy_config(upstream, publish=False))
    daemons.append(daemon)
    client = httpx.Client(base_url=f"{daemon.url}/maven/dev/")
    answer = _put(client, f"{LIB}/1.0/lib-1.0.jar", b"x")
    assert answer.status_code == 403 and "publish" in answer.json()["error"]


def test_refusal_is_sent_instead_of_100_continue(proxy: httpx.Client) -> None:
    _deploy(proxy, f"{LIB}/1.0/lib-1.0.jar", b"lib 1.0 jar")
    url = httpx.URL(str(proxy.base_url))
    body = b"x" * 100_000

    def put_expecting(path: str) -> bytes:
        with socket.create_connection((url.host, url.port)) as sock:
            head = (
                f"PUT {url.path}{path} HTTP/1.1\r\nHost: {url.host}\r\nContent-Length: {len(body)}\r\n"
                "Expect: 100-continue\r\nAuthorization: Basic dTpw\r\n\r\n"
            )
            sock.sendall(head.encode())
            first = sock.recv(65536)  # the interim or the final answer, before any body byte is sent
            if first.startswith(b"HTTP/1.1 100"):
                sock.sendall(body)
                first += sock.recv(65536)
            return first

    refused = put_expecting(f"{LIB}/1.0/lib-1.0.jar")
    assert refused.startswith(b"HTTP/1.1 409") and b"release" in refused
    accepted = put_expecting(f"{LIB}/1.1/lib-1.1.jar")
    assert accepted.startswith(b"HTTP/1.1 100 Continue") and b"201 Created" in accepted
    assert proxy.get(f"{LIB}/1.1/lib-1.1.jar").content == body
