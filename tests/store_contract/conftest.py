"""Fixtures of the storage contract suite: ``backend`` is parametrised over every storage backend:
the one-host store, PostgreSQL with a shared blob path, PostgreSQL with S3 (moto's server)."""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from proxy.store.keyring import Key, KeyRing
from tests.store_contract.backends import Backend, local_backend, postgres_backend
from tests.store_contract.postgres import Cluster, new_database, require_bindir

BACKENDS = ["local", "postgres+shared", "postgres+s3"]


@pytest.fixture
def keyring() -> KeyRing:
    return KeyRing(Key.generate())


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    cluster = Cluster(require_bindir())
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a loopback port, in this process."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Werkzeug, under moto's server, gives its logger a handler on stderr unless it has one.
    werkzeug = logging.getLogger("werkzeug")
    werkzeug.setLevel(logging.ERROR)
    werkzeug.addHandler(logging.NullHandler())
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "contract-suite")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "contract-suite")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path, keyring: KeyRing) -> AsyncIterator[Backend]:
    if request.param == "local":
        async with local_backend(tmp_path / "store", keyring) as opened:
            yield opened
        return
    cluster: Cluster = request.getfixturevalue("pg_cluster")
    if request.param == "postgres+shared":
        blobs = f"{tmp_path / 'shared-blobs'}"
        endpoint = None
    else:
        request.getfixturevalue("s3_credentials")
        blobs = f"s3://contract-{uuid.uuid4().hex[:12]}/some/prefix/"
        endpoint = request.getfixturevalue("s3_endpoint")
    async with (
        new_database(cluster) as dsn,
        postgres_backend(cluster, dsn, blobs, keyring, tmp_path / "local", endpoint) as opened,
    ):
        yield opened
