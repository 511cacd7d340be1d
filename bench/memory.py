"""Benchmark: the daemon's peak RSS through an npm replay, a PyPI replay and 50 clients downloading one
1 GiB asset.

    python bench/memory.py [--packages 375] [--projects 57] [--clients 50] [--asset-mib 1024]
    python bench/memory.py --npm-upstream URL --pypi-upstream URL --workloads DIR [--clients 50]

The proxy runs as a subprocess (``python -m proxy serve``, one worker) with one repository, ``bench``,
whose upstreams are an npm registry, a PyPI index and a local index that serves the large asset. By
default all three are fakes on threads of this process (tests/fakes): ``--packages`` npm packages whose
packuments have the sizes of real ones (most a few dozen KB, a few several MB: long version histories,
readmes), ``--projects`` PyPI projects with large pages (hundreds to thousands of files each) and one
wheel each, and a wheel of ``--asset-mib`` MiB whose bytes are generated while sent (AES-CTR of
zeros: incompressible, never held by the fake). With ``--npm-upstream``/``--pypi-upstream`` the npm and
PyPI upstreams are real registries instead (their URLs given at run time) and the replays are the
shared fetch-only replays from ``--workloads`` (``npm-fetch-replay.mjs``, ``pypi-fetch-replay.py``);
the large asset still comes from the local fake.

Phases, in order, each on the same daemon: npm cold (empty store) and warm replays, PyPI cold and warm
replays, then ``--clients`` concurrent ``curl`` downloads of the large asset, cold (the first request
fetches it from the upstream while the others wait or stream) and warm (from the store). Prints per
phase its wall time, the daemon's CPU time (user + system), its peak RSS (``VmHWM`` of /proc, reset
before each phase through ``clear_refs``, and the largest ``VmRSS`` sampled every 10 ms), and the RSS
left at its end with its anonymous part (the heaps; the rest maps code and libraries).

``--documents-memory SIZE`` sets the daemon's ``[cache] documents_memory``; ``--wrapper SCRIPT`` runs the
daemon through a script (one that starts tracemalloc, say) and sends it SIGUSR1 after each phase.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
from aiohttp import web
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fakes.daemon import free_port  # noqa: E402
from tests.fakes.npm_registry import FakeNpmRegistry, FakePackage, make_tarball  # noqa: E402
from tests.fakes.pypi_index import FakeFile, FakePypiIndex  # noqa: E402

NPM_ACCEPT = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"
PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
)
PIECE = 1024 * 1024  # bytes of the large asset generated at a time
ASSET_PROJECT = "big-asset"


# -- the daemon's memory ------------------------------------------------------------------------------
def status_kib(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise KeyError(field_name)


@dataclass
class Phase:
    name: str
    seconds: float
    cpu: float  # the daemon's CPU seconds (user + system) in the phase
    peak_kib: int  # VmHWM since the phase began (or the largest sample where it cannot be reset)
    sampled_kib: int  # the largest VmRSS sampled
    end_kib: int
    end_anon_kib: int  # of end_kib, the anonymous memory (heaps); the rest maps files (code, libraries)
    note: str = ""

    def line(self) -> str:
        return (
            f"{self.name:<22} {self.seconds:6.1f} s  CPU {self.cpu:5.1f} s  "
            f"peak RSS {self.peak_kib / 1024:6.1f} MiB (sampled {self.sampled_kib / 1024:6.1f})  "
            f"at end {self.end_kib / 1024:6.1f} MiB (anon {self.end_anon_kib / 1024:6.1f})  {self.note}"
        )


@dataclass
class RssSampler:
    """Samples the daemon's VmRSS on a thread; ``phase`` resets VmHWM and reports the phase's peak."""

    pid: int
    report: int | None = None  # a signal sent to the daemon after each phase
    phases: list[Phase] = field(default_factory=list)
    _peak: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            try:
                self._peak = max(self._peak, status_kib(self.pid, "VmRSS"))
            except (OSError, KeyError):
                return

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _reset_hwm(self) -> bool:
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # 5: reset the peak RSS (Linux 4.0+)
            return True
        except OSError:
            return False

    @contextmanager
    def phase(self, name: str) -> Iterator[dict[str, str]]:
        reset = self._reset_hwm()
        self._peak = status_kib(self.pid, "VmRSS")
        began, cpu = time.perf_counter(), self.cpu_seconds()
        notes: dict[str, str] = {}
        yield notes
        seconds = time.perf_counter() - began
        hwm = status_kib(self.pid, "VmHWM")
        peak = hwm if reset else max(hwm, self._peak)
        phase = Phase(
            name,
            seconds,
            self.cpu_seconds() - cpu,
            peak,
            self._peak,
            status_kib(self.pid, "VmRSS"),
            status_kib(self.pid, "RssAnon"),
            " ".join(notes.values()),
        )
        self.phases.append(phase)
        print(phase.line(), flush=True)
        if self.report is not None:
            os.kill(self.pid, self.report)

    def stop(self) -> None:
        self._stop.set()


# -- the large asset ------------------------------------------------------------------------------------
def generated(size: int, seed: bytes) -> Iterator[bytes]:
    """``size`` incompressible bytes, the same for the same seed, ``PIECE`` at a time."""
    encryptor = Cipher(algorithms.AES(hashlib.sha256(seed).digest()), modes.CTR(bytes(16))).encryptor()
    zeros = bytes(PIECE)
    left = size
    while left:
        piece = encryptor.update(zeros[: min(PIECE, left)])
        left -= len(piece)
        yield piece


class GeneratedFile(FakeFile):
    """A file of the fake index whose bytes are generated while sent (``data`` is empty)."""

    def __init__(self, filename: str, size: int) -> None:
        super().__init__(filename, b"")
        self.size = size
        digest = hashlib.sha256()
        for piece in generated(size, filename.encode()):
            digest.update(piece)
        self._sha256 = digest.hexdigest()

    @property
    def sha256(self) -> str:
        return self._sha256


class AssetIndex(FakePypiIndex):
    """A fake index whose ``GeneratedFile`` files are streamed, never held whole."""

    thread_name = "fake-asset-index"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        name = request.path.rsplit("/", 1)[-1]
        file = self.projects.get(ASSET_PROJECT, {}).get(name)
        if not isinstance(file, GeneratedFile):
            return await super()._handle(request)
        self.requests[request.path] += 1
        response = web.StreamResponse(
            headers={"Content-Length": str(file.size), "Content-Type": "application/octet-stream"}
        )
        await response.prepare(request)
        for piece in generated(file.size, name.encode()):
            await response.write(piece)
        await response.write_eof()
        return response


# -- fake content ---------------------------------------------------------------------------------------
def npm_history(rng: random.Random) -> int:
    """Versions of a package: most have a few dozen, a few thousands (as a real tree's packuments)."""
    return min(3000, int(rng.lognormvariate(3.4, 1.2)) + 1)


def populate_npm(fake: FakeNpmRegistry, packages: int) -> list[tuple[str, str]]:
    """``packages`` packages with long histories; returns (name, version) of each one to install."""
    rng = random.Random(375)
    installed = []
    for i in range(packages):
        name = f"pkg-{i:03d}" if i % 5 else f"@scope-{i % 7}/pkg-{i:03d}"
        versions = npm_history(rng)
        readme = "A readme paragraph with some words in it. " * rng.randint(20, 400)
        fake.packages.setdefault(name, FakePackage(name)).extra["readme"] = readme
        for minor in range(versions - 1):
            fake.add(
                name,
                f"0.{minor}.0",
                tags=(),
                description=f"{name}: an older version of a package with a long history",
                dependencies={f"dep-{d}": f"^{d}.{minor}.0" for d in range(rng.randint(0, 8))},
                scripts={"test": "node test.js", "build": "tsc -p ."},
                maintainers=[{"name": "someone", "email": "someone@example.com"}],
                repository={"type": "git", "url": f"git+https://git.example.com/{name}.git"},
                tarball=b"x",
            )
        files = {"index.js": rng.randbytes(rng.randint(2, 200) * 1024)}
        fake.add(name, "1.0.0", tarball=make_tarball(name, "1.0.0", files=files))
        installed.append((name, "1.0.0"))
    return installed


def populate_pypi(fake: FakePypiIndex, projects: int) -> list[tuple[str, str]]:
    """``projects`` projects with large pages; returns (project, filename) of the wheel to install."""
    rng = random.Random(57)
    installed = []
    tags = ("cp311-cp311-manylinux_2_17_x86_64", "cp312-cp312-win_amd64", "cp310-cp310-macosx_11_0_arm64")
    for i in range(projects):
        project = f"project-{i:02d}"
        # About 1,000 files a page on average, as the real replay's 57 pages list (20 MB rendered), and
        # one page as large as the largest of them (15,000 files, 7 MB of JSON): the peak of its phase.
        releases = min(1200, int(rng.lognormvariate(5.0, 1.1)) + 1) if i != projects // 2 else 3800
        stem = project.replace("-", "_")
        for minor in range(releases):
            for tag in tags[: rng.randint(1, 3)] if i != projects // 2 else tags:
                fake.add(project, f"{stem}-0.{minor}-{tag}.whl", b"x", requires_python=">=3.8")
            fake.add(project, f"{stem}-0.{minor}.tar.gz", b"x")
        size = rng.choice((16, 64, 256, 1024, 4096)) * 1024
        file = fake.add_wheel(project, "1.0", payload_size=size, pep658=True)
        installed.append((project, file.filename))
    return installed


# -- replays ----------------------------------------------------------------------------------------------
async def npm_replay(registry: str, installed: list[tuple[str, str]], concurrency: int = 16) -> str:
    """As npm fetches a lockfile's tree: each packument (abbreviated, gzip), then its tarball."""
    queue = list(installed)
    received = errors = 0
    async with aiohttp.ClientSession(auto_decompress=False) as session:

        async def get(url: str, accept: str) -> None:
            nonlocal received, errors
            async with session.get(url, headers={"Accept": accept, "Accept-Encoding": "gzip"}) as response:
                received += len(await response.read())
                errors += response.status != 200

        async def worker() -> None:
            while queue:
                name, version = queue.pop()
                await get(f"{registry}{name.replace('/', '%2f')}", NPM_ACCEPT)
                await get(f"{registry}{name}/-/{name.rsplit('/', 1)[-1]}-{version}.tgz", "*/*")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return f"{received / 1e6:.0f} MB received, {errors} errors"


async def pypi_replay(index: str, installed: list[tuple[str, str]], concurrency: int = 8) -> str:
    """As pip fetches a requirements file: each project's page (PEP 691), then the pinned file."""
    queue = list(installed)
    received = errors = 0
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            nonlocal received, errors
            while queue:
                project, filename = queue.pop()
                page_url = f"{index}{project}/"
                async with session.get(page_url, headers={"Accept": PIP_ACCEPT}) as response:
                    page = await response.read()
                    received += len(page)
                    if response.status != 200:
                        errors += 1
                        continue
                link = next(f["url"] for f in json.loads(page)["files"] if f["filename"] == filename)
                async with session.get(str(response.url.join(aiohttp.client.URL(link)))) as response:
                    async for chunk in response.content.iter_any():
                        received += len(chunk)
                    errors += response.status != 200

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return f"{received / 1e6:.0f} MB received, {errors} errors"


def shared_replay(command: list[str]) -> str:
    """One of the shared fetch-only replays; returns its JSON summary line."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"{command[:2]} failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return f"{result.get('bytes', 0) / 1e6:.0f} MB received, {result.get('errors')} errors"


def asset_url(index: str, filename: str) -> str:
    """The large asset's URL as the daemon's page for its project links it."""
    page = httpx.get(f"{index}{ASSET_PROJECT}/", headers={"Accept": PIP_ACCEPT}, timeout=60)
    page.raise_for_status()
    link = next(f["url"] for f in page.json()["files"] if f["filename"] == filename)
    return str(httpx.URL(f"{index}{ASSET_PROJECT}/").join(link))


def downloads(url: str, clients: int, size: int) -> str:
    """``clients`` concurrent curl downloads of ``url``; checks each got ``size`` bytes."""
    curls = [
        subprocess.Popen(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", url],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(clients)
    ]
    results = [curl.communicate(timeout=1800)[0] for curl in curls]
    good = sum(result == f"200 {size}" for result in results)
    if good != clients:
        raise SystemExit(f"only {good} of {clients} downloads complete: {sorted(set(results))}")
    return f"{clients} x {size / 2**20:.0f} MiB"


# -- the daemon ----------------------------------------------------------------------------------------------
def start_daemon(
    directory: Path,
    port: int,
    npm: str,
    pypi: str,
    assets: str,
    wrapper: Path | None,
    documents_memory: str | None,
) -> subprocess.Popen[bytes]:
    memory = f'documents_memory = "{documents_memory}"' if documents_memory else ""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise SystemExit(f"port {port} is in use: another daemon would answer for this one")
    config = directory / "proxy.toml"
    config.write_text(
        f"""
[server]
listen = "127.0.0.1:{port}"
workers = 1
[cache]
path = "{directory / "cache"}"
key_file = "{directory / "cache.key"}"
max_size = "20GiB"
metadata_ttl = "30m"
{memory}
[upstream.npm]
format = "npm"
url = "{npm}"
[upstream.pypi]
format = "pypi"
url = "{pypi}"
[upstream.assets]
format = "pypi"
url = "{assets}"
[repository.bench]
upstreams = ["npm", "pypi", "assets"]
"""
    )
    process = subprocess.Popen(
        [sys.executable, *([str(wrapper)] if wrapper else ["-m", "proxy"]), "--config", str(config), "serve"],
        cwd=REPO,
        stdout=(directory / "proxy.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit(f"the daemon did not start; see {directory / 'proxy.log'}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--packages", type=int, default=375)
    parser.add_argument("--projects", type=int, default=57)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--asset-mib", type=int, default=1024)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--dir", type=Path, help="where the daemon's store goes, and stays (default: a temp dir, removed)"
    )
    parser.add_argument("--npm-upstream", help="a real npm registry's URL instead of the fake")
    parser.add_argument("--pypi-upstream", help="a real simple index's URL instead of the fake")
    parser.add_argument("--workloads", type=Path, help="the shared replays' directory (with real upstreams)")
    parser.add_argument("--skip-asset", action="store_true", help="no large-asset phases")
    parser.add_argument("--documents-memory", help="the daemon's [cache] documents_memory (e.g. 128MiB)")
    parser.add_argument(
        "--wrapper",
        type=Path,
        help="run the daemon as `python WRAPPER --config ... serve` (e.g. a script that starts tracemalloc),"
        " and send it SIGUSR1 after each phase (so that it can report)",
    )
    args = parser.parse_args()
    real = bool(args.npm_upstream or args.pypi_upstream)
    if real and not (args.npm_upstream and args.pypi_upstream and args.workloads):
        parser.error("real upstreams need --npm-upstream, --pypi-upstream and --workloads")

    directory = args.dir or Path(tempfile.mkdtemp(prefix="bench-memory-"))
    directory.mkdir(parents=True, exist_ok=True)
    npm_fake, pypi_fake, assets = FakeNpmRegistry(), FakePypiIndex(), AssetIndex()
    asset_name = f"{ASSET_PROJECT.replace('-', '_')}-1.0-py3-none-any.whl"
    began = time.perf_counter()
    if not args.skip_asset:
        assets.projects[ASSET_PROJECT] = {asset_name: GeneratedFile(asset_name, args.asset_mib * 2**20)}
    assets.start_in_thread()
    if real:
        npm_url, pypi_url = args.npm_upstream, args.pypi_upstream
        installed_npm = installed_pypi = []
    else:
        installed_npm = populate_npm(npm_fake, args.packages)
        installed_pypi = populate_pypi(pypi_fake, args.projects)
        npm_url, pypi_url = npm_fake.start_in_thread(), pypi_fake.start_in_thread() + "simple/"
    print(f"fakes ready in {time.perf_counter() - began:.1f} s; store in {directory}", flush=True)

    port = args.port or free_port()
    process = start_daemon(
        directory, port, npm_url, pypi_url, assets.url + "simple/", args.wrapper, args.documents_memory
    )
    base = f"http://127.0.0.1:{port}"
    registry, index = f"{base}/npm/bench/", f"{base}/pypi/bench/simple/"
    sampler = RssSampler(process.pid, report=signal.SIGUSR1 if args.wrapper else None)
    print(
        f"daemon pid {process.pid} at {base}: RSS {status_kib(process.pid, 'VmRSS') / 1024:.1f} MiB at start"
    )
    try:
        for state in ("cold", "warm"):
            with sampler.phase(f"npm replay {state}") as notes:
                if real:
                    notes["r"] = shared_replay(
                        [
                            "node",
                            str(args.workloads / "npm-fetch-replay.mjs"),
                            registry,
                            str(args.workloads / "npm-app" / "package-lock.json"),
                            "16",
                        ]
                    )
                else:
                    notes["r"] = asyncio.run(npm_replay(registry, installed_npm))
        for state in ("cold", "warm"):
            with sampler.phase(f"PyPI replay {state}") as notes:
                if real:
                    notes["r"] = shared_replay(
                        [sys.executable, str(args.workloads / "pypi-fetch-replay.py"), index, "8"]
                    )
                else:
                    notes["r"] = asyncio.run(pypi_replay(index, installed_pypi))
        if not args.skip_asset:
            url = asset_url(index, asset_name)
            for state in ("cold", "warm"):
                with sampler.phase(f"{args.clients} clients, asset {state}") as notes:
                    notes["r"] = downloads(url, args.clients, args.asset_mib * 2**20)
    finally:
        sampler.stop()
        process.terminate()
        process.wait(60)
        for fake in (npm_fake, pypi_fake, assets):
            fake.stop_in_thread()
        if args.dir is None:  # a run's store holds the 1 GiB asset: twenty runs fill a small disk
            shutil.rmtree(directory, ignore_errors=True)
    worst = max(sampler.phases, key=lambda p: p.peak_kib)
    print(f"peak RSS over all phases: {worst.peak_kib / 1024:.1f} MiB ({worst.name})")


if __name__ == "__main__":
    main()
