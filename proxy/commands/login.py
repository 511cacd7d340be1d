"""``login --tool T [--repository R] [--dry-run]`` and ``logout --tool T``: point a client's own
user-level configuration at the proxy, and take that back.

| tool | file | what login sets |
| --- | --- | --- |
| npm, pnpm, yarn (1.x) | ``~/.npmrc`` | ``registry`` and ``//HOST/npm/R/:_authToken`` |
| yarn-berry (2+) | ``~/.yarnrc.yml`` | ``npmRegistryServer``, ``npmAuthToken``, ``npmAlwaysAuth``, |
| | | the host in ``unsafeHttpWhitelist`` (http) |
| pip | ``$XDG_CONFIG_HOME/pip/pip.conf`` | ``[global] index-url`` |
| uv | ``$XDG_CONFIG_HOME/uv/uv.toml`` | a default ``[[index]]`` |
| twine | ``~/.pypirc`` | a ``codeartifact`` repository in ``index-servers`` |
| maven | ``~/.m2/settings.xml`` | a mirror of ``*``, a server, a profile with SNAPSHOTs on |

Credentials come from ``proxy.client.credentials``: a placeholder while the daemon takes anonymous
publishes, else a token the daemon issues. ``--dry-run`` prints the change as a diff and writes
nothing (and asks for no token). Backups and undo: ``proxy.client.logins``.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from proxy.client import logins
from proxy.client.daemon import DaemonAddressError, base_url, repository_name
from proxy.config.model import Config

if TYPE_CHECKING:
    from proxy.client.credentials import ClientCredentials

TOOLS = ("npm", "pnpm", "yarn", "yarn-berry", "pip", "uv", "twine", "maven")
_DRY_RUN_TOKEN = "<token issued by the daemon>"  # shown instead of a token


@dataclass(frozen=True)
class Target:
    """One file a tool reads, and the edit that points it at the proxy."""

    path: Path
    edit: Callable[[str | None], str]


def tool_file(tool: str) -> Path:
    """The user-level file ``tool`` reads (and login edits)."""
    if tool in ("npm", "pnpm", "yarn"):
        return Path.home() / ".npmrc"
    if tool == "yarn-berry":
        return Path.home() / ".yarnrc.yml"
    if tool == "pip":
        return logins.config_home() / "pip" / "pip.conf"
    if tool == "uv":
        return logins.config_home() / "uv" / "uv.toml"
    if tool == "twine":
        return Path.home() / ".pypirc"
    return Path.home() / ".m2" / "settings.xml"


def target(tool: str, base: str, repository: str, credentials: ClientCredentials) -> Target:
    from proxy.client import edits  # in the command only: see proxy.commands

    user, token = credentials.username, credentials.token
    host = base.split("://", 1)[1]
    scheme = base.split("://", 1)[0]
    # pip and uv take credentials only in the index URL; anonymous reads need none there.
    secured = base if credentials.anonymous else f"{scheme}://{user}:{token}@{host}"
    edit: Callable[[str | None], str]
    if tool in ("npm", "pnpm", "yarn"):
        edit = lambda text: edits.npmrc(text, f"{base}npm/{repository}/", token)  # noqa: E731
    elif tool == "yarn-berry":
        edit = lambda text: edits.yarnrc_yml(text, f"{base}npm/{repository}/", token)  # noqa: E731
    elif tool == "pip":
        edit = lambda text: edits.pip_conf(text, f"{secured}pypi/{repository}/simple/")  # noqa: E731
    elif tool == "uv":
        edit = lambda text: edits.uv_toml(text, f"{secured}pypi/{repository}/simple/")  # noqa: E731
    elif tool == "twine":
        edit = lambda text: edits.pypirc(text, f"{base}pypi/{repository}/", user, token)  # noqa: E731
    else:
        edit = lambda text: edits.maven_settings(text, f"{base}maven/{repository}/", user, token)  # noqa: E731
    return Target(tool_file(tool), edit)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("login", help="point a client's own configuration at the proxy")
    p.add_argument("--tool", required=True, choices=TOOLS)
    p.add_argument("--repository", metavar="R", help="the [repository.R] to use (default: the only one)")
    p.add_argument("--dry-run", action="store_true", help="print the change, write nothing")
    p.set_defaults(run=run_login)
    p = sub.add_parser("logout", help="undo login: restore the client's file as it was")
    p.add_argument("--tool", required=True, choices=TOOLS)
    p.set_defaults(run=run_logout)


def _fail(message: str) -> int:
    print(f"codeartifact-proxy: {message}", file=sys.stderr)
    return 1


def run_login(args: argparse.Namespace, config: Config) -> int:
    # In the command only: see proxy.commands.
    from proxy.client import edits
    from proxy.client.credentials import ClientCredentials, CredentialsError, credentials_for, requires_token

    try:
        base = base_url(config)
        repository = repository_name(config, args.repository)
        if args.dry_run and requires_token(config):
            credentials = ClientCredentials("aws", _DRY_RUN_TOKEN, anonymous=False)
        else:
            credentials = credentials_for(config, base)
    except (DaemonAddressError, CredentialsError) as error:
        return _fail(str(error))
    chosen = target(args.tool, base, repository, credentials)
    path = chosen.path
    try:
        before = path.read_text(encoding="utf-8") if path.exists() else None
        after = chosen.edit(before)
    except (OSError, UnicodeDecodeError, edits.EditError) as error:
        return _fail(f"{path}: {error}; nothing was changed")
    if args.dry_run:
        diff = difflib.unified_diff(
            (before or "").splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=str(path) if before is not None else "/dev/null",
            tofile=str(path),
        )
        sys.stdout.writelines(diff)
        print(f"(dry run: {path} not written)")
        return 0
    try:
        backup = logins.record_and_write(path, after.encode("utf-8"), args.tool)
    except OSError as error:
        return _fail(f"{path}: {error}")
    kept = f"the original is kept as {backup}" if backup else "it did not exist before"
    print(
        f"{args.tool}: {path} now uses {base} repository {repository} ({kept}); "
        f"undo: logout --tool {args.tool}"
    )
    return 0


def run_logout(args: argparse.Namespace, config: Config) -> int:
    path = tool_file(args.tool)
    others = [tool for tool in logins.logged_in_tools(path) if tool != args.tool]
    try:
        done = logins.undo(path)
    except OSError as error:
        return _fail(f"{path}: {error}")
    if done is None:
        print(f"{args.tool}: login did not change {path}; nothing to undo")
        return 0
    print(f"{args.tool}: {path} {'removed (login had created it)' if done.removed else 'restored'}")
    if others:
        print(f"  (that also undid the login of {', '.join(others)}, which share the file)")
    if done.kept_changes:
        print(f"  changes made to it after login are kept in {done.kept_changes}")
    return 0
