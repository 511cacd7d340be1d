"""Benchmark: one daemon vs several on one shared store (PostgreSQL + a shared blob path), and the
one-host store for reference, on cold tarball fetches.

    python bench/scale.py [--packages 200] [--size 20000] [--concurrency 32] [--copies 8] [--daemons 2]

Each setting gets a fresh store (a new database and blob directory, or a new cache directory), its
daemons (``python -m proxy serve`` subprocesses; one repository whose upstream is a fake npm registry
on a thread of this process) and then:

- cold fetch: every one of ``--packages`` tarballs (``--size`` bytes each) is asked for once,
  ``--concurrency`` at a time, spread round robin over the daemons: tarballs/s and MB/s, and the
  upstream's tarball requests (one per tarball when nothing is fetched twice);
- concurrent misses: ``--packages`` other tarballs, each asked for ``--copies`` times at once, the
  copies spread over the daemons: the upstream's tarball requests (one per tarball is single flight
  across daemons) and the wall time.

PostgreSQL is a throwaway local cluster (loopback TCP, ``fsync=off``), the blob path a local
directory: the figures show the proxy's and the database round trips' cost on one machine. On a
2-core machine the daemons, PostgreSQL, the fake upstream and the load generator share the cores, so
more daemons cannot be faster here; what the bench shows is what coordination costs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import asyncpg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from proxy.store.keyring import KeyRing  # noqa: E402
from tests.fakes.daemon import RunningDaemon, start_daemon, write_config  # noqa: E402
from tests.fakes.npm_registry import FakeNpmRegistry, make_tarball  # noqa: E402
from tests.store_contract.postgres import Cluster, find_bindir  # noqa: E402


@contextmanager
def daemons(
    root: Path, registry: FakeNpmRegistry, count: int, dsn: str | None
) -> Iterator[list[RunningDaemon]]:
    """``count`` daemons on one store: shared (``dsn``) or, with one daemon and no dsn, one-host."""
    key_file = root / "key" / "cache.key"
    KeyRing.load(key_file)
    store = f'\n[store]\ncatalog = "{dsn}"\nblobs = "{root / "blobs"}"\n' if dsn else ""
    body = store + registry.upstream_config() + '\n[repository.team]\nupstreams = ["public"]\n'
    running: list[RunningDaemon] = []
    try:
        for n in range(count):
            (root / f"d{n}").mkdir(parents=True)
            config = write_config(root / f"d{n}", body)
            config.write_text(
                config.read_text().replace(str(root / f"d{n}" / "keys" / "cache.key"), str(key_file))
            )
            running.append(start_daemon(config, root / f"d{n}.log"))
        yield running
    finally:
        for daemon in running:
            daemon.stop()


async def fetch_all(urls: list[str], concurrency: int) -> tuple[float, int]:
    """Seconds to GET every URL, ``concurrency`` at a time, and the bytes received."""
    queue = iter(urls)
    received = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal received
        for url in queue:
            async with session.get(url) as response:
                body = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{url}: {response.status} {body[:200]!r}")
                received += len(body)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return time.perf_counter() - start, received


def tarball_url(daemon: RunningDaemon, name: str) -> str:
    return f"{daemon.url}/npm/team/{name}/-/{name}-1.0.0.tgz"


def measure(
    root: Path, registry: FakeNpmRegistry, count: int, dsn: str | None, args: argparse.Namespace, tag: str
) -> dict[str, float]:
    with daemons(root, registry, count, dsn) as running:
        cold = [f"{tag}-cold-{n}" for n in range(args.packages)]
        urls = [tarball_url(running[n % count], name) for n, name in enumerate(cold)]
        seconds, received = asyncio.run(fetch_all(urls, args.concurrency))
        cold_fetches = sum(registry.tarball_requests(name, "1.0.0") for name in cold)

        missed = [f"{tag}-miss-{n}" for n in range(args.packages)]
        copies = [
            tarball_url(running[(n * args.copies + c) % count], name)
            for n, name in enumerate(missed)
            for c in range(args.copies)
        ]
        miss_seconds, _ = asyncio.run(fetch_all(copies, args.concurrency))
        miss_fetches = sum(registry.tarball_requests(name, "1.0.0") for name in missed)
    return {
        "tarballs/s": args.packages / seconds,
        "MB/s": received / seconds / 1e6,
        "cold upstream fetches": cold_fetches,
        "miss requests": len(copies),
        "miss upstream fetches": miss_fetches,
        "miss seconds": miss_seconds,
    }


async def new_database(cluster: Cluster, name: str) -> str:
    admin = await asyncpg.connect(cluster.dsn())
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    return cluster.dsn(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packages", type=int, default=200)
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--daemons", type=int, default=2)
    args = parser.parse_args()
    bindir = find_bindir()
    if bindir is None:
        sys.exit("PostgreSQL's initdb is not installed (bash .ci/setup installs it)")

    registry = FakeNpmRegistry()
    for tag in ("local", "one", "many"):
        for kind in ("cold", "miss"):
            for n in range(args.packages):
                name = f"{tag}-{kind}-{n}"
                registry.add(
                    name,
                    "1.0.0",
                    tarball=make_tarball(name, "1.0.0", files={"index.js": os.urandom(args.size)}),
                )
    registry.start_in_thread()
    cluster = Cluster(bindir)
    try:
        cluster.start()
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            rows = [
                ("one-host store, 1 daemon", measure(Path(tmp) / "local", registry, 1, None, args, "local")),
            ]
            for tag, count in (("one", 1), ("many", args.daemons)):
                dsn = asyncio.run(new_database(cluster, f"bench_{tag}"))
                rows.append(
                    (
                        f"PostgreSQL + shared path, {count} daemon(s)",
                        measure(Path(tmp) / tag, registry, count, dsn, args, tag),
                    )
                )
    finally:
        registry.stop_in_thread()
        cluster.stop()

    print(
        f"{args.packages} tarballs of {args.size} bytes, {args.concurrency} requests at once; "
        f"concurrent misses: each tarball {args.copies} times at once"
    )
    header = (
        f"{'cold tarballs/s':>15} {'MB/s':>6} {'fetches':>8} | {'miss reqs':>9} {'fetches':>8} {'seconds':>8}"
    )
    print(f"{'':42} {header}")
    for label, row in rows:
        print(
            f"{label:42} {row['tarballs/s']:15.0f} {row['MB/s']:6.1f} {row['cold upstream fetches']:8.0f} | "
            f"{row['miss requests']:9.0f} {row['miss upstream fetches']:8.0f} {row['miss seconds']:8.2f}"
        )


if __name__ == "__main__":
    main()
