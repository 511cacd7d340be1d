"""The Maven format's pure parts: layout paths, checksum files, maven-metadata.xml parse/merge/render."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.formats.maven import checksums
from proxy.formats.maven.metadata import (
    MavenMetadata,
    Plugin,
    Snapshot,
    SnapshotVersion,
    artifact_metadata,
    merge,
    parse,
    render,
    snapshot_metadata,
)
from proxy.formats.maven.paths import (
    ArtifactPath,
    AssetName,
    BadPath,
    MetadataPath,
    parse_asset_name,
    parse_path,
    upstream_url,
)

# -- paths ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected", "name"),
    [
        (
            "org/example/hello/1.0/hello-1.0.jar",
            ArtifactPath("org.example", "hello", "1.0", "hello-1.0.jar"),
            AssetName(None, None, "", "jar"),
        ),
        (
            "org/example/hello/1.0/hello-1.0-sources.jar.sha1",
            ArtifactPath("org.example", "hello", "1.0", "hello-1.0-sources.jar", "sha1"),
            AssetName(None, None, "sources", "jar"),
        ),
        (
            "com/acme/tool/2.1/tool-2.1.tar.gz",
            ArtifactPath("com.acme", "tool", "2.1", "tool-2.1.tar.gz"),
            AssetName(None, None, "", "tar.gz"),
        ),
        (
            "a/b-c/1.0-SNAPSHOT/b-c-1.0-20261125.193057-12-tests.jar.sha512",
            ArtifactPath("a", "b-c", "1.0-SNAPSHOT", "b-c-1.0-20261125.193057-12-tests.jar", "sha512"),
            AssetName("20261125.193057", 12, "tests", "jar"),
        ),
        (
            "a/b/1.0-SNAPSHOT/b-1.0-SNAPSHOT.pom",
            ArtifactPath("a", "b", "1.0-SNAPSHOT", "b-1.0-SNAPSHOT.pom"),
            AssetName(None, None, "", "pom"),
        ),
    ],
)
def test_artifact_paths(path: str, expected: ArtifactPath, name: AssetName) -> None:
    parsed = parse_path(path)
    assert parsed == expected
    assert isinstance(parsed, ArtifactPath)
    assert parse_asset_name(parsed) == name
    assert parsed.asset_path == path.removesuffix(f".{parsed.checksum}")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            "org/example/hello/maven-metadata.xml",
            MetadataPath("org/example/hello", "org.example", "hello", None),
        ),
        (
            "org/example/hello/1.0-SNAPSHOT/maven-metadata.xml.md5",
            MetadataPath("org/example/hello/1.0-SNAPSHOT", "org.example", "hello", "1.0-SNAPSHOT", "md5"),
        ),
        ("org/maven-metadata.xml.sha256", MetadataPath("org", "org", None, None, "sha256")),
    ],
)
def test_metadata_paths(path: str, expected: MetadataPath) -> None:
    assert parse_path(path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "",
        "maven-metadata.xml",
        "org/../etc/1/etc-1.jar",
        "org/./b/1/b-1.jar",
        "org//b/1/b-1.jar",
        "org/b/1/b-1.jar/",
        "org/b/1/c-1.jar",  # not a file of artifact b
        "org/b/1/b-2.jar",  # not a file of version 1
        "org/b/1/b-1",  # no extension
        "org/b/1/b-1-.jar",  # empty classifier
        "b/1/b-1.jar",  # no group
        "org/b/1.0-SNAPSHOT/b-1.0-2026.jar",
        "org/b\\c/1/b\\c-1.jar",
        "org/b/1/b-1.jar\x00",
    ],
)
def test_bad_paths(path: str) -> None:
    with pytest.raises(BadPath):
        parse_path(path)


_SEGMENT = st.text(st.sampled_from("abcxyz019_-"), min_size=1, max_size=8).filter(
    lambda s: s not in (".", "..")
)


@given(st.lists(_SEGMENT, min_size=0, max_size=4), st.lists(_SEGMENT, min_size=0, max_size=4))
def test_dot_dot_is_always_refused(before: list[str], after: list[str]) -> None:
    with pytest.raises(BadPath):
        parse_path("/".join([*before, "..", *after, "x-1.jar"]))


@given(
    st.lists(_SEGMENT, min_size=1, max_size=3),
    _SEGMENT,
    st.sampled_from(["1.0", "2.3.4-beta-1", "1.0-SNAPSHOT", "5"]),
    st.sampled_from(["", "sources", "tests", "linux-x86_64"]),
    st.sampled_from(["jar", "pom", "tar.gz", "module"]),
    st.sampled_from([None, "md5", "sha1", "sha256", "sha512"]),
)
def test_built_paths_parse_back(
    group: list[str], artifact: str, version: str, classifier: str, extension: str, checksum: str | None
) -> None:
    filename = f"{artifact}-{version}{'-' + classifier if classifier else ''}.{extension}"
    path = "/".join([*group, artifact, version, filename]) + (f".{checksum}" if checksum else "")
    parsed = parse_path(path)
    assert parsed == ArtifactPath(".".join(group), artifact, version, filename, checksum)  # type: ignore[arg-type]
    assert parse_asset_name(parsed) == AssetName(None, None, classifier, extension)


def test_upstream_url_encodes_segments() -> None:
    assert upstream_url("org/a b/1+x/a b-1+x.jar") == "org/a%20b/1+x/a%20b-1+x.jar"


# -- checksum files -------------------------------------------------------------------------------
SHA1 = hashlib.sha1(b"x").hexdigest()


@pytest.mark.parametrize(
    "body",
    [
        SHA1.encode(),
        f"{SHA1}\n".encode(),
        f"\n  {SHA1.upper()}  hello-1.0.jar\n".encode(),
        f"SHA1 (hello-1.0.jar) = {SHA1}".encode(),
    ],
)
def test_checksum_file_forms(body: bytes) -> None:
    assert checksums.parse_checksum(body, "sha1") == SHA1


@pytest.mark.parametrize(
    "body",
    [b"", b"<html><body>Not Found</body></html>", SHA1[:-1].encode(), hashlib.md5(b"x").hexdigest().encode()],
)
def test_bad_checksum_files(body: bytes) -> None:
    with pytest.raises(ValueError):
        checksums.parse_checksum(body, "sha1")


def test_checksums_of_bytes() -> None:
    got = checksums.of_bytes(b"abc")
    assert got == {a: hashlib.new(a, b"abc").hexdigest() for a in ("md5", "sha1", "sha256", "sha512")}


# -- maven-metadata.xml ---------------------------------------------------------------------------
UPSTREAM = b"""<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns="http://maven.apache.org/METADATA/1.1.0" modelVersion="1.1.0">
  <groupId>org.example</groupId>
  <artifactId>hello</artifactId>
  <versioning>
    <latest>9.9</latest>
    <release>9.9</release>
    <versions>
      <version>1.0</version>
      <version>1.0-beta</version>
      <version>1.1-SNAPSHOT</version>
    </versions>
    <lastUpdated>20240101000000</lastUpdated>
  </versioning>
</metadata>
"""


def test_parse_namespaced_document() -> None:
    doc = parse(UPSTREAM)
    assert doc.group_id == "org.example"
    assert doc.artifact_id == "hello"
    assert doc.versions == ("1.0", "1.0-beta", "1.1-SNAPSHOT")
    assert doc.last_updated == "20240101000000"
    assert doc.latest == "9.9"


@pytest.mark.parametrize(
    "body",
    [
        b"<!DOCTYPE html><html><head><title>Error</title></head><body>502</body></html>",
        b"<html><body>oops</body></html>",
        UPSTREAM[: len(UPSTREAM) // 2],
        b"",
        b'{"versions": []}',
        b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY e "x">]><metadata><groupId>&e;</groupId></metadata>',
        b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY e SYSTEM "file:///etc/passwd">]><metadata>&e;</metadata>',
    ],
    ids=["html-doctype", "html", "truncated", "empty", "json", "entity", "external-entity"],
)
def test_not_metadata_is_refused(body: bytes) -> None:
    with pytest.raises(ValueError):
        parse(body)


def test_merge_takes_the_union_and_recomputes_tags() -> None:
    other = MavenMetadata(
        group_id="org.example",
        artifact_id="hello",
        versions=("1.0", "2.0-alpha-1", "1.0.1"),
        last_updated="20250101000000",
        plugins=(Plugin("hello", "hello-maven-plugin"),),
    )
    merged = merge([parse(UPSTREAM), other])
    assert merged.versions == ("1.0-beta", "1.0", "1.0.1", "1.1-SNAPSHOT", "2.0-alpha-1")
    assert merged.latest == "2.0-alpha-1"
    assert merged.release == "2.0-alpha-1"  # an alpha is not a SNAPSHOT: Maven calls it a release
    assert merged.last_updated == "20250101000000"
    assert merged.plugins == (Plugin("hello", "hello-maven-plugin"),)
    only_snapshots = merge([MavenMetadata(versions=("1.0-SNAPSHOT",))])
    assert (only_snapshots.latest, only_snapshots.release) == ("1.0-SNAPSHOT", None)


def test_merge_keeps_the_newest_snapshot_build_per_file_kind() -> None:
    older = snapshot_metadata(
        "g", "a", "1.0-SNAPSHOT", ["a-1.0-20260101.000000-1.jar", "a-1.0-20260101.000000-1.pom"]
    )
    newer = snapshot_metadata("g", "a", "1.0-SNAPSHOT", ["a-1.0-20260202.000000-2.jar"])
    assert older is not None and newer is not None
    merged = merge([older, newer])
    assert merged.snapshot == Snapshot("20260202.000000", 2)
    values = {(item.classifier, item.extension): item.value for item in merged.snapshot_versions}
    assert values == {("", "jar"): "1.0-20260202.000000-2", ("", "pom"): "1.0-20260101.000000-1"}
    assert merged.last_updated == "20260202000000"


def test_snapshot_metadata_from_held_builds() -> None:
    files = [
        "a-1.0-20260101.101010-1.jar",
        "a-1.0-20260101.101010-1.pom",
        "a-1.0-20260102.101010-2.jar",
        "a-1.0-20260102.101010-2.pom",
        "a-1.0-20260102.101010-2-sources.jar",
        "a-1.0-SNAPSHOT.jar",  # not a timestamped build: no part of it
        "maven-metadata.xml",
    ]
    doc = snapshot_metadata("g", "a", "1.0-SNAPSHOT", files)
    assert doc is not None
    assert doc.snapshot == Snapshot("20260102.101010", 2)
    assert set(doc.snapshot_versions) == {
        SnapshotVersion("", "jar", "1.0-20260102.101010-2", "20260102101010"),
        SnapshotVersion("", "pom", "1.0-20260102.101010-2", "20260102101010"),
        SnapshotVersion("sources", "jar", "1.0-20260102.101010-2", "20260102101010"),
    }
    assert snapshot_metadata("g", "a", "1.0-SNAPSHOT", ["a-1.0-SNAPSHOT.jar"]) is None


def test_artifact_metadata_of_held_versions() -> None:
    doc = artifact_metadata("g", "a", {"1.10": 0.0, "1.9": 86400.0})
    assert doc.versions == ("1.9", "1.10")
    assert doc.last_updated == "19700102000000"


_VERSION = st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){0,2}(-(alpha|beta|rc|SNAPSHOT)[0-9]?)?", fullmatch=True)


@given(
    st.lists(_VERSION, max_size=8, unique=True),
    st.one_of(st.none(), st.from_regex(r"20[0-9]{12}", fullmatch=True)),
    st.lists(st.sampled_from(["", "sources", "tests"]), unique=True),
)
def test_render_parses_back(versions: list[str], updated: str | None, classifiers: list[str]) -> None:
    doc = merge(
        [
            MavenMetadata(
                group_id="org.example",
                artifact_id="x&<y>",
                version="1.0-SNAPSHOT" if classifiers else None,
                versions=tuple(versions),
                last_updated=updated,
                snapshot=Snapshot("20260101.000000", 3) if classifiers else None,
                snapshot_versions=tuple(
                    SnapshotVersion(c, "jar", "1.0-20260101.000000-3", "20260101000000") for c in classifiers
                ),
                plugins=(Plugin("p", "p-maven-plugin", "P & Q"),),
            )
        ]
    )
    body = render(doc)
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<metadata')
    again = parse(body)
    assert again == doc
    assert (again.latest, again.release) == (doc.latest, doc.release)
