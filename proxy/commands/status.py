"""``status [--json]``: what the running daemon of this configuration holds (repositories with package
and version counts, store size against ``max_size``), how its upstreams answer and when each
CodeArtifact token expires. Asks the daemon's ``GET /-/status`` (``proxy.server.status``); ``--json``
prints that document as it is, for scripts. Exit status 1 when no daemon answers."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

from proxy.client.daemon import DaemonAddressError, base_url, unreachable
from proxy.config.model import Config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="what the running daemon holds, its upstreams and tokens")
    p.add_argument("--json", action="store_true", help="print the status document as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, config: Config) -> int:
    import httpx  # in the command only: see proxy.commands

    try:
        base = base_url(config)
        response = httpx.get(f"{base}-/status", timeout=30)
    except DaemonAddressError as error:
        print(f"codeartifact-proxy: {error}", file=sys.stderr)
        return 1
    except httpx.HTTPError as error:
        print(f"codeartifact-proxy: {unreachable(base, error)}", file=sys.stderr)
        return 1
    try:
        document = response.json()
        response.raise_for_status()
    except (ValueError, httpx.HTTPStatusError):
        print(f"codeartifact-proxy: {base}-/status answered HTTP {response.status_code}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        print(render(base, document))
    return 0


def _size(value: int) -> str:
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")


def _expiry(epoch: float | None) -> str:
    if epoch is None:
        return "no token"
    left = epoch - time.time()
    when = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")
    if left <= 0:
        return f"token expired {when}"
    return f"token expires {when} (in {int(left // 3600)} h {int(left % 3600 // 60)} min)"


def render(base: str, document: dict[str, Any]) -> str:
    """The status document as text for a terminal."""
    lines = [f"daemon {base}{' (offline: no upstream is asked)' if document.get('offline') else ''}"]
    lines.append("repositories:")
    for repository in document.get("repositories", []):
        upstreams = ", ".join(repository["upstreams"]) or "none"
        lines.append(
            f"  {repository['name']}: {repository['packages']} packages, {repository['versions']} versions "
            f"({repository['published_versions']} published); upstreams: {upstreams}"
        )
    store = document.get("store", {})
    if store:
        lines.append(
            f"store: {_size(store['cached_size'])} cached of max {_size(store['max_size'])}; "
            f"{_size(store['size'])} in {store['blobs']} blobs in all, at {store['path']}"
        )
    lines.append("upstreams:" if document.get("upstreams") else "upstreams: none")
    for upstream in document.get("upstreams", []):
        if upstream["healthy"] is None:
            state = upstream["reason"]
        else:
            state = "ok" if upstream["healthy"] else f"failing: {upstream['reason']}"
        lines.append(f"  {upstream['name']} ({upstream['kind']}, {', '.join(upstream['formats'])}): {state}")
    for domain in document.get("codeartifact", []):
        state = "" if domain["healthy"] else f"; failing: {domain['reason']}"
        lines.append(f"codeartifact.{domain['name']}: {_expiry(domain['token_expires_at'])}{state}")
    return "\n".join(lines)
