"""Hostile upstreams, hostile clients, careless operators: one test per item of the hardening issue.

Upstreams are fakes on 127.0.0.1; the daemon runs in process (aiohttp's TestClient) where that is
enough, as a subprocess where the item is about the process (file descriptors, the command line).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import io
import json
import os
import resource
import shutil
import socket
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from proxy.cli import parser
from proxy.config.loader import load_config
from proxy.daemon import Daemon
from proxy.formats.registry import format_names
from proxy.server.app import build_app
from proxy.store.store import Store
from proxy.upstream.base import UpstreamUnavailable
from proxy.upstream.http import HttpSettings, UpstreamHttp, link_local
from tests.fakes.daemon import ROOT, RunningDaemon, eventually, free_port, start_daemon, write_config
from tests.fakes.maven_repository import FakeMavenRepository
from tests.fakes.npm_registry import FakeNpmRegistry

JAR = "org/example/hello/1.0/hello-1.0.jar"
JAR_BYTES = b"PK\x03\x04 hello" + bytes(range(256)) * 8
POM = "org/example/hello/1.0/hello-1.0.pom"
POM_BYTES = (
    b"<project><groupId>org.example</groupId><artifactId>hello</artifactId><version>1.0</version></project>"
)


@pytest.fixture
def npm_fake() -> Iterator[FakeNpmRegistry]:
    with FakeNpmRegistry() as fake:
        yield fake


@pytest.fixture
def maven_fake() -> Iterator[FakeMavenRepository]:
    with FakeMavenRepository() as fake:
        fake.add(JAR, JAR_BYTES)
        fake.add(POM, POM_BYTES)
        yield fake


async def in_process(tmp_path: Path, body: str) -> tuple[Daemon, TestClient]:
    daemon = await Daemon.open(load_config(write_config(tmp_path, body), formats=format_names()))
    client = TestClient(TestServer(build_app(daemon)))
    await client.start_server()
    return daemon, client


def local_daemon(tmp_path: Path, server_setting: str) -> tuple[RunningDaemon, int]:
    """A daemon (subprocess) with a publishable repository ``local`` and one more ``[server]`` key."""
    config = write_config(tmp_path, "[repository.local]\npublish = true\n")
    config.write_text(config.read_text().replace("[server]\n", f"[server]\n{server_setting}\n"))
    daemon = start_daemon(config, tmp_path / "d.log")
    return daemon, int(daemon.url.rsplit(":", 1)[1])


async def close(daemon: Daemon, client: TestClient) -> None:
    await client.close()
    await daemon.close()


class Origin:
    """A plain aiohttp server on 127.0.0.1 whose handler a test writes."""

    def __init__(self, handler) -> None:  # type: ignore[no-untyped-def]
        self.handler = handler
        self.requests = 0
        self.url = ""

    async def __aenter__(self) -> Origin:
        async def handle(request: web.Request) -> web.StreamResponse:
            self.requests += 1
            return await self.handler(request)

        app = web.Application()
        app.router.add_route("*", "/{path:.*}", handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()


# ---- 1. link-local guard ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "host",
    [
        "169.254.169.254",
        "[::ffff:169.254.169.254]",
        "[::ffff:a9fe:a9fe]",
        "[64:ff9b::169.254.169.254]",
        "[::169.254.169.254]",
        "[fe80::1]",
    ],
)
async def test_link_local_addresses_are_refused_in_every_spelling(host: str) -> None:
    assert link_local(host)
    http = UpstreamHttp()
    try:
        with pytest.raises(UpstreamUnavailable) as raised:
            await http.send("hostile", f"http://{host}/x.tgz")
        assert raised.value.reason.startswith("refused:")
    finally:
        await http.aclose()
    assert not link_local("::ffff:10.0.0.1") and not link_local("64:ff9b::a00:1") and not link_local("::1")


async def test_the_address_actually_connected_to_is_checked_before_anything_is_sent() -> None:
    """Whatever the URL says (here a host name), the peer of the new connection decides: a connector
    that treats 127.0.0.1 as forbidden refuses, and the server sees no request."""
    from proxy.upstream.http import GuardedConnector

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="secret")

    async with Origin(ok) as origin:
        connector = GuardedConnector(forbidden=lambda address: address == "127.0.0.1")
        async with aiohttp.ClientSession(connector=connector) as session:
            with pytest.raises(aiohttp.ClientConnectorError) as raised:
                await session.get(origin.url.replace("127.0.0.1", "localhost"))
        assert "link-local" in str(raised.value.os_error)
        assert origin.requests == 0


async def test_a_burst_reuses_its_connections_and_the_surplus_is_closed_once_idle() -> None:
    """A burst of requests reuses the connections it opened; past ``IDLE_KEPT`` an origin, those left
    idle for ``IDLE_SURPLUS_SECONDS`` are closed (each holds buffers), the longest idle first."""
    from proxy.upstream.http import IDLE_KEPT, IDLE_SURPLUS_SECONDS, GuardedConnector

    transports: set[asyncio.BaseTransport] = set()
    gate = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        assert request.transport is not None
        transports.add(request.transport)
        await gate.wait()
        return web.Response(text="ok")

    connector = GuardedConnector(forbidden=lambda _: False)
    async with Origin(slow) as origin, aiohttp.ClientSession(connector=connector) as session:

        async def get() -> str:
            async with session.get(origin.url) as response:
                return await response.text()

        for burst_number in (1, 2):  # the second burst, right after the first, opens no connection
            burst = [asyncio.ensure_future(get()) for _ in range(3 * IDLE_KEPT)]
            while origin.requests < burst_number * 3 * IDLE_KEPT:  # all of the burst at once
                await asyncio.sleep(0.01)
            gate.set()
            assert await asyncio.gather(*burst) == ["ok"] * 3 * IDLE_KEPT
            gate.clear()
        assert len(transports) == 3 * IDLE_KEPT
        await asyncio.sleep(IDLE_SURPLUS_SECONDS * 4)
        assert sum(not t.is_closing() for t in transports) == IDLE_KEPT


# ---- 2. unbounded upstream documents --------------------------------------------------------------
async def test_a_gzip_bomb_packument_is_refused_while_it_streams(tmp_path: Path) -> None:
    bomb = gzip.compress(b"[" + b" " * (64 * 1024**2) + b"]", 9)  # 64 MiB inflated from ~64 KiB

    async def packument(request: web.Request) -> web.Response:
        headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
        return web.Response(body=bomb, headers=headers)

    async with Origin(packument) as origin:
        body = f'[upstream.bomb]\nformat = "npm"\nurl = "{origin.url}"\n'
        body += '[repository.dev]\nupstreams = ["bomb"]\n'
        config = write_config(tmp_path, body)
        config.write_text(config.read_text().replace("[cache]\n", '[cache]\nmax_document_size = "1MiB"\n'))
        daemon = await Daemon.open(load_config(config, formats=format_names()))
        async with TestClient(TestServer(build_app(daemon))) as client:
            response = await client.get("/npm/dev/lodash")
            assert response.status == 502
            assert "larger than 1048576 bytes" in (await response.json())["error"]
        await daemon.close()


async def test_a_document_read_stops_at_the_cap_without_buffering_the_rest() -> None:
    from proxy.upstream.base import BodyLimits

    sent = 0

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        response = web.StreamResponse()
        await response.prepare(request)
        try:
            for _ in range(4096):
                await response.write(b"x" * 65536)
                sent += 65536
        except ConnectionError:
            pass
        return response

    async with Origin(endless) as origin:
        http = UpstreamHttp(HttpSettings(body=BodyLimits(max_document_size=1024**2)))
        try:
            response = await http.send("big", origin.url)
            with pytest.raises(UpstreamUnavailable, match="larger than"):
                await response.aread()
            await response.aclose()
        finally:
            await http.aclose()
    assert sent < 64 * 1024**2  # the upstream was cut off long before its 256 MiB


# ---- 3. one slow upstream stalls every upstream ---------------------------------------------------
async def test_a_stalled_upstream_does_not_take_the_connections_of_another() -> None:
    release = asyncio.Event()

    async def stall(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "10"})
        await response.prepare(request)
        await release.wait()
        await response.write(b"0123456789")
        return response

    async def quick(request: web.Request) -> web.Response:
        return web.Response(text="fine")

    async with Origin(stall) as slow, Origin(quick) as fast:
        http = UpstreamHttp(HttpSettings(max_connections_per_upstream=4))
        try:
            held = [await http.send("slow", slow.url) for _ in range(4)]
            answer = await asyncio.wait_for(http.send("fast", fast.url), 5)
            assert await answer.aread() == b"fine"
            await answer.aclose()
            release.set()
            for response in held:
                await response.aclose()
        finally:
            release.set()
            await http.aclose()


async def test_a_body_that_drips_is_cut_off_below_the_minimum_throughput() -> None:
    from proxy.upstream.base import BodyLimits

    async def drip(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "1000"})
        await response.prepare(request)
        for _ in range(1000):
            await response.write(b"x")
            await asyncio.sleep(0.05)
        return response

    async with Origin(drip) as origin:
        limits = BodyLimits(min_throughput=1000.0, throughput_grace=0.3)
        http = UpstreamHttp(HttpSettings(body=limits))
        try:
            response = await http.send("drip", origin.url)
            with pytest.raises(UpstreamUnavailable, match="too slow"):
                async for _ in response.aiter_bytes():
                    pass
            await response.aclose()
        finally:
            await http.aclose()


async def test_a_document_that_trickles_in_is_cut_off_at_its_deadline() -> None:
    from proxy.upstream.base import BodyLimits

    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(200):
            await response.write(b"x" * 4096)  # fast enough for the throughput floor
            await asyncio.sleep(0.02)
        return response

    async with Origin(trickle) as origin:
        http = UpstreamHttp(HttpSettings(body=BodyLimits(document_deadline=0.5)))
        try:
            response = await http.send("trickle", origin.url)
            with pytest.raises(UpstreamUnavailable, match="not received within"):
                await response.aread()
            await response.aclose()
        finally:
            await http.aclose()


# ---- 4. 500s for bad input ------------------------------------------------------------------------
async def test_a_repository_with_upstreams_of_every_format_serves_maven(
    tmp_path: Path, npm_fake: FakeNpmRegistry, maven_fake: FakeMavenRepository
) -> None:
    npm_fake.add("left-pad", "1.0.0")
    body = (
        npm_fake.upstream_config("public-npm")
        + f'\n[upstream.public-maven]\nformat = "maven"\nurl = "{maven_fake.url}"\n'
        + '\n[repository.dev]\nupstreams = ["public-npm", "public-maven"]\npublish = true\n'
    )
    daemon, client = await in_process(tmp_path, body)
    try:
        jar = await client.get(f"/maven/dev/{JAR}")
        assert jar.status == 200 and await jar.read() == JAR_BYTES
        metadata = await client.get("/maven/dev/org/example/hello/maven-metadata.xml")
        assert metadata.status == 200 and b"<version>1.0</version>" in await metadata.read()
        assert (await client.get("/maven/dev/org/example/absent/1.0/absent-1.0.pom")).status == 404
        assert (await client.get("/npm/dev/left-pad")).status == 200
        assert npm_fake.requests.total() == 1  # the npm upstream was never asked for Maven paths
    finally:
        await close(daemon, client)


async def test_deeply_nested_publish_json_and_nul_filenames_are_refused_with_400(tmp_path: Path) -> None:
    daemon, client = await in_process(tmp_path, "[repository.local]\npublish = true\n")
    try:
        nested = await client.put(
            "/npm/local/deep",
            data=b"[" * 100_000 + b"]" * 100_000,
            headers={"Content-Type": "application/json"},
        )
        assert nested.status == 400, await nested.text()
        assert "nested too deeply" in (await nested.json())["error"]
        tag = await client.put("/npm/local/-/package/deep/dist-tags/latest", data=b"[" * 1000)
        assert tag.status in (400, 404), await tag.text()
        longer = await client.put("/npm/local/-/package/deep/dist-tags/latest", data=b"[" * 100_000)
        assert longer.status == 413, await longer.text()
        data = b"not really a wheel"
        fields = {
            ":action": "file_upload",
            "protocol_version": "1",
            "name": "nul",
            "version": "1.0",
            "filetype": "bdist_wheel",
            "pyversion": "py3",
            "metadata_version": "2.1",
            "sha256_digest": hashlib.sha256(data).hexdigest(),
        }
        form = b"".join(
            b'--B\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (k.encode(), v.encode())
            for k, v in fields.items()
        )
        form += b'--B\r\nContent-Disposition: form-data; name="content"; '
        form += b'filename="nul-1.0-py3-none-any\x00.whl"'
        form += b"\r\nContent-Type: application/octet-stream\r\n\r\n" + data + b"\r\n--B--\r\n"
        upload = await client.post(
            "/pypi/local/", data=form, headers={"Content-Type": "multipart/form-data; boundary=B"}
        )
        assert upload.status == 400, await upload.text()
    finally:
        await close(daemon, client)


# ---- 5. a damaged published blob -----------------------------------------------------------------
def npm_publish_body(name: str, version: str, data: bytes) -> bytes:
    return json.dumps(
        {
            "name": name,
            "dist-tags": {"latest": version},
            "versions": {version: {"name": name, "version": version, "dist": {}}},
            "_attachments": {
                f"{name}-{version}.tgz": {"data": base64.b64encode(data).decode(), "length": len(data)}
            },
        }
    ).encode()


@pytest.mark.parametrize("damage", ["flipped", "deleted"])
async def test_a_damaged_published_blob_is_a_500_that_says_so_and_readyz_shows_it(
    tmp_path: Path, damage: str
) -> None:
    daemon, client = await in_process(tmp_path, "[repository.local]\npublish = true\n")
    try:
        data = os.urandom(300 * 1024)
        put = await client.put("/npm/local/mine", data=npm_publish_body("mine", "1.0.0", data))
        assert put.status == 201, await put.text()
        assert (await client.get("/readyz")).status == 200
        [blob_id] = [b for b, e in daemon.store.ledger.entries().items() if e.pinned]
        path = daemon.store.blobs.path(blob_id)
        if damage == "deleted":
            path.unlink()
        else:
            raw = bytearray(path.read_bytes())
            raw[len(raw) // 2] ^= 0x01
            path.write_bytes(bytes(raw))
        response = await client.get("/npm/local/mine/-/mine-1.0.0.tgz")
        assert response.status == 500
        assert "store is damaged" in (await response.json())["error"]
        again = await client.get("/npm/local/mine/-/mine-1.0.0.tgz")
        assert again.status == 500  # not a 404 once the broken blob is gone
        ready = await client.get("/readyz")
        assert ready.status == 503
        store = next(c for c in (await ready.json())["components"] if c["name"] == "store")
        assert "damaged" in store["reason"]
    finally:
        await close(daemon, client)


# ---- 6. publishes refused early on their Content-Length ---------------------------------------------
def test_a_publish_past_the_limit_is_refused_on_its_content_length(tmp_path: Path) -> None:
    daemon, port = local_daemon(tmp_path, 'max_publish_size = "1MiB"')
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(
                b"PUT /npm/local/huge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 5000000000\r\n\r\n{"
            )
            answer = client.recv(4096)  # before the body: the daemon does not wait for 5 GB
        assert answer.startswith(b"HTTP/1.1 413"), answer
        assert b"max_publish_size" in answer
        big = httpx.put(
            f"{daemon.url}/npm/local/big", content=npm_publish_body("big", "1.0.0", os.urandom(900 * 1024))
        )
        assert big.status_code == 413
        assert daemon.blob_count() == 0
    finally:
        daemon.stop()


# ---- 7. refused uploads leave no blob ---------------------------------------------------------------
def wheel_claiming(filename_project: str, metadata_project: str, version: str) -> bytes:
    info = f"{filename_project}-{version}.dist-info"
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as wheel:
        wheel.writestr(f"{filename_project}/__init__.py", os.urandom(200 * 1024).hex())
        wheel.writestr(
            f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {metadata_project}\nVersion: {version}\n"
        )
        wheel.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{info}/RECORD", "")
    return raw.getvalue()


def twine_form(name: str, version: str, filename: str, data: bytes) -> tuple[dict[str, str], dict]:
    fields = {
        ":action": "file_upload",
        "protocol_version": "1",
        "name": name,
        "version": version,
        "filetype": "bdist_wheel",
        "pyversion": "py3",
        "metadata_version": "2.1",
        "sha256_digest": hashlib.sha256(data).hexdigest(),
    }
    return fields, {"content": (filename, data, "application/octet-stream")}


def test_a_wheel_refused_for_its_metadata_leaves_no_blob(tmp_path: Path) -> None:
    daemon = start_daemon(write_config(tmp_path, "[repository.local]\npublish = true\n"), tmp_path / "d.log")
    try:
        for attempt in range(3):
            data = wheel_claiming("good", "other", f"1.{attempt}")
            fields, files = twine_form("good", f"1.{attempt}", f"good-1.{attempt}-py3-none-any.whl", data)
            refused = httpx.post(f"{daemon.url}/pypi/local/", data=fields, files=files, timeout=30)
            assert refused.status_code == 400, refused.text
            assert "other" in refused.json()["error"]
        assert daemon.blob_count() == 0
        blob_files = [
            p for p in (tmp_path / "cache" / "blobs").rglob("*") if p.is_file() and "small" not in p.parts
        ]
        assert blob_files == []
        data = wheel_claiming("good", "good", "2.0")
        fields, files = twine_form("good", "2.0", "good-2.0-py3-none-any.whl", data)
        accepted = httpx.post(f"{daemon.url}/pypi/local/", data=fields, files=files, timeout=30)
        assert accepted.status_code == 200, accepted.text
        assert daemon.blob_count() == 2  # the wheel and its METADATA
    finally:
        daemon.stop()


# ---- 8. connections -----------------------------------------------------------------------------
def test_a_request_head_that_never_completes_is_closed(tmp_path: Path) -> None:
    daemon, port = local_daemon(tmp_path, 'header_timeout = "1s"')
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
            slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            assert slow.recv(100) == b""  # closed by the daemon after header_timeout, no answer
        assert httpx.get(f"{daemon.url}/healthz").status_code == 200
    finally:
        daemon.stop()


def test_running_out_of_file_descriptors_is_logged(tmp_path: Path) -> None:
    config = write_config(tmp_path, "[repository.local]\npublish = true\n")
    port = int(config.read_text().split('listen = "127.0.0.1:', 1)[1].split('"', 1)[0])
    log = tmp_path / "d.log"

    def few_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    process = subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", "--config", str(config)],
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        preexec_fn=few_files,
    )
    held: list[socket.socket] = []
    try:
        eventually(lambda: "serving on" in log.read_text())
        for _ in range(80):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        eventually(lambda: "file descriptors open" in log.read_text(), timeout=20)
    finally:
        for s in held:
            s.close()
        process.kill()
        process.wait()


def test_the_systemd_unit_verifies_and_raises_the_file_limit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if os.environ.get("CI") == "true":
            pytest.fail("systemd-analyze is missing")
        pytest.skip("systemd-analyze is not installed")
    unit = (ROOT / "systemd" / "codeartifact-proxy.service").read_text()
    for setting in ("LimitNOFILE=65536", "ProtectSystem=strict", "NoNewPrivileges=true", "PrivateTmp=true"):
        assert setting in unit
    # The unit names the installed executable; verify checks that it exists, so point it at one that does.
    copy = tmp_path / "codeartifact-proxy.service"
    copy.write_text(unit.replace("/opt/codeartifact-proxy/.venv/bin/codeartifact-proxy", "/bin/true"))
    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


# ---- 9. errors say too much; private files ------------------------------------------------------
def test_store_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    root.mkdir(mode=0o755)
    os.chmod(root, 0o755)
    old = os.umask(0o022)
    try:
        path = write_config(tmp_path, "[repository.local]\npublish = true\n")
        config = load_config(path, formats=format_names())
        store = Store.open(config.cache)
        store.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    files = [p for p in root.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".sqlite3") or "catalog" in str(p) for p in files)
    modes = {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in files}
    loose = {name: oct(mode) for name, mode in modes.items() if mode & 0o077}
    assert loose == {}


async def test_a_502_names_no_codeartifact_endpoint_domain_or_owner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.fakes.codeartifact import isolate_aws

    isolate_aws(monkeypatch, tmp_path, access_key="AKIDEXAMPLE", secret_key="secret")
    port = free_port()  # nothing listens there
    body = f"""
[codeartifact.corp]
domain = "secret-domain"
domain_owner = "444455556666"
region = "us-east-1"
endpoint_url = "http://127.0.0.1:{port}/"

[upstream.team]
codeartifact = "corp"
repository = "team"

[repository.dev]
upstreams = ["team"]
"""
    daemon, client = await in_process(tmp_path, body)
    try:
        response = await client.get("/npm/dev/hello")
        assert response.status == 502
        text = await response.text()
        for secret in (str(port), "secret-domain", "444455556666", "127.0.0.1"):
            assert secret not in text, text
        assert "codeartifact domain 'corp'" in text
        assert str(port) in caplog.text  # the operator still learns where it failed
    finally:
        await close(daemon, client)


# ---- 10. checksum policy ----------------------------------------------------------------------------
def _strip_digests(fake: FakeNpmRegistry, name: str, version: str) -> None:
    dist = fake.packages[name].versions[version]["dist"]
    dist.pop("integrity"), dist.pop("shasum")
    fake._rendered.clear()


@pytest.mark.parametrize("policy", ["require", "warn"])
async def test_an_npm_version_without_digests_follows_the_checksum_policy(
    tmp_path: Path, npm_fake: FakeNpmRegistry, policy: str, caplog: pytest.LogCaptureFixture
) -> None:
    data = npm_fake.add("bare", "1.0.0")
    _strip_digests(npm_fake, "bare", "1.0.0")
    body = npm_fake.upstream_config() + f'checksum_policy = "{policy}"\n'
    body += '[repository.dev]\nupstreams = ["public"]\n'
    daemon, client = await in_process(tmp_path, body)
    try:
        response = await client.get("/npm/dev/bare/-/bare-1.0.0.tgz")
        if policy == "require":
            assert response.status == 502
            assert "declares no checksum" in (await response.json())["error"]
            assert daemon.store.ledger.blob_count == 0
        else:
            assert response.status == 200 and await response.read() == data
            assert "served and stored unverified" in caplog.text
    finally:
        await close(daemon, client)


async def test_a_maven_file_without_a_checksum_follows_the_checksum_policy(
    tmp_path: Path, maven_fake: FakeMavenRepository
) -> None:
    for algorithm in ("sha512", "sha256", "sha1", "md5"):
        maven_fake.fault(f"{JAR}.{algorithm}", "not_found")
    body = (
        f'[upstream.strict]\nformat = "maven"\nurl = "{maven_fake.url}"\nchecksum_policy = "require"\n'
        '[repository.dev]\nupstreams = ["strict"]\n'
    )
    daemon, client = await in_process(tmp_path, body)
    try:
        response = await client.get(f"/maven/dev/{JAR}")
        assert response.status == 502
        assert "declares no checksum" in (await response.json())["error"]
        assert daemon.store.ledger.blob_count == 0
    finally:
        await close(daemon, client)


async def test_a_pypi_file_listed_without_a_hash_follows_the_checksum_policy(tmp_path: Path) -> None:
    data = b"an sdist without a hash on its link"

    async def index(request: web.Request) -> web.Response:
        if request.path == "/simple/bare/":
            link = '<a href="../../packages/bare-1.0.tar.gz">bare-1.0.tar.gz</a>'
            return web.Response(text=f"<html><body>{link}</body></html>", content_type="text/html")
        if request.path == "/packages/bare-1.0.tar.gz":
            return web.Response(body=data)
        return web.Response(status=404)

    async with Origin(index) as origin:
        body = (
            f'[upstream.plain]\nformat = "pypi"\nurl = "{origin.url}simple/"\nchecksum_policy = "require"\n'
        )
        daemon, client = await in_process(tmp_path, body + '[repository.dev]\nupstreams = ["plain"]\n')
        try:
            page = await client.get(
                "/pypi/dev/simple/bare/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
            )
            assert page.status == 200, await page.text()
            [listed] = (await page.json())["files"]
            url = str(page.url.join(aiohttp.client.URL(listed["url"])).relative())
            response = await client.get(url)
            assert response.status == 502
            assert "declares no checksum" in (await response.json())["error"]
        finally:
            await close(daemon, client)


# ---- 11. the documented command line ------------------------------------------------------------
def test_config_is_accepted_after_the_command_as_well_as_before(tmp_path: Path) -> None:
    config = write_config(tmp_path, "[repository.documented]\npublish = true\n")
    assert parser().parse_args(["serve", "--config", "x.toml"]).config == "x.toml"
    assert parser().parse_args(["--config", "x.toml", "serve"]).config == "x.toml"
    for argv in (["check-config", "--config", str(config)], ["--config", str(config), "check-config"]):
        result = subprocess.run(
            [sys.executable, "-m", "proxy", *argv], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert "documented" in result.stdout
    example = subprocess.run(
        [sys.executable, "-m", "proxy", "check-config", "--config", str(ROOT / "config.example.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert example.returncode == 0, example.stderr
