"""``gc``: remove blobs that nothing in the catalog references."""

from __future__ import annotations

import argparse

from proxy.config.model import Config
from proxy.store import backends
from proxy.store.store import Store


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gc", help="remove unreferenced blobs (run with the daemon stopped)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, config: Config) -> int:
    report = backends.maintain_store(config.store, config.cache, backends.gc, Store.gc)
    print(f"removed {report.removed_blobs} blobs ({report.removed_bytes} bytes); kept {report.kept_blobs}")
    return 0
