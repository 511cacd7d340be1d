"""``token NAME``: print a CodeArtifact authorization token of the ``[codeartifact.NAME]`` domain.

For tools that still need a token of their own. The token goes to stdout and nothing else does;
a failure is one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from proxy.codeartifact.domain import DomainClient, DomainError
from proxy.config.model import CodeArtifactDomain, Config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("token", help="print an authorization token of a [codeartifact.NAME] domain")
    p.add_argument("name", metavar="NAME", help="the NAME of a [codeartifact.NAME] table")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, config: Config) -> int:
    domain = config.codeartifact.get(args.name)
    if domain is None:
        known = ", ".join(sorted(config.codeartifact)) or "none"
        print(
            f"codeartifact-proxy: no [codeartifact.{args.name}] in {config.source} (domains: {known})",
            file=sys.stderr,
        )
        return 1
    try:
        token = asyncio.run(_fetch(domain))
    except DomainError as exc:
        print(f"codeartifact-proxy: {exc}", file=sys.stderr)
        return 1
    print(token)
    return 0


async def _fetch(domain: CodeArtifactDomain) -> str:
    client = DomainClient(domain)
    try:
        return (await client.get_authorization_token()).value
    finally:
        client.close()
