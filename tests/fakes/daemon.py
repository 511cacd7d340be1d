"""Running the proxy as a real subprocess for tests and benchmarks: a temporary configuration, the
daemon on a free loopback port, and the helpers that wait on it."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent.parent  # the repository: where `python -m proxy` runs


def eventually(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    """Wait for something the daemon finishes after answering (a download is stored once sent)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s")
        time.sleep(0.02)


def download_past_a_stall(url: str, size: int, stalled: threading.Event, stored: Callable[[], int]) -> bytes:
    """GET ``url`` of ``size`` bytes, whose upstream stalls halfway until ``stalled`` is set. Checks that
    a good part of it arrives while the upstream stalls, with nothing stored yet, then releases the
    upstream; returns the whole body."""
    stored_before = stored()
    with httpx.stream("GET", url, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["Content-Length"] == str(size)
        chunks = response.iter_raw()
        received = next(chunks)
        while len(received) < 256 * 1024:
            received += next(chunks)
        assert not stalled.is_set() and stored() == stored_before
        stalled.set()
        return received + b"".join(chunks)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(tmp: Path, body: str, *, port: int | None = None, metadata_ttl: str = "5m") -> Path:
    """A config file whose [server] and [cache] point into ``tmp``; ``body`` adds the rest."""
    port = port or free_port()
    path = tmp / "config.toml"
    path.write_text(
        f"""
[server]
listen = "127.0.0.1:{port}"
shutdown_timeout = "10s"

[cache]
path = "{tmp / "cache"}"
key_file = "{tmp / "keys" / "cache.key"}"
metadata_ttl = "{metadata_ttl}"
"""
        + body
    )
    return path


@dataclass
class RunningDaemon:
    process: subprocess.Popen[bytes]
    url: str
    config: Path
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def blob_count(self) -> int:
        """Blobs in the daemon's store, as its /metrics tells (small ones are rows only it can read)."""
        metrics = httpx.get(f"{self.url}/metrics", timeout=10).text
        return int(float(re.search(r"^codeartifact_proxy_store_blobs (\S+)$", metrics, re.M)[1]))

    def stop(self, sig: int = 15, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)


def run_command(config: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m proxy --config CONFIG ARGS`` to its end, output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "proxy", "--config", str(config), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_daemon(
    config: Path, log: Path, *, env: dict[str, str] | None = None, args: list[str] | None = None
) -> RunningDaemon:
    text = config.read_text()
    port = int(text.split('listen = "127.0.0.1:', 1)[1].split('"', 1)[0])
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy", "--config", str(config), "serve", *(args or [])],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"daemon exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return RunningDaemon(process, url, config, log)
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"daemon did not come up:\n{log.read_text()}")
