"""Maven's version order: a faithful port of ``ComparableVersion`` as Maven 3.8 ships it.

Maven orders versions by splitting them into items: numbers (``1``, ``010`` == ``10``), qualifiers
(``alpha``, ``beta``, ``milestone``, ``rc``, ``snapshot``, ``""`` for a release, ``sp``; ``a1``/``b1``/``m1``
are ``alpha-1``/``beta-1``/``milestone-1``, ``ga``/``final``/``release`` are ``""``, ``cr`` is ``rc``,
other words sort after all of them, alphabetically) and sub-lists (what follows a ``-`` or a change
between digits and letters). Trailing "null" items (``0``, ``""``, empty lists) are dropped, so
``1.0`` == ``1`` == ``1-ga``. So::

    1.0-alpha-1 < 1.0-beta < 1.0-SNAPSHOT < 1.0 < 1.0-sp1 < 1.0.1

The rules, including their corner cases, follow the reference implementation (the order is not
guaranteed to be total for pathological strings, there as here); strings compare as Java's
``String.compareTo`` does (by UTF-16 code unit) and only BMP decimal digits count as digits, as in
Java's ``Character.isDigit(char)``.

Pure functions and immutable values: safe from any thread.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

_QUALIFIERS = ("alpha", "beta", "milestone", "rc", "snapshot", "", "sp")
_ALIASES = {"ga": "", "final": "", "release": "", "cr": "rc"}
_SHORT = {"a": "alpha", "b": "beta", "m": "milestone"}
_RELEASE_INDEX = str(_QUALIFIERS.index(""))
_MAX_INT_DIGITS = 9  # IntItem; up to 18 digits a LongItem, beyond that a BigIntegerItem
_MAX_LONG_DIGITS = 18


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)


def _java_compare(a: str, b: str) -> int:
    """Java's String.compareTo: lexicographic by UTF-16 code unit (big-endian bytes sort the same)."""
    ka, kb = a.encode("utf-16-be", "surrogatepass"), b.encode("utf-16-be", "surrogatepass")
    return (ka > kb) - (ka < kb)


def _comparable_qualifier(qualifier: str) -> str:
    if qualifier in _QUALIFIERS:
        return str(_QUALIFIERS.index(qualifier))
    return f"{len(_QUALIFIERS)}-{qualifier}"


@dataclass(frozen=True)
class _Number:
    """IntItem, LongItem or BigIntegerItem: ``width`` 0, 1 or 2 by digit count (they never mix)."""

    width: int
    value: int

    def is_null(self) -> bool:
        return self.value == 0

    def compare(self, other: _Item | None) -> int:
        if other is None:
            return 0 if self.value == 0 else 1  # 1.0 == 1, 1.1 > 1
        if isinstance(other, _Number):
            if self.width != other.width:
                return _sign(self.width - other.width)
            return _sign(self.value - other.value)
        return 1  # 1.1 > 1-sp, 1.1 > 1-1

    def __str__(self) -> str:
        return str(self.value)


@dataclass(frozen=True)
class _Qualifier:
    value: str

    def is_null(self) -> bool:
        return _comparable_qualifier(self.value) == _RELEASE_INDEX

    def compare(self, other: _Item | None) -> int:
        if other is None:  # 1-rc < 1, 1-ga == 1, 1-sp > 1
            return _java_compare(_comparable_qualifier(self.value), _RELEASE_INDEX)
        if isinstance(other, _Qualifier):
            return _java_compare(_comparable_qualifier(self.value), _comparable_qualifier(other.value))
        return -1  # 1.any < 1.1, 1.any < 1-1

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class _List:
    items: tuple[_Item, ...]

    def is_null(self) -> bool:
        return not self.items

    def compare(self, other: _Item | None) -> int:
        if other is None:
            for item in self.items:
                result = item.compare(None)
                if result:
                    return result
            return 0
        if isinstance(other, _Number):
            return -1  # 1-1 < 1.0.x
        if isinstance(other, _Qualifier):
            return 1  # 1-1 > 1-sp
        for i in range(max(len(self.items), len(other.items))):
            left = self.items[i] if i < len(self.items) else None
            right = other.items[i] if i < len(other.items) else None
            if left is not None:
                result = left.compare(right)
            else:  # this list is shorter: ask the other side and invert
                result = -right.compare(None) if right is not None else 0
            if result:
                return result
        return 0

    def __str__(self) -> str:
        out = ""
        for item in self.items:
            if out:
                out += "-" if isinstance(item, _List) else "."
            out += str(item)
        return out


_Item = _Number | _Qualifier | _List


class _Builder:
    """A mutable list while parsing; frozen (and normalized) into a _List at the end."""

    def __init__(self) -> None:
        self.items: list[_Item | _Builder] = []

    def child(self) -> _Builder:
        child = _Builder()
        self.items.append(child)
        return child

    def freeze(self) -> _List:
        items = [item.freeze() if isinstance(item, _Builder) else item for item in self.items]
        # normalize(): drop trailing null items, stopping at the first non-null that is not a list
        for i in range(len(items) - 1, -1, -1):
            if items[i].is_null():
                del items[i]
            elif not isinstance(items[i], _List):
                break
        return _List(tuple(items))


def _strip_leading_zeroes(digits: str) -> str:
    stripped = digits.lstrip("0")  # only ASCII '0', as the reference does
    return stripped or "0"


def _parse_item(is_digit: bool, text: str) -> _Item:
    if is_digit:
        digits = _strip_leading_zeroes(text)
        width = 0 if len(digits) <= _MAX_INT_DIGITS else 1 if len(digits) <= _MAX_LONG_DIGITS else 2
        return _Number(width, int(digits))
    return _qualifier(text, followed_by_digit=False)


def _qualifier(text: str, *, followed_by_digit: bool) -> _Qualifier:
    if followed_by_digit and len(text) == 1:
        text = _SHORT.get(text, text)
    return _Qualifier(_ALIASES.get(text, text))


def _is_digit(char: str) -> bool:
    return char.isdecimal() and ord(char) < 0x10000


def _parse(version: str) -> _List:
    text = version.lower()
    root = current = _Builder()
    is_digit = False
    start = 0
    for i, char in enumerate(text):
        if char in ".-":
            current.items.append(_Number(0, 0) if i == start else _parse_item(is_digit, text[start:i]))
            start = i + 1
            if char == "-":
                current = current.child()
        elif _is_digit(char):
            if not is_digit and i > start:
                # "X1": the letters, then the number in a sub-list of their own
                if current.items:
                    current = current.child()
                current.items.append(_qualifier(text[start:i], followed_by_digit=True))
                start = i
                current = current.child()
            is_digit = True
        else:
            if is_digit and i > start:
                current.items.append(_parse_item(True, text[start:i]))
                start = i
                current = current.child()
            is_digit = False
    if len(text) > start:
        if not is_digit and current.items:
            current = current.child()
        current.items.append(_parse_item(is_digit, text[start:]))
    return root.freeze()


@functools.total_ordering
class MavenVersion:
    """A version in Maven's order. ``str()`` is the text as given; ``canonical`` is Maven's form."""

    __slots__ = ("_items", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._items = _parse(text)

    @property
    def canonical(self) -> str:
        return str(self._items)

    def compare(self, other: MavenVersion) -> int:
        return _sign(self._items.compare(other._items))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MavenVersion) and self._items == other._items

    def __lt__(self, other: MavenVersion) -> bool:
        return self.compare(other) < 0

    def __hash__(self) -> int:
        return hash(self._items)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"MavenVersion({self.text!r})"


def sort_versions(versions: Iterable[str]) -> list[str]:
    """Distinct version strings, oldest first in Maven's order (equal ones, like 1.0 and 1, keep their
    input order: they are different folders)."""
    unique = list(dict.fromkeys(versions))
    return sorted(unique, key=functools.cmp_to_key(lambda a, b: compare_versions(a, b)))


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as Maven orders ``a`` and ``b``."""
    return _cached(a).compare(_cached(b))


@functools.lru_cache(maxsize=4096)
def _cached(text: str) -> MavenVersion:
    return MavenVersion(text)


def is_snapshot(version: str) -> bool:
    """A SNAPSHOT base version such as ``1.0-SNAPSHOT`` (every build of it lives in that folder)."""
    return version.endswith("-SNAPSHOT")
