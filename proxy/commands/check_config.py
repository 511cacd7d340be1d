"""``check-config``: load the configuration and print it resolved, with secrets redacted."""

from __future__ import annotations

import argparse
import json

from proxy.config import redacted
from proxy.config.model import Config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check-config", help="validate the configuration and print it resolved (secrets redacted)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace, config: Config) -> int:
    print(json.dumps(redacted(config), indent=2))
    return 0
