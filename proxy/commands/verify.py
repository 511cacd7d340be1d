"""``verify``: decrypt and check every blob and index entry; report (and remove) what is broken."""

from __future__ import annotations

import argparse

from proxy.config.model import Config
from proxy.store import backends
from proxy.store.store import Store


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="check every cached blob and index entry (run with the daemon stopped)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, config: Config) -> int:
    report = backends.maintain_store(config.store, config.cache, backends.verify, Store.verify)
    for line in report.broken:
        print(f"broken: {line}")
    print(f"verified {report.checked_blobs} blobs: {'ok' if report.ok else f'{len(report.broken)} problems'}")
    return 0 if report.ok else 1
