"""Offline mode: a daemon with ``serve --offline`` (or ``[server] offline = true``) serves what its
store holds and makes no connection at all, to any upstream or to CodeArtifact's API; a miss is a 404
whose reason says offline, and /readyz says offline."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from proxy.config import load_config
from proxy.formats.registry import format_names
from proxy.upstream.offline import build_offline_upstreams
from tests.fakes.daemon import start_daemon, write_config
from tests.fakes.maven_repository import FakeMavenRepository
from tests.fakes.npm_registry import FakeNpmRegistry
from tests.fakes.pypi_index import FakePypiIndex


class ConnectionCounter:
    """A TCP listener on 127.0.0.1 that counts the connections made to it and closes each at once."""

    def __init__(self) -> None:
        self.connections = 0
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}/"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self._socket.close()


@pytest.fixture
def fakes() -> Iterator[tuple[FakeNpmRegistry, FakePypiIndex, FakeMavenRepository, ConnectionCounter]]:
    with FakeNpmRegistry() as npm, FakePypiIndex() as pypi, FakeMavenRepository() as maven:
        counter = ConnectionCounter()
        try:
            yield npm, pypi, maven, counter
        finally:
            counter.close()


def test_offline_serves_the_store_and_connects_to_nothing(tmp_path: Path, fakes) -> None:
    npm, pypi, maven, codeartifact = fakes
    npm.add("e2e-cached", "1.0.0")
    npm.add("e2e-later", "1.0.0")
    wheel = pypi.add_wheel("e2e-cached", "1.0.0")
    maven.add("org/example/x/1.0/x-1.0.pom", b"<project/>")
    body = (
        npm.upstream_config("n")
        + pypi.upstream_config("p")
        + f'\n[upstream.m]\nformat = "maven"\nurl = "{maven.url}"\n'
        # A CodeArtifact domain whose API is a listener that counts connections: offline, its token
        # provider must not even start.
        + '\n[codeartifact.corp]\ndomain = "corp"\ndomain_owner = "111122223333"\nregion = "us-east-1"\n'
        + f'endpoint_url = "{codeartifact.url}"\n'
        + '\n[upstream.ca]\ncodeartifact = "corp"\nrepository = "team"\n'
        + '\n[repository.npm]\nupstreams = ["n", "ca"]\n'
        + '\n[repository.py]\nupstreams = ["p"]\n'
        + '\n[repository.mvn]\nupstreams = ["m"]\n'
    )
    # Metadata goes stale within a second: offline, it is served past its TTL (no revalidation).
    config = write_config(tmp_path, body, metadata_ttl="1s")
    daemon = start_daemon(config, tmp_path / "online.log")
    url = daemon.url
    try:
        tarball = httpx.get(f"{url}/npm/npm/e2e-cached", timeout=30).json()["versions"]["1.0.0"]["dist"][
            "tarball"
        ]
        assert httpx.get(tarball, timeout=30).status_code == 200
        page = httpx.get(f"{url}/pypi/py/simple/e2e-cached/", timeout=30)
        assert wheel.filename in page.text
        assert httpx.get(f"{url}/maven/mvn/org/example/x/1.0/x-1.0.pom", timeout=30).content == b"<project/>"
    finally:
        assert daemon.stop() == 0

    time.sleep(1.1)
    codeartifact.connections = 0
    before = (sum(npm.requests.values()), sum(pypi.requests.values()), sum(maven.requests.values()))
    for how in ("flag", "config"):
        if how == "config":
            config.write_text(config.read_text().replace("[server]\n", "[server]\noffline = true\n", 1))
            offline = start_daemon(config, tmp_path / "offline-config.log")
        else:
            offline = start_daemon(config, tmp_path / "offline-flag.log", args=["--offline"])
        try:
            ready = httpx.get(f"{url}/readyz", timeout=10)
            assert ready.status_code == 200
            assert any("offline" in (c.get("reason") or "") for c in ready.json()["components"])
            packument = httpx.get(f"{url}/npm/npm/e2e-cached", timeout=30)
            assert packument.status_code == 200
            assert httpx.get(tarball, timeout=30).status_code == 200
            assert wheel.filename in httpx.get(f"{url}/pypi/py/simple/e2e-cached/", timeout=30).text
            assert (
                httpx.get(f"{url}/maven/mvn/org/example/x/1.0/x-1.0.pom", timeout=30).content == b"<project/>"
            )
            for miss in (
                "npm/npm/e2e-later",
                "pypi/py/simple/e2e-missing/",
                "maven/mvn/org/example/x/2.0/x-2.0.pom",
            ):
                response = httpx.get(f"{url}/{miss}", timeout=30)
                assert response.status_code == 404, (miss, response.text)
                assert "offline" in response.json()["error"]
        finally:
            assert offline.stop() == 0
        assert "Traceback" not in offline.log_text()
    after = (sum(npm.requests.values()), sum(pypi.requests.values()), sum(maven.requests.values()))
    assert after == before
    assert codeartifact.connections == 0


def test_an_offline_codeartifact_upstream_serves_every_format_wherever_it_is_listed(tmp_path: Path) -> None:
    """A CodeArtifact repository serves every format, also when a URL upstream comes before it."""
    config = write_config(
        tmp_path,
        '[upstream.public-npm]\nformat = "npm"\nurl = "https://registry.example.com/"\n'
        '[codeartifact.corp]\ndomain = "corp"\ndomain_owner = "111122223333"\nregion = "eu-west-1"\n'
        '[upstream.team]\ncodeartifact = "corp"\nrepository = "team"\n'
        '[repository.dev]\nupstreams = ["public-npm", "team"]\n',
    )
    upstreams = build_offline_upstreams(load_config(config, formats=format_names()), format_names()).by_name
    assert upstreams["public-npm"].formats == {"npm"}
    assert upstreams["team"].formats == set(format_names())
