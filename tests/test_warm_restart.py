"""Warm restarts (proxy.formats.common.warm): a daemon stopped gracefully leaves what it held in memory
sealed in its store, and the next daemon of the same code and configuration serves from it without
resolving a view or locating an asset again; anything else that opens the store in between, another
configuration, a damaged state or a crash makes the next daemon start cold, from the store. In
process, so the counts of views resolved and assets located can be read."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from proxy.config.loader import load_config
from proxy.daemon import Daemon
from proxy.formats.maven.routes import MAVEN
from proxy.formats.npm.routes import NPM, NpmService
from proxy.formats.pypi.negotiate import JSON_V1
from proxy.formats.pypi.routes import PYPI
from proxy.formats.registry import format_names
from proxy.server.app import build_app
from proxy.store.store import Store
from tests.fakes.daemon import free_port, write_config
from tests.fakes.maven_repository import FakeMavenRepository
from tests.fakes.npm_registry import FakeNpmRegistry
from tests.fakes.pypi_index import FakePypiIndex
from tests.test_npm_http import publish_body

WARM_LOG = "proxy.formats.common.warm"


@asynccontextmanager
async def running(config: Path, port: int) -> AsyncIterator[TestClient]:
    """The daemon of ``config`` in process, on ``port`` every time (its documents' URLs stay the same),
    stopped gracefully at the end."""
    daemon = await Daemon.open(load_config(config, formats=format_names()))
    try:
        async with TestClient(TestServer(build_app(daemon), port=port)) as client:
            yield client
    finally:
        await daemon.close()


async def install(client: TestClient) -> tuple[str, bytes]:
    """What npm asks for one package: its packument, then its tarball; the packument's ETag and body."""
    packument = await client.get("/npm/dev/warm-me", headers={"Accept-Encoding": "gzip"})
    assert packument.status == 200, await packument.text()
    tarball = await client.get("/npm/dev/warm-me/-/warm-me-1.0.0.tgz")
    assert tarball.status == 200, await tarball.text()
    return packument.headers["ETag"], await packument.read()


def counts(npm: NpmService) -> tuple[int, int]:
    return npm.packuments.resolved, npm.tarballs.located


@pytest.fixture
async def npm_upstream() -> AsyncIterator[FakeNpmRegistry]:
    async with FakeNpmRegistry() as fake:
        fake.add("warm-me", "1.0.0")
        yield fake


def npm_config(tmp_path: Path, fake: FakeNpmRegistry, metadata_ttl: str = "5m") -> Path:
    body = fake.upstream_config("public") + '\n[repository.dev]\nupstreams = ["public"]\n'
    return write_config(tmp_path, body, metadata_ttl=metadata_ttl)


async def test_a_graceful_restart_serves_what_the_last_run_held_and_a_crash_serves_from_the_store(
    tmp_path: Path, npm_upstream: FakeNpmRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    config, port, warm = npm_config(tmp_path, npm_upstream), free_port(), tmp_path / "cache" / "warm"
    async with running(config, port) as client:
        etag, body = await install(client)
        assert counts(client.app[NPM]) == (1, 1)
    assert warm.stat().st_mode & 0o777 == 0o600
    assert b"warm-me" not in warm.read_bytes()  # sealed like everything in the store

    with caplog.at_level(logging.INFO, logger=WARM_LOG):
        async with running(config, port) as client:
            assert not warm.exists()  # taken: a crash from here on leaves none
            assert await install(client) == (etag, body)
            assert counts(client.app[NPM]) == (0, 0)  # neither resolved nor located again
    assert "warm start: 1 npm packuments, 1 npm tarballs, as the last run held them" in caplog.text
    assert npm_upstream.tarball_requests("warm-me", "1.0.0") == 1

    warm.unlink()  # what a crash leaves: no warm state
    async with running(config, port) as client:
        assert await install(client) == (etag, body)
        npm = client.app[NPM]
        assert counts(npm) == (1, 1) and npm.packuments.renders == 0  # the sealed rendering
    assert npm_upstream.tarball_requests("warm-me", "1.0.0") == 1


async def test_anything_that_opens_the_store_in_between_drops_the_warm_state(
    tmp_path: Path, npm_upstream: FakeNpmRegistry
) -> None:
    config, port = npm_config(tmp_path, npm_upstream), free_port()
    async with running(config, port) as client:
        await install(client)
    Store.open(load_config(config, formats=format_names()).cache).close()  # as gc, verify, import do
    assert not (tmp_path / "cache" / "warm").exists()
    async with running(config, port) as client:
        await install(client)
        assert counts(client.app[NPM]) == (1, 1)


async def test_another_configuration_or_a_damaged_state_starts_cold(
    tmp_path: Path, npm_upstream: FakeNpmRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    config, port, warm = npm_config(tmp_path, npm_upstream), free_port(), tmp_path / "cache" / "warm"
    async with running(config, port) as client:
        await install(client)
    changed = npm_config(tmp_path, npm_upstream, metadata_ttl="7m")  # a view's deadline depends on it
    with caplog.at_level(logging.INFO, logger=WARM_LOG):
        async with running(changed, port) as client:
            await install(client)
            assert counts(client.app[NPM]) == (1, 1)
    assert "starting cold: the warm state the last run kept does not open" in caplog.text

    damaged = bytearray(warm.read_bytes())
    damaged[len(damaged) // 2] ^= 1
    warm.write_bytes(damaged)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=WARM_LOG):
        async with running(changed, port) as client:
            await install(client)
            assert counts(client.app[NPM]) == (1, 1)
    assert "starting cold" in caplog.text and "Traceback" not in caplog.text


async def test_pypi_pages_and_files_are_kept_warm_too(tmp_path: Path) -> None:
    async with FakePypiIndex() as fake:
        wheel = fake.add_wheel("warm-pypi", "1.0").filename
        body = fake.upstream_config("plain") + '\n[repository.dev]\nupstreams = ["plain"]\n'
        config, port = write_config(tmp_path, body), free_port()
        headers = {"Accept": JSON_V1, "Accept-Encoding": "gzip"}

        async def page(client: TestClient) -> bytes:
            response = await client.get("/pypi/dev/simple/warm-pypi/", headers=headers)
            assert response.status == 200, await response.text()
            return await response.read()

        async with running(config, port) as client:
            await page(client)
            assert (await client.get(f"/pypi/dev/files/warm-pypi/{wheel}")).status == 200
            served = await page(client)  # resolved again: the file it took changed what the page lists
            pypi = client.app[PYPI]
            assert (pypi.views.resolved, pypi.files.located) == (2, 1)
        async with running(config, port) as client:
            assert await page(client) == served
            assert (await client.get(f"/pypi/dev/files/warm-pypi/{wheel}")).status == 200
            pypi = client.app[PYPI]
            assert (pypi.views.resolved, pypi.files.located) == (0, 0)
        assert fake.file_requests(wheel) == 1


async def test_a_view_a_publish_changed_just_before_the_stop_is_not_kept(
    tmp_path: Path, npm_upstream: FakeNpmRegistry
) -> None:
    body = (
        npm_upstream.upstream_config("public")
        + '\n[repository.dev]\nupstreams = ["public"]\npublish = true\n'
    )
    config, port = write_config(tmp_path, body), free_port()

    async def versions(client: TestClient) -> list[str]:
        response = await client.get("/npm/dev/ours")
        assert response.status == 200, await response.text()
        return sorted((await response.json())["versions"])

    async with running(config, port) as client:
        assert (await client.put("/npm/dev/ours", json=publish_body("ours", "1.0.0", b"one"))).status == 201
        assert await versions(client) == ["1.0.0"]
        assert (await client.put("/npm/dev/ours", json=publish_body("ours", "1.1.0", b"two"))).status == 201
    async with running(config, port) as client:
        assert await versions(client) == ["1.0.0", "1.1.0"]
        assert client.app[NPM].packuments.resolved == 1


async def test_maven_metadata_and_assets_are_kept_warm_too(tmp_path: Path) -> None:
    with FakeMavenRepository() as fake:
        fake.add("org/example/lib/1.0/lib-1.0.pom", b"<project/>")
        fake.add("org/example/lib/1.0/lib-1.0.jar", b"a jar")
        upstream = f'[upstream.central]\nformat = "maven"\nurl = "{fake.url}"\n\n'
        body = upstream + '[repository.dev]\nupstreams = ["central"]\n'
        config, port = write_config(tmp_path, body), free_port()
        for run in range(2):
            async with running(config, port) as client:
                for path in ("org/example/lib/maven-metadata.xml", "org/example/lib/1.0/lib-1.0.jar"):
                    assert (await client.get(f"/maven/dev/{path}")).status == 200
                maven = client.app[MAVEN]
                assert (maven.documents.resolved, maven.assets.located) == ((1, 1) if run == 0 else (0, 0))
        assert fake.count("org/example/lib/1.0/lib-1.0.jar") == 1
