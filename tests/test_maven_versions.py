"""Maven's version order (proxy.formats.maven.versions): the documented orderings, the qualifier rules,
order properties, and - when Maven is installed - agreement with Maven's own ComparableVersion."""

from __future__ import annotations

import itertools
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.formats.maven.versions import MavenVersion, compare_versions, is_snapshot, sort_versions
from tests.fakes.maven_client import maven_artifact_jar

# Strictly increasing, as in Maven's own ComparableVersionTest.
QUALIFIER_ORDER = [
    "1-alpha2snapshot", "1-alpha2", "1-alpha-123", "1-beta-2", "1-beta123", "1-m2", "1-m11", "1-rc", "1-cr2",
    "1-rc123", "1-SNAPSHOT", "1", "1-sp", "1-sp2", "1-sp123", "1-abc", "1-def", "1-pom-1", "1-1-snapshot",
    "1-1", "1-2", "1-123",
]  # fmt: skip
NUMBER_ORDER = [
    "2.0", "2.0.a", "2-1", "2.0.2", "2.0.123", "2.1.0", "2.1-a", "2.1b", "2.1-c", "2.1-1", "2.1.0.1", "2.2",
    "2.123", "11.a2", "11.a11", "11.b2", "11.b11", "11.m2", "11.m11", "11", "11.a", "11b", "11c", "11m",
]  # fmt: skip
EQUAL = [
    [
        "1",
        "1.0",
        "1.0.0",
        "1-0",
        "1-0.0",
        "1.0-0",
        "1-ga",
        "1.ga",
        "1-final",
        "1.0.final",
        "1-release",
        "1GA",
    ],
    ["1-rc1", "1-cr1", "1rc1", "1-CR-1", "1.0-RC-1"],
    ["1a1", "1-alpha-1", "1-alpha1", "1.0-ALPHA-1"],
    ["1b2", "1-beta-2", "1-beta2"],
    ["1m3", "1-milestone-3", "1-milestone3"],
    ["1.0-SNAPSHOT", "1-snapshot", "1.0.0-snapshot"],
    ["1.010", "1.10", "1.0010"],
]


def test_the_documented_order() -> None:
    assert sort_versions(["1.0.1", "1.0-sp1", "1.0", "1.0-SNAPSHOT", "1.0-beta", "1.0-alpha-1"]) == [
        "1.0-alpha-1",
        "1.0-beta",
        "1.0-SNAPSHOT",
        "1.0",
        "1.0-sp1",
        "1.0.1",
    ]


@pytest.mark.parametrize("ordered", [QUALIFIER_ORDER, NUMBER_ORDER], ids=["qualifiers", "numbers"])
def test_known_orders_are_strictly_increasing(ordered: list[str]) -> None:
    for i, low in enumerate(ordered):
        for high in ordered[i + 1 :]:
            assert compare_versions(low, high) == -1, (low, high)
            assert compare_versions(high, low) == 1, (high, low)


@pytest.mark.parametrize("group", EQUAL, ids=lambda g: g[0])
def test_aliases_and_padding_compare_equal(group: list[str]) -> None:
    first = MavenVersion(group[0])
    for other in group[1:]:
        assert MavenVersion(other) == first, other
        assert hash(MavenVersion(other)) == hash(first)
        assert MavenVersion(other).canonical == first.canonical


def test_big_numbers_and_unknown_qualifiers() -> None:
    assert compare_versions("1.999999999", "1.1000000000") == -1  # int vs long digits
    assert compare_versions("1.999999999999999999", "1.1000000000000000000") == -1  # long vs big integer
    assert compare_versions("1.123456789012345678901234567890", "1.123456789012345678901234567891") == -1
    assert compare_versions("1-sp", "1-abc") == -1  # unknown qualifiers sort after the known ones
    assert compare_versions("1-abc", "1-abd") == -1  # ... alphabetically
    assert compare_versions("1-xyz", "1.1") == -1


def test_sort_keeps_distinct_spellings() -> None:
    # 1.0 and 1 are equal versions but different folders of a repository: both stay listed
    assert sort_versions(["2", "1.0", "1", "1.0"]) == ["1.0", "1", "2"]


def test_is_snapshot() -> None:
    assert is_snapshot("1.0-SNAPSHOT")
    assert not is_snapshot("1.0")
    assert not is_snapshot("1.0-20261125.193057-1")


_TOKENS = st.sampled_from(
    ["0", "1", "2", "01", "10", "123", "1234567890", "12345678901234567890", ".", "-", "-", ".", "a", "b",
     "m", "alpha", "beta", "milestone", "rc", "cr", "snapshot", "SNAPSHOT", "ga", "final", "release", "sp",
     "x", "RC"]
)  # fmt: skip
VERSIONS = st.lists(_TOKENS, min_size=1, max_size=7).map("".join)


@given(VERSIONS, VERSIONS)
def test_order_properties(a: str, b: str) -> None:
    va, vb = MavenVersion(a), MavenVersion(b)
    assert va.compare(va) == 0
    assert va.compare(vb) == -vb.compare(va)
    assert (va.compare(vb) == 0) == (va == vb)
    if va == vb:
        assert va.canonical == vb.canonical  # (not the converse: Maven's "a" < "0a", both print "a")


_NUMBERS = st.lists(st.integers(0, 20).map(str), min_size=1, max_size=4).map(".".join)
_QUALIFIERS = st.sampled_from(
    ["", "-alpha-1", "-beta", "-M2", "-rc1", "-CR2", "-SNAPSHOT", ".Final", "-sp1", "-jre"]
)
REALISTIC = st.tuples(_NUMBERS, _QUALIFIERS).map("".join)


@given(REALISTIC, REALISTIC, REALISTIC)
def test_realistic_versions_are_totally_ordered(a: str, b: str, c: str) -> None:
    # Maven's order is not transitive for every string ("x." < ".b123b" < "0" < "x."), but it is for
    # the versions people publish, which is what sorting maven-metadata.xml relies on.
    va, vb, vc = sorted([MavenVersion(a), MavenVersion(b), MavenVersion(c)])
    assert va <= vb <= vc and va <= vc


def _maven_says(jar: str, versions: list[str]) -> tuple[list[str], list[int]]:
    """Canonical forms and consecutive comparisons, as Maven's ComparableVersion main() prints them."""
    main = "org.apache.maven.artifact.versioning.ComparableVersion"
    out = subprocess.run(
        ["java", "-cp", jar, main, *versions], capture_output=True, text=True, check=True
    ).stdout
    canonical: list[str] = []
    comparisons: list[int] = []
    for line in out.splitlines()[1:]:
        if line[:1].isdigit():
            canonical.append(line.split(" -> ", 1)[1].split("; tokens: ", 1)[0])
        else:
            op = line.split()[1]
            comparisons.append({"<": -1, "==": 0, ">": 1}[op])
    return canonical, comparisons


@settings(max_examples=4, deadline=None)
@given(st.lists(VERSIONS, min_size=150, max_size=200))
def test_agrees_with_maven(versions: list[str]) -> None:
    jar = str(maven_artifact_jar())
    canonical, comparisons = _maven_says(jar, versions)
    assert canonical == [MavenVersion(v).canonical for v in versions]
    assert comparisons == [compare_versions(a, b) for a, b in itertools.pairwise(versions)]
