"""Benchmark: the daemon's instructions per request, counted by valgrind's callgrind.

    python bench/instructions.py [--checkout PATH] [--packages 40] [--formats npm,pypi,maven]

Wall-clock and CPU-time figures drift with whatever else the machine runs; an instruction count
does not (same binary, same inputs, same count, within a fraction of a percent). This runs the
daemon of ``--checkout`` (default: this one) under ``valgrind --tool=callgrind`` against the fakes
of tests/fakes (on threads of this process, outside valgrind), zeroes the counters once it is up,
and for each format replays, one request at a time:
- cold: every package's document (packument, simple page, POM) and asset (tarball, wheel, JAR),
  nothing in the store yet;
- warm: the same requests again.
It prints the daemon's instructions per package for each phase; ``--keep DIR`` keeps the dumps
(``callgrind.out.N``, one a phase) for ``callgrind_annotate``. Compare two commits by running it
once per checkout (``--checkout`` a ``git worktree`` of the other commit; the fakes and this driver
stay the same).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fakes.daemon import free_port  # noqa: E402
from tests.fakes.maven_repository import FakeMavenRepository  # noqa: E402
from tests.fakes.npm_registry import FakeNpmRegistry, make_tarball  # noqa: E402
from tests.fakes.pypi_index import FakePypiIndex  # noqa: E402

PYPI_JSON = "application/vnd.pypi.simple.v1+json"


def fill(npm: FakeNpmRegistry, pypi: FakePypiIndex, maven: FakeMavenRepository, packages: int) -> None:
    for i in range(packages):
        name = f"pkg-{i:03d}"
        files = {"index.js": f"module.exports = {i};\n".encode(), "data.bin": bytes([i]) * 16384}
        for minor in range(5):
            version = f"1.{minor}.0"
            npm.add(name, version, tarball=make_tarball(name, version, files=files))
            pypi.add_wheel(name, version, payload_size=16384)
        pom = (
            f"<project><modelVersion>4.0.0</modelVersion><groupId>org.example</groupId>"
            f"<artifactId>{name}</artifactId><version>1.0.0</version></project>"
        ).encode()
        base = f"org/example/{name}/1.0.0/{name}-1.0.0"
        maven.add(f"{base}.pom", pom)
        maven.add(f"{base}.jar", bytes([i]) * 16384)


def replay_npm(client: httpx.Client, packages: int) -> None:
    for i in range(packages):
        packument = client.get(f"/npm/dev/pkg-{i:03d}", headers={"Accept": "application/json"})
        packument.raise_for_status()
        tarball = packument.json()["versions"]["1.4.0"]["dist"]["tarball"]
        client.get(tarball).raise_for_status()


def replay_pypi(client: httpx.Client, packages: int) -> None:
    for i in range(packages):
        page = client.get(f"/pypi/dev/simple/pkg-{i:03d}/", headers={"Accept": PYPI_JSON})
        page.raise_for_status()
        newest = max(page.json()["files"], key=lambda file: file["filename"])
        client.get(str(page.url.join(newest["url"]))).raise_for_status()


def replay_maven(client: httpx.Client, packages: int) -> None:
    for i in range(packages):
        base = f"/maven/dev/org/example/pkg-{i:03d}/1.0.0/pkg-{i:03d}-1.0.0"
        for suffix in (".pom", ".pom.sha1", ".jar", ".jar.sha1"):
            client.get(base + suffix).raise_for_status()


REPLAYS: dict[str, Callable[[httpx.Client, int], None]] = {
    "npm": replay_npm,
    "pypi": replay_pypi,
    "maven": replay_maven,
}


class CallgrindDaemon:
    """The daemon of ``checkout`` under callgrind; ``measure`` gives the instructions a call costs."""

    def __init__(self, checkout: Path, directory: Path, upstreams: dict[str, str]) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.out = directory / "callgrind.out"
        tables = "".join(
            f'\n[upstream.{fmt}]\nformat = "{fmt}"\nurl = "{url}"\n' for fmt, url in upstreams.items()
        )
        config = directory / "config.toml"
        config.write_text(
            f'[server]\nlisten = "127.0.0.1:{port}"\n\n[cache]\npath = "{directory / "cache"}"\n'
            f'key_file = "{directory / "cache.key"}"\nmetadata_ttl = "1h"\n{tables}\n'
            f"[repository.dev]\nupstreams = {json.dumps(list(upstreams))}\n"
        )
        env = {**os.environ, "PYTHONPATH": str(checkout), "PYTHONHASHSEED": "0"}
        self.process = subprocess.Popen(
            [
                *("valgrind", "--tool=callgrind", f"--callgrind-out-file={self.out}", "--dump-instr=no"),
                *(sys.executable, "-m", "proxy", "--config", str(config), "serve"),
            ],
            cwd=checkout,
            env=env,
            stdout=(directory / "daemon.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        self._wait_ready(directory)
        self.dumps = 0

    def _wait_ready(self, directory: Path) -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the daemon exited; see {directory / 'daemon.log'}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.5)
        raise SystemExit("the daemon did not start under valgrind in 10 minutes")

    def _control(self, flag: str) -> None:
        subprocess.run(["callgrind_control", flag, str(self.process.pid)], check=True, capture_output=True)

    def measure(self, work: Callable[[], None]) -> int:
        """Instructions the daemon executed while ``work`` ran."""
        self._control("-z")
        work()
        self._control("-d")
        self.dumps += 1
        dump = Path(f"{self.out}.{self.dumps}")
        deadline = time.monotonic() + 60
        while not (dump.exists() and re.search(r"^totals: ", dump.read_text(), re.M)):
            if time.monotonic() > deadline:
                raise SystemExit(f"callgrind wrote no {dump}")
            time.sleep(0.2)
        totals = re.search(r"^totals: (\d+)", dump.read_text(), re.M)
        assert totals is not None
        return int(totals.group(1))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(120)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkout", type=Path, default=REPO, help="the checkout whose daemon is measured")
    parser.add_argument("--packages", type=int, default=40)
    parser.add_argument("--formats", default="npm,pypi,maven")
    parser.add_argument(
        "--keep", type=Path, help="an empty folder to keep the callgrind dumps in, for callgrind_annotate"
    )
    args = parser.parse_args()
    formats = args.formats.split(",")
    npm, pypi, maven = FakeNpmRegistry(), FakePypiIndex(), FakeMavenRepository()
    fill(npm, pypi, maven, args.packages)
    urls = {"npm": npm.start_in_thread(), "pypi": pypi.start_in_thread(), "maven": maven.start().url}
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as scratch:
        directory = args.keep.resolve() if args.keep else Path(scratch)
        daemon = CallgrindDaemon(args.checkout.resolve(), directory, {f: urls[f] for f in formats})
        try:
            with httpx.Client(base_url=daemon.url, timeout=600) as client:
                print(f"checkout {args.checkout}, {args.packages} packages a format; instructions a package:")
                for fmt in formats:
                    for phase in ("cold", "warm"):
                        count = daemon.measure(lambda fmt=fmt: REPLAYS[fmt](client, args.packages))
                        print(f"{fmt} {phase}: {count / args.packages / 1e6:,.2f} M")
        finally:
            daemon.stop()


if __name__ == "__main__":
    main()
