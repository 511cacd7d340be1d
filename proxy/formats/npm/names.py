"""npm package names and the paths of the npm registry API under ``/npm/{repo}/``.

A package name is unscoped (``left-pad``) or scoped (``@scope/name``); clients send a scoped name as
``@scope%2fname`` (either case of ``%2f``) or ``@scope/name``. aiohttp hands handlers the decoded path,
so both spellings arrive as ``@scope/name`` and one parser covers them. Pure functions, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from proxy.store.catalog import PackageCoordinate

MAX_NAME_LENGTH = 214
# What npm's name validation accepts in each part: characters that survive encodeURIComponent unchanged.
# Old packages may hold capitals, so reading accepts them; publishing requires lower case.
_PART = re.compile(r"[A-Za-z0-9\-~!*'()][A-Za-z0-9\-._~!*'()]*")
_RESERVED = frozenset({"node_modules", "favicon.ico"})
# Semver with an optional build part, and the looser spellings old packages carry.
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+\-_]*")


class InvalidName(ValueError):
    """A package name or version that npm's rules refuse; the message says why (a 400)."""


class UnknownPath(ValueError):
    """A path that is no part of the npm registry API (a 404)."""


def full_name(coordinate: PackageCoordinate) -> str:
    """A package's name as npm writes it: ``@scope/name``, or ``name`` without a scope."""
    return f"@{coordinate.namespace}/{coordinate.name}" if coordinate.namespace else coordinate.name


@dataclass(frozen=True)
class PackageName:
    scope: str  # without the '@'; '' when unscoped
    name: str

    @property
    def full(self) -> str:
        return f"@{self.scope}/{self.name}" if self.scope else self.name  # as full_name, without a coordinate

    @property
    def escaped(self) -> str:
        """The name as one path segment, as npm asks registries for it."""
        return f"@{self.scope}%2f{self.name}" if self.scope else self.name

    @property
    def coordinate(self) -> PackageCoordinate:
        return PackageCoordinate("npm", self.scope, self.name)

    def tarball_file(self, version: str) -> str:
        """The canonical file name of a version's tarball (also its asset name in the catalog)."""
        return f"{self.name}-{version}.tgz"

    def version_of(self, file: str) -> str | None:
        """The version a tarball file name stands for, or None when it is not one of this package's."""
        prefix = f"{self.name}-"
        if not file.startswith(prefix) or not file.endswith(".tgz"):
            return None
        version = file[len(prefix) : -len(".tgz")]
        return version if _VERSION.fullmatch(version) else None


def parse_name(text: str, *, new: bool = False) -> PackageName:
    """``name`` or ``@scope/name`` -> PackageName; ``new`` applies the stricter rules for publishing."""
    if not text:
        raise InvalidName("package name is empty")
    if len(text) > MAX_NAME_LENGTH:
        raise InvalidName(f"package name is longer than {MAX_NAME_LENGTH} characters")
    if text.startswith("@"):
        scope, slash, name = text[1:].partition("/")
        if not slash or not scope:
            raise InvalidName(f"scoped package name {text!r} must look like @scope/name")
        _check_part(scope, "scope")
    else:
        scope, name = "", text
    _check_part(name, "name")
    if not scope and name.lower() in _RESERVED:
        raise InvalidName(f"package name {name!r} is reserved")
    if new and text != text.lower():
        raise InvalidName(f"new package names must be lower case, got {text!r}")
    return PackageName(scope, name)


def _check_part(part: str, what: str) -> None:
    if part.startswith((".", "_")):
        raise InvalidName(f"package {what} {part!r} must not start with '.' or '_'")
    if not _PART.fullmatch(part):
        raise InvalidName(
            f"package {what} {part!r} may only hold URL-safe characters (letters, digits, -._~!*'())"
        )


def check_version(version: str) -> str:
    if not _VERSION.fullmatch(version) or len(version) > 256:
        raise InvalidName(f"{version!r} is not a valid version")
    return version


# -- request paths ------------------------------------------------------------------------------
Kind = Literal[
    "packument",  # /{pkg}                              GET (full or abbreviated), PUT (publish)
    "version",  # /{pkg}/{version-or-tag}
    "tarball",  # /{pkg}/-/{file}.tgz, also /@scope/name/-/@scope/name-V.tgz as npm publish writes it
    "dist-tags",  # /-/package/{pkg}/dist-tags[/{tag}]
    "ping",  # /-/ping
    "whoami",  # /-/whoami
    "search",  # /-/v1/search
    "audit",  # /-/npm/v1/security/advisories/bulk, /-/npm/v1/security/audits/quick
]


@dataclass(frozen=True)
class Target:
    """What a path under ``/npm/{repo}/`` asks for."""

    kind: Kind
    package: PackageName | None = None
    arg: str = ""  # the version or tag, the tarball file, or the dist-tag


_SPECIAL: dict[tuple[str, ...], Kind] = {
    ("ping",): "ping",
    ("whoami",): "whoami",
    ("v1", "search"): "search",
    ("npm", "v1", "security", "advisories", "bulk"): "audit",
    ("npm", "v1", "security", "audits", "quick"): "audit",
    ("npm", "v1", "security", "audits"): "audit",
}


def parse_path(tail: str) -> Target:
    """Parse the decoded path after ``/npm/{repo}/``: UnknownPath for what is no npm API path, InvalidName
    for a package name npm's rules refuse."""
    parts = tail.split("/")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()  # a trailing slash
    if parts == [""]:
        raise UnknownPath("the registry root lists no packages; ask for /{package}")
    if parts[0] == "-":
        return _parse_special(parts[1:], tail)
    package, rest = _take_package(parts)
    if not rest:
        return Target("packument", package)
    if len(rest) == 1:
        return Target("version", package, rest[0])
    if rest[0] == "-" and (len(rest) == 2 or (len(rest) == 3 and rest[1] == f"@{package.scope}")):
        return _tarball(package, rest[-1])
    raise UnknownPath(f"not an npm registry path: /{tail}")


def _parse_special(parts: list[str], tail: str) -> Target:
    kind = _SPECIAL.get(tuple(parts))
    if kind is not None:
        return Target(kind)
    if len(parts) >= 3 and parts[0] == "package":
        package, rest = _take_package(parts[1:])
        if rest and rest[0] == "dist-tags" and len(rest) <= 2:
            return Target("dist-tags", package, rest[1] if len(rest) == 2 else "")
    raise UnknownPath(f"not an npm registry path: /{tail}")


def _take_package(parts: list[str]) -> tuple[PackageName, list[str]]:
    if parts[0].startswith("@"):
        if len(parts) < 2:
            raise InvalidName(f"scoped package name {parts[0]!r} must look like @scope/name")
        return parse_name(f"{parts[0]}/{parts[1]}"), parts[2:]
    return parse_name(parts[0]), parts[1:]


def _tarball(package: PackageName, file: str) -> Target:
    if package.version_of(file) is None:
        raise UnknownPath(f"{file!r} is not a tarball name of package {package.full}")
    return Target("tarball", package, file)
