"""Human-friendly sizes ("20GiB") and durations ("1h30m") as written in the configuration file.

Pure functions with no state; safe to call from anywhere. Errors are ``ValueError`` whose message
lists the accepted forms, so the loader can pass it to the user as is.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

_SIZE_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE_FORMS = (
    'a whole number of bytes (512) or a number with a unit, e.g. "500MB", "20GiB", "1.5GiB"; '
    "units: B, KB, MB, GB, TB (1000-based), KiB, MiB, GiB, TiB (1024-based)"
)
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([A-Za-z]*)", re.ASCII)

_DURATION_UNITS: dict[str, float] = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_FORMS = (
    'seconds as a number (30, 1.5) or numbers with units, e.g. "500ms", "30s", "5m", "12h", "2d", "1h30m"'
)
# "ms" comes before "m" so that "500ms" is not read as 500 minutes followed by garbage.
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)\s*", re.ASCII)
_DURATION = re.compile(rf"(?:{_DURATION_PART.pattern})+", re.ASCII)
_PLAIN_NUMBER = re.compile(r"\d+(?:\.\d+)?", re.ASCII)


def parse_size(value: int | str) -> int:
    """Return the number of bytes *value* stands for: an int, or a string like "20GiB" or "1.5GB"."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"size must not be negative: {value}; use {_SIZE_FORMS}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"size must be {_SIZE_FORMS}")
    text = value.strip()
    match = _SIZE.fullmatch(text)
    multiplier = _SIZE_UNITS.get(match.group(2).lower()) if match else None
    if match is None or multiplier is None:
        raise ValueError(f"bad size {value!r}: {_reason(text)}use {_SIZE_FORMS}")
    # Decimal keeps "1.5GiB" exact; a fraction of a byte is dropped.
    return int(Decimal(match.group(1)) * multiplier)


def parse_duration(value: int | float | str) -> float:
    """Return the seconds *value* stands for: a number of seconds, or a string like "5m" or "1h30m"."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"duration must be finite and not negative: {value}; use {_DURATION_FORMS}")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"duration must be {_DURATION_FORMS}")
    text = value.strip()
    if _PLAIN_NUMBER.fullmatch(text):
        return float(text)
    if not _DURATION.fullmatch(text):
        raise ValueError(f"bad duration {value!r}: {_reason(text)}use {_DURATION_FORMS}")
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in _DURATION_PART.findall(text))


def _reason(text: str) -> str:
    """Say what is wrong with a rejected string before listing the accepted forms."""
    if not text:
        return "it is empty; "
    if text.startswith("-"):
        return "it must not be negative; "
    return ""
