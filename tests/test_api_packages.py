"""Packages and package versions on /v1, driven by the real ``aws`` CLI: every operation's happy path,
paging over more than one page (by hand with ``--no-paginate`` and by the CLI's own paginator), the
filters, and the error shapes (the CLI names the exception it parsed from ``x-amzn-ErrorType``)."""

from __future__ import annotations

import io
import zipfile

import httpx

from tests.api_cli import Aws, maven_deploy, npm_publish
from tests.fakes.npm_registry import FakeNpmRegistry
from tests.fakes.pypi_index import make_wheel
from tests.test_pypi_e2e import Clients

REPOSITORIES = """
[repository.dev]
publish = true

[repository.staging]
upstreams = ["dev"]

[repository.release]
publish = true
"""
NPM_PACKAGES = {("", f"pkg-{i}") for i in range(5)} | {("sc", f"scoped-{i}") for i in range(3)}


def _pages(aws: Aws, operation: str, key: str, *args: str, size: int) -> list[list[dict]]:
    """Every page of a listing, asked for by hand, ``size`` items a page."""
    pages, token = [], None
    while True:
        more = ["--next-token", token] if token else []
        result = aws(operation, *args, "--max-results", str(size), "--no-paginate", *more)
        pages.append(result[key])
        token = result.get("nextToken")
        if not token:
            return pages


def _names(packages: list[dict]) -> set[tuple[str, str]]:
    return {(p.get("namespace", ""), p["package"]) for p in packages}


def test_list_packages_pages_filters_and_refuses_bad_tokens(daemon_factory):
    proxy = daemon_factory(REPOSITORIES)
    aws = Aws(proxy.url)
    for namespace, name in NPM_PACKAGES:
        npm_publish(proxy.url, "dev", f"@{namespace}/{name}" if namespace else name, "1.0.0")
    maven_deploy(proxy.url, "dev", "org.example", "lib", "1.0", "<project/>")

    pages = _pages(aws, "list-packages", "packages", "--repository", "dev", size=3)
    listed = [p for page in pages for p in page]
    assert len(pages) >= 3 and all(len(page) <= 3 for page in pages)
    assert len(listed) == len(NPM_PACKAGES) + 1  # nothing twice
    assert _names(listed) == NPM_PACKAGES | {("org.example", "lib")}
    # The CLI's own paginator follows the tokens to the same list.
    paginated = aws("list-packages", "--repository", "dev", "--page-size", "2")["packages"]
    assert _names(paginated) == _names(listed)

    npm_only = aws("list-packages", "--repository", "dev", "--format", "npm")["packages"]
    assert _names(npm_only) == NPM_PACKAGES
    scoped = aws("list-packages", "--repository", "dev", "--format", "npm", "--namespace", "sc")["packages"]
    assert _names(scoped) == {("sc", f"scoped-{i}") for i in range(3)}
    prefixed = _pages(
        aws, "list-packages", "packages", "--repository", "dev", "--package-prefix", "pkg-", size=2
    )
    assert _names([p for page in prefixed for p in page]) == {("", f"pkg-{i}") for i in range(5)}
    assert aws("list-packages", "--repository", "release")["packages"] == []

    aws(
        "put-package-origin-configuration",
        "--repository",
        "dev",
        "--format",
        "npm",
        "--package",
        "pkg-3",
        "--restrictions",
        "publish=BLOCK,upstream=ALLOW",
    )
    blocked = aws("list-packages", "--repository", "dev", "--publish", "BLOCK")["packages"]
    assert _names(blocked) == {("", "pkg-3")}
    assert blocked[0]["originConfiguration"] == {"restrictions": {"publish": "BLOCK", "upstream": "ALLOW"}}
    assert ("", "pkg-3") not in _names(
        aws("list-packages", "--repository", "dev", "--upstream", "BLOCK")["packages"]
    )

    first = aws("list-packages", "--repository", "dev", "--max-results", "2", "--no-paginate")
    token = first["nextToken"]
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for bad in (tampered, "not-a-token"):
        error = aws.error("list-packages", "--repository", "dev", "--next-token", bad)
        assert "ValidationException" in error
    # A token continues only the query that made it.
    other = aws.error(
        "list-packages", "--repository", "dev", "--package-prefix", "pkg", "--next-token", token
    )
    assert "ValidationException" in other

    assert "ResourceNotFoundException" in aws.error("list-packages", "--repository", "nope")
    wrong_domain = Aws(proxy.url, domain="elsewhere")
    assert "ResourceNotFoundException" in wrong_domain.error("list-packages", "--repository", "dev")
    assert aws("list-packages", "--repository", "dev", "--format", "nuget")["packages"] == []
    assert "ValidationException" in aws.error("list-packages", "--repository", "dev", "--format", "rubygems")
    assert "ValidationException" in aws.error(
        "describe-package", "--repository", "dev", "--format", "nuget", "--package", "pkg-1"
    )


def test_describe_origin_configuration_and_delete_package(daemon_factory):
    proxy = daemon_factory(REPOSITORIES)
    aws = Aws(proxy.url)
    npm_publish(proxy.url, "dev", "@sc/kept", "1.0.0")
    npm_publish(proxy.url, "dev", "@sc/kept", "1.1.0")
    package = ["--repository", "dev", "--format", "npm", "--namespace", "sc", "--package", "kept"]

    described = aws("describe-package", *package)["package"]
    assert described == {
        "format": "npm",
        "namespace": "sc",
        "name": "kept",
        "originConfiguration": {"restrictions": {"publish": "ALLOW", "upstream": "BLOCK"}},
    }
    set_ = aws("put-package-origin-configuration", *package, "--restrictions", "publish=BLOCK,upstream=BLOCK")
    assert set_["originConfiguration"]["restrictions"] == {"publish": "BLOCK", "upstream": "BLOCK"}
    # The data plane honours it: a new version is refused.
    blocked = httpx.put(
        f"{proxy.url}/npm/dev/@sc%2fkept",
        json={
            "name": "@sc/kept",
            "versions": {"2.0.0": {"name": "@sc/kept", "version": "2.0.0", "dist": {}}},
            "_attachments": {"@sc/kept-2.0.0.tgz": {"data": "eA==", "length": 1}},
        },
    )
    assert blocked.status_code == 409 and "publish=BLOCK" in blocked.text

    blobs = proxy.blob_count()
    deleted = aws("delete-package", *package)["deletedPackage"]
    assert deleted["package"] == "kept" and deleted["namespace"] == "sc"
    assert proxy.blob_count() == blobs - 2
    assert "ResourceNotFoundException" in aws.error("describe-package", *package)
    assert "ResourceNotFoundException" in aws.error("delete-package", *package)
    assert aws("list-packages", "--repository", "dev")["packages"] == []
    assert httpx.get(f"{proxy.url}/npm/dev/@sc%2fkept").status_code == 404


def test_package_versions_listing_assets_and_changes(tmp_path, daemon_factory):
    proxy = daemon_factory(REPOSITORIES)
    aws = Aws(proxy.url)
    tarballs = {
        v: npm_publish(proxy.url, "dev", "multi", v, {"description": f"multi {v}"})
        for v in ("1.0.0", "1.2.0", "1.10.0", "2.0.0", "0.9.0")
    }
    package = ["--repository", "dev", "--format", "npm", "--package", "multi"]

    pages = _pages(aws, "list-package-versions", "versions", *package, size=2)
    assert len(pages) == 3
    assert [v["version"] for page in pages for v in page] == ["0.9.0", "1.0.0", "1.2.0", "1.10.0", "2.0.0"]
    newest_first = aws("list-package-versions", *package, "--sort-by", "PUBLISHED_TIME")["versions"]
    assert [v["version"] for v in newest_first] == ["0.9.0", "2.0.0", "1.10.0", "1.2.0", "1.0.0"]
    first = newest_first[0]
    assert first["status"] == "Published"
    assert first["origin"] == {"domainEntryPoint": {"repositoryName": "dev"}, "originType": "INTERNAL"}

    described = aws("describe-package-version", *package, "--package-version", "1.2.0")["packageVersion"]
    assert described["summary"] == "multi 1.2.0" and described["status"] == "Published"
    assert described["revision"] == next(v for v in newest_first if v["version"] == "1.2.0")["revision"]

    assets = aws("list-package-version-assets", *package, "--package-version", "1.2.0")
    (asset,) = assets["assets"]
    assert asset["name"] == "multi-1.2.0.tgz" and asset["size"] == len(tarballs["1.2.0"])
    assert set(asset["hashes"]) == {"SHA-256", "SHA-512", "SHA-1", "MD5"}
    out = tmp_path / "asset.tgz"
    got = aws(
        "get-package-version-asset",
        *package,
        "--package-version",
        "1.2.0",
        "--asset",
        asset["name"],
        str(out),
    )
    assert out.read_bytes() == tarballs["1.2.0"]
    assert got == {
        "assetName": "multi-1.2.0.tgz",
        "packageVersion": "1.2.0",
        "packageVersionRevision": described["revision"],
    }

    unlisted = aws(
        "update-package-versions-status",
        *package,
        "--versions",
        "1.0.0",
        "1.2.0",
        "9.9.9",
        "--target-status",
        "Unlisted",
        "--expected-status",
        "Published",
    )
    assert {v: r["status"] for v, r in unlisted["successfulVersions"].items()} == {
        "1.0.0": "Unlisted",
        "1.2.0": "Unlisted",
    }
    assert unlisted["failedVersions"]["9.9.9"]["errorCode"] == "NOT_FOUND"
    mismatch = aws(
        "update-package-versions-status",
        *package,
        "--versions",
        "1.0.0",
        "--target-status",
        "Archived",
        "--expected-status",
        "Published",
    )
    assert mismatch["failedVersions"]["1.0.0"]["errorCode"] == "MISMATCHED_STATUS"
    by_status = aws("list-package-versions", *package, "--status", "Unlisted")["versions"]
    assert {v["version"] for v in by_status} == {"1.0.0", "1.2.0"}
    assert "ValidationException" in aws.error(
        "update-package-versions-status", *package, "--versions", "1.0.0", "--target-status", "Disposed"
    )
    revision = aws("describe-package-version", *package, "--package-version", "2.0.0")["packageVersion"][
        "revision"
    ]
    wrong = aws(
        "dispose-package-versions",
        *package,
        "--versions",
        "2.0.0",
        "--version-revisions",
        "2.0.0=not-the-revision",
    )
    assert wrong["failedVersions"]["2.0.0"]["errorCode"] == "MISMATCHED_REVISION"
    disposed = aws(
        "dispose-package-versions",
        *package,
        "--versions",
        "2.0.0",
        "--version-revisions",
        f"2.0.0={revision}",
    )
    assert disposed["successfulVersions"]["2.0.0"]["status"] == "Disposed"
    assert aws("list-package-version-assets", *package, "--package-version", "2.0.0")["assets"] == []
    assert "ResourceNotFoundException" in aws.error(
        "get-package-version-asset",
        *package,
        "--package-version",
        "2.0.0",
        "--asset",
        "multi-2.0.0.tgz",
        str(out),
    )

    deleted = aws("delete-package-versions", *package, "--versions", "1.10.0")
    assert deleted["successfulVersions"]["1.10.0"]["status"] == "Deleted"
    remaining = aws("list-package-versions", *package)["versions"]
    assert {v["version"]: v["status"] for v in remaining} == {
        "0.9.0": "Published",
        "1.0.0": "Unlisted",
        "1.2.0": "Unlisted",
        "2.0.0": "Disposed",
    }
    assert "ResourceNotFoundException" in aws.error(
        "describe-package-version", *package, "--package-version", "1.10.0"
    )
    assert "ResourceNotFoundException" in aws.error(
        "list-package-versions", "--repository", "dev", "--format", "npm", "--package", "missing"
    )


def test_copy_package_versions_overwrite_and_from_upstream(daemon_factory):
    proxy = daemon_factory(REPOSITORIES)
    aws = Aws(proxy.url)
    npm_publish(proxy.url, "dev", "promo", "1.0.0")
    npm_publish(proxy.url, "dev", "promo", "1.1.0")
    copy = ["--destination-repository", "release", "--format", "npm", "--package", "promo"]

    first = aws("copy-package-versions", "--source-repository", "dev", *copy, "--versions", "1.0.0")
    assert set(first["successfulVersions"]) == {"1.0.0"}
    again = aws("copy-package-versions", "--source-repository", "dev", *copy, "--versions", "1.0.0")
    assert again["failedVersions"]["1.0.0"]["errorCode"] == "ALREADY_EXISTS"
    forced = aws(
        "copy-package-versions",
        "--source-repository",
        "dev",
        *copy,
        "--versions",
        "1.0.0",
        "--allow-overwrite",
    )
    assert set(forced["successfulVersions"]) == {"1.0.0"}

    # staging holds nothing itself; dev is its upstream.
    alone = aws.error("copy-package-versions", "--source-repository", "staging", *copy, "--versions", "1.1.0")
    assert "ResourceNotFoundException" in alone and "not in staging" in alone
    through = aws(
        "copy-package-versions",
        "--source-repository",
        "staging",
        *copy,
        "--versions",
        "1.1.0",
        "--include-from-upstream",
    )
    assert set(through["successfulVersions"]) == {"1.1.0"}
    listed = aws("list-package-versions", "--repository", "release", "--format", "npm", "--package", "promo")
    assert {v["version"] for v in listed["versions"]} == {"1.0.0", "1.1.0"}
    assert httpx.get(f"{proxy.url}/npm/release/promo/-/promo-1.1.0.tgz").status_code == 200

    assert "ValidationException" in aws.error(
        "copy-package-versions", "--source-repository", "release", *copy
    )
    assert "ResourceNotFoundException" in aws.error(
        "copy-package-versions", "--source-repository", "nope", *copy, "--versions", "1.0.0"
    )


def _wheel_with_description(name: str, version: str) -> tuple[str, bytes]:
    """A wheel whose METADATA has a home page, license, requirements and a description body."""
    filename, data = make_wheel(name, version, requires_dist=["requests>=2.0", "rich; extra == 'fancy'"])
    source, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(out, "w") as wheel:
        for item in source.infolist():
            body = source.read(item)
            if item.filename.endswith("/METADATA"):
                head = body.decode().rstrip("\n")
                body = (
                    head + "\nHome-page: https://pkg.example.com/\nLicense: MIT\n"
                    "Description-Content-Type: text/markdown\n\n# Described\n\nLong text.\n"
                ).encode()
            wheel.writestr(item, body)
    return filename, out.getvalue()


MAVEN_POM = """<?xml version="1.0"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>org.example.d</groupId>
  <artifactId>described</artifactId>
  <version>1.0</version>
  <name>Described library</name>
  <description>A library with details</description>
  <url>https://lib.example.com/</url>
  <licenses><license><name>Apache-2.0</name><url>https://license.example.com/</url></license></licenses>
  <scm><url>https://scm.example.com/described</url></scm>
  <dependencies>
    <dependency><groupId>org.example</groupId><artifactId>core</artifactId><version>2.1</version></dependency>
    <dependency>
      <groupId>org.junit</groupId><artifactId>junit</artifactId><version>5.0</version><scope>test</scope>
    </dependency>
  </dependencies>
</project>
"""


def test_readme_dependencies_and_details_of_each_format(tmp_path, daemon_factory):
    with FakeNpmRegistry() as public:
        public.add("cached", "1.0.0", dependencies={"dep-a": "^2.0.0"})
        proxy = daemon_factory(
            public.upstream_config()
            + REPOSITORIES.replace('upstreams = ["dev"]', 'upstreams = ["dev", "public"]')
        )
        aws = Aws(proxy.url)

        # npm, published: the version document; cached from an upstream: the tarball's package.json.
        npm_publish(
            proxy.url,
            "dev",
            "@d/pub",
            "1.0.0",
            {
                "description": "a published one",
                "readme": "# Pub",
                "license": "ISC",
                "homepage": "https://pub.example.com/",
                "dependencies": {"@d/other": "~1.0.0"},
                "devDependencies": {"tool": "*"},
            },
        )
        pub = [
            "--repository",
            "dev",
            "--format",
            "npm",
            "--namespace",
            "d",
            "--package",
            "pub",
            "--package-version",
            "1.0.0",
        ]
        described = aws("describe-package-version", *pub)["packageVersion"]
        assert (
            described["summary"] == "a published one" and described["homePage"] == "https://pub.example.com/"
        )
        assert described["licenses"] == [{"name": "ISC"}] and described["displayName"] == "@d/pub"
        assert aws("get-package-version-readme", *pub)["readme"] == "# Pub"
        deps = aws("list-package-version-dependencies", *pub)["dependencies"]
        assert deps == [
            {
                "namespace": "d",
                "package": "other",
                "dependencyType": "regular",
                "versionRequirement": "~1.0.0",
            },
            {"package": "tool", "dependencyType": "dev", "versionRequirement": "*"},
        ]
        assert httpx.get(f"{proxy.url}/npm/staging/cached/-/cached-1.0.0.tgz").status_code == 200
        cached = [
            "--repository",
            "staging",
            "--format",
            "npm",
            "--package",
            "cached",
            "--package-version",
            "1.0.0",
        ]
        origin = aws("describe-package-version", *cached)["packageVersion"]["origin"]
        assert origin == {"domainEntryPoint": {"externalConnectionName": "public"}, "originType": "EXTERNAL"}
        deps = aws("list-package-version-dependencies", *cached)["dependencies"]
        assert deps == [{"package": "dep-a", "dependencyType": "regular", "versionRequirement": "^2.0.0"}]

    # PyPI: the core metadata; the readme is its description.
    clients = Clients(tmp_path, proxy.url, repository="dev")
    filename, data = _wheel_with_description("Det.Pkg", "1.0")
    (tmp_path / filename).write_bytes(data)
    clients.twine(tmp_path / filename)
    det = ["--repository", "dev", "--format", "pypi", "--package", "Det.Pkg", "--package-version", "1.0"]
    described = aws("describe-package-version", *det)["packageVersion"]
    assert described["packageName"] == "det-pkg" and described["summary"] == "a test project"
    assert described["homePage"] == "https://pkg.example.com/" and described["licenses"] == [{"name": "MIT"}]
    assert aws("get-package-version-readme", *det)["readme"].startswith("# Described")
    deps = aws("list-package-version-dependencies", *det)["dependencies"]
    assert deps == [
        {"package": "requests", "dependencyType": "install", "versionRequirement": ">=2.0"},
        {"package": "rich", "dependencyType": "extra"},
    ]

    # Maven: the POM; no readme.
    maven_deploy(proxy.url, "dev", "org.example.d", "described", "1.0", MAVEN_POM)
    mvn = [
        "--repository",
        "dev",
        "--format",
        "maven",
        "--namespace",
        "org.example.d",
        "--package",
        "described",
        "--package-version",
        "1.0",
    ]
    described = aws("describe-package-version", *mvn)["packageVersion"]
    assert (
        described["summary"] == "A library with details"
        and described["homePage"] == "https://lib.example.com/"
    )
    assert described["sourceCodeRepository"] == "https://scm.example.com/described"
    assert described["licenses"] == [{"name": "Apache-2.0", "url": "https://license.example.com/"}]
    assert "readme" not in aws("get-package-version-readme", *mvn)
    deps = aws("list-package-version-dependencies", *mvn)["dependencies"]
    assert deps == [
        {
            "namespace": "org.example",
            "package": "core",
            "dependencyType": "compile",
            "versionRequirement": "2.1",
        },
        {"namespace": "org.junit", "package": "junit", "dependencyType": "test", "versionRequirement": "5.0"},
    ]
