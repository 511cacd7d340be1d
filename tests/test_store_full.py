"""A store whose disk is full: downloads and metadata are still served (verified) and not kept; what
has to be kept (npm publish, Maven deploy) is refused with 507 and a reason; once there is space again,
everything is stored.

The daemon runs in process, so its store can be made full: blob files are written to /dev/full (the
kernel's ENOSPC) and SQLite writes (index, small blobs) fail with SQLite's own "database or disk is full".
"""

from __future__ import annotations

import base64
import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from proxy.config.loader import load_config
from proxy.daemon import Daemon
from proxy.formats.registry import format_names
from proxy.server.app import build_app
from proxy.store.catalog import PackageCoordinate
from proxy.store.space import out_of_space
from proxy.store.store import Store
from tests.fakes.daemon import write_config
from tests.fakes.maven_repository import FakeMavenRepository
from tests.fakes.npm_registry import FakeNpmRegistry
from tests.fakes.pypi_index import FakePypiIndex


def sqlite_full_error() -> sqlite3.OperationalError:
    """A real SQLITE_FULL, from a database that may not grow."""
    con = sqlite3.connect(":memory:")
    try:
        con.execute("CREATE TABLE t (v BLOB)")
        con.execute("PRAGMA max_page_count = 2")
        con.execute("INSERT INTO t VALUES (?)", (bytes(64 * 1024),))
    except sqlite3.OperationalError as exc:
        return exc
    finally:
        con.close()
    raise AssertionError("SQLite stored more than its page limit")


@contextlib.contextmanager
def full(store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The store's disk is full until the block ends."""
    error = sqlite_full_error()

    def no_room(*args: object, **kwargs: object) -> None:
        raise error

    def temp_file_on_a_full_disk() -> tuple[int, str]:
        never_created = str(store.root / "tmp" / "never-created.part")
        return os.open("/dev/full", os.O_WRONLY | os.O_CLOEXEC), never_created

    with monkeypatch.context() as patch:
        patch.setattr(store.blobs, "_new_temp_file", temp_file_on_a_full_disk)
        for db in (store.catalog.index, store.ledger.index, store.metadata.index, store.blobs.small):
            patch.setattr(db, "set", no_room)
        yield


def test_the_errors_of_a_full_disk_are_told_apart() -> None:
    assert out_of_space(sqlite_full_error())
    with pytest.raises(OSError) as raised, open("/dev/full", "wb", buffering=0) as disk:
        disk.write(b"x")
    assert out_of_space(raised.value)
    assert not out_of_space(OSError(13, "Permission denied"))
    assert not out_of_space(sqlite3.OperationalError("database is locked"))


async def test_npm_is_served_from_upstream_while_the_disk_is_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with FakeNpmRegistry() as public:
        small = public.add("lib", "1.0.0")
        # More than one sealed chunk: written to the disk while it arrives, so the disk fills mid-way.
        big = public.add("big", "1.0.0", tarball=os.urandom(600 * 1024))
        body = public.upstream_config() + '\n[repository.dev]\nupstreams = ["public"]\npublish = true\n'
        daemon = await Daemon.open(load_config(write_config(tmp_path, body), formats=format_names()))
        store = daemon.store
        try:  # closed in the test: the last step is closing with a full disk
            async with TestClient(TestServer(build_app(daemon))) as client:
                with full(store, monkeypatch):
                    packument = await client.get("/npm/dev/lib")
                    assert packument.status == 200
                    assert "1.0.0" in (await packument.json())["versions"]
                    for name, data in (("lib", small), ("big", big)):
                        tarball = await client.get(f"/npm/dev/{name}/-/{name}-1.0.0.tgz")
                        assert tarball.status == 200
                        assert await tarball.read() == data
                    assert list(store.blobs.ids()) == []
                    assert store.catalog.package("dev", PackageCoordinate("npm", "", "lib")) is None
                    assert list((store.root / "tmp").iterdir()) == []

                    attachment = {"mine-1.0.0.tgz": {"data": base64.b64encode(b"mine").decode(), "length": 4}}
                    publish = {
                        "name": "mine",
                        "versions": {"1.0.0": {"name": "mine", "version": "1.0.0", "dist": {}}},
                        "_attachments": attachment,
                    }
                    refused = await client.put("/npm/dev/mine", json=publish)
                    assert refused.status == 507
                    assert "disk space" in (await refused.json())["error"]
                    assert (await client.get("/npm/dev/mine")).status == 404

                # Space again: the publish goes through and fetched tarballs are kept.
                assert (await client.put("/npm/dev/mine", json=publish)).status == 201
                tarball = await client.get("/npm/dev/big/-/big-1.0.0.tgz")
                assert await tarball.read() == big
                assert store.catalog.package("dev", PackageCoordinate("npm", "", "big")) is not None
                assert public.tarball_requests("big", "1.0.0") == 2
                # Served from the store: its access time waits in memory until the daemon closes.
                assert await (await client.get("/npm/dev/big/-/big-1.0.0.tgz")).read() == big
            with full(store, monkeypatch):
                await daemon.close()  # the access time cannot be saved; closing succeeds all the same
        except BaseException:
            await daemon.close()
            raise


async def test_pypi_is_served_from_upstream_while_the_disk_is_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with FakePypiIndex() as index:
        wheel = index.add_wheel("hello", "1.0", pep658=True)
        body = index.upstream_config() + '\n[repository.dev]\nupstreams = ["plain"]\n'
        daemon = await Daemon.open(load_config(write_config(tmp_path, body), formats=format_names()))
        try:
            async with TestClient(TestServer(build_app(daemon))) as client:
                with full(daemon.store, monkeypatch):
                    page = await client.get("/pypi/dev/simple/hello/")
                    assert page.status == 200
                    assert wheel.filename in await page.text()
                    files = f"/pypi/dev/files/hello/{wheel.filename}"
                    assert await (await client.get(f"{files}.metadata")).read() == wheel.metadata
                    downloaded = await client.get(files)
                    assert downloaded.status == 200
                    assert await downloaded.read() == wheel.data
                    assert list(daemon.store.blobs.ids()) == []
        finally:
            await daemon.close()


async def test_maven_is_served_from_upstream_and_deploys_are_refused_while_the_disk_is_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream = FakeMavenRepository().start()
    jar, metadata = "org/example/hello/1.0/hello-1.0.jar", "org/example/hello/maven-metadata.xml"
    upstream.add(jar, b"PK\x03\x04 a jar")
    upstream.add(
        metadata,
        b"<metadata><groupId>org.example</groupId><artifactId>hello</artifactId>"
        b"<versioning><versions><version>1.0</version></versions></versioning></metadata>",
    )
    body = (
        f'[upstream.m2]\nformat = "maven"\nurl = "{upstream.url}"\n\n'
        '[repository.dev]\nupstreams = ["m2"]\npublish = true\n'
    )
    daemon = await Daemon.open(load_config(write_config(tmp_path, body), formats=format_names()))
    deploy = "org/example/mine/1.0/mine-1.0.jar"
    try:
        async with TestClient(TestServer(build_app(daemon))) as client:
            with full(daemon.store, monkeypatch):
                listed = await client.get(f"/maven/dev/{metadata}")
                assert listed.status == 200 and b"<version>1.0</version>" in await listed.read()
                assert await (await client.get(f"/maven/dev/{jar}")).read() == b"PK\x03\x04 a jar"
                assert list(daemon.store.blobs.ids()) == []
                refused = await client.put(f"/maven/dev/{deploy}", data=b"mine", headers=BASIC)
                assert refused.status == 507
                assert "disk space" in (await refused.json())["error"]
            assert (await client.put(f"/maven/dev/{deploy}", data=b"mine", headers=BASIC)).status == 201
            assert await (await client.get(f"/maven/dev/{jar}")).read() == b"PK\x03\x04 a jar"
            assert len(list(daemon.store.blobs.ids())) == 2
    finally:
        await daemon.close()
        upstream.close()


BASIC = {"Authorization": "Basic dTpw"}
