"""The /v1 domain and repository operations, driven by the real ``aws codeartifact`` CLI (v1).

The CLI parses every answer with botocore's model of the service, so a shape it cannot parse fails the
command; error answers are checked by the exception name the CLI reports. The proxy runs as a
subprocess (tests.conftest); the fake CodeArtifact and the fake npm registry run on threads of this
process, on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.codeartifact import FakeCodeArtifact, aws_environment, isolate_aws
from tests.fakes.daemon import RunningDaemon, start_daemon, write_config
from tests.fakes.npm_registry import FakeNpmRegistry
from tests.test_npm_e2e import Npm, node_require, npm_binary, project

CONFIG = """
[domain]
name = "acme"
owner = "123456789012"

[upstream.public-npm]
format = "npm"
url = "http://127.0.0.1:9/"
external_connection = "public:npmjs"

[upstream.public-pypi]
format = "pypi"
url = "http://127.0.0.1:9/simple/"
external_connection = "public:pypi"

[upstream.plain]
format = "npm"
url = "http://127.0.0.1:9/"

[repository.base]
publish = true
"""


def aws_binary() -> str:
    found = shutil.which("aws", path=str(Path(sys.executable).parent)) or shutil.which("aws")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("the aws cli is not installed, and CI requires the real client")
        pytest.skip("the aws cli is not installed")
    return found


class Aws:
    """``aws codeartifact`` against one proxy, with dummy credentials and no machine AWS setup."""

    def __init__(self, url: str, home: Path) -> None:
        self.binary = aws_binary()
        self.url = url
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        for name, value in aws_environment(home, access_key="AKIDEXAMPLE", secret_key="secret").items():
            if value is not None:
                env[name] = value
        self.env = env

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, "codeartifact", *args, "--endpoint-url", self.url, "--region", "us-east-1"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def ok(self, *args: str) -> dict[str, Any]:
        result = self.run(*args, "--output", "json")
        assert result.returncode == 0, f"aws codeartifact {' '.join(args)}: {result.stderr}"
        return json.loads(result.stdout) if result.stdout.strip() else {}

    def fails(self, code: str, *args: str) -> str:
        """The error message of a call that must fail with CodeArtifact's exception ``code``."""
        result = self.run(*args)
        assert result.returncode != 0, result.stdout
        assert f"An error occurred ({code})" in result.stderr, result.stderr
        return result.stderr


@pytest.fixture
def proxy(daemon_factory) -> RunningDaemon:  # type: ignore[no-untyped-def]
    return daemon_factory(CONFIG)


@pytest.fixture
def aws(proxy: RunningDaemon, tmp_path: Path) -> Aws:
    return Aws(proxy.url, tmp_path / "aws")


DOMAIN = ("--domain", "acme")


def test_domain_operations(aws: Aws, proxy: RunningDaemon) -> None:
    described = aws.ok("describe-domain", *DOMAIN)["domain"]
    assert described["name"] == "acme" and described["owner"] == "123456789012"
    assert described["status"] == "Active" and described["repositoryCount"] == 1
    assert described["assetSizeBytes"] == 0
    assert described["arn"].endswith(":123456789012:domain/acme")
    assert aws.ok("describe-domain", *DOMAIN, "--domain-owner", "123456789012")["domain"]["name"] == "acme"
    assert [d["name"] for d in aws.ok("list-domains")["domains"]] == ["acme"]

    aws.fails("ResourceNotFoundException", "describe-domain", "--domain", "other")
    aws.fails("ResourceNotFoundException", "describe-domain", *DOMAIN, "--domain-owner", "999999999999")
    assert "already exists" in aws.fails("ConflictException", "create-domain", *DOMAIN)
    message = aws.fails("ServiceQuotaExceededException", "create-domain", "--domain", "second")
    assert "one domain" in message and str(proxy.config) in message
    assert "cannot be deleted" in aws.fails("ConflictException", "delete-domain", *DOMAIN)
    aws.fails("ValidationException", "list-domains", "--next-token", "bogus")

    # Assets held count in the domain's size.
    httpx.put(f"{proxy.url}/maven/base/org/acme/lib/1.0/lib-1.0.jar", content=b"x" * 1000, timeout=10)
    assert aws.ok("describe-domain", *DOMAIN)["domain"]["assetSizeBytes"] >= 1000


def test_repository_life_cycle_and_its_errors(aws: Aws, proxy: RunningDaemon) -> None:
    created = aws.ok(
        "create-repository", *DOMAIN, "--repository", "team", "--description", "the team's",
        "--upstreams", "repositoryName=base",
    )["repository"]  # fmt: skip
    assert created["name"] == "team" and created["description"] == "the team's"
    assert created["upstreams"] == [{"repositoryName": "base"}] and created["externalConnections"] == []
    assert created["domainName"] == "acme" and created["domainOwner"] == "123456789012"
    assert created["administratorAccount"] == "123456789012"
    assert created["arn"].endswith(":123456789012:repository/acme/team")
    assert aws.ok("describe-repository", *DOMAIN, "--repository", "team")["repository"] == created

    aws.ok("create-repository", *DOMAIN, "--repository", "app", "--upstreams", "repositoryName=team")
    updated = aws.ok(
        "update-repository", *DOMAIN, "--repository", "team", "--description", "changed",
        "--upstreams", "repositoryName=plain", "repositoryName=base",
    )["repository"]  # fmt: skip
    assert updated["description"] == "changed"
    assert updated["upstreams"] == [{"repositoryName": "plain"}, {"repositoryName": "base"}]

    # Each refusal, with CodeArtifact's exception.
    aws.fails("ConflictException", "create-repository", *DOMAIN, "--repository", "team")
    aws.fails("ConflictException", "create-repository", *DOMAIN, "--repository", "plain")
    loop = aws.fails(
        "ValidationException", "update-repository", *DOMAIN, "--repository", "team",
        "--upstreams", "repositoryName=app",
    )  # fmt: skip
    assert "team -> app -> team" in loop
    aws.fails("ValidationException", "update-repository", *DOMAIN, "--repository", "team",
              "--upstreams", "repositoryName=team")  # fmt: skip
    unknown = aws.fails(
        "ValidationException", "create-repository", *DOMAIN, "--repository", "x1", "--upstreams",
        "repositoryName=nowhere",
    )  # fmt: skip
    assert "nowhere" in unknown
    many = [f"repositoryName=r{n:02}" for n in range(11)]
    for n in range(11):
        aws.ok("create-repository", *DOMAIN, "--repository", f"r{n:02}")
    too_many = aws.fails("ValidationException", "create-repository", *DOMAIN, "--repository", "x2",
                         "--upstreams", *many)  # fmt: skip
    assert "at most 10" in too_many
    aws.fails("ResourceNotFoundException", "describe-repository", *DOMAIN, "--repository", "nope")
    aws.fails("ResourceNotFoundException", "describe-repository", "--domain", "other", "--repository", "team")
    # What the CLI itself checks, sent by hand: the proxy checks it too.
    short = httpx.get(f"{proxy.url}/v1/repository", params={"domain": "acme", "repository": "a"}, timeout=10)
    assert short.status_code == 400 and short.headers["x-amzn-ErrorType"] == "ValidationException"
    assert "repository" in short.json()["message"]

    # The config file's repository: described as such, changed only there.
    base = aws.ok("describe-repository", *DOMAIN, "--repository", "base")["repository"]
    assert str(proxy.config) in base["description"]
    refused = aws.fails("AccessDeniedException", "update-repository", *DOMAIN, "--repository", "base",
                        "--description", "mine")  # fmt: skip
    assert str(proxy.config) in refused
    assert str(proxy.config) in aws.fails(
        "AccessDeniedException", "delete-repository", *DOMAIN, "--repository", "base"
    )

    # A repository that is an upstream of another cannot go; once it is not, it can.
    assert "upstream of app" in aws.fails(
        "ConflictException", "delete-repository", *DOMAIN, "--repository", "team"
    )
    deleted = aws.ok("delete-repository", *DOMAIN, "--repository", "app")["repository"]
    assert deleted["name"] == "app" and deleted["upstreams"] == [{"repositoryName": "team"}]
    aws.fails("ResourceNotFoundException", "describe-repository", *DOMAIN, "--repository", "app")
    aws.fails("ResourceNotFoundException", "delete-repository", *DOMAIN, "--repository", "app")
    assert httpx.get(f"{proxy.url}/npm/app/anything", timeout=10).status_code == 404


def test_listings_page_and_filter(aws: Aws, proxy: RunningDaemon) -> None:
    names = ["lib-a", "lib-b", "lib-c", "lib-d", "tool"]
    for name in names:
        aws.ok("create-repository", *DOMAIN, "--repository", name)
    everything = sorted(["base", *names])

    # The CLI follows nextToken itself: 2 a page is 3 pages, the same repositories as one page.
    listed = aws.ok("list-repositories-in-domain", *DOMAIN, "--page-size", "2")["repositories"]
    assert [r["name"] for r in listed] == everything
    assert proxy.log_text().count('"POST /v1/domain/repositories" 200') == 3
    assert [r["name"] for r in aws.ok("list-repositories", "--page-size", "4")["repositories"]] == everything

    # By hand: a page, then the next from its token.
    first = aws.ok(
        "list-repositories-in-domain", *DOMAIN, "--repository-prefix", "lib-", "--max-results", "3"
    )
    assert [r["name"] for r in first["repositories"]] == ["lib-a", "lib-b", "lib-c"]
    second = aws.ok(
        "list-repositories-in-domain", *DOMAIN, "--repository-prefix", "lib-", "--max-results", "3",
        "--next-token", first["nextToken"],
    )  # fmt: skip
    assert [r["name"] for r in second["repositories"]] == ["lib-d"] and "nextToken" not in second
    summary = second["repositories"][0]
    assert summary["domainName"] == "acme" and summary["arn"].endswith("repository/acme/lib-d")

    prefixed = aws.ok("list-repositories", "--repository-prefix", "to")["repositories"]
    assert [r["name"] for r in prefixed] == ["tool"]
    other_admin = aws.ok("list-repositories-in-domain", *DOMAIN, "--administrator-account", "999999999999")
    assert other_admin["repositories"] == []
    aws.fails("ValidationException", "list-repositories", "--next-token", "not-a-token")
    zero = httpx.post(f"{proxy.url}/v1/repositories", params={"max-results": "0"}, timeout=10)
    assert zero.status_code == 400 and zero.headers["x-amzn-ErrorType"] == "ValidationException"
    aws.fails("ResourceNotFoundException", "list-repositories-in-domain", "--domain", "other")


def test_external_connections_and_endpoints(aws: Aws, proxy: RunningDaemon) -> None:
    repo = ("--repository", "dev")
    aws.ok("create-repository", *DOMAIN, *repo, "--upstreams", "repositoryName=base")
    associated = aws.ok(
        "associate-external-connection", *DOMAIN, *repo, "--external-connection", "public:npmjs"
    )
    assert associated["repository"]["externalConnections"] == [
        {"externalConnectionName": "public:npmjs", "packageFormat": "npm", "status": "Available"}
    ]
    assert associated["repository"]["upstreams"] == [{"repositoryName": "base"}]
    unknown = aws.fails("ValidationException", "associate-external-connection", *DOMAIN, *repo,
                        "--external-connection", "public:nuget-org")  # fmt: skip
    assert "external_connection" in unknown and str(proxy.config) in unknown
    aws.fails("ConflictException", "associate-external-connection", *DOMAIN, *repo,
              "--external-connection", "public:pypi")  # fmt: skip

    # UpdateRepository replaces the upstream repositories and keeps the external connection.
    updated = aws.ok("update-repository", *DOMAIN, *repo, "--upstreams", "repositoryName=plain")["repository"]
    assert updated["upstreams"] == [{"repositoryName": "plain"}]
    assert [c["externalConnectionName"] for c in updated["externalConnections"]] == ["public:npmjs"]

    gone = aws.ok("disassociate-external-connection", *DOMAIN, *repo, "--external-connection", "public:npmjs")
    assert gone["repository"]["externalConnections"] == []
    aws.fails("ResourceNotFoundException", "disassociate-external-connection", *DOMAIN, *repo,
              "--external-connection", "public:npmjs")  # fmt: skip
    aws.fails("AccessDeniedException", "associate-external-connection", *DOMAIN, "--repository", "base",
              "--external-connection", "public:npmjs")  # fmt: skip

    for format_ in ("npm", "pypi", "maven"):
        endpoint = aws.ok("get-repository-endpoint", *DOMAIN, *repo, "--format", format_)[
            "repositoryEndpoint"
        ]
        assert endpoint == f"{proxy.url}/{format_}/dev/"
    aws.fails("ValidationException", "get-repository-endpoint", *DOMAIN, *repo, "--format", "nuget")
    aws.fails("ResourceNotFoundException", "get-repository-endpoint", *DOMAIN, "--repository", "nope",
              "--format", "npm")  # fmt: skip


def test_repository_endpoint_honours_public_url(daemon_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    running = daemon_factory("[repository.base]\n")
    config = running.config.read_text().replace(
        "[server]\n", '[server]\npublic_url = "https://proxy.example.com/base/"\n'
    )
    running.stop()
    running.config.write_text(config)
    running = start_daemon(running.config, tmp_path / "again.log")
    try:
        aws = Aws(running.url, tmp_path / "aws")
        endpoint = aws.ok(
            "get-repository-endpoint", "--domain", "local", "--repository", "base", "--format", "pypi"
        )
        assert endpoint["repositoryEndpoint"] == "https://proxy.example.com/base/pypi/base/"
    finally:
        running.stop()


def test_repository_created_at_run_time_takes_pypi_and_maven_and_starts_empty_again(
    aws: Aws, proxy: RunningDaemon
) -> None:
    aws.ok("create-repository", *DOMAIN, "--repository", "fresh")
    jar = f"{proxy.url}/maven/fresh/org/acme/lib/1.0/lib-1.0.jar"
    assert httpx.put(jar, content=b"a jar", timeout=10).status_code in (200, 201)
    assert httpx.get(jar, timeout=10).content == b"a jar"
    assert httpx.get(f"{proxy.url}/pypi/fresh/simple/", timeout=10).status_code == 200

    aws.ok("delete-repository", *DOMAIN, "--repository", "fresh")
    assert httpx.get(jar, timeout=10).status_code == 404
    assert httpx.get(f"{proxy.url}/pypi/fresh/simple/", timeout=10).status_code == 404
    aws.ok("create-repository", *DOMAIN, "--repository", "fresh")
    assert httpx.get(jar, timeout=10).status_code == 404  # the deleted repository's packages went with it


# -- a repository created at run time, served at once, kept over a restart ------------------------
def test_repository_created_at_run_time_serves_npm_and_survives_a_restart(
    tmp_path: Path,
    daemon_factory,  # type: ignore[no-untyped-def]
) -> None:
    binary = npm_binary()
    with FakeNpmRegistry() as first, FakeNpmRegistry() as second:
        first.add("greeting", "1.0.0")
        second.add("greeting", "2.0.0")
        second.add("only-second", "1.0.0")
        running = daemon_factory(
            first.upstream_config("first") + second.upstream_config("second") + "[repository.base]\n"
        )
        aws = Aws(running.url, tmp_path / "aws")
        aws.ok("create-repository", "--domain", "local", "--repository", "team", "--upstreams",
               "repositoryName=first")  # fmt: skip
        npm = Npm(binary, tmp_path / "npm", f"{running.url}/npm/team/")
        app = project(tmp_path / "app", {"greeting": "*"})
        npm.run("install", cwd=app)
        assert json.loads((app / "node_modules/greeting/package.json").read_text())["version"] == "1.0.0"

        # The upstream list changes: the next install sees the other registry, with no restart.
        aws.ok("update-repository", "--domain", "local", "--repository", "team", "--upstreams",
               "repositoryName=second")  # fmt: skip
        npm.fresh_cache()
        later = project(tmp_path / "later", {"greeting": "*", "only-second": "1.0.0"})
        npm.run("install", cwd=later)
        assert json.loads((later / "node_modules/greeting/package.json").read_text())["version"] == "2.0.0"
        assert node_require(later, "only-second") == ["only-second@1.0.0"]

        # A restart keeps the repository and its upstreams.
        assert running.stop() == 0
        running = start_daemon(running.config, tmp_path / "restarted.log")
        try:
            aws = Aws(running.url, tmp_path / "aws")
            kept = aws.ok("describe-repository", "--domain", "local", "--repository", "team")["repository"]
            assert kept["upstreams"] == [{"repositoryName": "second"}]
            npm.fresh_cache()
            again = project(tmp_path / "again", {"greeting": "2.0.0"})
            npm.run("install", cwd=again)
            assert (
                json.loads((again / "node_modules/greeting/package.json").read_text())["version"] == "2.0.0"
            )

            # Deleted: the data plane stops serving it at once.
            aws.ok("delete-repository", "--domain", "local", "--repository", "team")
            assert httpx.get(f"{running.url}/npm/team/greeting", timeout=10).status_code == 404
        finally:
            running.stop()


# -- a fronted CodeArtifact domain: reads forwarded with the proxy's credentials, writes refused -----
def test_fronted_domain_reads_are_forwarded_and_writes_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeCodeArtifact()
    fake.start_in_thread()
    try:
        corp = fake.add_domain("corp-domain", "111122223333")
        for name in ("alpha", "beta", "gamma"):
            corp.add_repository(name)
        fake.add_domain("open-domain", "111122223333")
        config = write_config(
            tmp_path,
            f"""
[codeartifact.corp]
domain = "corp-domain"
domain_owner = "111122223333"
region = "eu-west-1"
endpoint_url = "{fake.url}"

[codeartifact.open]
domain = "open-domain"
domain_owner = "111122223333"
region = "eu-west-1"
endpoint_url = "{fake.url}"
allow_writes = true

[codeartifact.gone]
domain = "gone-domain"
domain_owner = "111122223333"
region = "eu-west-1"
endpoint_url = "http://127.0.0.1:9"

[repository.base]
""",
        )
        # The proxy's own credentials (the agent below has other, dummy ones).
        isolate_aws(monkeypatch, tmp_path / "proxy-aws", access_key="AKIDPROXY", secret_key="s")
        running = start_daemon(config, tmp_path / "daemon.log")
        try:
            aws = Aws(running.url, tmp_path / "agent-aws")  # the agent's own (dummy) credentials
            described = aws.ok("describe-domain", "--domain", "corp-domain")["domain"]
            assert described["name"] == "corp-domain" and described["repositoryCount"] == 3

            # CodeArtifact pages by 2 here: the CLI follows its nextToken through the proxy.
            listed = aws.ok("list-repositories-in-domain", "--domain", "corp-domain")["repositories"]
            assert [r["name"] for r in listed] == ["alpha", "beta", "gamma"]
            lists = [c for c in fake.control_requests if c.operation == "ListRepositoriesInDomain"]
            assert len(lists) == 2 and lists[1].params["next-token"] == "beta"
            assert {c.access_key for c in fake.control_requests} == {"AKIDPROXY"}
            assert {c.region for c in fake.control_requests} == {"eu-west-1"}

            # An asset's bytes stream through, with its headers.
            tarball = os.urandom(300_000)
            corp.repositories["beta"].add_npm_package({"name": "lib"}, {"1.0.0": tarball})
            out = tmp_path / "lib-1.0.0.tgz"
            asset = aws.ok("get-package-version-asset", "--domain", "corp-domain", "--repository", "beta",
                           "--format", "npm", "--package", "lib", "--package-version", "1.0.0",
                           "--asset", "lib-1.0.0.tgz", str(out))  # fmt: skip
            assert out.read_bytes() == tarball
            assert asset == {
                "assetName": "lib-1.0.0.tgz",
                "packageVersion": "1.0.0",
                "packageVersionRevision": "rev-1",
            }
            aws.fails("ResourceNotFoundException", "get-package-version-asset", "--domain", "corp-domain",
                      "--repository", "beta", "--format", "npm", "--package", "lib",
                      "--package-version", "9.9.9", "--asset", "lib-9.9.9.tgz", str(out))  # fmt: skip

            aws.fails("ResourceNotFoundException", "describe-repository", "--domain", "corp-domain",
                      "--repository", "nope")  # fmt: skip
            assert aws.ok("describe-repository", "--domain", "corp-domain", "--repository", "beta")[
                "repository"
            ]["name"] == "beta"  # fmt: skip

            # Writes: refused unless the domain allows them; tokens are never handed out.
            refused = aws.fails("AccessDeniedException", "create-repository", "--domain", "corp-domain",
                                "--repository", "delta")  # fmt: skip
            assert "allow_writes" in refused and "delta" not in corp.repositories
            aws.fails("AccessDeniedException", "get-authorization-token", "--domain", "corp-domain")
            aws.ok("create-repository", "--domain", "open-domain", "--repository", "delta")
            assert "delta" in fake.domains[("open-domain", "111122223333")].repositories
            aws.fails(
                "ConflictException", "create-repository", "--domain", "open-domain", "--repository", "delta"
            )

            # CodeArtifact out of reach: a 502 in the service's error shape, saying which domain.
            unreachable = httpx.get(f"{running.url}/v1/domain", params={"domain": "gone-domain"}, timeout=60)
            assert unreachable.status_code == 502
            assert unreachable.headers["x-amzn-ErrorType"] == "InternalServerException"
            assert (
                "gone-domain" in unreachable.json()["message"]
                and "unreachable" in unreachable.json()["message"]
            )

            # A version's readme and dependencies (paged by 2 by CodeArtifact) come from CodeArtifact.
            corp.repositories["beta"].add_npm_package(
                {"name": "@corp/app", "versions": {"2.0.0": {
                    "name": "@corp/app", "version": "2.0.0", "readme": "# app\n",
                    "dependencies": {"lib": "^1.0.0", "@corp/util": "~2.1"}, "devDependencies": {"jest": "*"},
                }}},
                {"2.0.0": b"app tarball"},
            )  # fmt: skip
            version = ("--domain", "corp-domain", "--repository", "beta", "--format", "npm",
                       "--namespace", "corp", "--package", "app", "--package-version", "2.0.0")  # fmt: skip
            readme = aws.ok("get-package-version-readme", *version)
            assert readme == {"format": "npm", "namespace": "corp", "package": "app", "version": "2.0.0",
                              "versionRevision": "rev-1", "readme": "# app\n"}  # fmt: skip
            first = aws.ok("list-package-version-dependencies", *version)
            rest = aws.ok("list-package-version-dependencies", *version, "--next-token", first["nextToken"])
            assert "nextToken" not in rest
            assert first["dependencies"] + rest["dependencies"] == [
                {"package": "lib", "dependencyType": "regular", "versionRequirement": "^1.0.0"},
                {"namespace": "corp", "package": "util", "dependencyType": "regular",
                 "versionRequirement": "~2.1"},
                {"package": "jest", "dependencyType": "dev", "versionRequirement": "*"},
            ]  # fmt: skip
            missing = (*version[:-1], "9.9.9")
            aws.fails("ResourceNotFoundException", "get-package-version-readme", *missing)
            aws.fails("ResourceNotFoundException", "list-package-version-dependencies", *missing)
            assert fake.operations("GetPackageVersionReadme") == 2
            assert fake.operations("ListPackageVersionDependencies") == 3

            # ListDomains: the proxy's own and the fronted ones, paged through the proxy (the CLI follows
            # the proxy's nextToken); a domain the proxy does not front is not listed, and an unreachable
            # fronted one is left out with a line in the log.
            fake.add_domain("other-domain", "111122223333")
            listed = aws.ok("list-domains", "--page-size", "2")["domains"]
            assert [(d["name"], d["owner"]) for d in listed] == [
                ("corp-domain", "111122223333"), ("local", "000000000000"), ("open-domain", "111122223333")
            ]  # fmt: skip
            assert all(d["status"] == "Active" and d["arn"].endswith(f"domain/{d['name']}") for d in listed)
            assert "[codeartifact.gone] (domain gone-domain) left out of the listing" in running.log_text()
            bad = httpx.post(f"{running.url}/v1/domains", json={"nextToken": "forged"}, timeout=30)
            assert bad.status_code == 400 and bad.headers["x-amzn-ErrorType"] == "ValidationException"
            assert {c.access_key for c in fake.control_requests} == {"AKIDPROXY"}

            # CodeArtifact's throttling reaches the caller with its Retry-After (the proxy's client gave up).
            fake.fail(r"^/v1/domain$", "throttle", times=2)
            throttled = httpx.get(f"{running.url}/v1/domain", params={"domain": "corp-domain"}, timeout=60)
            assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "1"
            assert throttled.headers["x-amzn-ErrorType"] == "ThrottlingException"

            # The proxy's own domain is still answered locally.
            assert aws.ok("describe-domain", "--domain", "local")["domain"]["repositoryCount"] == 1
        finally:
            running.stop()
    finally:
        fake.stop_in_thread()
