"""Benchmark: what one large ``npm publish`` costs the daemon: its peak RSS, and how long ``/healthz``
waits while the publish streams in.

    PYTHONPATH=. python bench/publish_memory.py [--body-mb 280] [--runs 1]

The proxy runs as a subprocess (``python -m proxy serve``, started with tests/fakes/daemon.py) with one
publishable repository. The publish body is the JSON document npm sends, generated while it is sent
(with a Content-Length, as npm sends it): a tarball of random bytes whose base64 makes the body about
``--body-mb`` MiB, the ``_attachments`` first so its digests can go into ``versions`` after it. Another
thread asks ``/healthz`` every 20 ms during the publish. Prints per run: the body size, the publish's
status and wall time, the daemon's RSS before and its peak RSS (``VmHWM`` of /proc, the high-water mark
of the process's whole life), and /healthz's worst and median latency and how many probes ran.

To compare with another checkout (read-only), run a copy of this script with that checkout first on
``PYTHONPATH``: the daemon is started from the checkout that holds the ``tests`` package imported.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.util
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

if importlib.util.find_spec("tests.fakes") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from tests.fakes.daemon import ROOT, start_daemon, write_config

PIECE = 3 * 1024 * 1024  # tarball bytes per generated piece (a multiple of 3: base64 without padding)


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class PublishBody:
    """An npm publish document of ``size`` tarball bytes, produced piece by piece (never whole)."""

    def __init__(self, name: str, size: int, seed: int) -> None:
        self.name, self.size, self.seed = name, size, seed
        attachment = f'"{name}-1.0.0.tgz": {{"content_type": "application/octet-stream", "length": {size}'
        self._prefix = ('{"_attachments": {' + attachment + ', "data": "').encode()

    def _suffix(self, sha512: bytes, sha1: str) -> bytes:
        version = {
            "name": self.name,
            "version": "1.0.0",
            "dist": {"integrity": "sha512-" + base64.b64encode(sha512).decode(), "shasum": sha1},
        }
        rest = {"versions": {"1.0.0": version}, "dist-tags": {"latest": "1.0.0"}, "name": self.name}
        return b'"}}, ' + json.dumps(rest).encode()[1:]

    def length(self) -> int:
        return len(self._prefix) + 4 * ((self.size + 2) // 3) + len(self._suffix(bytes(64), "0" * 40))

    def chunks(self) -> Iterator[bytes]:
        rng = random.Random(self.seed)
        sha512, sha1 = hashlib.sha512(), hashlib.sha1()
        yield self._prefix
        left = self.size
        while left:
            piece = rng.randbytes(min(PIECE, left))
            left -= len(piece)
            sha512.update(piece)
            sha1.update(piece)
            yield base64.b64encode(piece)
        yield self._suffix(sha512.digest(), sha1.hexdigest())


class HealthProbe(threading.Thread):
    """Asks ``/healthz`` every 20 ms until stopped; keeps each answer's latency."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.latencies: list[float] = []
        self.failures = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stopping.is_set():
                started = time.perf_counter()
                try:
                    ok = client.get(self.url).status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.latencies.append(time.perf_counter() - started)
                self.failures += not ok
                self.stopping.wait(0.02)


def one_run(home: Path, body_mb: int, run: int) -> None:
    config = write_config(home, "[repository.local]\npublish = true\n")
    daemon = start_daemon(config, home / "daemon.log")
    try:
        pid = daemon.process.pid
        httpx.get(f"{daemon.url}/npm/local/warm-up", timeout=30)  # the npm routes' first use
        rss_before = status_kib(pid, "VmRSS")
        body = PublishBody(f"big-{run}", body_mb * 1024 * 1024 * 3 // 4, seed=run)
        probe = HealthProbe(f"{daemon.url}/healthz")
        probe.start()
        started = time.perf_counter()
        response = httpx.put(
            f"{daemon.url}/npm/local/big-{run}",
            content=body.chunks(),
            headers={"Content-Type": "application/json", "Content-Length": str(body.length())},
            timeout=600,
        )
        took = time.perf_counter() - started
        probe.stopping.set()
        probe.join()
        peak = status_kib(pid, "VmHWM")
        latencies = sorted(probe.latencies)
        print(
            f"run {run}: body {body.length() / 1024**2:.0f} MiB (tarball {body.size / 1024**2:.0f} MiB), "
            f"publish {response.status_code} in {took:.1f} s"
        )
        print(f"  daemon RSS before {rss_before / 1024:.0f} MiB, peak {peak / 1024:.0f} MiB (VmHWM)")
        print(
            f"  /healthz during the publish: worst {latencies[-1] * 1000:.0f} ms, "
            f"median {statistics.median(latencies) * 1000:.1f} ms, {len(latencies)} probes, "
            f"{probe.failures} failed"
        )
        if response.status_code != 201:
            print(f"  answer: {response.text[:300]}")
    finally:
        daemon.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--body-mb", type=int, default=280, help="publish body size in MiB")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    print(f"proxy from {ROOT}")
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="publish-memory-") as tmp:
            one_run(Path(tmp), args.body_mb, run)


if __name__ == "__main__":
    main()
