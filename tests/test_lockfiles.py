"""Lockfile and coordinate-list parsing for ``prefetch``, and Maven parents/BOMs followed by it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.utils import canonicalize_name

from proxy.client.prefetch import Candidates, _pom
from proxy.lockfiles import LockfileError, MavenEntry, NpmEntry, PypiEntry, read_lockfile
from tests.fakes.daemon import start_daemon, write_config
from tests.fakes.maven_repository import FakeMavenRepository
from tests.fakes.npm_registry import FakeNpmRegistry, integrity_of

SHA = "a" * 64


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_package_lock_v3_skips_links_bundles_and_git(tmp_path: Path) -> None:
    lock = {
        "lockfileVersion": 3,
        "packages": {
            "": {"name": "app"},
            "node_modules/a": {
                "version": "1.0.0",
                "resolved": "https://r.example.com/a-1.0.0.tgz",
                "integrity": "sha512-x",
            },
            "node_modules/@s/b": {"version": "2.0.0-rc.1"},
            "node_modules/alias": {"name": "real", "version": "3.0.0"},
            "node_modules/a/node_modules/a": {"version": "0.9.0"},
            "node_modules/ws": {"link": True, "resolved": "packages/ws"},
            "node_modules/inner": {"version": "1.0.0", "inBundle": True},
            "node_modules/g": {"version": "1.0.0", "resolved": "git+ssh://git@example.com/g.git#abc"},
            "packages/ws": {"name": "ws"},
        },
    }
    entries = read_lockfile(write(tmp_path, "package-lock.json", json.dumps(lock)))
    assert entries == [
        NpmEntry("a", "1.0.0", "sha512-x"),
        NpmEntry("@s/b", "2.0.0-rc.1"),
        NpmEntry("real", "3.0.0"),
        NpmEntry("a", "0.9.0"),
    ]


def test_package_lock_v1_nested_and_aliases(tmp_path: Path) -> None:
    lock = {
        "lockfileVersion": 1,
        "dependencies": {
            "a": {"version": "1.0.0", "dependencies": {"b": {"version": "2.0.0"}}},
            "c": {"version": "npm:real@3.0.0"},
            "d": {"version": "file:../d"},
        },
    }
    entries = read_lockfile(write(tmp_path, "npm-shrinkwrap.json", json.dumps(lock)))
    assert entries == [NpmEntry("a", "1.0.0"), NpmEntry("b", "2.0.0"), NpmEntry("real", "3.0.0")]
    with pytest.raises(LockfileError, match=r"package-lock\.json: not JSON"):
        read_lockfile(write(tmp_path, "package-lock.json", "{"))


def test_yarn_lock_v1_and_berry(tmp_path: Path) -> None:
    v1 = """# yarn lockfile v1


"@s/b@^2.0.0", "@s/b@^2.1.0":
  version "2.1.0"
  resolved "https://r.example.com/@s/b/-/b-2.1.0.tgz#abc"
  integrity sha512-yy
  dependencies:
    a "^1.0.0"

a@^1.0.0:
  version "1.0.0"
  resolved "https://r.example.com/a/-/a-1.0.0.tgz"

x@npm:real@^3:
  version "3.0.1"
"""
    assert read_lockfile(write(tmp_path, "yarn.lock", v1)) == [
        NpmEntry("@s/b", "2.1.0", "sha512-yy"),
        NpmEntry("a", "1.0.0"),
        NpmEntry("real", "3.0.1"),
    ]
    berry = """__metadata:
  version: 8

"a@npm:^1.0.0":
  version: 1.0.0
  resolution: "a@npm:1.0.0"
  checksum: 10c0/abc

"app@workspace:.":
  version: 0.0.0-use.local
  resolution: "app@workspace:."
"""
    (tmp_path / "berry").mkdir()
    assert read_lockfile(write(tmp_path / "berry", "yarn.lock", berry)) == [NpmEntry("a", "1.0.0")]


def test_requirements_pins_hashes_includes_and_errors(tmp_path: Path) -> None:
    write(tmp_path, "requirements-base.txt", f"Six==1.16.0 --hash=sha256:{SHA}\n")
    path = write(
        tmp_path,
        "requirements.txt",
        "--index-url https://i.example.com/simple/\n-r requirements-base.txt\n"
        f"foo[extra]==2.0 ; python_version >= '3' \\\n    --hash=sha256:{SHA.upper()} \\\n"
        f"    --hash=sha256:{'b' * 64}  # why\n# comment\nbar===1.0\n",
    )
    assert read_lockfile(path) == [
        PypiEntry("six", "1.16.0", frozenset({SHA})),
        PypiEntry("foo", "2.0", frozenset({SHA, "b" * 64})),
        PypiEntry("bar", "1.0"),
    ]
    with pytest.raises(LockfileError, match=r"requirements.txt: line 1: foo is not pinned"):
        read_lockfile(write(tmp_path, "requirements.txt", "foo>=1\n"))
    with pytest.raises(LockfileError, match="only --hash=sha256"):
        read_lockfile(write(tmp_path, "requirements.txt", "foo==1 --hash=md5:abc\n"))


def test_pylock_and_uv_lock(tmp_path: Path) -> None:
    pylock = f"""lock-version = "1.0"
created-by = "x"

[[packages]]
name = "Foo_Bar"
version = "1.0"
[[packages.wheels]]
name = "foo_bar-1.0-py3-none-any.whl"
url = "https://f.example.com/foo_bar-1.0-py3-none-any.whl"
hashes = {{ sha256 = "{SHA}" }}

[[packages]]
name = "local"
directory = {{ path = "." }}
"""
    assert read_lockfile(write(tmp_path, "pylock.toml", pylock)) == [
        PypiEntry("foo-bar", "1.0", frozenset({SHA}), frozenset({"foo_bar-1.0-py3-none-any.whl"}))
    ]
    uv = f"""version = 1

[[package]]
name = "app"
version = "0.1.0"
source = {{ editable = "." }}

[[package]]
name = "six"
version = "1.16.0"
source = {{ registry = "https://i.example.com/simple" }}
sdist = {{ url = "https://f.example.com/six-1.16.0.tar.gz", hash = "sha256:{SHA}" }}
wheels = [{{ url = "https://f.example.com/six-1.16.0-py2.py3-none-any.whl", hash = "sha256:{"c" * 64}" }}]
"""
    assert read_lockfile(write(tmp_path, "uv.lock", uv)) == [
        PypiEntry(
            "six",
            "1.16.0",
            frozenset({SHA, "c" * 64}),
            frozenset({"six-1.16.0.tar.gz", "six-1.16.0-py2.py3-none-any.whl"}),
        )
    ]


def test_maven_coordinates_both_forms(tmp_path: Path) -> None:
    text = """# mine
org.example:a:1.0
org.example:b:2.0:pom
org.example:c:3.0:jar:tests
[INFO] The following files have been resolved:
[INFO]    org.apache.commons:commons-lang3:jar:3.14.0:compile -- module org.apache.commons.lang3
[INFO]    org.junit:junit-bom:pom:5.10.2:import
[INFO]    io.netty:netty-tcnative:jar:linux-x86_64:2.0.0.Final:runtime (optional)
[INFO] BUILD SUCCESS
"""
    assert read_lockfile(write(tmp_path, "deps.txt", text)) == [
        MavenEntry("org.example", "a", "1.0"),
        MavenEntry("org.example", "b", "2.0", "pom"),
        MavenEntry("org.example", "c", "3.0", "jar", "tests"),
        MavenEntry("org.apache.commons", "commons-lang3", "3.14.0", "jar"),
        MavenEntry("org.junit", "junit-bom", "5.10.2", "pom"),
        MavenEntry("io.netty", "netty-tcnative", "2.0.0.Final", "jar", "linux-x86_64"),
    ]
    with pytest.raises(
        LockfileError, match=r"deps.txt: line 1: not group:artifact:version: 'org.example a 1.0'"
    ):
        read_lockfile(write(tmp_path, "deps.txt", "org.example a 1.0\n"))


POM = """<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
{parent}<groupId>org.example</groupId><artifactId>{artifact}</artifactId><version>1.0</version>
<packaging>{packaging}</packaging><properties><bom.version>2.0</bom.version></properties>
<dependencyManagement><dependencies>{imports}</dependencies></dependencyManagement></project>"""
PARENT = (
    "<parent><groupId>org.example</groupId><artifactId>parent</artifactId><version>1.0</version></parent>"
)
IMPORT = (
    "<dependency><groupId>org.example</groupId><artifactId>bom</artifactId><version>${bom.version}</version>"
    "<type>pom</type><scope>import</scope></dependency>"
)


def test_prefetch_follows_parents_and_boms_and_reports_what_is_missing(tmp_path: Path) -> None:
    with FakeMavenRepository() as maven:
        base = "org/example"
        maven.add(
            f"{base}/lib/1.0/lib-1.0.pom",
            POM.format(parent=PARENT, artifact="lib", packaging="jar", imports="").encode(),
        )
        maven.add(f"{base}/lib/1.0/lib-1.0.jar", b"jar bytes")
        maven.add(
            f"{base}/parent/1.0/parent-1.0.pom",
            POM.format(parent="", artifact="parent", packaging="pom", imports=IMPORT).encode(),
        )
        maven.add(
            f"{base}/bom/2.0/bom-2.0.pom",
            POM.format(parent="", artifact="bom", packaging="pom", imports="").encode(),
        )
        config = write_config(
            tmp_path,
            f'[upstream.m]\nformat = "maven"\nurl = "{maven.url}"\n\n[repository.java]\nupstreams = ["m"]\n',
        )
        daemon = start_daemon(config, tmp_path / "daemon.log")
        try:
            coordinates = write(tmp_path, "deps.txt", "org.example:lib:1.0\n")
            command = [sys.executable, "-m", "proxy", "--config", str(config), "prefetch", str(coordinates)]
            done = subprocess.run(command, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stdout + done.stderr
            assert "3 entries (8 files): 3 fetched, 0 already there, 0 failed" in done.stdout, done.stdout
            for path in ("lib/1.0/lib-1.0.jar", "parent/1.0/parent-1.0.pom", "bom/2.0/bom-2.0.pom"):
                assert maven.count(f"{base}/{path}") == 1
            write(tmp_path, "deps.txt", "org.example:lib:1.0\norg.example:gone:9.9\n")
            done = subprocess.run(command, capture_output=True, text=True, timeout=120)
            assert done.returncode == 1
            assert "failed: maven org.example:gone:9.9: " in done.stderr and "HTTP 404" in done.stderr
            assert "3 already there, 1 failed" in done.stdout
        finally:
            daemon.stop()


_names = st.from_regex(r"[a-z][a-z0-9]{0,8}([-_.][a-z0-9]{1,4})?", fullmatch=True)
_versions = st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){0,2}((a|b|rc)[0-9])?", fullmatch=True)
_digests = st.sets(st.from_regex(r"[0-9a-f]{64}", fullmatch=True), max_size=3)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(_names, _versions, _digests), max_size=6), st.booleans())
def test_requirements_round_trip(
    tmp_path: Path, pins: list[tuple[str, str, set[str]]], wrapped: bool
) -> None:
    separator = " \\\n    " if wrapped else " "
    lines = [
        separator.join([f"{name}=={version}", *(f"--hash=sha256:{d}" for d in sorted(hashes))])
        for name, version, hashes in pins
    ]
    path = write(tmp_path, "requirements.txt", "\n".join(lines) + "\n")
    expected = [PypiEntry(canonicalize_name(n), v, frozenset(h)) for n, v, h in pins]
    assert read_lockfile(path) == list(dict.fromkeys(expected))


def test_prefetch_refuses_a_tarball_that_does_not_match_the_lockfile(tmp_path: Path) -> None:
    with FakeNpmRegistry() as npm:
        data = npm.add("e2e-integrity", "1.0.0")
        config = write_config(tmp_path, npm.upstream_config("n") + '\n[repository.dev]\nupstreams = ["n"]\n')
        lock = {
            "lockfileVersion": 3,
            "packages": {
                "node_modules/e2e-integrity": {"version": "1.0.0", "integrity": integrity_of(data + b"x")},
            },
        }
        path = write(tmp_path, "package-lock.json", json.dumps(lock))
        daemon = start_daemon(config, tmp_path / "daemon.log")
        try:
            command = [sys.executable, "-m", "proxy", "--config", str(config), "prefetch", str(path)]
            done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        finally:
            daemon.stop()
    assert done.returncode == 1
    assert "its sha512 does not match the lockfile's" in done.stderr, done.stderr


def test_prefetch_candidates_are_declared_dependencies_at_every_version_some_management_gives() -> None:
    library = b"""<project><groupId>org.example</groupId><artifactId>lib</artifactId><version>1.0</version>
<properties><core.version>3.1.0</core.version></properties><dependencies>
<dependency><groupId>org.example</groupId><artifactId>core</artifactId><version>${core.version}</version></dependency>
<dependency><groupId>org.example</groupId><artifactId>tested</artifactId><version>1</version><scope>test</scope></dependency>
<dependency><groupId>org.example</groupId><artifactId>extra</artifactId><version>1</version><optional>true</optional></dependency>
<dependency><groupId>org.example</groupId><artifactId>ranged</artifactId><version>[1,2)</version></dependency>
</dependencies></project>"""
    managing = b"""<project><groupId>org.example</groupId>
<artifactId>plugin-parent</artifactId><version>3</version><properties><v>3.2.5</v></properties><dependencyManagement><dependencies>
<dependency><groupId>org.example</groupId><artifactId>core</artifactId><version>${v}</version></dependency>
<dependency><groupId>org.example</groupId><artifactId>unused</artifactId><version>9</version></dependency>
<dependency><groupId>org.example</groupId><artifactId>ranged</artifactId><version>1.5</version></dependency>
</dependencies></dependencyManagement></project>"""
    candidates = Candidates()
    first = candidates.learn(_pom(managing, "plugin-parent-3.pom"))
    assert first == []  # nothing declares what it manages yet
    probes = candidates.learn(_pom(library, "lib-1.0.pom"))
    assert {(p.artifact, p.version) for p in probes} == {
        ("core", "3.1.0"),
        ("core", "3.2.5"),
        ("ranged", "1.5"),
    }
    assert all(p.probe and p.packaging == "pom" for p in probes)
    assert candidates.learn(_pom(library, "lib-1.0.pom")) == []  # each once
