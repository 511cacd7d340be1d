"""Benchmark: peak memory of ``import`` for a bundle holding one large asset.

    python bench/bundle_import.py [--size-mb 200] [--format maven|npm|pypi]

Writes a bundle with one package version whose asset is ``--size-mb`` MB of incompressible bytes (a
Maven jar with its POM, an npm tarball, or a wheel), starts a daemon with an empty store whose
repository takes publishes, runs ``codeartifact-proxy import`` against it as a subprocess, and prints
the import command's peak resident set size (its own, from wait4), the daemon's (VmHWM), and the time.
The bundle is written by a child process, so that this one stays small (a child's peak RSS includes
what its parent held when it was started).
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import io
import json
import os
import random
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from proxy.bundle import BundleWriter, Entry  # noqa: E402
from tests.fakes.daemon import start_daemon, write_config  # noqa: E402
from tests.fakes.pypi_index import make_wheel  # noqa: E402

CHUNK = 1024 * 1024


def payload(size: int) -> bytes:
    return random.Random(size).randbytes(size)


def npm_tarball(size: int) -> bytes:
    manifest = json.dumps({"name": "bench-big", "version": "1.0.0"}).encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path, data in (("package/package.json", manifest), ("package/payload.bin", payload(size))):
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, 499162500
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=1, mtime=0)


def write_bundle(path: Path, format: str, size: int) -> None:
    """A bundle with one package version of ``format`` whose main asset is about ``size`` bytes."""
    files: dict[str, bytes]
    metadata: dict[str, object] = {}
    if format == "maven":
        pom = b"<project><groupId>org.bench</groupId><artifactId>big</artifactId><version>1.0</version>"
        pom += b"</project>"
        files = {"big-1.0.jar": payload(size), "big-1.0.pom": pom}
        entry = ("maven", "org.bench", "big", "1.0")
    elif format == "npm":
        data = npm_tarball(size)
        files = {"bench-big-1.0.0.tgz": data}
        integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
        document = {
            "name": "bench-big",
            "version": "1.0.0",
            "dist": {"integrity": integrity, "shasum": hashlib.sha1(data).hexdigest(), "tarball": "x"},
        }
        metadata = {"document": document, "dist_tags": {"latest": "1.0.0"}}
        entry = ("npm", "", "bench-big", "1.0.0")
    else:
        filename, data = make_wheel("bench-big", "1.0", payload_size=size)
        files = {filename: data}
        metadata = {"requires_python": None}
        entry = ("pypi", "", "bench-big", "1.0")
    writer = BundleWriter(path)
    assets = []
    for name, data in files.items():
        digest = hashlib.sha256(data).hexdigest()
        writer.add_blob(digest, io.BytesIO(data), len(data))
        assets.append({"name": name, "size": len(data), "sha256": digest})
    writer.finish("dev", "2026-01-01T00:00:00Z", [Entry(*entry, time.time(), assets, metadata)], None)


def peak_kib(pid: int) -> int:
    """A running process's peak resident set (VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--format", choices=("maven", "npm", "pypi"), default="maven")
    parser.add_argument("--write-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = args.size_mb * 1024 * 1024
    if args.write_only:
        write_bundle(args.write_only, args.format, size)
        return
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        root = Path(tmp)
        bundle = root / "big.bundle"
        # Written by another process: a child's peak RSS counts what its parent held when it started.
        write = [sys.executable, __file__, "--format", args.format, "--size-mb", str(args.size_mb)]
        subprocess.run([*write, "--write-only", str(bundle)], check=True)
        config = write_config(root, "[repository.dev]\npublish = true\n")
        daemon = start_daemon(config, root / "daemon.log")
        try:
            daemon_before = peak_kib(daemon.process.pid)
            command = [sys.executable, "-m", "proxy", "--config", str(config), "import", str(bundle)]
            started = time.monotonic()
            process = subprocess.Popen(
                [*command, "--repository", "dev"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
            _, status, usage = os.wait4(process.pid, 0)
            elapsed = time.monotonic() - started
            output = process.stdout.read().decode() if process.stdout else ""
            daemon_peak = peak_kib(daemon.process.pid)
        finally:
            daemon.stop()
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"import failed:\n{output}")
        print(f"bundle: one {args.format} version, {bundle.stat().st_size / 1024**2:.0f} MiB")
        print(f"import command peak RSS: {usage.ru_maxrss / 1024:.0f} MiB")
        print(f"daemon peak RSS: {daemon_peak / 1024:.0f} MiB (at start: {daemon_before / 1024:.0f} MiB)")
        print(f"import took {elapsed:.1f} s")


if __name__ == "__main__":
    main()
