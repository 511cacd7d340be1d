"""npm package names and registry paths (pure functions)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.formats.npm.names import (
    InvalidName,
    PackageName,
    Target,
    UnknownPath,
    check_version,
    parse_name,
    parse_path,
)


def test_unscoped_and_scoped_names():
    assert parse_name("left-pad") == PackageName("", "left-pad")
    scoped = parse_name("@e2e/dep")
    assert scoped == PackageName("e2e", "dep")
    assert (scoped.full, scoped.escaped) == ("@e2e/dep", "@e2e%2fdep")
    assert scoped.coordinate.namespace == "e2e" and scoped.coordinate.format == "npm"
    assert parse_name("JSONStream").name == "JSONStream"  # old packages may hold capitals


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("a" * 215, "longer than 214"),
        (".hidden", "must not start with"),
        ("_private", "must not start with"),
        ("@/name", "@scope/name"),
        ("@scope", "@scope/name"),
        ("has space", "URL-safe"),
        ("a/b", "URL-safe"),
        ("node_modules", "reserved"),
        ("@s/.x", "must not start with"),
    ],
)
def test_invalid_names_say_why(text, reason):
    with pytest.raises(InvalidName, match=reason):
        parse_name(text)


def test_new_names_must_be_lower_case():
    with pytest.raises(InvalidName, match="lower case"):
        parse_name("@Scope/Name", new=True)
    assert parse_name("@scope/name", new=True).full == "@scope/name"


def test_tarball_file_names_round_trip():
    package = parse_name("@e2e/dep")
    assert package.tarball_file("1.0.0-beta.1+b7") == "dep-1.0.0-beta.1+b7.tgz"
    assert package.version_of("dep-1.0.0-beta.1+b7.tgz") == "1.0.0-beta.1+b7"
    assert package.version_of("other-1.0.0.tgz") is None
    assert package.version_of("dep-1.0.0.zip") is None


@given(st.from_regex(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(-[a-z0-9.]{1,8})?", fullmatch=True))
def test_version_of_inverts_tarball_file(version):
    package = PackageName("", "pkg-with-dashes")
    assert package.version_of(package.tarball_file(version)) == version
    assert check_version(version) == version


@pytest.mark.parametrize(
    ("tail", "target"),
    [
        ("left-pad", Target("packument", PackageName("", "left-pad"))),
        ("@s/n", Target("packument", PackageName("s", "n"))),  # @s%2fn arrives decoded like this
        ("@s/n/", Target("packument", PackageName("s", "n"))),
        ("@s/n/1.2.3", Target("version", PackageName("s", "n"), "1.2.3")),
        ("left-pad/latest", Target("version", PackageName("", "left-pad"), "latest")),
        (
            "left-pad/-/left-pad-1.0.0.tgz",
            Target("tarball", PackageName("", "left-pad"), "left-pad-1.0.0.tgz"),
        ),
        ("@s/n/-/n-1.0.0.tgz", Target("tarball", PackageName("s", "n"), "n-1.0.0.tgz")),
        ("@s/n/-/@s/n-1.0.0.tgz", Target("tarball", PackageName("s", "n"), "n-1.0.0.tgz")),
        ("-/ping", Target("ping")),
        ("-/whoami", Target("whoami")),
        ("-/v1/search", Target("search")),
        ("-/npm/v1/security/advisories/bulk", Target("audit")),
        ("-/npm/v1/security/audits/quick", Target("audit")),
        ("-/package/@s/n/dist-tags", Target("dist-tags", PackageName("s", "n"))),
        ("-/package/x/dist-tags/beta", Target("dist-tags", PackageName("", "x"), "beta")),
    ],
)
def test_paths(tail, target):
    assert parse_path(tail) == target


@pytest.mark.parametrize(
    "tail", ["", "-/unknown", "x/-/y-1.0.0.tgz", "x/1/2", "@s/n/-/@t/n-1.0.0.tgz", "-/package/x/other"]
)
def test_unknown_paths(tail):
    with pytest.raises(UnknownPath):
        parse_path(tail)


def test_bad_name_in_a_path_is_an_invalid_name():
    with pytest.raises(InvalidName):
        parse_path("_bad/1.0.0")
