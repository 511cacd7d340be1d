"""What a lockfile entry asks ``prefetch`` to fetch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class LockfileError(Exception):
    """A lockfile that cannot be read; the message names the file, where, and why."""

    def __init__(self, path: Path, reason: str, where: str | None = None) -> None:
        super().__init__(f"{path}{f': {where}' if where else ''}: {reason}")


@dataclass(frozen=True)
class NpmEntry:
    """A package version's tarball; ``integrity`` is its SRI string (e.g. ``sha512-...``) when known."""

    name: str
    version: str
    integrity: str | None = None

    def __str__(self) -> str:
        return f"npm {self.name}@{self.version}"


@dataclass(frozen=True)
class PypiEntry:
    """Files of one project version: those with one of ``sha256`` digests or ``filenames`` when given,
    else every file of ``version``."""

    name: str
    version: str
    sha256: frozenset[str] = frozenset()
    filenames: frozenset[str] = frozenset()

    def __str__(self) -> str:
        return f"pypi {self.name}=={self.version}"


@dataclass(frozen=True)
class MavenEntry:
    """A POM and, unless the packaging is ``pom``, its artifact; ``packaging`` ``None`` means the POM's
    own (``jar`` when it names none). A ``probe`` is a POM that Maven asks for while it collects
    dependencies (one a POM declares), which no upstream need have: Maven goes on without it."""

    group: str
    artifact: str
    version: str
    packaging: str | None = None
    classifier: str | None = None
    probe: bool = False

    def __str__(self) -> str:
        extra = "".join(f":{part}" for part in (self.packaging, self.classifier) if part)
        return f"maven {self.group}:{self.artifact}:{self.version}{extra}"


Entry = NpmEntry | PypiEntry | MavenEntry
