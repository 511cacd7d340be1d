"""``prefetch --repository R FILE...``: fetch everything the lockfiles name through the running daemon
(found by the same ``--config``), so the store holds it before any build asks.

A progress bar (tqdm) on a terminal, one plain line per entry otherwise; then a summary (fetched,
already there, failed with reasons). Exit status 0 when every entry was fetched, 1 when any failed or
no daemon answers, 2 when a lockfile cannot be read (then nothing is fetched).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from proxy.client.daemon import DaemonAddressError, base_url, repository_name, unreachable
from proxy.config.model import Config
from proxy.lockfiles import Entry, LockfileError, read_lockfile

if TYPE_CHECKING:
    from tqdm import tqdm

    from proxy.client.prefetch import Outcome


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prefetch", help="fetch everything lockfiles name through the running daemon")
    p.add_argument("files", nargs="+", metavar="FILE", type=Path, help="a lockfile or Maven coordinate list")
    p.add_argument("--repository", metavar="R", help="the [repository.R] to fill (default: the only one)")
    p.add_argument("--concurrency", type=int, default=8, metavar="N", help="requests at once (default 8)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, config: Config) -> int:
    try:
        base = base_url(config)
        repository = repository_name(config, args.repository)
    except DaemonAddressError as error:
        print(f"codeartifact-proxy: {error}", file=sys.stderr)
        return 1
    entries: list[Entry] = []
    try:
        for path in args.files:
            entries.extend(read_lockfile(path))
    except LockfileError as error:
        print(f"codeartifact-proxy: {error}; nothing was fetched", file=sys.stderr)
        return 2
    if args.concurrency < 1:
        print("codeartifact-proxy: --concurrency must be at least 1", file=sys.stderr)
        return 2
    return asyncio.run(_prefetch(base, repository, list(dict.fromkeys(entries)), args.concurrency))


async def _prefetch(base: str, repository: str, entries: list[Entry], concurrency: int) -> int:
    # In the command only: see proxy.commands.
    import httpx
    from tqdm import tqdm

    from proxy.client.prefetch import Prefetch

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=httpx.Timeout(300, connect=10), limits=limits) as client:
        try:
            await client.get(f"{base}healthz")
        except httpx.HTTPError as error:
            print(f"codeartifact-proxy: {unreachable(base, error)}", file=sys.stderr)
            return 1
        bar = tqdm(total=0, unit="entry", dynamic_ncols=True) if sys.stderr.isatty() else None
        prefetch = Prefetch(
            client,
            base,
            repository,
            concurrency=concurrency,
            on_start=lambda entry: _grow(bar),
            on_done=lambda outcome: _report(bar, outcome),
        )
        try:
            outcomes = await prefetch.run(entries)
        finally:
            if bar is not None:
                bar.close()
    return _summary(outcomes)


def _grow(bar: tqdm | None) -> None:
    if bar is not None:
        bar.total += 1
        bar.refresh()


def _report(bar: tqdm | None, outcome: Outcome) -> None:
    line = f"{outcome.status}: {outcome.entry}"
    if outcome.error:
        line += f": {outcome.error}"
    if bar is None:
        print(line, flush=True)
        return
    if outcome.error:
        bar.write(line, file=sys.stderr)
    bar.update(1)


def _summary(outcomes: list[Outcome]) -> int:
    counts = {status: 0 for status in ("fetched", "already there", "failed", "not in upstreams")}
    for outcome in outcomes:
        counts[outcome.status] += 1
    files = sum(outcome.files for outcome in outcomes)
    # POMs of declared dependencies that no upstream has: Maven goes on without them, so no failure.
    absent = counts["not in upstreams"]
    print(
        f"prefetch: {len(outcomes)} entries ({files} files): {counts['fetched']} fetched, "
        f"{counts['already there']} already there, {counts['failed']} failed"
        + (f", {absent} dependency POMs in no upstream (Maven does without them)" if absent else "")
    )
    failed = [outcome for outcome in outcomes if outcome.error]
    for outcome in failed:
        print(f"  failed: {outcome.entry}: {outcome.error}", file=sys.stderr)
    return 1 if failed else 0
