"""Benchmark: the store's backends side by side, per operation, on this machine.

    python bench/backends.py [--ops 2000] [--concurrency 16]

Backends: the one-host store (SQLite and files, run inline), PostgreSQL with a shared blob path, and
PostgreSQL with S3. PostgreSQL is a throwaway local cluster (initdb/pg_ctl, as the tests start it:
loopback TCP, ``fsync=off``), S3 is moto's server on 127.0.0.1: the figures show the cost of the
client side and a round trip on one machine, not of a real database or bucket.

Operations, each ``--ops`` times, ``--concurrency`` at once: a catalog read of a package (``package``),
a catalog update that adds a version (``update``), a metadata read, an ingest of a 20 KB asset
(commit, ledger record) and a read of it. Prints operations per second, median of 3 runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from moto.server import ThreadedMotoServer  # noqa: E402

from proxy.store.catalog import PackageCoordinate, PackageVersionOrigin, PackageVersionRecord  # noqa: E402
from proxy.store.keyring import Key, KeyRing  # noqa: E402
from proxy.store.metadata import CachedDocument  # noqa: E402
from proxy.store.shared import SharedBlobService  # noqa: E402
from tests.store_contract.backends import Backend, local_backend, postgres_backend  # noqa: E402
from tests.store_contract.postgres import Cluster, find_bindir, new_database  # noqa: E402

COORD = PackageCoordinate("npm", "", "bench-package")


async def run_many(ops: int, concurrency: int, op: Callable[[int], Awaitable[object]]) -> float:
    """Operations per second of ``op(n)`` for n in range(ops), ``concurrency`` at a time."""
    queue = iter(range(ops))

    async def worker() -> None:
        for n in queue:
            await op(n)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ops / (time.perf_counter() - start)


async def measure(backend: Backend, ops: int, concurrency: int) -> dict[str, float]:
    blobs = SharedBlobService(backend.blobs, backend.ledger, max_size=10**12)
    content = [os.urandom(20_000) for _ in range(ops)]
    ids: list[str] = []

    def add_version(n: int) -> Callable[[object], None]:
        def change(record) -> None:
            record.versions[f"1.0.{n}"] = PackageVersionRecord(
                f"1.0.{n}", PackageVersionOrigin("EXTERNAL", "up")
            )

        return change

    async def ingest(n: int) -> None:
        async with blobs.ingest() as writer:
            writer.write(content[n])
            writer.finish()
            ids.append((await writer.commit(published=False)).blob_id)

    async def read(n: int) -> None:
        async for _ in blobs.read(ids[n]):
            pass

    await backend.catalog.update_package("bench", COORD, add_version(0))
    await backend.metadata.put(CachedDocument(200, os.urandom(8000)), "npm", "up", "bench-package")
    figures = {
        "update": await run_many(
            ops, concurrency, lambda n: backend.catalog.update_package("bench", COORD, add_version(n % 50))
        ),
        "package": await run_many(ops, concurrency, lambda n: backend.catalog.package("bench", COORD)),
        "metadata get": await run_many(
            ops, concurrency, lambda n: backend.metadata.get("npm", "up", "bench-package")
        ),
        "ingest 20 KB": await run_many(ops, concurrency, ingest),
        "read 20 KB": await run_many(ops, concurrency, read),
    }
    await blobs.close()
    return figures


@contextlib.asynccontextmanager
async def opened(kind: str, root: Path, cluster: Cluster | None, s3: str | None) -> AsyncIterator[Backend]:
    keyring = KeyRing(Key.generate())
    if kind == "local":
        async with local_backend(root / "store", keyring) as backend:
            yield backend
        return
    assert cluster is not None
    blobs = str(root / "shared") if kind == "postgres+shared" else f"s3://bench-{os.urandom(4).hex()}/p/"
    async with (
        new_database(cluster) as dsn,
        postgres_backend(cluster, dsn, blobs, keyring, root / "local", s3) as backend,
    ):
        yield backend


async def main_async(args: argparse.Namespace) -> None:
    bindir = find_bindir()
    if bindir is None:
        sys.exit("PostgreSQL's initdb is not installed (bash .ci/setup installs it)")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    cluster = Cluster(bindir)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    cluster.start()
    moto.start()
    try:
        for kind in ("local", "postgres+shared", "postgres+s3"):
            runs = []
            for _ in range(3):
                with tempfile.TemporaryDirectory() as tmp:
                    async with opened(kind, Path(tmp), cluster, f"http://127.0.0.1:{port}") as backend:
                        runs.append(await measure(backend, args.ops, args.concurrency))
            print(kind)
            for name in runs[0]:
                print(f"  {name:14} {statistics.median(run[name] for run in runs):9.0f} ops/s")
    finally:
        moto.stop()
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
