"""``[store]``: the loader's checks, the backends it opens, and ``verify``/``gc`` on a shared store."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import pytest

from proxy.cli import main
from proxy.config import ConfigError, embedded_default, load_config, redacted
from proxy.config.model import Config
from proxy.formats.registry import format_names
from proxy.store import backends
from proxy.store.catalog import AssetRecord, PackageCoordinate, PackageVersionOrigin, PackageVersionRecord
from tests.fakes.daemon import start_daemon, write_config
from tests.store_contract.postgres import Cluster

REPOSITORY = "\n[repository.team-repo]\npublish = true\n"


def config_with(tmp_path: Path, store: str) -> Path:
    return write_config(tmp_path, f"\n[store]\n{store}\n{REPOSITORY}")


def load(tmp_path: Path, store: str) -> Config:
    return load_config(config_with(tmp_path, store), {"HOME": str(tmp_path)}, formats=format_names())


def test_no_store_table_is_the_one_host_store(tmp_path):
    assert not load(tmp_path, "").store.shared
    assert not embedded_default({"HOME": str(tmp_path)}).store.shared


def test_postgresql_with_a_shared_path_or_s3(tmp_path):
    shared = load(
        tmp_path, 'catalog = "postgresql://proxy@db.example.com:5432/proxy"\nblobs = "/mnt/shared/blobs"'
    )
    assert (shared.store.catalog, shared.store.blobs, shared.store.s3) == (
        "postgresql://proxy@db.example.com:5432/proxy",
        "/mnt/shared/blobs",
        None,
    )
    s3 = load(
        tmp_path,
        'catalog = "postgresql://proxy@db.example.com/proxy"\nblobs = "s3://team-blobs/proxy"\n'
        's3_region = "eu-west-1"\ns3_endpoint_url = "http://127.0.0.1:9000"',
    )
    assert s3.store.s3 == ("team-blobs", "proxy/")
    assert (s3.store.s3_region, s3.store.s3_endpoint_url) == ("eu-west-1", "http://127.0.0.1:9000")
    assert shared.store.lease_timeout == 30.0
    assert (
        load(
            tmp_path, 'catalog = "postgresql://db.example.com/p"\nblobs = "/b"\nlease_timeout = "5s"'
        ).store.lease_timeout
        == 5.0
    )
    one_host = load(tmp_path, 'lease_timeout = "10s"').store  # for workers on the one-host store
    assert one_host.lease_timeout == 10.0 and not one_host.shared
    assert redacted(s3)["store"]["catalog"] == "postgresql://proxy@db.example.com/proxy"


@pytest.mark.parametrize(
    ("store", "key", "reason"),
    [
        (
            'catalog = "mysql://db.example.com/proxy"\nblobs = "/mnt/b"',
            "store.catalog",
            "must be a postgresql://",
        ),
        ('catalog = "postgresql://db.example.com:99999/p"\nblobs = "/mnt/b"', "store.catalog", "bad port"),
        (
            'catalog = "postgresql://db.example.com"\nblobs = "/mnt/b"',
            "store.catalog",
            "must name a database",
        ),
        ('catalog = "postgresql://db.example.com/p"', "store.blobs", "blobs must be too"),
        ('blobs = "/mnt/shared/blobs"', "store.catalog", "need a shared catalog"),
        ('catalog = "postgresql://db.example.com/p"\nblobs = "shared/blobs"', "store.blobs", "absolute path"),
        ('catalog = "postgresql://db.example.com/p"\nblobs = "nfs://host/x"', "store.blobs", "absolute path"),
        (
            'catalog = "postgresql://db.example.com/p"\nblobs = "s3://Bad_Bucket/x"',
            "store.blobs",
            "bucket name",
        ),
        (
            'catalog = "postgresql://db.example.com/p"\nblobs = "/mnt/b"\ns3_region = "eu-west-1"',
            "store.s3_region",
            "S3 blobs only",
        ),
        (
            'catalog = "postgresql://db.example.com/p"\nblobs = "/mnt/b"\nworkers = 2',
            "store.workers",
            "unknown",
        ),
        (
            'catalog = "postgresql://db.example.com/p"\nblobs = "/mnt/b"\nlease_timeout = "0s"',
            "store.lease_timeout",
            "must be more than 0",
        ),
    ],
)
def test_bad_store_settings_name_file_key_and_reason(tmp_path, store, key, reason):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, store)
    message = str(caught.value)
    assert str(tmp_path / "config.toml") in message and f"{key}:" in message and reason in message


def test_a_password_in_the_catalog_url_is_refused_and_not_echoed(tmp_path):
    for dsn in (
        "postgresql://proxy:s3cr3t-pw@db.example.com/p",
        "postgresql://db.example.com/p?password=s3cr3t-pw",
    ):
        with pytest.raises(ConfigError) as caught:
            load(tmp_path, f'catalog = "{dsn}"\nblobs = "/mnt/b"')
        assert "PGPASSWORD" in str(caught.value) and "s3cr3t-pw" not in str(caught.value)


# -- the backends it opens, and the maintenance commands ---------------------------------------------
COORD = PackageCoordinate("npm", "", "wiring-package")


async def populate(config: Config) -> tuple[str, str]:
    """A published version with its blob, and an orphan blob; their ids."""
    opened = await backends.open_backends(config.store, config.cache)
    try:
        blob_ids = []
        for content in (os.urandom(2000), b"orphan content"):
            writer = opened.blobs.writer()
            writer.write(content)
            info = await writer.commit(durable=True)
            await opened.ledger.record(info.blob_id, info.size, pinned=True)
            blob_ids.append(info.blob_id)
        published, orphan = blob_ids

        def publish(record):
            record.versions["1.0.0"] = PackageVersionRecord(
                "1.0.0",
                PackageVersionOrigin("INTERNAL", "team-repo"),
                assets={"a.tgz": AssetRecord("a.tgz", 2000, published, {})},
            )

        await opened.catalog.update_package("team-repo", COORD, publish, commit=True)
        return published, orphan
    finally:
        await opened.close()


async def blob_ids(config: Config) -> list[str]:
    return await backends.maintain(config.store, config.cache, lambda opened: opened.blobs.ids())


@pytest.fixture
def shared_config(tmp_path: Path, pg_cluster: Cluster) -> Path:
    database = f"wiring_{os.urandom(6).hex()}"

    async def create() -> None:
        import asyncpg

        admin = await asyncpg.connect(pg_cluster.dsn())
        try:
            await admin.execute(f"CREATE DATABASE {database}")
        finally:
            await admin.close()

    asyncio.run(create())
    return config_with(tmp_path, f'catalog = "{pg_cluster.dsn(database)}"\nblobs = "{tmp_path / "shared"}"')


def test_verify_and_gc_on_a_shared_store(shared_config: Path, capsys):
    config = load_config(shared_config, formats=format_names())
    published, orphan = asyncio.run(populate(config))
    assert main(["--config", str(shared_config), "verify"]) == 0
    assert "verified 2 blobs: ok" in capsys.readouterr().out

    assert main(["--config", str(shared_config), "gc"]) == 0
    assert "removed 1 blobs" in capsys.readouterr().out
    assert asyncio.run(blob_ids(config)) == [published]

    path = Path(config.store.blobs) / published[:2] / published[2:]
    path.write_bytes(path.read_bytes()[:-1])  # truncated
    assert main(["--config", str(shared_config), "verify"]) == 1
    out = capsys.readouterr().out
    assert f"blob {published}:" in out and "published asset a.tgz (wiring-package 1.0.0)" in out
    assert orphan not in out


def test_an_unreachable_catalog_is_one_line_naming_it(tmp_path, capsys):
    config = config_with(
        tmp_path, f'catalog = "postgresql://proxy@127.0.0.1:1/proxy"\nblobs = "{tmp_path}/b"'
    )
    assert main(["--config", str(config), "verify"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("codeartifact-proxy: store catalog: cannot connect") and err.count("\n") == 1


def test_a_missing_bucket_is_one_line_naming_it(tmp_path, pg_cluster, s3_endpoint, s3_credentials, capsys):
    config = config_with(
        tmp_path,
        f'catalog = "{pg_cluster.dsn()}"\nblobs = "s3://no-such-bucket/p"\ns3_region = "us-east-1"\n'
        f's3_endpoint_url = "{s3_endpoint}"',
    )
    assert main(["--config", str(config), "verify"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("codeartifact-proxy: store blobs s3://no-such-bucket/p/:") and err.count("\n") == 1


POM = (
    b"<project><modelVersion>4.0.0</modelVersion><groupId>org.shared</groupId><artifactId>s</artifactId>"
    b"<version>1.0</version></project>"
)


def test_two_daemons_serve_one_shared_store(tmp_path: Path, shared_config: Path):
    """What one daemon publishes, another on the same PostgreSQL catalog and blob path serves."""
    store = shared_config.read_text().split("[store]", 1)[1]
    hosts = []
    for name in ("host-a", "host-b"):
        (tmp_path / name).mkdir()
        hosts.append(write_config(tmp_path / name, "\n[store]" + store))
    # Every daemon of a shared store seals with the same cache key: host-b uses host-a's key file.
    key_a = str(tmp_path / "host-a" / "keys" / "cache.key")
    hosts[1].write_text(hosts[1].read_text().replace(str(tmp_path / "host-b" / "keys" / "cache.key"), key_a))
    a = start_daemon(hosts[0], tmp_path / "a.log")
    b = None
    try:
        b = start_daemon(hosts[1], tmp_path / "b.log")
        url = "/maven/team-repo/org/shared/s/1.0/s-1.0.pom"
        assert httpx.put(a.url + url, content=POM, timeout=30).status_code in (200, 201)
        served = httpx.get(b.url + url, timeout=30)
        assert served.status_code == 200 and served.content == POM
        assert httpx.get(b.url + "/readyz", timeout=10).status_code == 200
        assert httpx.get(b.url + "/-/status", timeout=10).json()["repositories"][0]["published_versions"] == 1
        assert not list((tmp_path / "host-b" / "cache").glob("index/*")), "a shared store keeps no index"
    finally:
        for daemon in (a, b):
            if daemon is not None:
                assert daemon.stop() == 0, daemon.log_text()


def load_with_workers(tmp_path: Path, workers: str, store: str) -> Config:
    path = config_with(tmp_path, store)
    path.write_text(path.read_text().replace("[server]\n", f"[server]\nworkers = {workers}\n", 1))
    return load_config(path, {"HOME": str(tmp_path)}, formats=format_names())


SHARED = 'catalog = "postgresql://db.example.com/p"\nblobs = "/mnt/b"'


def test_workers_serve_a_shared_store(tmp_path):
    assert load(tmp_path, SHARED).server.workers == 1
    assert load_with_workers(tmp_path, "3", SHARED).server.workers == 3
    assert load_with_workers(tmp_path, '"auto"', SHARED).server.workers == (os.cpu_count() or 1)
    assert load_with_workers(tmp_path, "2", "").server.workers == 2  # the one-host store too


@pytest.mark.parametrize(
    ("workers", "store", "reason"),
    [
        ("0", SHARED, "1 or more"),
        ('"many"', SHARED, "1 or more"),
        ("2.5", SHARED, 'a number of processes or "auto"'),
    ],
)
def test_bad_workers_name_file_key_and_reason(tmp_path, workers, store, reason):
    with pytest.raises(ConfigError) as caught:
        load_with_workers(tmp_path, workers, store)
    message = str(caught.value)
    assert str(tmp_path / "config.toml") in message and "server.workers:" in message and reason in message
