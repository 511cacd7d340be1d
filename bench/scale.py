"""Benchmark: one daemon vs several on one shared store (PostgreSQL + a shared blob path), and the
one-host store for reference, on cold tarball fetches; or, with ``--workloads npm``, one worker vs two
on each store for npm's warm and cold workloads.

    python bench/scale.py [--packages 200] [--size 20000] [--concurrency 32] [--copies 8] [--daemons 2]
    python bench/scale.py --workloads npm [--packages 300] [--runs 3] [--duration 5] [--connections 64]
                          [--load aiohttp|wrk]

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

``--workloads npm``: four settings, the one-host store and PostgreSQL + a shared blob path, each with
``[server] workers = 1`` and ``2`` (a setting the daemon refuses prints ``refused: <reason>``). In each
of ``--runs`` rounds, the settings in turn (interleaved, so that a change in the machine's load hits
them alike) get a fresh, empty store and one daemon, then:

- cold ``npm ci`` of a ~``--packages``-package lockfile (bench/npm.py's tree) through the daemon, with a
  new, empty npm cache: the wall time, and the daemon's CPU seconds over it (user + system from /proc,
  the parent process and every worker it forked); each tarball must reach the upstream exactly once;
- warm small packument: ``--connections`` connections for ``--duration`` seconds, with npm's Accept
  and Accept-Encoding: requests/s, p50 and p99 latency, and the daemon's CPU time per request (the
  figure the machine's load changes least). ``--load aiohttp`` (bench/npm.py's load generator, on one
  event loop in this process) needs about as much CPU per request as the daemon does, so on a small
  machine it is the ceiling before a second worker can show; ``--load wrk`` (one thread of a C load
  generator) leaves the cores to the daemon.

The table shows the medians over the rounds. Every daemon listens on one port, as the lockfile's
URLs name it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.npm import NPM_ACCEPT, Npm, app_dir, load, populate  # noqa: E402
from proxy.store.keyring import KeyRing  # noqa: E402
from tests.fakes.daemon import RunningDaemon, free_port, start_daemon, write_config  # noqa: E402
from tests.fakes.npm_registry import FakeNpmRegistry, make_tarball  # noqa: E402
from tests.store_contract.postgres import Cluster, find_bindir  # noqa: E402


@contextmanager
def daemons(
    root: Path,
    registry: FakeNpmRegistry,
    count: int,
    dsn: str | None,
    *,
    workers: int = 1,
    port: int | None = None,
) -> Iterator[list[RunningDaemon]]:
    """``count`` daemons of ``workers`` processes each on one store: shared (``dsn``) or, with one
    daemon and no dsn, one-host. ``port`` (one daemon only): the port it listens on.
    Raises ``RuntimeError`` (with the daemon's log) when a daemon does not start."""
    key_file = root / "key" / "cache.key"
    KeyRing.load(key_file)
    store = f'\n[store]\ncatalog = "{dsn}"\nblobs = "{root / "blobs"}"\n' if dsn else ""
    body = store + registry.upstream_config() + '\n[repository.team]\nupstreams = ["public"]\n'
    running: list[RunningDaemon] = []
    try:
        for n in range(count):
            (root / f"d{n}").mkdir(parents=True)
            config = write_config(root / f"d{n}", body, port=port)
            text = config.read_text().replace(str(root / f"d{n}" / "keys" / "cache.key"), str(key_file))
            config.write_text(text.replace("[server]\n", f"[server]\nworkers = {workers}\n", 1))
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


# -- --workloads npm ----------------------------------------------------------------------------------
NPM_SETTINGS = (
    ("one-host store", False, 1),
    ("one-host store", False, 2),
    ("PostgreSQL + shared path", True, 1),
    ("PostgreSQL + shared path", True, 2),
)


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its descendants (Linux /proc): the live ones' own time
    plus what the processes of the tree have reaped (a worker that exited and was waited for)."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stats[int(entry.name)] = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # it exited while we listed
    children: dict[int, list[int]] = {}
    for child, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(child)
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        fields = stats.get(current)
        if fields is not None:
            total += sum(int(value) for value in fields[11:15]) / ticks  # utime stime cutime cstime
            pending.extend(children.get(current, []))
    return total


@dataclass
class NpmFigures:
    """One setting's figures, a value per round."""

    ci_seconds: list[float] = field(default_factory=list)
    ci_cpu: list[float] = field(default_factory=list)
    requests_per_second: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    cpu_per_request_us: list[float] = field(default_factory=list)
    refused: str | None = None


def refusal(error: RuntimeError, config: Path) -> str:
    """The reason a daemon gave for exiting at start: the last line of its log, less the config path."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return (lines[-1] if lines else str(error)).replace(f"{config}: ", "")


def tree_tarball_requests(registry: FakeNpmRegistry, packages: int) -> int:
    return sum(registry.tarball_requests(f"tree-{i:03d}", "1.0.0") for i in range(packages))


def cold_ci(npm: Npm, app: Path, target: Path, packages: int) -> float:
    """``npm ci`` of ``app``'s lockfile in the new directory ``target`` (a new, empty npm cache): the
    wall time. Exits when npm fails or installs other than the whole tree."""
    target.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy(app / name, target / name)
    seconds = npm.run("ci", cwd=target)
    installed = len(list((target / "node_modules").glob("tree-*")))
    if installed != packages:
        raise SystemExit(f"npm ci in {target} installed {installed} of the {packages} tree packages")
    return seconds


@dataclass
class Warm:
    """What a warm load measured."""

    requests: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float


def aiohttp_load(url: str, headers: dict[str, str], connections: int, duration: float) -> Warm:
    """bench/npm.py's load generator (this process, one event loop); exits on a non-200."""
    result = asyncio.run(load(url, headers, connections, duration))
    ordered = sorted(result.latencies)
    return Warm(
        result.requests,
        result.requests / result.seconds,
        ordered[len(ordered) // 2] * 1000,
        ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
    )


WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(url: str, headers: dict[str, str], connections: int, duration: float) -> Warm:
    """wrk (one thread, a C load generator that leaves the cores to the daemon); exits on any non-2xx
    answer or socket error, or on output it cannot read."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    result = subprocess.run([*command, url], capture_output=True, text=True, timeout=duration + 60)
    output = result.stdout
    if result.returncode != 0 or "Non-2xx or 3xx responses" in output or "Socket errors" in output:
        raise SystemExit(f"wrk on {url} failed ({result.returncode}):\n{output}{result.stderr}")

    def latency(percentile: str) -> float:
        found = re.search(rf"^\s*{percentile}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        if found is None:
            raise SystemExit(f"no {percentile}% latency in wrk's output:\n{output}")
        return float(found[1]) * WRK_UNITS[found[2]]

    requests = re.search(r"^\s*(\d+) requests in ", output, re.M)
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    if requests is None or rate is None:
        raise SystemExit(f"no request count in wrk's output:\n{output}")
    return Warm(int(requests[1]), float(rate[1]), latency("50"), latency("99"))


def check_small_packument(url: str, headers: dict[str, str]) -> None:
    """Exits unless ``url`` answers the small packument with both of its versions (the load that
    follows checks only the status)."""
    response = httpx.get(url, headers=headers, timeout=30)
    if response.status_code != 200:
        raise SystemExit(f"{url} answered {response.status_code}: {response.text[:200]}")
    document = response.json()
    if document.get("name") != "small" or set(document.get("versions", {})) != {"1.0.0", "1.0.1"}:
        raise SystemExit(f"{url} answered another packument: {response.text[:200]}")


def measure_npm(
    root: Path,
    registry: FakeNpmRegistry,
    dsn: str | None,
    workers: int,
    port: int,
    app: Path,
    npm: Npm,
    args: argparse.Namespace,
    figures: NpmFigures,
) -> None:
    """One round of one setting on a fresh store: cold npm ci, then warm small packument load."""
    with ExitStack() as stack:
        try:
            (daemon,) = stack.enter_context(daemons(root, registry, 1, dsn, workers=workers, port=port))
        except RuntimeError as error:
            figures.refused = refusal(error, root / "d0" / "config.toml")
            return
        fetched = tree_tarball_requests(registry, args.packages)
        cpu = tree_cpu_seconds(daemon.process.pid)
        figures.ci_seconds.append(cold_ci(npm, app, root / "ci", args.packages))
        figures.ci_cpu.append(tree_cpu_seconds(daemon.process.pid) - cpu)
        fetched = tree_tarball_requests(registry, args.packages) - fetched
        if fetched != args.packages:
            raise SystemExit(
                f"{fetched} upstream tarball fetches for {args.packages} tarballs of an empty store"
            )

        headers = {"Accept": NPM_ACCEPT, "Accept-Encoding": "gzip"}
        url = f"{daemon.url}/npm/team/small"
        check_small_packument(url, headers)
        cpu = tree_cpu_seconds(daemon.process.pid)
        if args.load == "wrk":
            warm = wrk(url, headers, args.connections, args.duration)
        else:
            warm = aiohttp_load(url, headers, args.connections, args.duration)
        figures.cpu_per_request_us.append((tree_cpu_seconds(daemon.process.pid) - cpu) / warm.requests * 1e6)
        figures.requests_per_second.append(warm.requests_per_second)
        figures.p50_ms.append(warm.p50_ms)
        figures.p99_ms.append(warm.p99_ms)


def lockfile(root: Path, registry: FakeNpmRegistry, port: int) -> tuple[Npm, Path]:
    """An app whose lockfile pulls the whole tree through a daemon on ``port`` (its URLs name the port),
    and the npm that installs it."""
    with daemons(root / "lock", registry, 1, None, port=port):
        npm = Npm(root / "npm", f"http://127.0.0.1:{port}/npm/team/")
        app = app_dir(root / "app")
        npm.run("install", cwd=app)
    return npm, app


def npm_workloads(args: argparse.Namespace, bindir: Path) -> None:
    registry = FakeNpmRegistry()
    populate(registry, args.packages)
    registry.start_in_thread()
    cluster = Cluster(bindir)
    figures = [NpmFigures() for _ in NPM_SETTINGS]
    load_before = os.getloadavg()
    try:
        cluster.start()
        with tempfile.TemporaryDirectory(prefix="bench-scale-npm-") as tmp:
            port = free_port()
            npm, app = lockfile(Path(tmp), registry, port)
            for run in range(args.runs):
                for n, (_, shared, workers) in enumerate(NPM_SETTINGS):
                    if figures[n].refused is not None:
                        continue
                    dsn = asyncio.run(new_database(cluster, f"bench_npm_{n}_{run}")) if shared else None
                    root = Path(tmp) / f"setting-{n}-run-{run}"
                    measure_npm(root, registry, dsn, workers, port, app, npm, args, figures[n])
    finally:
        registry.stop_in_thread()
        cluster.stop()
    load_after = os.getloadavg()

    print(
        f"{args.packages}-package npm ci (empty store, empty npm cache) and the small packument warm at "
        f"{args.connections} connections for {args.duration:.0f} s ({args.load}); "
        f"medians of {args.runs} interleaved rounds"
    )
    before, after = (", ".join(f"{v:.2f}" for v in loads) for loads in (load_before, load_after))
    print(f"cpus: {os.cpu_count()}; load average (1, 5, 15 min) before {before}, after {after}")
    header = (
        f"{'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'CPU us/req':>10} | "
        f"{'npm ci s':>8} {'daemon CPU s':>12} | npm ci runs"
    )
    print(f"{'':26} {'workers':>7} | {header}")
    for (label, _, workers), row in zip(NPM_SETTINGS, figures, strict=True):
        if row.refused is not None:
            print(f"{label:26} {workers:7} | refused: {row.refused}")
            continue
        print(
            f"{label:26} {workers:7} | {statistics.median(row.requests_per_second):7.0f} "
            f"{statistics.median(row.p50_ms):7.1f} {statistics.median(row.p99_ms):7.1f} "
            f"{statistics.median(row.cpu_per_request_us):10.0f} | "
            f"{statistics.median(row.ci_seconds):8.2f} {statistics.median(row.ci_cpu):12.2f} | "
            + ", ".join(f"{v:.2f}" for v in row.ci_seconds)
        )


# -- tarballs -------------------------------------------------------------------------------------------
def tarball_workloads(args: argparse.Namespace, bindir: Path) -> None:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", choices=("tarballs", "npm"), default="tarballs")
    parser.add_argument("--packages", type=int, help="tarballs: 200 per kind; npm: the tree, 300")
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--daemons", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3, help="npm: interleaved rounds")
    parser.add_argument("--duration", type=float, default=5.0, help="npm: seconds of warm load")
    parser.add_argument("--connections", type=int, default=64, help="npm: warm load connections")
    parser.add_argument(
        "--load",
        choices=("aiohttp", "wrk"),
        default="aiohttp",
        help="npm: the warm load generator, bench/npm.py's (in this process) or wrk (when installed)",
    )
    args = parser.parse_args()
    bindir = find_bindir()
    if bindir is None:
        sys.exit("PostgreSQL's initdb is not installed (bash .ci/setup installs it)")
    if args.workloads == "npm" and args.load == "wrk" and shutil.which("wrk") is None:
        sys.exit("--load wrk: wrk is not installed")
    if args.workloads == "npm":
        args.packages = args.packages or 300
        npm_workloads(args, bindir)
    else:
        args.packages = args.packages or 200
        tarball_workloads(args, bindir)


if __name__ == "__main__":
    main()
