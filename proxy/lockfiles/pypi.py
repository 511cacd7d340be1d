"""Python lockfiles: pinned ``requirements.txt`` (``--hash`` options honoured, ``-r`` followed),
``pylock.toml`` (PEP 751) and ``uv.lock``."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from proxy.lockfiles.entries import LockfileError, PypiEntry

_HASH = re.compile(r"(?:^|\s)--hash(?:=|\s+)(\S+)")


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Lines with their ``\\`` continuations joined and comments removed, with the first line's number."""
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        line = raw.split(" #", 1)[0] if not raw.lstrip().startswith("#") else ""
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined = (pending + line).strip()
        pending = ""
        if joined:
            yield start, joined
    if pending.strip():
        yield start, pending.strip()


def read_requirements(path: Path, text: str, seen: frozenset[Path] = frozenset()) -> Iterator[PypiEntry]:
    for number, line in _logical_lines(text):
        where = f"line {number}"
        words = line.split()
        if words[0] in ("-r", "--requirement") or words[0].startswith("--requirement="):
            included = (path.parent / (words[1] if len(words) > 1 else words[0].split("=", 1)[1])).resolve()
            if included in seen:
                raise LockfileError(path, f"{included} includes itself", where)
            try:
                included_text = included.read_text(encoding="utf-8")
            except OSError as error:
                raise LockfileError(path, f"cannot read {included}: {error}", where) from None
            yield from read_requirements(included, included_text, seen | {path.resolve()})
            continue
        if words[0].startswith("-"):
            continue  # --index-url and other options: prefetch goes through the daemon
        options = _HASH.findall(line)
        try:
            requirement = Requirement(_HASH.sub(" ", line).strip())
        except InvalidRequirement as error:
            raise LockfileError(path, f"not a requirement: {error}", where) from None
        pins = [s.version for s in requirement.specifier if s.operator in ("==", "===")]
        if len(pins) != 1 or "*" in pins[0]:
            raise LockfileError(path, f"{requirement.name} is not pinned (name==version)", where)
        hashes = set()
        for value in options:
            algorithm, _, digest = value.partition(":")
            if algorithm != "sha256" or not digest:
                raise LockfileError(path, f"--hash={value}: only --hash=sha256:DIGEST is understood", where)
            hashes.add(digest.lower())
        yield PypiEntry(canonicalize_name(requirement.name), pins[0], frozenset(hashes))


def _toml(path: Path, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise LockfileError(path, f"not TOML: {error}") from None


def _filename(file: dict[str, Any]) -> str | None:
    if isinstance(file.get("name"), str):
        return file["name"]
    url = file.get("url")
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1]) if isinstance(url, str) else None


def read_pylock(path: Path, text: str) -> Iterator[PypiEntry]:
    for index, package in enumerate(_toml(path, text).get("packages", [])):
        where = f"packages[{index}]"
        if not isinstance(package, dict) or not isinstance(package.get("name"), str):
            raise LockfileError(path, "a package needs a name", where)
        files = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]
        if not files or not isinstance(package.get("version"), str):
            continue  # a VCS, directory or archive source: not from an index
        hashes = {f.get("hashes", {}).get("sha256") for f in files if isinstance(f, dict)}
        names = {_filename(f) for f in files if isinstance(f, dict)}
        yield PypiEntry(
            canonicalize_name(package["name"]),
            package["version"],
            frozenset(h.lower() for h in hashes if h),
            frozenset(n for n in names if n),
        )


def read_uv_lock(path: Path, text: str) -> Iterator[PypiEntry]:
    for index, package in enumerate(_toml(path, text).get("package", [])):
        where = f"package[{index}]"
        if not isinstance(package, dict) or not isinstance(package.get("name"), str):
            raise LockfileError(path, "a package needs a name", where)
        source = package.get("source", {})
        if not isinstance(source, dict) or "registry" not in source:
            continue  # editable, virtual, path, git, url: not from an index
        files = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]
        hashes = {
            f["hash"].split(":", 1)[1].lower()
            for f in files
            if isinstance(f, dict) and str(f.get("hash", "")).startswith("sha256:")
        }
        names = {_filename(f) for f in files if isinstance(f, dict)}
        yield PypiEntry(
            canonicalize_name(package["name"]),
            str(package.get("version", "")),
            frozenset(hashes),
            frozenset(n for n in names if n),
        )
