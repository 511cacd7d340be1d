"""Packument merge rules, rendering, integrity checks and publish parsing (pure functions, no HTTP)."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace

import pytest

from proxy.formats.npm.integrity import Digests, mismatch, sri
from proxy.formats.npm.metadata import (
    PlaceDocument,
    abbreviate,
    local_document,
    located_sources,
    merge,
    parse_complete,
    parse_packument,
    render_abbreviated,
    render_full,
    source_located,
    tarball_prefix,
)
from proxy.formats.npm.names import PackageName, parse_name
from proxy.formats.npm.publish import PublishRefused
from proxy.repository.origin import PUBLISHED_DEFAULT
from proxy.store.catalog import PackageRecord, PackageVersionOrigin, PackageVersionRecord
from tests.npm_publish import parse_publish

PKG = PackageName("", "web-helper")
BASE = "http://proxy.test:5080/"


def version(v: str, **extra):
    return {
        "name": "web-helper",
        "version": v,
        "dist": {"tarball": f"https://registry.example.com/web-helper/-/web-helper-{v}.tgz", "shasum": v},
        **extra,
    }


def doc(versions, tags, times=None, **fields):
    return {"name": "web-helper", "versions": {v: version(v) for v in versions}, "dist-tags": tags,
            "time": times or {}, **fields}  # fmt: skip


def test_versions_are_the_union_and_the_first_place_wins():
    local = doc(["1.0.0"], {"latest": "1.0.0"})
    local["versions"]["1.0.0"]["description"] = "from the repository"
    upstream = doc(["1.0.0", "1.1.0"], {"latest": "1.1.0"})
    merged = merge(PKG, [PlaceDocument("dev", False, local), PlaceDocument("public", True, upstream)])
    assert list(merged.versions) == ["1.0.0", "1.1.0"]
    assert merged.versions["1.0.0"]["description"] == "from the repository"
    assert merged.sources["1.0.0"].place == "dev" and not merged.sources["1.0.0"].upstream
    assert merged.sources["1.0.0"].tarball == ""  # a local version is served from the catalog
    source = merged.sources["1.1.0"]
    assert (source.place, source.upstream, source.shasum) == ("public", True, "1.1.0")
    assert source.tarball == "https://registry.example.com/web-helper/-/web-helper-1.1.0.tgz"


def test_what_a_released_view_keeps_locates_every_version_as_the_merged_packument_does():
    local = doc(["1.0.0"], {"latest": "1.0.0"})
    upstream = doc(["1.0.0", "1.1.0"], {"latest": "1.1.0"})
    upstream["versions"]["1.1.0"]["dist"]["integrity"] = "sha512-" + "A" * 86 + "=="
    merged = merge(PKG, [PlaceDocument("dev", False, local), PlaceDocument("public", True, upstream)])
    located = located_sources(merged)
    assert isinstance(located, bytes)
    assert [source_located(located, v) for v in merged.versions] == [
        merged.sources[v] for v in merged.versions
    ]
    assert source_located(located, "9.9.9") is None


def test_dist_tags_union_and_the_upstream_wins_a_conflict():
    # The example of CodeArtifact's documentation: R has latest, U has alpha -> both.
    r = doc(["1.0.0"], {"latest": "1.0.0"})
    u = doc(["1.0.1"], {"alpha": "1.0.1"})
    merged = merge(PKG, [PlaceDocument("R", False, r), PlaceDocument("U", True, u)])
    assert merged.dist_tags == {"latest": "1.0.0", "alpha": "1.0.1"}
    u["dist-tags"]["latest"] = "1.0.1"
    merged = merge(PKG, [PlaceDocument("R", False, r), PlaceDocument("U", True, u)])
    assert merged.dist_tags["latest"] == "1.0.1"


def test_a_tag_pointing_outside_the_merged_list_is_dropped():
    r = doc(["1.0.0"], {"latest": "1.0.0", "next": "9.9.9"})
    u = doc(["1.0.1"], {"latest": "3.0.0", "beta": "4.0.0"})
    merged = merge(PKG, [PlaceDocument("R", False, r), PlaceDocument("U", True, u)])
    # The upstream's latest is invalid, so the repository's valid value stands; the others vanish.
    assert merged.dist_tags == {"latest": "1.0.0"}


def test_time_is_merged():
    t2019, t2020, t2021 = (f"{y}-01-01T00:00:00.000Z" for y in ("2019", "2020", "2021"))
    t2021b = "2021-06-01T00:00:00.000Z"
    r = doc(["1.0.0"], {}, {"created": t2021, "modified": t2021b, "1.0.0": t2021})
    u = doc(["1.0.0", "2.0.0"], {}, {"created": t2019, "modified": t2020, "1.0.0": t2019, "2.0.0": t2020})
    merged = merge(PKG, [PlaceDocument("R", False, r), PlaceDocument("U", True, u)])
    # The earliest created, the latest modified, each version's time from the place it came from.
    assert merged.time == {"created": t2019, "modified": t2021b, "1.0.0": t2021, "2.0.0": t2020}


def test_top_level_fields_come_from_the_first_place():
    merged = merge(
        PKG,
        [
            PlaceDocument("R", False, doc(["1.0.0"], {}, description="mine", _rev="3-x")),
            PlaceDocument("U", True, doc(["2.0.0"], {}, description="theirs", readme="hi")),
        ],
    )
    assert merged.fields == {"description": "mine"}


def test_broken_entries_are_skipped_not_fatal():
    bad = {"name": "web-helper", "versions": {"1.0.0": "nonsense", "2.0.0": version("2.0.0")},
           "dist-tags": {"latest": 5, "next": "2.0.0"}, "time": {"created": 7}}  # fmt: skip
    merged = merge(PKG, [PlaceDocument("U", True, bad)])
    assert list(merged.versions) == ["2.0.0"]
    assert merged.dist_tags == {"next": "2.0.0"}
    assert merged.time == {}


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"versions": []}',
        b'{"dist-tags": "x"}',
        b"\xff",
        # Broken where nothing installing needs is: the whole body is checked all the same.
        b'{"versions": {}, "readme": [1,}',
        b'{"versions": {}, "readme": "\xff"}',
        b'{"versions": {"1.0.0": {"description": {"a": }}}}',
    ],
)
def test_parse_packument_refuses_broken_documents(body):
    with pytest.raises(ValueError):
        parse_packument(body)


def test_parse_keeps_what_installing_needs_and_complete_keeps_everything():
    body = json.dumps({
        "name": "x", "readme": "long", "dist-tags": {"latest": "1.0.0"}, "time": {"1.0.0": "t"},
        "versions": {"1.0.0": {"name": "x", "version": "1.0.0", "description": "d", "contributors": ["a"],
                               "scripts": {"test": "t", "postinstall": "p"}, "dist": {"shasum": "ab"}},
                     "2.0.0": "nonsense"}}).encode()  # fmt: skip
    short = parse_packument(body)
    assert short == {
        "dist-tags": {"latest": "1.0.0"}, "time": {"1.0.0": "t"},
        "versions": {"1.0.0": {"name": "x", "version": "1.0.0", "scripts": {"postinstall": "p"},
                               "dist": {"shasum": "ab"}}, "2.0.0": "nonsense"}}  # fmt: skip
    assert parse_complete(body) == json.loads(body)
    merged = merge(PKG, [PlaceDocument("U", True, short)])
    complete = replace(
        merged, completed_by=lambda: merge(PKG, [PlaceDocument("U", True, parse_complete(body))])
    )
    assert abbreviate(merged.versions["1.0.0"]) == abbreviate(complete.complete().versions["1.0.0"])
    assert complete.complete().versions["1.0.0"]["description"] == "d"
    assert complete.complete().fields == {"readme": "long"} and merged.complete() is merged


def test_full_render_rewrites_every_tarball_to_the_proxy():
    package = parse_name("@e2e/dep")
    merged = merge(package, [PlaceDocument("U", True, {"name": "@e2e/dep", "versions": {
        "1.0.0": {"name": "@e2e/dep", "version": "1.0.0",
                  "dist": {"tarball": "https://registry.example.com/@e2e/dep/-/dep-1.0.0.tgz?token=secret",
                           "integrity": "sha512-x"}}}, "dist-tags": {"latest": "1.0.0"},
        "_rev": "1", "readme": "r"})])  # fmt: skip
    full = render_full(merged, tarball_prefix(BASE, "dev", package))
    assert full["_id"] == full["name"] == "@e2e/dep"
    assert full["readme"] == "r" and "_rev" not in full
    dist = full["versions"]["1.0.0"]["dist"]
    assert dist == {
        "tarball": "http://proxy.test:5080/npm/dev/@e2e/dep/-/dep-1.0.0.tgz",
        "integrity": "sha512-x",
    }
    assert "registry.example.com" not in json.dumps(full)
    # The merged model is not touched by rendering: the source keeps the upstream URL.
    assert merged.versions["1.0.0"]["dist"]["tarball"].startswith("https://registry.example.com/")


def test_abbreviated_render_keeps_only_install_fields():
    modified = {"modified": "2022-02-02T00:00:00.000Z"}
    merged = merge(PKG, [PlaceDocument("U", True, doc(["1.0.0"], {"latest": "1.0.0"}, modified))])
    merged.versions["1.0.0"].update(
        {
            "readme": "long",
            "scripts": {"postinstall": "node x"},
            "engines": {"node": ">=18"},
            "description": "d",
        }
    )
    short = render_abbreviated(merged, tarball_prefix(BASE, "dev", PKG))
    assert set(short) == {"name", "modified", "dist-tags", "versions"}
    assert short["modified"] == "2022-02-02T00:00:00.000Z"
    v = short["versions"]["1.0.0"]
    assert set(v) == {"name", "version", "dist", "engines", "hasInstallScript"}
    assert v["dist"]["tarball"] == "http://proxy.test:5080/npm/dev/web-helper/-/web-helper-1.0.0.tgz"


def test_abbreviate_keeps_a_registry_install_script_flag():
    assert (
        abbreviate({"name": "x", "hasInstallScript": False, "scripts": {"install": "y"}})["hasInstallScript"]
        is False
    )
    assert "hasInstallScript" not in abbreviate({"name": "x", "scripts": {"test": "y"}})


def test_version_for_resolves_tags():
    merged = merge(
        PKG,
        [PlaceDocument("U", True, doc(["1.0.0", "2.0.0-rc.1"], {"latest": "1.0.0", "next": "2.0.0-rc.1"}))],
    )
    assert merged.version_for("next") == "2.0.0-rc.1"
    assert merged.version_for("1.0.0") == "1.0.0"
    assert merged.version_for("nope") is None


def _published(version_number: str, internal: bool = True) -> PackageVersionRecord:
    origin = (
        PackageVersionOrigin("INTERNAL", "dev") if internal else PackageVersionOrigin("EXTERNAL", "public")
    )
    metadata = version(version_number) if internal else {}
    return PackageVersionRecord(version_number, origin, published_time=1_700_000_000.0, metadata=metadata)


def test_local_document_lists_published_versions_only():
    record = PackageRecord(
        PKG.coordinate,
        PUBLISHED_DEFAULT,
        versions={"1.0.0": _published("1.0.0"), "0.9.0": _published("0.9.0", internal=False)},
        dist_tags={"latest": "1.0.0"},
    )
    local = local_document(PKG, record)
    assert local is not None
    assert list(local["versions"]) == ["1.0.0"]
    assert local["dist-tags"] == {"latest": "1.0.0"}
    assert local["time"]["1.0.0"] == "2023-11-14T22:13:20.000Z"
    cache_only = PackageRecord(PKG.coordinate, versions={"0.9.0": _published("0.9.0", internal=False)})
    assert local_document(PKG, cache_only) is None


# -- integrity ----------------------------------------------------------------------------------
DATA = b"tarball bytes"
GOT = Digests(
    hashlib.sha512(DATA).hexdigest(), hashlib.sha256(DATA).hexdigest(), hashlib.sha1(DATA).hexdigest()
)


def test_integrity_matches():
    assert mismatch(sri("sha512", GOT.sha512), "", GOT) is None
    assert mismatch(f"sha1-bogus== {sri('sha512', GOT.sha512)}", "", GOT) is None  # the strongest counts
    assert mismatch("", GOT.sha1.upper(), GOT) is None
    assert mismatch("", "", GOT) is None  # nothing declared, nothing to check


def test_integrity_mismatches_say_what_differs():
    other = hashlib.sha512(b"other").hexdigest()
    problem = mismatch(sri("sha512", other), GOT.sha1, GOT)  # sha512 wins over a matching shasum
    assert problem is not None and "sha512" in problem and sri("sha512", other) in problem
    assert "dist.shasum" in (mismatch("", "0" * 40, GOT) or "")


# -- publish documents --------------------------------------------------------------------------
def publish_body(name: str = "@e2e/dep", v: str = "1.0.1", data: bytes = DATA, **dist):
    file = f"{name}-{v}.tgz"
    integrity, shasum = sri("sha512", hashlib.sha512(data).hexdigest()), hashlib.sha1(data).hexdigest()
    dist = {"integrity": integrity, "shasum": shasum, "tarball": f"http://x/{file}", **dist}
    return json.dumps({
        "_id": name, "name": name, "dist-tags": {"latest": v, "old": "0.0.1"},
        "versions": {v: {"name": name, "version": v, "dist": dist, "readme": "r"}},
        "_attachments": {file: {"content_type": "application/octet-stream",
                                "data": base64.b64encode(data).decode(), "length": len(data)}},
    }).encode()  # fmt: skip


def test_parse_publish_takes_npms_document():
    parsed, tarballs = parse_publish(parse_name("@e2e/dep"), publish_body())
    assert parsed.dist_tags == {"latest": "1.0.1"}  # tags naming versions not in the request are ignored
    (new,) = parsed.versions
    assert (new.version, tarballs[new.attachment]) == ("1.0.1", DATA)
    assert new.document["dist"]["integrity"] == sri("sha512", GOT.sha512)
    assert "tarball" not in new.document["dist"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"nope", "not a JSON"),
        (publish_body(name="@e2e/other"), "is not the package"),
        (publish_body(shasum="0" * 40, integrity=""), "does not match"),
        (publish_body(integrity=sri("sha512", hashlib.sha512(b"x").hexdigest())), "does not match"),
        (json.dumps({"name": "@e2e/dep", "versions": {"1.0.0": {}}}).encode(), "no tarball"),
    ],
)
def test_parse_publish_refuses(body, reason):
    with pytest.raises(PublishRefused, match=reason) as info:
        parse_publish(parse_name("@e2e/dep"), body)
    assert info.value.status == 400


def test_parse_publish_checks_the_declared_length():
    body = json.loads(publish_body())
    body["_attachments"]["@e2e/dep-1.0.1.tgz"]["length"] = 3
    with pytest.raises(PublishRefused, match="not the 3 declared"):
        parse_publish(parse_name("@e2e/dep"), json.dumps(body).encode())
