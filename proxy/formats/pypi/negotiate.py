"""Content negotiation for the simple API (PEP 691): which representation an ``Accept`` header asks for.

Offered: PEP 691 JSON, PEP 503 HTML under its versioned name, plain ``text/html``. Each media range's
quality follows RFC 9110: the most specific range that matches a type decides its q (``type/subtype``
over ``type/*`` over ``*/*``); q=0 refuses. The highest quality wins; at equal quality a type named
exactly beats one reached through a wildcard, and then named types prefer JSON, wildcards prefer
``text/html``: a client that only says ``*/*`` (or sends no ``Accept`` at all) predates PEP 691 and
expects the HTML every simple index served before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"

Representation = Literal["json", "html"]


@dataclass(frozen=True)
class Choice:
    content_type: str  # what the response's Content-Type says
    representation: Representation


# (media type, choice, rank when named exactly, rank when reached through a wildcard)
_OFFERS: tuple[tuple[str, Choice, int, int], ...] = (
    (JSON_V1, Choice(JSON_V1, "json"), 2, 0),
    (HTML_V1, Choice(HTML_V1, "html"), 1, 1),
    (TEXT_HTML, Choice("text/html; charset=utf-8", "html"), 0, 2),
)
# PEP 691's "latest" names stand for the newest version the server speaks, here v1.
_ALIASES = {
    "application/vnd.pypi.simple.latest+json": JSON_V1,
    "application/vnd.pypi.simple.latest+html": HTML_V1,
}
_DEFAULT = _OFFERS[2][1]


def _ranges(accept: str) -> list[tuple[str, float]]:
    ranges = []
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if not media:
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    quality = 0.0  # a q we cannot read is no consent
        media = media.lower()
        ranges.append((_ALIASES.get(media, media), quality))
    return ranges


def _specificity(media_range: str, offered: str) -> int:
    """How specifically ``media_range`` names ``offered``: 3 exactly, 2 ``type/*``, 1 ``*/*``, 0 not."""
    if media_range == offered:
        return 3
    kind, _, subtype = media_range.partition("/")
    if subtype == "*" and offered.startswith(kind + "/"):
        return 2
    return 1 if media_range == "*/*" else 0


def _match(ranges: list[tuple[str, float]], offered: str) -> tuple[float, int]:
    """(quality, specificity) of ``offered`` under the most specific range that names it."""
    best_specificity, quality = 0, 0.0
    for media_range, q in ranges:
        specificity = _specificity(media_range, offered)
        # At equal specificity the most generous wins: a repeated range should not hide an accept.
        if specificity > best_specificity or (
            specificity == best_specificity and specificity and q > quality
        ):
            best_specificity, quality = specificity, q
    return quality, best_specificity


def choose(accept: str | None) -> Choice | None:
    """The representation to serve, or None when nothing offered is acceptable (406)."""
    if accept is None or not accept.strip():
        return _DEFAULT
    ranges = _ranges(accept)
    best: Choice | None = None
    best_key: tuple[float, bool, int] = (0.0, False, 0)
    for offered, choice, named_rank, wildcard_rank in _OFFERS:
        quality, specificity = _match(ranges, offered)
        key = (quality, specificity == 3, named_rank if specificity == 3 else wildcard_rank)
        if quality > 0 and key > best_key:
            best, best_key = choice, key
    return best
