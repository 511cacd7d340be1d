"""npm's ``package-lock.json`` / ``npm-shrinkwrap.json`` (lockfile versions 1 to 3) and ``yarn.lock``
(yarn 1, and the ``npm:`` resolutions of yarn 2+)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from proxy.lockfiles.entries import LockfileError, NpmEntry

# A version from a registry; anything else (git URLs, file: and link: specs, tarball URLs) is not one.
_VERSION = re.compile(r"\d+\.\d+\.\d+[-+.\w]*")


def read_package_lock(path: Path, text: str) -> Iterator[NpmEntry]:
    try:
        lock = json.loads(text)
    except ValueError as error:
        raise LockfileError(path, f"not JSON: {error}") from None
    if not isinstance(lock, dict):
        raise LockfileError(path, "not a package-lock (expected a JSON object)")
    packages = lock.get("packages")
    if isinstance(packages, dict):
        for key, meta in packages.items():
            if key and isinstance(meta, dict):
                entry = _from_lock_entry(path, key.rsplit("node_modules/", 1)[-1], meta)
                if entry:
                    yield entry
    elif isinstance(lock.get("dependencies"), dict):
        yield from _v1(path, lock["dependencies"])
    else:
        raise LockfileError(path, "has neither 'packages' nor 'dependencies'")


def _from_lock_entry(path: Path, name: str, meta: dict[str, Any]) -> NpmEntry | None:
    if meta.get("link") or meta.get("inBundle") or meta.get("bundled"):
        return None  # a workspace, or inside another package's tarball
    resolved = meta.get("resolved")
    if isinstance(resolved, str) and not resolved.startswith(("http://", "https://")):
        return None  # file:, git+...
    version = meta.get("version")
    if not isinstance(version, str):
        return None  # the root of a workspace member
    name = meta.get("name") if isinstance(meta.get("name"), str) else name
    if version.startswith("npm:"):  # an alias in lockfile version 1: "npm:real@1.0.0"
        name, _, version = version[4:].rpartition("@")
    if not _VERSION.fullmatch(version):
        return None
    integrity = meta.get("integrity")
    return NpmEntry(name, version, integrity if isinstance(integrity, str) else None)


def _v1(path: Path, dependencies: dict[str, Any]) -> Iterator[NpmEntry]:
    for name, meta in dependencies.items():
        if not isinstance(meta, dict):
            raise LockfileError(path, "not an object", f"dependencies.{name}")
        entry = _from_lock_entry(path, name, meta)
        if entry:
            yield entry
        if isinstance(meta.get("dependencies"), dict):
            yield from _v1(path, meta["dependencies"])


def _package_name(spec: str) -> str:
    """``@scope/name@^1`` -> ``@scope/name``; ``name@npm:^1`` -> ``name``."""
    at = spec.find("@", 1)
    return spec if at < 0 else spec[:at]


def read_yarn_lock(path: Path, text: str) -> Iterator[NpmEntry]:
    for header, fields, line in _yarn_blocks(text):
        if header.startswith("__metadata"):
            continue
        spec = header.split(",", 1)[0].strip().strip('"')
        name = _package_name(spec)
        resolution = fields.get("resolution")
        if resolution is not None:  # yarn 2+: only what the npm protocol resolved comes from a registry
            resolved_name, _, version = resolution.rpartition("@npm:")
            if not resolved_name:
                continue
            yield NpmEntry(resolved_name, version)
            continue
        version = fields.get("version")
        if version is None:
            raise LockfileError(path, "no version", f"line {line}")
        resolved = fields.get("resolved", "")
        if resolved and not resolved.startswith(("http://", "https://")):
            continue
        if spec[len(name) + 1 :].startswith("npm:"):  # an alias: "alias@npm:real@^1"
            name = _package_name(spec[len(name) + 5 :])
        if _VERSION.fullmatch(version):
            yield NpmEntry(name, version, fields.get("integrity"))


def _yarn_blocks(text: str) -> Iterator[tuple[str, dict[str, str], int]]:
    header: str | None = None
    fields: dict[str, str] = {}
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        if not raw[0].isspace():
            if header is not None:
                yield header, fields, start
            header, fields, start = raw.rstrip().rstrip(":"), {}, number
            continue
        if raw.startswith(("    ", "\t\t")):
            continue  # nested: dependencies of the entry
        key, _, value = raw.strip().partition(" ")
        fields[key.rstrip(":").strip('"')] = value.strip().strip('"')
    if header is not None:
        yield header, fields, start
