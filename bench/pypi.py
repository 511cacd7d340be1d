"""Benchmark: the PyPI format of the proxy, warm and cold, against a fake plain simple index.

    python bench/pypi.py [--duration 5] [--connections 64] [--projects 40] [--runs 5] [--history 250]
    python bench/pypi.py --replay-only [--projects 40] [--history 250]
    python bench/pypi.py --cold [--pages 20] [--files 4000] [--runs 3] [--html]

The proxy runs as a subprocess (``python -m proxy serve``) with one repository whose upstream is the
fake index (tests/fakes/pypi_index.py, on a thread of this process). Prints:
- warm simple-page req/s, p50 and p99 latency at ``--connections`` connections, as pip asks (PEP 691
  JSON, gzip), for a small page and a ~1,000-file one;
- warm 10 MiB wheel MB/s (10^6 bytes per second);
- ``pip install`` (``--no-cache-dir``, into an empty ``--target``) of ``--projects`` generated
  projects that depend on each other: straight from the fake, cold through the proxy (empty store)
  and warm (store warm; the pages then carry PEP 658 metadata taken from the cached wheels).
- the proxy's own CPU time (user + system, from /proc) for one ``pip install`` replay in each state of
  one store: cold (empty store), the first warm run after it, a second warm run, and the first run
  after a restart of the proxy on that store (a graceful stop: it starts from the warm state the last
  daemon kept) and after a crash (SIGKILL: from the store's sealed renderings). Every tree project
  lists ``--history`` older versions (4 files each), as popular projects do, so a page costs what a
  real one costs to merge and render.
- ``--cold``: only the proxy's CPU for cold pages and their wheels, as a fetch-only replay of a
  requirements file asks for them (8 at a time): ``--pages`` projects of ``--files`` files each
  (sha256, PEP 658 metadata, requires-python on every wheel, as large real pages list them, e.g.
  boto3's or numpy's), one small real wheel each. Each run starts on an empty store and asks, per
  project, its page and then its wheel; printed: CPU per project and per file its page lists (median
  of ``--runs``). The per-file figure is what large pages cost; a regression shows there. With
  ``--html`` the fake serves PEP 503 HTML pages only, as CodeArtifact does.
Nothing is deleted until the end: every install gets a new target and every cold run a new store
(deleting files makes later creations slower on some file systems; see bench/npm.py).
The load generator is bench/npm.py's (an aiohttp client in this process); on a 2-core machine it
shares the CPUs with the proxy, so the figures are a floor for the proxy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.npm import free_port, load, spread, start_proxy  # noqa: E402
from tests.fakes.pypi_index import FakePypiIndex  # noqa: E402

PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
)
PIP_HEADERS = {"Accept": PIP_ACCEPT, "Accept-Encoding": "gzip"}
WHEEL_SIZE = 10 * 1024 * 1024


def populate(fake: FakePypiIndex, projects: int) -> None:
    fake.add_wheel("small-page", "1.0")
    fake.add_wheel("small-page", "1.1", requires_python=">=3.8")
    # ~1,000 files, as a popular project's page has (many versions, a few wheels each).
    for minor in range(250):
        for tag in ("py3-none-any", "cp311-cp311-manylinux_2_17_x86_64", "cp312-cp312-win_amd64"):
            fake.add("big-page", f"big_page-1.{minor}-{tag}.whl", b"x", requires_python=">=3.8")
        fake.add("big-page", f"big_page-1.{minor}.tar.gz", b"x")
    fake.add_wheel("big-wheel", "1.0", payload_size=WHEEL_SIZE)
    # A tree: project i depends on 2i+1 and 2i+2, so the root pulls in all of them.
    for i in range(projects):
        deps = [f"tree-{j:02d}>=1" for j in (2 * i + 1, 2 * i + 2) if j < projects]
        # With PEP 658 metadata, as real indexes serve wheels: pip then fetches each wheel's metadata
        # to resolve, and the wheel to install, whether it goes through the proxy or not.
        fake.add_wheel(f"tree-{i:02d}", "1.0", requires_dist=deps, payload_size=16 * 1024, pep658=True)


def add_history(fake: FakePypiIndex, projects: int, history: int) -> None:
    """``history`` older versions of every tree project, 4 files each (never installed: 1.0 is newer)."""
    for i in range(projects):
        name = f"tree-{i:02d}"
        for minor in range(history):
            stem = f"tree_{i:02d}-0.{minor}"
            for tag in ("py3-none-any", "cp311-cp311-manylinux_2_17_x86_64", "cp312-cp312-win_amd64"):
                fake.add(name, f"{stem}-{tag}.whl", b"x", requires_python=">=3.8", metadata=b"m")
            fake.add(name, f"{stem}.tar.gz", b"x")


COLD_TAGS = (
    "py3-none-any",
    "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64",
    "cp311-cp311-macosx_11_0_arm64",
    "cp311-cp311-win_amd64",
    "cp312-cp312-manylinux_2_17_aarch64.manylinux2014_aarch64",
    "cp312-cp312-musllinux_1_2_x86_64",
    "cp313-cp313-win32",
)


def populate_cold(fake: FakePypiIndex, pages: int, files: int) -> list[str]:
    """``pages`` projects of about ``files`` files each (7 wheels and an sdist a version) and one real
    small wheel (the latest version, with PEP 658 metadata); the projects' names."""
    names = []
    for p in range(pages):
        name = f"cold-{p:02d}"
        stem = name.replace("-", "_")
        for minor in range(max(1, files // (len(COLD_TAGS) + 1))):
            for tag in COLD_TAGS:
                fake.add(name, f"{stem}-1.{minor}.0-{tag}.whl", b"x", requires_python=">=3.9", metadata=b"m")
            fake.add(name, f"{stem}-1.{minor}.0.tar.gz", b"x", requires_python=">=3.9")
        fake.add_wheel(name, "9.0", payload_size=64 * 1024, pep658=True)
        names.append(name)
    return names


async def _cold_replay(simple: str, names: list[str], concurrency: int) -> int:
    """For every project, ``concurrency`` at a time, as a fetch-only replay of a requirements file:
    GET its page (pip's headers), then its latest wheel; the files the pages listed."""
    listed = 0
    limit = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as session:

        async def project(name: str) -> None:
            nonlocal listed
            async with limit:
                async with session.get(f"{simple}{name}/", headers=PIP_HEADERS) as response:
                    response.raise_for_status()
                    files = json.loads(await response.read())["files"]
                listed += len(files)
                wheel = next(f["url"] for f in files if "-9.0-" in f["filename"])
                async with session.get(wheel) as response:
                    response.raise_for_status()
                    await response.read()

        await asyncio.gather(*(project(name) for name in names))
    return listed


def cold_cpu(root: Path, fake: FakePypiIndex, names: list[str], runs: int) -> None:
    """The proxy's CPU for cold pages and their wheels: per project, and per file its page lists."""
    figures, listed = [], 0
    for run in range(runs):
        port = free_port()
        proxy = start_proxy(root / f"proxy-cold-pages-{run}", fake.url, port, "pypi")
        try:
            before = proxy.cpu_seconds()
            listed = asyncio.run(_cold_replay(f"{proxy.url}/pypi/dev/simple/", names, 8))
            figures.append(proxy.cpu_seconds() - before)
        finally:
            proxy.stop()
    cpu = statistics.median(figures)
    kind = "JSON" if fake.pep691 else "HTML"
    print(f"cold {kind} pages: {len(names)} projects, {listed:,} files listed, c=8, {runs} runs, new stores")
    print(
        f"proxy CPU, cold page and its 64 KiB wheel: {cpu / len(names) * 1e3:.1f} ms a project, "
        f"{cpu / listed * 1e6:.2f} us a listed file (runs: {spread(figures)} s)"
    )


def replay_cpu(root: Path, fake: FakePypiIndex) -> None:
    """The proxy's CPU for one pip install replay: cold, first warm, second warm, after a restart and
    after a crash."""
    port = free_port()
    index_url = f"http://user:pass@127.0.0.1:{port}/pypi/dev/simple/"
    proxy = start_proxy(root / "proxy-replay", fake.url, port, "pypi")
    figures = []
    try:
        for label in ("cold (empty store)", "first warm after cold", "second warm"):
            before = proxy.cpu_seconds()
            elapsed, installed = pip_install(root, index_url)
            figures.append((label, proxy.cpu_seconds() - before, elapsed))
        # The same store after a graceful stop (the warm state kept), then after this daemon's crash.
        for label, stop in (("first after a restart", proxy.stop), ("first after a crash", proxy.kill)):
            stop()
            proxy = start_proxy(root / "proxy-replay", fake.url, port, "pypi")
            before = proxy.cpu_seconds()
            elapsed, installed = pip_install(root, index_url)
            figures.append((label, proxy.cpu_seconds() - before, elapsed))
    finally:
        proxy.stop()
    for label, cpu, elapsed in figures:
        print(
            f"pip install replay ({installed} projects), {label}: proxy CPU {cpu:.2f} s, wall {elapsed:.2f} s"
        )


def pip_install(root: Path, index_url: str) -> tuple[float, int]:
    """``pip install tree-00`` into a new empty target, isolated; (wall time, projects installed)."""
    target = Path(tempfile.mkdtemp(prefix="target-", dir=root))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    command = [sys.executable, "-m", "pip", "install", "--isolated", "--no-cache-dir", "--no-input"]
    command += ["--disable-pip-version-check", "--index-url", index_url, "--target", str(target), "tree-00"]
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"pip install failed:\n{result.stdout}\n{result.stderr}")
    return elapsed, len(list(target.glob("*.dist-info")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--projects", type=int, default=40)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--history", type=int, default=250, help="older versions listed per tree project")
    parser.add_argument("--replay-only", action="store_true", help="only the CPU figures of the replay")
    parser.add_argument("--cold", action="store_true", help="only the CPU figures of cold large pages")
    parser.add_argument("--pages", type=int, default=20, help="--cold: projects")
    parser.add_argument("--files", type=int, default=4000, help="--cold: files listed per project")
    parser.add_argument("--html", action="store_true", help="--cold: the fake serves HTML pages only")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-pypi-"))
    fake = FakePypiIndex()
    fake.start_in_thread()
    if args.cold:
        fake.pep691 = not args.html
        try:
            cold_cpu(root, fake, populate_cold(fake, args.pages, args.files), args.runs)
        finally:
            fake.stop_in_thread()
            shutil.rmtree(root, ignore_errors=True)
        return
    populate(fake, args.projects)
    if args.replay_only:
        add_history(fake, args.projects, args.history)
        try:
            replay_cpu(root, fake)
        finally:
            fake.stop_in_thread()
            shutil.rmtree(root, ignore_errors=True)
        return
    port = free_port()
    proxy = start_proxy(root / "proxy", fake.url, port, "pypi")
    try:
        simple = f"{proxy.url}/pypi/dev/simple/"
        for name in ("small-page", "big-page"):
            raw = httpx.get(f"{simple}{name}/", headers={**PIP_HEADERS, "Accept-Encoding": "identity"})
            print(f"page {name}: {len(raw.json()['files']):,} files, {len(raw.content):,} bytes of JSON")
        wheel = f"{proxy.url}/pypi/dev/files/big-wheel/big_wheel-1.0-py3-none-any.whl"
        httpx.get(wheel, timeout=60).raise_for_status()
        print(f"cpus: {os.cpu_count()}, connections: {args.connections}, {args.duration:.0f} s per load")
        for name, what in (("small-page", "warm small simple page"), ("big-page", "warm ~1,000-file page")):
            print(
                asyncio.run(load(f"{simple}{name}/", PIP_HEADERS, args.connections, args.duration)).line(what)
            )
        print(asyncio.run(load(wheel, {}, args.connections, args.duration)).line("warm 10 MiB wheel"))

        direct_url = f"{fake.url}simple/"
        warm_url = f"http://user:pass@127.0.0.1:{port}/pypi/dev/simple/"
        installed = pip_install(root, warm_url)[1]  # warms the store
        # Interleaved, so that a change in the machine's load hits every side alike.
        cold_port = free_port()
        runs: dict[str, list[float]] = {"direct": [], "cold": [], "warm": []}
        for run in range(args.runs):
            runs["direct"].append(pip_install(root, direct_url)[0])
            cold_proxy = start_proxy(root / f"proxy-cold-{run}", fake.url, cold_port, "pypi")
            try:
                runs["cold"].append(
                    pip_install(root, f"http://user:pass@127.0.0.1:{cold_port}/pypi/dev/simple/")[0]
                )
            finally:
                cold_proxy.stop()
            runs["warm"].append(pip_install(root, warm_url)[0])
        base = statistics.median(runs["direct"])
        print(
            f"pip install straight from the fake ({installed} projects): {base:.2f} s "
            f"(runs: {spread(runs['direct'])})"
        )
        for label, times in (("cold (empty store)", runs["cold"]), ("warm (store warm)", runs["warm"])):
            median = statistics.median(times)
            overhead = (median / base - 1) * 100
            print(
                f"pip install through the proxy, {label}: {median:.2f} s, {overhead:+.0f} % vs direct "
                f"(runs: {spread(times)})"
            )
        add_history(fake, args.projects, args.history)
        replay_cpu(root, fake)
    finally:
        proxy.stop()
        fake.stop_in_thread()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
