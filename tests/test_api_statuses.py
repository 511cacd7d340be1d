"""Package version statuses as the real clients see them, changed through the real ``aws`` CLI:

- npm: an Unlisted version leaves the packument, yet a lockfile that pins it still installs (``npm ci``,
  as CodeArtifact documents it: npm resolves ranges and exact specs from the packument, so only a
  lockfile or the tarball URL reaches an unlisted version); a deleted version is published again;
  a version cached from an upstream and Archived locally is hidden although the upstream lists it;
- PyPI: an Archived version leaves the simple page and its file is a 404 to pip and to a plain GET; an
  Unlisted one leaves the page and pip still installs it by its file URL;
- Maven: a Disposed version's jar leaves the store (the blob count drops), maven-metadata and the
  jar path;
- CopyPackageVersions from dev to release makes a version installable from release, with no new blob.
"""

from __future__ import annotations

import httpx

from proxy.formats.npm.metadata import ABBREVIATED_TYPE
from proxy.formats.pypi.negotiate import JSON_V1
from tests.api_cli import Aws, maven_deploy
from tests.fakes.npm_registry import FakeNpmRegistry
from tests.fakes.pypi_index import make_wheel
from tests.test_npm_e2e import Npm, node_require, npm_binary, project
from tests.test_pypi_e2e import Clients, write_dist

REPOSITORIES = """
[repository.dev]
publish = true

[repository.release]
publish = true
"""


def _versions(url: str) -> set[str]:
    full = httpx.get(url, timeout=30).json()
    abbreviated = httpx.get(url, headers={"Accept": ABBREVIATED_TYPE}, timeout=30).json()
    assert set(full["versions"]) == set(abbreviated["versions"])
    return set(full["versions"])


def _status(aws: Aws, repository: str, fmt: str, package: str, version: str, target: str, *ns: str) -> None:
    result = aws(
        "update-package-versions-status",
        "--repository",
        repository,
        "--format",
        fmt,
        *ns,
        "--package",
        package,
        "--versions",
        version,
        "--target-status",
        target,
    )
    assert result["successfulVersions"][version]["status"] == target, result


def test_npm_unlisted_version_is_not_in_the_packument_but_a_lockfile_installs_it(tmp_path, daemon_factory):
    proxy = daemon_factory(REPOSITORIES)
    aws = Aws(proxy.url)
    npm = Npm(npm_binary(), tmp_path / "npm", f"{proxy.url}/npm/dev/")
    lib = project(tmp_path / "lib", {}, name="@st/lib", version="1.0.0")
    npm.run("publish", cwd=lib)
    project(lib, {}, name="@st/lib", version="1.1.0")
    npm.run("publish", cwd=lib)
    app = project(tmp_path / "app", {"@st/lib": "1.0.0"})
    npm.run("install", cwd=app)
    assert node_require(app, "@st/lib") == ["@st/lib@1.0.0"]

    _status(aws, "dev", "npm", "lib", "1.0.0", "Unlisted", "--namespace", "st")
    packument = f"{proxy.url}/npm/dev/@st%2flib"
    assert _versions(packument) == {"1.1.0"}
    # npm picks versions from the packument: an unlisted one is not chosen for a spec ...
    fresh = project(tmp_path / "fresh", {"@st/lib": "1.0.0"})
    refused = npm.run("install", cwd=fresh, check=False)
    assert refused.returncode != 0 and "ETARGET" in refused.stderr
    # ... but the lockfile that pins it installs it, with an empty npm cache.
    (app / "node_modules").rename(tmp_path / "old_node_modules")
    npm.fresh_cache()
    npm.run("ci", cwd=app)
    assert node_require(app, "@st/lib") == ["@st/lib@1.0.0"]

    # Published again, it is listed again.
    _status(aws, "dev", "npm", "lib", "1.0.0", "Published", "--namespace", "st")
    assert _versions(packument) == {"1.0.0", "1.1.0"}


def test_npm_deleted_version_is_published_again(tmp_path, daemon_factory):
    proxy = daemon_factory(REPOSITORIES)
    aws = Aws(proxy.url)
    npm = Npm(npm_binary(), tmp_path / "npm", f"{proxy.url}/npm/dev/")
    lib = project(tmp_path / "lib", {}, name="redo", version="2.0.0")
    npm.run("publish", cwd=lib)
    again = npm.run("publish", cwd=lib, check=False)
    assert again.returncode != 0  # a version cannot be published over

    blobs = proxy.blob_count()
    result = aws(
        "delete-package-versions",
        "--repository",
        "dev",
        "--format",
        "npm",
        "--package",
        "redo",
        "--versions",
        "2.0.0",
    )
    assert result["failedVersions"] == {} and result["successfulVersions"]["2.0.0"]["status"] == "Deleted"
    assert proxy.blob_count() == blobs - 1
    assert httpx.get(f"{proxy.url}/npm/dev/redo/-/redo-2.0.0.tgz").status_code == 404

    (lib / "index.js").write_text("module.exports = 'redo@2.0.0 again';\n")
    npm.run("publish", cwd=lib)
    app = project(tmp_path / "app", {"redo": "2.0.0"})
    npm.fresh_cache()
    npm.run("install", cwd=app)
    assert node_require(app, "redo") == ["redo@2.0.0 again"]


def test_npm_archived_cached_version_is_hidden_though_the_upstream_lists_it(tmp_path, daemon_factory):
    with FakeNpmRegistry() as public:
        public.add("left-pad", "1.0.0")
        public.add("left-pad", "1.1.0")
        proxy = daemon_factory(public.upstream_config() + '[repository.dev]\nupstreams = ["public"]\n')
        aws = Aws(proxy.url)
        tarball = f"{proxy.url}/npm/dev/left-pad/-/left-pad-1.0.0.tgz"
        assert httpx.get(tarball).status_code == 200  # cached in dev, an EXTERNAL version
        _status(aws, "dev", "npm", "left-pad", "1.0.0", "Archived")
        assert _versions(f"{proxy.url}/npm/dev/left-pad") == {"1.1.0"}
        assert httpx.get(tarball).status_code == 404
        assert public.tarball_requests("left-pad", "1.0.0") == 1  # not fetched again either


def test_pypi_archived_version_is_off_the_simple_page_and_its_file_is_gone(tmp_path, daemon_factory):
    proxy = daemon_factory(REPOSITORIES)
    aws = Aws(proxy.url)
    clients = Clients(tmp_path, proxy.url, repository="dev")
    for version in ("1.0", "2.0"):
        clients.twine(write_dist(tmp_path / "dist", make_wheel("Arch.Pkg", version)))
    page_url = f"{proxy.url}/pypi/dev/simple/arch-pkg/"
    before = {
        f["filename"]: f["url"] for f in httpx.get(page_url, headers={"Accept": JSON_V1}).json()["files"]
    }
    old = "arch_pkg-1.0-py3-none-any.whl"
    assert old in before
    installed, _ = clients.install("arch-pkg==1.0")
    assert installed == {"arch_pkg-1.0"}

    _status(aws, "dev", "pypi", "arch-pkg", "1.0", "Archived")
    after = {f["filename"] for f in httpx.get(page_url, headers={"Accept": JSON_V1}).json()["files"]}
    assert after == {"arch_pkg-2.0-py3-none-any.whl"}
    assert old not in httpx.get(page_url).text  # the HTML page too
    assert httpx.get(before[old]).status_code == 404
    installed, _ = clients.install("arch-pkg")
    assert installed == {"arch_pkg-2.0"}
    _, refused = clients.install("arch-pkg==1.0", check=False)
    assert refused.returncode != 0

    # Unlisted: off the page too, but its file is still served to whoever names it.
    _status(aws, "dev", "pypi", "arch-pkg", "2.0", "Unlisted")
    assert "arch_pkg-2.0" not in httpx.get(page_url).text
    new = "arch_pkg-2.0-py3-none-any.whl"
    assert httpx.get(before[new]).status_code == 200
    installed, _ = clients.install(before[new])
    assert installed == {"arch_pkg-2.0"}


POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>org.example.st</groupId>
  <artifactId>gone</artifactId>
  <version>{version}</version>
</project>
"""


def test_maven_disposed_version_jar_leaves_the_store(tmp_path, daemon_factory):
    proxy = daemon_factory(REPOSITORIES)
    aws = Aws(proxy.url)
    for version in ("1.0", "2.0"):
        maven_deploy(proxy.url, "dev", "org.example.st", "gone", version, POM.format(version=version))
    jar = f"{proxy.url}/maven/dev/org/example/st/gone/1.0/gone-1.0.jar"
    assert httpx.get(jar).status_code == 200
    metadata = f"{proxy.url}/maven/dev/org/example/st/gone/maven-metadata.xml"
    assert "<version>1.0</version>" in httpx.get(metadata).text
    blobs = proxy.blob_count()
    gone = ["--repository", "dev", "--format", "maven", "--namespace", "org.example.st", "--package", "gone"]
    assets = aws("list-package-version-assets", *gone, "--package-version", "1.0")["assets"]
    assert {"gone-1.0.jar", "gone-1.0.pom"} <= {a["name"] for a in assets}

    result = aws("dispose-package-versions", *gone, "--versions", "1.0")
    assert result["successfulVersions"]["1.0"]["status"] == "Disposed"
    assert proxy.blob_count() == blobs - len(assets)
    assert httpx.get(jar).status_code == 404
    text = httpx.get(metadata).text
    assert "<version>1.0</version>" not in text and "<version>2.0</version>" in text
    described = aws("describe-package-version", *gone, "--package-version", "1.0")
    assert described["packageVersion"]["status"] == "Disposed"


def test_copy_from_dev_to_release_installs_from_release_with_no_new_blob(tmp_path, daemon_factory):
    proxy = daemon_factory(REPOSITORIES)
    aws = Aws(proxy.url)
    npm = Npm(npm_binary(), tmp_path / "npm", f"{proxy.url}/npm/dev/")
    npm.run("publish", cwd=project(tmp_path / "lib", {}, name="promoted", version="3.1.0"))
    assert httpx.get(f"{proxy.url}/npm/release/promoted").status_code == 404
    blobs = proxy.blob_count()

    result = aws(
        "copy-package-versions",
        "--source-repository",
        "dev",
        "--destination-repository",
        "release",
        "--format",
        "npm",
        "--package",
        "promoted",
        "--versions",
        "3.1.0",
    )
    assert set(result["successfulVersions"]) == {"3.1.0"} and result["failedVersions"] == {}
    assert proxy.blob_count() == blobs

    release = Npm(npm.binary, tmp_path / "npm-release", f"{proxy.url}/npm/release/")
    app = project(tmp_path / "app", {"promoted": "^3.0.0"})
    release.run("install", cwd=app)
    assert node_require(app, "promoted") == ["promoted@3.1.0"]
    assert proxy.blob_count() == blobs
