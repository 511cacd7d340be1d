"""``export --repository R [--lockfile F...] [--since BUNDLE|DATE] [--sign-key K] --output BUNDLE`` and
``import BUNDLE --repository R [--trust-key PUB]``: carry package versions across an air gap
(``proxy.bundle``). Both talk to the running daemon of the same ``--config``, or, when none answers,
open its store in this process (``proxy.bundle.local``).

Exit status: 0 when every entry was exported / imported (or already there), 1 when any failed (each
is named with its reason; the others are done), 2 when nothing could be done (bad arguments, a bundle
that is not one, a signature that does not verify, a store in use).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from proxy.bundle import (
    BundleError,
    BundleWriter,
    Entry,
    load_private_key,
    load_public_key,
    manifest_digests,
    open_bundle,
)
from proxy.bundle.local import local_daemon
from proxy.client.daemon import DaemonAddressError, base_url, repository_name
from proxy.config.model import Config
from proxy.lockfiles import LockfileError, MavenEntry, NpmEntry, read_lockfile
from proxy.store.store import StoreUnavailable

if TYPE_CHECKING:
    from proxy.bundle.transfer import Report


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a repository's package versions to a bundle")
    p.add_argument("--repository", metavar="R", help="the [repository.R] to export (default: the only one)")
    p.add_argument(
        "--lockfile", action="append", type=Path, default=[], metavar="F", help="only what F names"
    )
    p.add_argument("--since", metavar="BUNDLE|DATE", help="only what BUNDLE lacks, or what came after DATE")
    p.add_argument("--sign-key", type=Path, metavar="K", help="Ed25519 private key (PEM) to sign with")
    p.add_argument("--output", type=Path, required=True, metavar="BUNDLE")
    p.set_defaults(run=run_export)
    p = sub.add_parser("import", help="verify a bundle and publish its package versions")
    p.add_argument("bundle", type=Path, metavar="BUNDLE")
    p.add_argument("--repository", metavar="R", help="the [repository.R] to import into")
    p.add_argument(
        "--trust-key",
        type=Path,
        metavar="PUB",
        help="Ed25519 public key (PEM) the bundle must be signed with",
    )
    p.set_defaults(run=run_import)


def _fail(message: str, status: int = 2) -> int:
    print(f"codeartifact-proxy: {message}", file=sys.stderr)
    return status


@contextmanager
def _daemon(config: Config, repository: str) -> Iterator[str]:
    """The running daemon's base URL, else that of one started here on its store."""
    import httpx  # in the command only: see proxy.commands

    base = base_url(config)
    try:
        httpx.get(f"{base}healthz", timeout=5)
    except httpx.HTTPError:
        with local_daemon(config, repository) as local:
            yield local
        return
    yield base


def _since(value: str | None) -> tuple[set[str], float | None]:
    if value is None:
        return set(), None
    path = Path(value)
    if path.exists():
        return manifest_digests(path), None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise BundleError(
            f"--since {value!r} is neither a bundle file nor a date (2026-12-01 or an ISO time)"
        ) from None
    return set(), (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _keys_of(paths: list[Path]) -> set[tuple[str, str, str, str]] | None:
    if not paths:
        return None
    keys = set()
    for path in paths:
        for entry in read_lockfile(path):
            if isinstance(entry, NpmEntry):
                scope, _, name = entry.name.rpartition("/")
                keys.add(("npm", scope.removeprefix("@"), name, entry.version))
            elif isinstance(entry, MavenEntry):
                keys.add(("maven", entry.group, entry.artifact, entry.version))
            else:
                keys.add(("pypi", "", entry.name, entry.version))
    return keys


def _wanted(entry: Entry, keys: set | None, digests: set[str], since: float | None) -> bool:
    if keys is not None and (entry.format, entry.namespace, entry.name, entry.version) not in keys:
        return False
    if since is not None and entry.published_time < since:
        return False
    return not digests or not all(asset["sha256"] in digests for asset in entry.assets)


def _summary(verb: str, report: Report) -> int:
    done, already, failed = len(report.done), len(report.already), len(report.failed)
    print(f"{verb}: {done} {verb}ed, {already} already there, {failed} failed")
    for label, reason in report.failed:
        print(f"  failed: {label}: {reason}", file=sys.stderr)
    return 1 if report.failed else 0


def run_export(args: argparse.Namespace, config: Config) -> int:
    # In the command only: see proxy.commands.
    import httpx

    from proxy.bundle.transfer import Report, catalog, export_entries

    try:
        repository = repository_name(config, args.repository)
        keys = _keys_of(args.lockfile)
        digests, since = _since(args.since)
        key = load_private_key(args.sign_key) if args.sign_key else None
    except (DaemonAddressError, LockfileError, BundleError) as error:
        return _fail(str(error))
    output: Path = args.output
    report = Report()
    fd, tmp = tempfile.mkstemp(dir=output.parent if output.parent.is_dir() else None, suffix=".partial")
    os.close(fd)
    try:
        writer = BundleWriter(Path(tmp))
        try:
            with _daemon(config, repository) as base, httpx.Client(timeout=300) as client:
                chosen = [e for e in catalog(client, base, repository) if _wanted(e, keys, digests, since)]
                written = export_entries(client, base, repository, chosen, writer, report, print)
        except BaseException:
            writer.abort()
            raise
        created = datetime.now(UTC).isoformat(timespec="seconds")
        writer.finish(repository, created, written, key)
        os.replace(tmp, output)
    except (StoreUnavailable, httpx.HTTPError, OSError) as error:
        return _fail(f"nothing exported: {error}")
    finally:
        Path(tmp).unlink(missing_ok=True)
    print(f"{output}: {len(report.done)} package versions{' (signed)' if key else ''}")
    return _summary("export", report)


def run_import(args: argparse.Namespace, config: Config) -> int:
    # In the command only: see proxy.commands.
    import httpx

    from proxy.bundle.transfer import Report, import_bundle

    try:
        repository = repository_name(config, args.repository)
        trust = load_public_key(args.trust_key) if args.trust_key else None
    except (DaemonAddressError, BundleError) as error:
        return _fail(str(error))
    report = Report()
    try:
        with (
            open_bundle(args.bundle, trust) as bundle,
            _daemon(config, repository) as base,
            httpx.Client(timeout=300) as client,
        ):
            import_bundle(client, base, repository, bundle, report, print)
    except BundleError as error:
        return _fail(str(error))
    except (StoreUnavailable, httpx.HTTPError, OSError) as error:
        return _fail(f"import stopped: {error}")
    return _summary("import", report)
