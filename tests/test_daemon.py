"""The daemon as users run it: a subprocess, signals, systemd notification, health endpoints."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.fakes.daemon import ROOT, free_port, run_command, start_daemon, write_config


def test_health_and_readiness(daemon_factory):
    daemon = daemon_factory()
    assert httpx.get(f"{daemon.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{daemon.url}/readyz")
    assert ready.status_code == 200
    assert {"name": "store", "ready": True} in ready.json()["components"]
    assert daemon.stop() == 0


def test_one_access_log_line_per_request_without_query(daemon_factory):
    daemon = daemon_factory()
    httpx.get(f"{daemon.url}/readyz?secret=shh", headers={"Authorization": "Bearer tok-xyz"})
    httpx.get(f"{daemon.url}/nope")
    assert daemon.stop() == 0
    log = daemon.log_text()
    lines = [line for line in log.splitlines() if "proxy.access" in line]
    assert len([line for line in lines if "GET /readyz" in line]) == 1
    assert any("GET /nope" in line and " 404 " in line for line in lines)
    assert "shh" not in log and "tok-xyz" not in log


def test_json_access_log(daemon_factory):
    daemon = daemon_factory(args=["--log-format", "json"])
    httpx.get(f"{daemon.url}/healthz")
    assert daemon.stop() == 0
    records = [json.loads(line) for line in daemon.log_text().splitlines() if line.startswith("{")]
    access = [r for r in records if r["logger"] == "proxy.access"]
    assert access and access[0]["path"] == "/healthz" and access[0]["status"] == 200


def test_unknown_path_is_a_json_404(daemon_factory):
    daemon = daemon_factory()
    r = httpx.get(f"{daemon.url}/no/such/thing")
    assert r.status_code == 404
    assert "error" in r.json()


def test_ready_notification_on_notify_socket(tmp_path: Path):
    sock_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(30)
        config = write_config(tmp_path, "[repository.local]\npublish = true\n")
        daemon = start_daemon(config, tmp_path / "d.log", env={"NOTIFY_SOCKET": str(sock_path)})
        try:
            assert sock.recv(64) == b"READY=1"
            daemon.stop()
            assert sock.recv(64) == b"STOPPING=1"
        finally:
            daemon.process.kill()


def test_unix_socket_listener(tmp_path: Path):
    sock_path = tmp_path / "proxy.sock"
    config = write_config(tmp_path, "[repository.local]\npublish = true\n")
    config.write_text(config.read_text().replace('listen = "127.0.0.1:', f'listen = "unix:{sock_path}"\n#'))
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy", "--config", str(config), "serve"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        transport = httpx.HTTPTransport(uds=str(sock_path))
        deadline = time.monotonic() + 20
        while not sock_path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        with httpx.Client(transport=transport) as client:
            assert client.get("http://proxy/healthz").json() == {"status": "ok"}
        process.terminate()
        assert process.wait(20) == 0
    finally:
        process.kill()


SLOW_SERVER = """
import asyncio, sys
from aiohttp import web
from proxy.cli import main
from proxy.server import run

build = run.build_app

async def slow(request):
    await asyncio.sleep(float(request.query["s"]))
    return web.Response(text="finished")

def build_app(daemon):
    app = build(daemon)
    app.router.add_get("/slow", slow)
    return app

run.build_app = build_app
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_drains_in_flight_requests(tmp_path: Path):
    """The real serve loop and signal handling, with one extra slow route patched in."""
    script = tmp_path / "slow_server.py"
    script.write_text(SLOW_SERVER)
    port = free_port()
    config = write_config(tmp_path, "[repository.local]\npublish = true\n", port=port)
    log = tmp_path / "d.log"
    process = subprocess.Popen(
        [sys.executable, str(script), "--config", str(config), "serve"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        results: list[object] = []

        def slow_request() -> None:
            try:
                results.append(httpx.get(f"{url}/slow?s=2", timeout=30).text)
            except httpx.HTTPError as exc:
                results.append(exc)

        worker = threading.Thread(target=slow_request)
        worker.start()
        time.sleep(0.5)  # the request is being handled
        process.terminate()
        time.sleep(0.3)
        try:  # a new connection is refused once draining has begun
            httpx.get(f"{url}/healthz", timeout=1)
            refused = False
        except httpx.TransportError:
            refused = True
        worker.join(30)
        assert process.wait(30) == 0
        assert results == ["finished"]
        assert refused
    finally:
        process.kill()


def test_port_in_use_is_a_clear_error(tmp_path: Path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = write_config(tmp_path, "[repository.local]\npublish = true\n", port=port)
        done = run_command(config, "serve", timeout=30)
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_cache_directory_that_cannot_be_made_is_a_clear_error(tmp_path: Path):
    (tmp_path / "a-file").write_text("not a directory")
    config = write_config(tmp_path, "[repository.local]\npublish = true\n")
    config.write_text(config.read_text().replace(str(tmp_path / "cache"), str(tmp_path / "a-file" / "cache")))
    done = run_command(config, "serve", timeout=30)
    assert done.returncode == 2
    assert f"cache {tmp_path / 'a-file' / 'cache'}" in done.stderr and "Not a directory" in done.stderr
    assert "Traceback" not in done.stderr and "listen" not in done.stderr


def test_a_store_in_use_by_a_daemon_is_refused_to_other_processes(tmp_path: Path, daemon_factory):
    """gc would remove blobs the daemon is writing, and a second daemon would change the index under the
    first one's feet: both are told, with the cache path, and nothing is changed."""
    running = daemon_factory()
    assert httpx.get(f"{running.url}/healthz").status_code == 200
    for args in (["gc"], ["serve"]):
        done = run_command(running.config, *args, timeout=30)
        assert done.returncode == 2, done.stderr
        assert f"cache {tmp_path / 'cache'}: in use by another process" in done.stderr
        assert "Traceback" not in done.stderr
    assert httpx.get(f"{running.url}/healthz").status_code == 200
    running.stop()
    assert run_command(running.config, "gc", timeout=30).returncode == 0
