"""Repositories made through /v1 on a shared store (PostgreSQL catalog, shared blob path): what one daemon
creates or deletes with the real aws CLI, every daemon of the store serves as soon as it commits, to the
real npm and pip. The registry's row in PostgreSQL is sealed like the rest of the store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from proxy.config import load_config
from proxy.formats.registry import format_names
from proxy.repository.registry import ConfigDefined, RepositoryExists, RepositoryRegistry
from proxy.store.keyring import KeyRing
from proxy.store.postgres import PostgresIndexes, PostgresRepositoryEntries
from tests.api_cli import Aws, npm_publish
from tests.fakes.daemon import RunningDaemon, write_config
from tests.fakes.pypi_index import FakePypiIndex
from tests.store_contract.daemons import two_daemons
from tests.store_contract.postgres import Cluster, new_database
from tests.store_contract.test_wiring import shared_config  # noqa: F401 - the fixture
from tests.test_npm_e2e import Npm, node_require, npm_binary, project
from tests.test_pypi_e2e import Clients

NOTICE_WAIT = 20.0  # how long a notice may take on a loaded machine; the checks end at the first pass


def eventually(check: Callable[[], bool]) -> None:
    """``check()`` becomes true: the other daemon hears the change asynchronously, with no TTL."""
    deadline = time.monotonic() + NOTICE_WAIT
    while not check():
        assert time.monotonic() < deadline, "the change never reached the other daemon"
        time.sleep(0.05)


def repository_names(daemon: RunningDaemon) -> list[str]:
    answer = httpx.post(f"{daemon.url}/v1/domain/repositories?domain=local", json={}, timeout=30)
    return [r["name"] for r in answer.json()["repositories"]]


@pytest.fixture
def pypi() -> Iterator[FakePypiIndex]:
    with FakePypiIndex() as index:
        yield index


@pytest.fixture
def daemons(
    tmp_path: Path,
    shared_config: Path,  # noqa: F811
    pypi: FakePypiIndex,
) -> Iterator[tuple[RunningDaemon, RunningDaemon]]:
    """Two daemons of one store, each with the same upstream ``plain`` (a PyPI index) in its file."""
    with two_daemons(tmp_path, shared_config, pypi.upstream_config()) as started:
        yield started


def test_a_repository_created_on_one_daemon_is_served_by_the_other(
    tmp_path: Path,
    daemons: tuple[RunningDaemon, RunningDaemon],
    shared_config: Path,  # noqa: F811
    pypi: FakePypiIndex,
) -> None:
    a, b = daemons
    assert "team" not in repository_names(b)
    created = Aws(a.url)(
        "create-repository", "--repository", "team", "--description", "secret-description",
        "--upstreams", "repositoryName=team-repo", "repositoryName=plain",
    )  # fmt: skip
    assert created["repository"]["name"] == "team"
    eventually(lambda: "team" in repository_names(b))
    listed = Aws(b.url)("list-repositories-in-domain")["repositories"]
    assert [r["name"] for r in listed] == ["team", "team-repo"]
    described = httpx.get(f"{b.url}/v1/repository?domain=local&repository=team", timeout=30).json()[
        "repository"
    ]
    assert described["description"] == "secret-description"
    assert described["upstreams"] == [{"repositoryName": "team-repo"}, {"repositoryName": "plain"}]

    # npm: published into it through A, installed through B; pip: installed through B from the
    # repository's upstream chain.
    npm_publish(a.url, "team", "shared-lib", "1.0.0")
    npm = Npm(npm_binary(), tmp_path / "npm", f"{b.url}/npm/team/")
    app = project(tmp_path / "app", {"shared-lib": "^1.0.0"})
    npm.run("install", cwd=app)
    assert node_require(app, "shared-lib") == ["shared-lib@1.0.0"]
    pypi.add_wheel("shared-wheel", "2.0")
    installed, _ = Clients(tmp_path / "pip", b.url, repository="team").install("shared-wheel")
    assert installed == {"shared_wheel-2.0"}

    # A change B makes (it deletes the repository) is served by A.
    Aws(b.url)("delete-repository", "--repository", "team")
    eventually(lambda: "team" not in repository_names(a))
    assert httpx.get(f"{a.url}/npm/team/shared-lib", timeout=30).status_code == 404

    # PostgreSQL holds the registry sealed: no repository name or description in the clear.
    dsn = shared_config.read_text().split('catalog = "', 1)[1].split('"', 1)[0]
    assert b"secret-description" not in asyncio.run(_registry_rows(dsn))
    assert httpx.post(f"{a.url}/v1/repository?domain=local&repository=again", timeout=30).status_code == 200
    assert b"again" not in asyncio.run(_registry_rows(dsn))


async def _registry_rows(dsn: str) -> bytes:
    con = await asyncpg.connect(dsn)
    try:
        rows = await con.fetch("SELECT name, value FROM shared_entries")
    finally:
        await con.close()
    assert len(rows) == 1
    return b"".join(row["name"].encode() + bytes(row["value"]) for row in rows)


# -- the registry on PostgreSQL, two daemons in one process ----------------------------------------
async def test_concurrent_changes_from_two_daemons_lose_nothing_and_refusals_write_nothing(
    tmp_path: Path, pg_cluster: Cluster, keyring: KeyRing
) -> None:
    config = load_config(
        write_config(tmp_path, "[repository.base]\n"), {"HOME": str(tmp_path)}, formats=format_names()
    )
    async with new_database(pg_cluster) as dsn:
        pools = [await PostgresIndexes.open(dsn, keyring) for _ in range(2)]
        first, second = (RepositoryRegistry(config, PostgresRepositoryEntries.of(p.catalog)) for p in pools)
        heard: list[str] = []
        second.on_change(heard.append)
        try:
            await first.open()
            await second.open()
            await asyncio.gather(*(r.create(f"{(r is first and 'one') or 'two'}-{n}") for n in range(5)
                                   for r in (first, second)))  # fmt: skip
            with pytest.raises(RepositoryExists):
                await second.create("one-0")  # decided on the stored state, not on what it has heard
            with pytest.raises(ConfigDefined):
                await second.delete("base")
            made = sorted(f"{who}-{n}" for who in ("one", "two") for n in range(5))
            stored = await PostgresRepositoryEntries.of(pools[0].catalog).load()
            assert sorted(r.name for r in stored) == made
            deadline = time.monotonic() + NOTICE_WAIT
            while len(first) < 11 or len(second) < 11:  # each hears the other's changes by notice
                assert time.monotonic() < deadline, (list(first), list(second))
                await asyncio.sleep(0.02)
            assert list(first) == list(second) == ["base", *made]
            assert sorted(heard) == made  # second's own changes and first's, each told once
        finally:
            for registry in (first, second):
                await registry.close()
            for pool in pools:
                await pool.close()
