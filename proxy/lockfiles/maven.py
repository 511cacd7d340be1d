"""Maven coordinate lists: one ``group:artifact:version[:packaging[:classifier]]`` a line, or lines as
``mvn dependency:list`` prints them (``group:artifact:type[:classifier]:version:scope``, with ``[INFO]``
prefixes, `` -- module ...`` and `` (optional)`` suffixes). Blank lines and ``#`` comments are skipped."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from proxy.lockfiles.entries import LockfileError, MavenEntry

SCOPES = frozenset({"compile", "runtime", "test", "provided", "system", "import"})
_PART = re.compile(r"[A-Za-z0-9_.\-]+")


def read_coordinates(path: Path, text: str) -> Iterator[MavenEntry]:
    for number, raw in enumerate(text.splitlines(), 1):
        # Lines of mvn's own output ("[INFO] ...") that are not coordinates are its chatter.
        logged = re.match(r"\s*\[\w+\]", raw) is not None
        line = re.sub(r"^\[\w+\]\s*", "", raw.strip())
        line = line.split(" -- ", 1)[0].replace("(optional)", "").strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if not all(_PART.fullmatch(part) for part in parts) or len(parts) < 3:
            if logged:
                continue
            raise LockfileError(path, f"not group:artifact:version: {line!r}", f"line {number}")
        if len(parts) in (5, 6) and parts[-1] in SCOPES:  # dependency:list
            group, artifact, packaging = parts[:3]
            classifier = parts[3] if len(parts) == 6 else None
            yield MavenEntry(group, artifact, parts[-2], packaging, classifier)
        elif len(parts) <= 5:
            yield MavenEntry(*parts)  # type: ignore[arg-type]
        elif not logged:
            raise LockfileError(path, f"not group:artifact:version: {line!r}", f"line {number}")
