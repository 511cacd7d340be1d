"""The registry of formats: every format the proxy serves, one line each. Adding a format is a new
package under ``proxy/formats/`` whose ``FORMAT`` satisfies ``proxy.formats.format.Format``, and one
line here."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from proxy.formats import maven, npm, pypi
from proxy.formats.format import Format

FORMATS: tuple[Format, ...] = (
    npm.FORMAT,
    pypi.FORMAT,
    maven.FORMAT,
)


def format_names() -> tuple[str, ...]:
    return tuple(f.name for f in FORMATS)


def token_schemes() -> Mapping[str, Callable[[str, str], str]]:
    """How each format sends a token upstream: name -> (username, token) -> ``Authorization`` value."""
    return {f.name: f.token_authorization for f in FORMATS}
