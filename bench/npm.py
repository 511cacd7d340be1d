"""Benchmark: the npm format of the proxy, warm and cold, against a fake plain npm registry.

    python bench/npm.py [--duration 5] [--connections 64] [--packages 300] [--runs 5] [--history 0]
    python bench/npm.py --cold-only [--packages 300] [--runs 5] [--history 0]
    python bench/npm.py --restart [--packages 300] [--runs 5] [--history 0] [--replay-connections 16]

The proxy runs as a subprocess (``python -m proxy serve``) with one repository whose upstream is the
fake registry (tests/fakes/npm_registry.py, on a thread of this process). Prints:
- warm packument req/s, p50 and p99 latency at ``--connections`` connections, for a small packument
  and a ~500 KB one (gzip asked for, as npm does);
- warm 1 MiB tarball MB/s (10^6 bytes per second);
- with ``--wrk`` (wrk installed), the tarball loaded by wrk first, on a daemon that served nothing else
  yet: req/s and the proxy's CPU per request;
- with each of these, the proxy's CPU time per request (user + system, from /proc): the figure the
  machine's load changes least;
- warm ``npm ci`` wall time for a generated ~300-package tree (store warm, npm cache empty);
- with ``--history N``, every tree package also lists N older versions (each with what a real registry
  lists for one, about 1.6 KB, a third of it what installing needs) and a readme, as popular packages
  do: a cold tarball then costs what reading a real packument costs;
- cold ``npm ci`` through the proxy (empty store, empty npm cache) against ``npm ci`` straight from the
  fake, and the overhead (medians of ``--runs`` interleaved runs), with the CPU time the proxy process
  spent per cold run (user + system, from /proc) and npm's own CPU time: on a 2-core machine npm keeps
  about 1.5 cores busy, so the proxy's CPU time is what the overhead is made of, and npm's own grows
  when the proxy takes CPU from it.
With ``--restart`` (only these figures): a fetch-only replay of the tree (every packument, abbreviated
and gzipped as npm asks, then its tarball; ``--replay-connections`` at a time, bodies counted, not
unpacked) cold, warm, then on a daemon restarted on the same store after a graceful stop (SIGTERM: it
starts from the warm state the last one kept) and after a crash (SIGKILL: served from the store's
sealed renderings, fetched documents and catalog), with the proxy's CPU per package for each.
Nothing is deleted until the end: every run gets new directories (npm cache, node_modules, proxy store).
On an ext4 file system without a journal, a file created within minutes of many deletions in its
block group costs up to ~1 ms of CPU (the allocator skips recently deleted inodes), so deleting one
run's files would slow the next run's npm and proxy alike, by chance.
The load generator is an aiohttp client in this process (one event loop); on a 2-core machine it
shares the CPUs with the proxy, so the figures are a floor for the proxy.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fakes.npm_registry import FakeNpmRegistry, make_tarball  # noqa: E402

NPM_ACCEPT = "application/json"
CORGI_ACCEPT = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the proxy ------------------------------------------------------------------------------------
@dataclass
class Proxy:
    process: subprocess.Popen[bytes]
    url: str

    def cpu_seconds(self) -> float:
        """User + system CPU time of the proxy process so far (Linux)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)

    def kill(self) -> None:
        """As a crash: nothing is kept at exit."""
        self.process.kill()
        self.process.wait(30)


def start_proxy(directory: Path, upstream: str, port: int, format: str = "npm") -> Proxy:
    """A proxy with one repository, ``dev``, whose upstream is the registry or index at ``upstream``."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "config.toml"
    config.write_text(
        f"""
[server]
listen = "127.0.0.1:{port}"

[cache]
path = "{directory / "cache"}"
key_file = "{directory / "cache.key"}"
metadata_ttl = "5m"

[upstream.public]
format = "{format}"
url = "{upstream}"

[repository.dev]
upstreams = ["public"]
publish = true
"""
    )
    log = (directory / "proxy.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy", "--config", str(config), "serve"],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return Proxy(process, url)
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit(f"the proxy did not start; see {directory / 'proxy.log'}")


# -- content ----------------------------------------------------------------------------------------
def populate(fake: FakeNpmRegistry, packages: int, history: int = 0) -> None:
    fake.add("small", "1.0.0", description="a small package")
    fake.add("small", "1.0.1", description="a small package")
    # ~500 KB: many versions, each with a description and a few dependencies, as popular packages have.
    for minor in range(700):
        fake.add(
            "big",
            f"1.{minor}.0",
            description="a package with a long history " * 8,
            dependencies={f"dep-{i}": f"^{i}.0.0" for i in range(6)},
            tarball=b"x",
        )
    fake.add("huge-tarball", "1.0.0", tarball=os.urandom(1024 * 1024))
    # A tree: package i depends on 2i+1 and 2i+2, so the root pulls in all of them.
    for i in range(packages):
        name = f"tree-{i:03d}"
        deps = {f"tree-{j:03d}": "^1.0.0" for j in (2 * i + 1, 2 * i + 2) if j < packages}
        files = {"index.js": f"module.exports = {i};\n".encode(), "data.bin": os.urandom(16 * 1024)}
        for minor in range(history):  # older versions, never installed: 1.0.0 is the latest
            fake.add(name, f"0.{minor}.0", tags=(), tarball=b"x", **_published_fields(name, minor))
        if history:
            fake.packages[name].extra["readme"] = f"# {name}\n\n" + "How to use it, with examples. " * 300
        fake.add(
            name,
            "1.0.0",
            dependencies=deps,
            tarball=make_tarball(name, "1.0.0", dependencies=deps, files=files),
        )


def _published_fields(name: str, minor: int) -> dict[str, object]:
    """What a real registry lists for an older version (about 1.6 KB, a third of it what installing
    needs): a real packument is mostly what npm does not install by (maintainers, scripts, the
    package's own development dependencies, links), which is what the proxy reads or skips."""
    person = {"name": "maintainer", "email": "maintainer@example.com"}
    return {
        "description": "an older version with a long history " * 4,
        "dependencies": {f"dep-{d}": f"^{d}.0.0" for d in range(4)},
        "devDependencies": {f"dev-tool-{d}": f"^{d}.{minor}.0" for d in range(12)},
        "scripts": {"test": "node test/run.js", "lint": "eslint .", "build": "tsc -p ."},
        "keywords": ["example", "history", "benchmark", name],
        "author": person,
        "maintainers": [person, {**person, "name": "another"}],
        "_npmUser": person,
        "license": "MIT",
        "homepage": f"https://example.com/{name}#readme",
        "repository": {"type": "git", "url": f"git+https://example.com/{name}.git"},
        "bugs": {"url": f"https://example.com/{name}/issues"},
        "gitHead": hashlib.sha1(f"{name}{minor}".encode()).hexdigest(),
        "_npmVersion": "10.8.2",
        "_nodeVersion": "20.18.0",
    }


# -- load -------------------------------------------------------------------------------------------
@dataclass
class Load:
    requests: int
    bytes: int
    seconds: float
    latencies: list[float]

    def line(self, what: str) -> str:
        ordered = sorted(self.latencies)
        p50 = ordered[len(ordered) // 2] * 1000
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
        return (
            f"{what}: {self.requests / self.seconds:,.0f} req/s, "
            f"{self.bytes / self.seconds / 1e6:,.1f} MB/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms "
            f"({self.requests} requests in {self.seconds:.1f} s)"
        )


async def load(url: str, headers: dict[str, str], connections: int, duration: float) -> Load:
    latencies: list[float] = []
    received = 0
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    # auto_decompress off: count and time what went over the wire, as a client's transfer.
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        deadline = time.perf_counter() + duration

        async def worker() -> None:
            nonlocal received
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                async with session.get(url, headers=headers) as response:
                    body = await response.read()
                    if response.status != 200:
                        raise SystemExit(f"{url} answered {response.status}")
                latencies.append(time.perf_counter() - start)
                received += len(body)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - began
    return Load(len(latencies), received, elapsed, latencies)


async def replay(base: str, packages: list[str], connections: int) -> float:
    """A fetch-only install of ``packages`` (each ``name`` at 1.0.0): the packument, then the tarball,
    as npm asks for them, ``connections`` at a time; returns the wall time."""
    connector = aiohttp.TCPConnector(limit=connections)
    queue = list(reversed(packages))
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:

        async def fetch(url: str, accept: str) -> None:
            async with session.get(url, headers={"Accept": accept, "Accept-Encoding": "gzip"}) as response:
                await response.read()
                if response.status != 200:
                    raise SystemExit(f"{url} answered {response.status}")

        async def worker() -> None:
            while queue:
                name = queue.pop()
                await fetch(base + name, CORGI_ACCEPT)
                await fetch(f"{base}{name}/-/{name}-1.0.0.tgz", "*/*")

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        return time.perf_counter() - began


def restart_figures(root: Path, fake: FakeNpmRegistry, args: argparse.Namespace) -> None:
    """Cold, warm, after a graceful restart and after a crash: fetch-only replays of the tree (see the
    module docstring)."""
    names = [f"tree-{i:03d}" for i in range(args.packages)]
    port = free_port()
    figures: dict[str, list[tuple[float, float]]] = {}

    def replay_on(proxy: Proxy, what: str) -> None:
        before = proxy.cpu_seconds()
        seconds = asyncio.run(replay(f"{proxy.url}/npm/dev/", names, args.replay_connections))
        figures.setdefault(what, []).append((seconds, proxy.cpu_seconds() - before))

    for run in range(args.runs):
        directory = root / f"proxy-restart-{run}"
        proxy = start_proxy(directory, fake.url, port)
        try:
            replay_on(proxy, "cold")
            replay_on(proxy, "warm")
        finally:
            proxy.stop()
        # The same store: after the graceful stop above, then after this daemon's crash.
        for what in ("restarted", "crashed"):
            proxy = start_proxy(directory, fake.url, port)
            try:
                replay_on(proxy, what)
            finally:
                proxy.kill()

    def line(what: str, runs: list[tuple[float, float]]) -> str:
        seconds, cpu = (statistics.median(figure[field] for figure in runs) for field in (0, 1))
        return (
            f"{what}: {seconds:.2f} s (runs: {spread([s for s, _ in runs])}); "
            f"proxy CPU {cpu:.2f} s, {cpu / len(names) * 1000:.2f} ms per package"
        )

    def ratio(what: str) -> str:
        def median(runs: str, field: int) -> float:
            return statistics.median(figure[field] for figure in figures[runs])

        time, cpu = (median(what, field) / median("warm", field) for field in (0, 1))
        return f"{time:.2f}x the time, {cpu:.2f}x the proxy's CPU"

    print(f"fetch-only replay of {len(names)} packages, {args.replay_connections} connections:")
    print(line("  cold (empty store)", figures["cold"]))
    print(line("  warm", figures["warm"]))
    print(line("  after a graceful restart (warm state kept)", figures["restarted"]))
    print(line("  after a crash (SIGKILL: the store's sealed renderings)", figures["crashed"]))
    print(f"  after a graceful restart / warm: {ratio('restarted')}")
    print(f"  after a crash / warm: {ratio('crashed')}")


def wrk_line(proxy: Proxy, url: str, connections: int, duration: float, what: str) -> str:
    """``url`` loaded by wrk (another process: the load generator takes no CPU from this one's loop)."""
    before = proxy.cpu_seconds()
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration:.0f}s", url]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    cpu = proxy.cpu_seconds() - before
    requests = int(next(line for line in output.splitlines() if "requests in" in line).split()[0])
    rate = float(next(line for line in output.splitlines() if "Requests/sec" in line).split()[1])
    return f"{what}: {rate:,.0f} req/s; proxy CPU {cpu / requests * 1e6:,.0f} us per request"


# -- npm --------------------------------------------------------------------------------------------
class Npm:
    def __init__(self, root: Path, registry: str) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "home").mkdir(exist_ok=True)
        (root / "globalrc").write_text("")
        host_path = registry.split("://", 1)[1]
        (root / "npmrc").write_text(
            f"registry={registry}\n//{host_path}:_authToken=anything\n"
            "update-notifier=false\naudit=false\nfund=false\nloglevel=warn\n"
        )
        self.runs = 0
        self.last_cpu = 0.0  # user + system CPU seconds of the last run (npm and its children)

    def run(self, *args: str, cwd: Path) -> float:
        """Run with an empty npm cache; returns the wall time."""
        self.runs += 1
        cache = self.root / f"cache-{self.runs}"
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(self.root / "home"),
            "npm_config_userconfig": str(self.root / "npmrc"),
            "npm_config_globalconfig": str(self.root / "globalrc"),
        }
        start, cpu_before = time.perf_counter(), children_cpu_seconds()
        result = subprocess.run(
            ["npm", *args, "--cache", str(cache)], cwd=cwd, env=env, capture_output=True, text=True
        )
        elapsed = time.perf_counter() - start
        self.last_cpu = children_cpu_seconds() - cpu_before
        if result.returncode != 0:
            raise SystemExit(f"npm {' '.join(args)} failed:\n{result.stderr}")
        return elapsed


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def spread(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def app_dir(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    manifest = {"name": "bench-app", "version": "1.0.0", "dependencies": {"tree-000": "^1.0.0"}}
    (directory / "package.json").write_text(json.dumps(manifest))
    return directory


def ci(npm: Npm, app: Path) -> float:
    """``npm ci`` of ``app``'s lockfile in a new directory (with a new, empty npm cache)."""
    fresh = app.with_name(f"{app.name}-ci-{npm.runs}")
    fresh.mkdir()
    for name in ("package.json", "package-lock.json"):
        shutil.copy(app / name, fresh / name)
    return npm.run("ci", cwd=fresh)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--packages", type=int, default=300)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cold-only", action="store_true", help="only the cold npm ci figures")
    parser.add_argument("--wrk", action="store_true", help="also load the tarball with wrk, first")
    parser.add_argument("--history", type=int, default=0, help="older versions listed per tree package")
    parser.add_argument("--restart", action="store_true", help="only the replays: cold, warm, after restart")
    parser.add_argument("--replay-connections", type=int, default=16, help="concurrent replay requests")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-npm-"))
    fake = FakeNpmRegistry()
    fake.start_in_thread()
    populate(fake, args.packages, args.history)
    if args.restart:
        try:
            restart_figures(root, fake, args)
        finally:
            fake.stop_in_thread()
            shutil.rmtree(root, ignore_errors=True)
        return
    port = free_port()
    proxy = start_proxy(root / "proxy", fake.url, port)
    try:
        base = f"{proxy.url}/npm/dev/"
        headers = {"Accept": NPM_ACCEPT, "Accept-Encoding": "gzip"}
        for name in ("small", "big"):
            raw = httpx.get(base + name, headers={"Accept": NPM_ACCEPT, "Accept-Encoding": "identity"})
            print(f"packument {name}: {len(raw.content):,} bytes of JSON")
        tarball = f"{base}huge-tarball/-/huge-tarball-1.0.0.tgz"
        httpx.get(tarball).raise_for_status()
        print(f"cpus: {os.cpu_count()}, connections: {args.connections}, {args.duration:.0f} s per load")
        if args.wrk and not args.cold_only:
            print(wrk_line(proxy, tarball, args.connections, args.duration, "warm 1 MiB tarball, wrk"))
        if not args.cold_only:
            for url, asked, what in (
                (base + "small", headers, "warm small packument"),
                (base + "big", headers, "warm ~500 KB packument"),
                (tarball, {}, "warm 1 MiB tarball"),
            ):
                before = proxy.cpu_seconds()
                result = asyncio.run(load(url, asked, args.connections, args.duration))
                cpu = (proxy.cpu_seconds() - before) / result.requests * 1e6
                print(f"{result.line(what)}; proxy CPU {cpu:,.0f} us per request")

        # A lockfile through the proxy (this also warms its store), then npm ci with empty npm caches.
        npm = Npm(root / "npm-proxy", base)
        app = app_dir(root / "app-proxy")
        npm.run("install", cwd=app)
        installed = len(list((app / "node_modules").glob("tree-*")))
        if not args.cold_only:
            warm = statistics.median(ci(npm, app) for _ in range(args.runs))
            print(f"warm npm ci ({installed} packages, proxy store warm, npm cache empty): {warm:.2f} s")

        direct_npm = Npm(root / "npm-direct", fake.url)
        direct_app = app_dir(root / "app-direct")
        direct_npm.run("install", cwd=direct_app)
        # Interleaved, so that a change in the machine's load hits both sides alike.
        direct_runs, cold_runs, cold_cpu, direct_npm_cpu, cold_npm_cpu = [], [], [], [], []
        for run in range(args.runs):
            direct_runs.append(ci(direct_npm, direct_app))
            direct_npm_cpu.append(direct_npm.last_cpu)
            proxy.stop()
            proxy = start_proxy(root / f"proxy-cold-{run}", fake.url, port)  # same port: the lockfile's URLs
            before = proxy.cpu_seconds()
            cold_runs.append(ci(npm, app))
            cold_cpu.append(proxy.cpu_seconds() - before)
            cold_npm_cpu.append(npm.last_cpu)
        direct, cold = statistics.median(direct_runs), statistics.median(cold_runs)
        print(f"cold npm ci straight from the fake: {direct:.2f} s (runs: {spread(direct_runs)})")
        overhead = (cold / direct - 1) * 100
        print(
            f"cold npm ci through the proxy (empty store): {cold:.2f} s (runs: {spread(cold_runs)}), "
            f"overhead {overhead:+.0f} %; proxy CPU {statistics.median(cold_cpu):.2f} s per run, "
            f"{statistics.median(cold_cpu) / installed * 1000:.1f} ms per package"
        )
        straight, through = statistics.median(direct_npm_cpu), statistics.median(cold_npm_cpu)
        print(f"npm's own CPU per cold npm ci: {straight:.2f} s straight, {through:.2f} s through the proxy")
    finally:
        proxy.stop()
        fake.stop_in_thread()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
