"""Merged documents are rendered once per change of what they list: caching a file the page already
describes does not render the page again, a file that adds to the listing does, and a daemon restarted
without its warm state (after a crash) serves the renderings sealed in its store without rendering
(PyPI and npm, in process, so the count of renderings can be read)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from proxy.config.loader import load_config
from proxy.daemon import Daemon
from proxy.formats.npm.routes import NPM
from proxy.formats.pypi.negotiate import JSON_V1
from proxy.formats.pypi.routes import PYPI
from proxy.formats.registry import format_names
from proxy.server.app import build_app
from tests.fakes.daemon import free_port, write_config
from tests.fakes.npm_registry import FakeNpmRegistry
from tests.fakes.pypi_index import FakePypiIndex

PIP = {"Accept": JSON_V1, "Accept-Encoding": "gzip"}


@asynccontextmanager
async def running(config: Path, port: int) -> AsyncIterator[tuple[TestClient, Daemon]]:
    """The daemon of ``config`` in process; on ``port`` every time, so its pages' URLs stay the same."""
    daemon = await Daemon.open(load_config(config, formats=format_names()))
    try:
        async with TestClient(TestServer(build_app(daemon), port=port)) as client:
            yield client, daemon
    finally:
        await daemon.close()


async def pypi_page(client: TestClient, project: str) -> tuple[str, dict[str, dict[str, object]]]:
    response = await client.get(f"/pypi/dev/simple/{project}/", headers=PIP)
    assert response.status == 200, await response.text()
    return response.headers["ETag"], {f["filename"]: f for f in (await response.json())["files"]}


async def test_a_pypi_page_renders_once_per_change_of_what_it_lists_and_survives_a_restart(
    tmp_path: Path,
) -> None:
    async with FakePypiIndex() as fake:
        described = fake.add_wheel("render-once", "1.0", pep658=True).filename  # sha256 and metadata listed
        bare = fake.add_wheel("render-once", "1.1").filename  # listed without PEP 658 metadata
        port = free_port()
        config = write_config(
            tmp_path, fake.upstream_config("plain") + '\n[repository.dev]\nupstreams = ["plain"]\n'
        )
        async with running(config, port) as (client, _daemon):
            views = client.app[PYPI].views

            def renders() -> int:
                return views.renders

            etag, files = await pypi_page(client, "render-once")
            assert renders() == 1 and "core-metadata" not in files[bare]
            # The cold run fetches a file the page describes fully: the warm page is not rendered again.
            assert (await client.get(f"/pypi/dev/files/render-once/{described}")).status == 200
            assert (await client.get(f"/pypi/dev/files/render-once/{described}.metadata")).status == 200
            assert (await pypi_page(client, "render-once"))[0] == etag and renders() == 1

            # A wheel listed without metadata: the proxy takes it out, and the page lists it now. The
            # next request is answered with the page as it was (still true, only less complete) while
            # the page is rendered again in the background; the requests after it get the new one.
            assert (await client.get(f"/pypi/dev/files/render-once/{bare}")).status == 200
            provisional, files = await pypi_page(client, "render-once")
            assert provisional == etag and "core-metadata" not in files[bare]
            for _ in range(1500):  # REFINE_SECONDS, then one rendering
                if renders() == 2:
                    break
                await asyncio.sleep(0.01)
            etag, files = await pypi_page(client, "render-once")
            assert etag != provisional and renders() == 2 and "core-metadata" in files[bare]
            assert (await pypi_page(client, "render-once"))[0] == etag and renders() == 2

        (tmp_path / "cache" / "warm").unlink()  # as after a crash: served from the store, not memory
        async with running(config, port) as (client, _daemon):
            again, files = await pypi_page(client, "render-once")
            assert again == etag and "core-metadata" in files[bare]
            assert client.app[PYPI].views.renders == 0  # the sealed rendering was served
            # Its files are still served from the view merged on demand.
            response = await client.get(f"/pypi/dev/files/render-once/{bare}.metadata")
            assert response.status == 200 and b"Name: render-once" in await response.read()


async def test_an_npm_packument_is_not_rendered_again_after_a_restart_until_it_changes(
    tmp_path: Path,
) -> None:
    async with FakeNpmRegistry() as fake:
        fake.add("restart-me", "1.0.0")
        fake.add("restart-me", "1.0.1")
        port = free_port()
        config = write_config(
            tmp_path, fake.upstream_config("public") + '\n[repository.dev]\nupstreams = ["public"]\n'
        )
        async with running(config, port) as (client, _daemon):
            first = await client.get("/npm/dev/restart-me")
            body = await first.read()
            assert first.status == 200 and client.app[NPM].packuments.renders == 1
            assert (await client.get("/npm/dev/restart-me/-/restart-me-1.0.0.tgz")).status == 200
            assert (await client.get("/npm/dev/restart-me")).headers["ETag"] == first.headers["ETag"]
            assert client.app[NPM].packuments.renders == 1

        (tmp_path / "cache" / "warm").unlink()  # as after a crash: served from the store, not memory
        async with running(config, port) as (client, _daemon):
            again = await client.get("/npm/dev/restart-me")
            assert again.headers["ETag"] == first.headers["ETag"]
            assert await again.read() == body
            assert client.app[NPM].packuments.renders == 0
            # A tarball not fetched before is found through the packument merged on demand.
            tarball = await client.get("/npm/dev/restart-me/-/restart-me-1.0.1.tgz")
            assert tarball.status == 200 and fake.tarball_requests("restart-me", "1.0.1") == 1
