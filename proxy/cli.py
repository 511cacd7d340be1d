"""``codeartifact-proxy`` / ``python -m proxy``: parse the command line, load the configuration, run one
command. Every command module has ``register(subparsers)``, which sets ``run(args, config) -> int``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from proxy.commands import bundles, check_config, gc, login, prefetch, serve, status, token, verify
from proxy.config import ConfigError, load_config
from proxy.formats.registry import format_names
from proxy.store.keyring import KeyFileError
from proxy.store.store import StoreUnavailable

COMMANDS = (serve, check_config, token, verify, gc, login, prefetch, status, bundles)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="codeartifact-proxy",
        description="A local proxy for AWS CodeArtifact: npm, PyPI and Maven through one cache.",
    )
    add_config_option(p, argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    for command_parser in sub.choices.values():
        # After the command as well (`serve --config PATH`, as the documentation writes it); SUPPRESS
        # keeps a subcommand that was not given the option from erasing the one given before it.
        add_config_option(command_parser, argparse.SUPPRESS)
    return p


def add_config_option(p: argparse.ArgumentParser, default: object) -> None:
    p.add_argument(
        "--config",
        metavar="PATH",
        default=default,
        help="configuration file (default: $CODEARTIFACT_PROXY_CONFIG, else the embedded default)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = load_config(getattr(args, "config", None), formats=format_names())
        return args.run(args, config)
    except (ConfigError, KeyFileError, StoreUnavailable) as exc:
        print(f"codeartifact-proxy: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
