"""Benchmark: ``[server] workers = 1`` vs ``workers = N`` on the one-host store (SQLite and files under
``[cache] path``), on cold tarball fetches and warm small packuments.

    python bench/workers.py [--packages 200] [--size 20000] [--concurrency 32] [--warm 3000] [--workers 2]

Each setting gets a fresh cache directory and one daemon (``python -m proxy serve``; one repository
whose upstream is a fake npm registry on a thread of this process), then:

- cold fetch: every one of ``--packages`` tarballs (``--size`` bytes each) asked for once,
  ``--concurrency`` at a time: tarballs/s and the upstream's tarball requests;
- warm packuments: ``--warm`` requests for the packuments of those packages (each already asked for
  by every worker, so merged views are cached), ``--concurrency`` at a time, a new connection per
  request so the kernel spreads them over the workers: requests/s.

The daemon, the fake upstream and the load generator share the machine's cores: on a 2-core machine
two workers compete with the load generator, so the figures show what the workers cost and gain here,
not on a build host.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.scale import fetch_all, tarball_url  # noqa: E402
from tests.fakes.daemon import start_daemon, write_config  # noqa: E402
from tests.fakes.npm_registry import FakeNpmRegistry, make_tarball  # noqa: E402


async def get_each_anew(urls: list[str], concurrency: int) -> float:
    """Seconds to GET every URL, ``concurrency`` at a time, each on a connection of its own."""
    queue = iter(urls)

    async def worker() -> None:
        for url in queue:
            async with aiohttp.ClientSession() as session, session.get(url) as response:
                body = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{url}: {response.status} {body[:200]!r}")

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start


def measure(
    root: Path, registry: FakeNpmRegistry, workers: int, args: argparse.Namespace
) -> dict[str, float]:
    root.mkdir(parents=True)
    body = registry.upstream_config() + '\n[repository.team]\nupstreams = ["public"]\n'
    config = write_config(root, body)
    config.write_text(config.read_text().replace("[server]\n", f"[server]\nworkers = {workers}\n", 1))
    daemon = start_daemon(config, root / "daemon.log")
    try:
        tag = f"w{workers}"
        names = [f"{tag}-{n}" for n in range(args.packages)]
        seconds, _ = asyncio.run(fetch_all([tarball_url(daemon, name) for name in names], args.concurrency))
        fetches = sum(registry.tarball_requests(name, "1.0.0") for name in names)
        packuments = [f"{daemon.url}/npm/team/{name}" for name in names]
        asyncio.run(get_each_anew(packuments * 4, args.concurrency))  # every worker's merged views
        warm = [packuments[n % len(packuments)] for n in range(args.warm)]
        warm_seconds = asyncio.run(get_each_anew(warm, args.concurrency))
    finally:
        daemon.stop()
    return {
        "tarballs/s": args.packages / seconds,
        "fetches": fetches,
        "packuments/s": args.warm / warm_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packages", type=int, default=200)
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warm", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    registry = FakeNpmRegistry()
    for workers in (1, args.workers):
        for n in range(args.packages):
            name = f"w{workers}-{n}"
            registry.add(
                name, "1.0.0", tarball=make_tarball(name, "1.0.0", files={"index.js": os.urandom(args.size)})
            )
    registry.start_in_thread()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
            rows = [
                (workers, measure(Path(tmp) / f"w{workers}", registry, workers, args))
                for workers in (1, args.workers)
            ]
    finally:
        registry.stop_in_thread()
    print(
        f"one-host store; {args.packages} cold tarballs of {args.size} bytes, {args.warm} warm packuments, "
        f"{args.concurrency} requests at once ({os.cpu_count()} cores)"
    )
    print(f"{'':12} {'cold tarballs/s':>15} {'fetches':>8} {'warm packuments/s':>18}")
    for workers, row in rows:
        print(
            f"{f'workers={workers}':12} {row['tarballs/s']:15.0f} {row['fetches']:8.0f} "
            f"{row['packuments/s']:18.0f}"
        )


if __name__ == "__main__":
    main()
