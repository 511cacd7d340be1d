"""Lockfiles and coordinate lists read into what the clients would fetch, for ``prefetch``.

``read_lockfile(path)`` recognises the file by its name (and, for a Maven list, by elimination):

- ``package-lock.json``, ``npm-shrinkwrap.json``, ``yarn.lock``: ``NpmEntry`` (name, version, integrity);
- ``requirements*.txt``, ``pylock.toml`` / ``pylock.*.toml``, ``uv.lock``: ``PypiEntry`` (name, version,
  file hashes or names);
- anything else: ``MavenEntry``, one ``group:artifact:version[:packaging[:classifier]]`` a line, or as
  ``mvn dependency:list`` prints them.

A file that cannot be understood raises ``LockfileError`` naming the file, the line or entry, and why.
Entries that are not fetched from a registry (links, workspaces, git or file sources) are left out.
"""

from __future__ import annotations

from pathlib import Path

from proxy.lockfiles.entries import Entry, LockfileError, MavenEntry, NpmEntry, PypiEntry
from proxy.lockfiles.maven import read_coordinates
from proxy.lockfiles.npm import read_package_lock, read_yarn_lock
from proxy.lockfiles.pypi import read_pylock, read_requirements, read_uv_lock

__all__ = ["Entry", "LockfileError", "MavenEntry", "NpmEntry", "PypiEntry", "read_lockfile"]


def read_lockfile(path: Path) -> list[Entry]:
    """The entries of ``path``, without duplicates, in file order."""
    name = path.name
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise LockfileError(path, f"cannot read it: {error}") from None
    entries: list[Entry]
    if name in ("package-lock.json", "npm-shrinkwrap.json"):
        entries = list(read_package_lock(path, text))
    elif name == "yarn.lock":
        entries = list(read_yarn_lock(path, text))
    elif name == "uv.lock":
        entries = list(read_uv_lock(path, text))
    elif name == "pylock.toml" or (name.startswith("pylock.") and name.endswith(".toml")):
        entries = list(read_pylock(path, text))
    elif name.endswith(".txt") and name.startswith(("requirements", "constraints")):
        entries = list(read_requirements(path, text))
    else:
        entries = list(read_coordinates(path, text))
    return list(dict.fromkeys(entries))
