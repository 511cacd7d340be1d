"""``serve``: run the daemon until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys

from proxy.config.model import Config
from proxy.logs import setup_logging
from proxy.server.collector import tune_collector
from proxy.server.run import ListenError, run_workers, serve
from proxy.store.allocator import tune_allocator


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the proxy")
    p.add_argument("--log-format", choices=("text", "json"), help="override server.log_format")
    p.add_argument("--debug", action="store_true", help="log at DEBUG level")
    p.add_argument("--offline", action="store_true", help="no upstream connection at all (server.offline)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, config: Config) -> int:
    if args.offline:
        config = dataclasses.replace(config, server=dataclasses.replace(config.server, offline=True))
    setup_logging(args.log_format or config.server.log_format, logging.DEBUG if args.debug else logging.INFO)
    tune_allocator()
    tune_collector()
    try:
        import uvloop
    except ImportError:  # uvloop is not built for every platform; asyncio's loop serves the same
        runner = asyncio.run
    else:
        runner = uvloop.run
    if config.server.workers > 1:
        return run_workers(config, runner)
    try:
        runner(serve(config))
    except ListenError as exc:
        print(f"codeartifact-proxy: {exc}", file=sys.stderr)
        return 1
    return 0
