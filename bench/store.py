"""Benchmark: the encrypted blob store against plain files, for one large asset.

    python bench/store.py [--size-mib 256] [--chunk-kib N] [--repeat 3] [--dir DIR] [--cold]

Writes a random asset through ``BlobStore`` (sealing it and computing its sha256, sha512, sha1
and md5) and reads it back; does the same with a plain file (write, fsync, read) of the same
bytes in the same directory. Each phase runs in its own child process, which reports its time
and its peak RSS, so the RSS figures show what one phase costs. The asset is generated and
consumed chunk by chunk (never held whole in memory), and generating it is not timed.
``--cold`` drops both files from the page cache before reading them.

Prints MB/s (10^6 bytes per second, the median of the repeats) per phase, the store/plain
ratios and the peak RSS of each phase.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

REPO = Path(__file__).resolve().parent.parent
BLOCK = 1024 * 1024
PHASES = ("plain-write", "plain-read", "store-write", "store-read")


def asset_blocks(size: int, seed: int) -> Iterator[bytes]:
    """``size`` pseudo-random bytes (an AES-CTR keystream: fast and the same for every phase)."""
    keystream = Cipher(algorithms.AES(seed.to_bytes(32, "big")), modes.CTR(bytes(16))).encryptor()
    zeros = bytes(BLOCK)
    for offset in range(0, size, BLOCK):
        yield keystream.update(zeros[: min(BLOCK, size - offset)])


def drop_from_page_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def plain_write(path: Path, size: int, seed: int) -> float:
    elapsed = 0.0
    with path.open("wb") as file:
        for block in asset_blocks(size, seed):
            start = time.perf_counter()
            file.write(block)
            elapsed += time.perf_counter() - start
        start = time.perf_counter()
        file.flush()
        os.fsync(file.fileno())
    return elapsed + time.perf_counter() - start


def plain_read(path: Path) -> float:
    start = time.perf_counter()
    with path.open("rb", buffering=0) as file:
        while file.read(BLOCK):
            pass
    return time.perf_counter() - start


def open_store(work: Path, chunk_kib: int):
    sys.path.insert(0, str(REPO))
    from proxy.store.blobs import BlobStore
    from proxy.store.keyring import KeyRing
    from proxy.store.sealed import CHUNK_SIZE

    chunk_size = chunk_kib * 1024 or CHUNK_SIZE
    return BlobStore(work / "cache", KeyRing.load(work.parent / "cache.key"), chunk_size=chunk_size)


def store_write(work: Path, chunk_kib: int, size: int, seed: int) -> tuple[float, str, int]:
    store = open_store(work, chunk_kib)
    elapsed = 0.0
    with store.writer() as writer:
        for block in asset_blocks(size, seed):
            start = time.perf_counter()
            writer.write(block)
            elapsed += time.perf_counter() - start
        start = time.perf_counter()
        blob_id = writer.commit().blob_id
    return elapsed + time.perf_counter() - start, blob_id, store.chunk_size


def store_read(work: Path, chunk_kib: int, blob_id: str, cold: bool) -> float:
    store = open_store(work, chunk_kib)
    if cold:
        drop_from_page_cache(store.path(blob_id))
    start = time.perf_counter()
    with store.reader(blob_id) as reader:
        for _ in reader:
            pass
    return time.perf_counter() - start


def run_phase(args: argparse.Namespace) -> dict[str, object]:
    """One phase, in this (child) process."""
    work, size = Path(args.work), args.size_mib * 1024 * 1024
    result: dict[str, object] = {}
    if args.phase == "plain-write":
        result["seconds"] = plain_write(work / "plain.bin", size, args.seed)
    elif args.phase == "plain-read":
        if args.cold:
            drop_from_page_cache(work / "plain.bin")
        result["seconds"] = plain_read(work / "plain.bin")
    elif args.phase == "store-write":
        result["seconds"], result["blob_id"], result["chunk_size"] = store_write(
            work, args.chunk_kib, size, args.seed
        )
    else:
        result["seconds"] = store_read(work, args.chunk_kib, args.blob_id, args.cold)
    result["peak_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return result


def child(args: argparse.Namespace, phase: str, work: Path, seed: int, blob_id: str = "") -> dict:
    command = [sys.executable, __file__, "--phase", phase, "--work", str(work), "--seed", str(seed)]
    command += ["--size-mib", str(args.size_mib), "--chunk-kib", str(args.chunk_kib), "--blob-id", blob_id]
    command += ["--cold"] if args.cold else []
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def run_all(args: argparse.Namespace) -> None:
    base = Path(tempfile.mkdtemp(prefix="bench-store-", dir=args.dir))
    times: dict[str, list[float]] = {phase: [] for phase in PHASES}
    peak_rss: dict[str, int] = dict.fromkeys(PHASES, 0)
    chunk_size = 0
    try:
        for repeat in range(args.repeat):
            work = base / f"run{repeat}"
            work.mkdir()
            blob_id = ""
            for phase in PHASES:
                result = child(args, phase, work, seed=repeat + 1, blob_id=blob_id)
                blob_id = result.get("blob_id", blob_id)
                chunk_size = result.get("chunk_size", chunk_size)
                times[phase].append(result["seconds"])
                peak_rss[phase] = max(peak_rss[phase], result["peak_rss_kib"])
            shutil.rmtree(work)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    report(args, chunk_size, times, peak_rss)


def report(
    args: argparse.Namespace, chunk_size: int, times: dict[str, list[float]], peak_rss: dict[str, int]
) -> None:
    size = args.size_mib * 1024 * 1024
    rate = {phase: size / statistics.median(seconds) / 1e6 for phase, seconds in times.items()}
    cache = "cold page cache" if args.cold else "warm page cache"
    print(f"asset {args.size_mib} MiB, chunk {chunk_size // 1024} KiB, {args.repeat} runs (median), {cache}")
    print(f"{'phase':<12} {'MB/s':>9} {'peak RSS':>12}")
    for phase in PHASES:
        print(f"{phase:<12} {rate[phase]:>9.1f} {peak_rss[phase] / 1024:>8.1f} MiB")
    write_ratio = rate["store-write"] / rate["plain-write"]
    read_ratio = rate["store-read"] / rate["plain-read"]
    print(f"store/plain: write {write_ratio:.2f}x, read {read_ratio:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--chunk-kib", type=int, default=0, help="sealed chunk size (default: the store's)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where the temp files go (default: the system temp dir)")
    parser.add_argument("--cold", action="store_true", help="drop the files from the page cache before reads")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--blob-id", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(run_phase(args)))
    else:
        run_all(args)


if __name__ == "__main__":
    main()
