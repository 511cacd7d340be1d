"""Principals, tokens and permissions policies with the real clients, on a proxy configured as a shared
deployment would be: ``[auth] anonymous = "none"`` (listening on 127.0.0.1, set explicitly).

Principals: ``admin`` (admin = true), ``reader`` and ``ci``. The repository policies let ``reader`` read
``release`` and ``ci`` read and publish ``dev``; ``admin`` publishes what the others read. Every
client gets its token the CodeArtifact way: ``aws codeartifact get-authorization-token`` signed with
the principal's keys, then npm ``_authToken``, pip ``aws:TOKEN@`` in the index URL, twine ``-u aws -p
TOKEN``, Maven a ``<server>`` with user ``aws``. The tests share one proxy and run in file order.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import botocore.auth
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from proxy.auth.tokens import TokenKeeper
from tests.fakes.codeartifact import aws_environment
from tests.fakes.daemon import RunningDaemon, start_daemon, write_config
from tests.fakes.maven_client import HERE as MAVEN_TEMPLATES
from tests.fakes.maven_client import Maven, copy_project, mvn_binary
from tests.fakes.maven_repository import FakeMavenRepository
from tests.fakes.pypi_index import make_wheel
from tests.test_npm_e2e import npm_binary

VENV_BIN = Path(sys.executable).parent
M2 = Path.home() / ".m2" / "repository"
ARN = "arn:aws:iam::000000000000:user/{}"
KEYS = {"admin": "AKIDADMIN0001", "reader": "AKIDREADER001", "ci": "AKIDCI0000001"}


@dataclass
class Setup:
    root: Path
    daemon: RunningDaemon
    m2: FakeMavenRepository
    audit: Path
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def port(self) -> str:
        return self.daemon.url.rsplit(":", 1)[1]

    def secret(self, principal: str) -> str:
        return f"secret-of-{principal}-0123456789"

    def aws(
        self, principal: str | None, *args: str, secret: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The aws CLI, signing with ``principal``'s keys (None: unsigned)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({k: v for k, v in aws_environment(self.root / "aws").items() if v is not None})
        command = [str(VENV_BIN / "aws"), "codeartifact", *args, "--domain", "local"]
        command += ["--endpoint-url", self.daemon.url, "--region", "us-east-1", "--output", "json"]
        if principal is None:
            command.append("--no-sign-request")
        else:
            env["AWS_ACCESS_KEY_ID"] = KEYS[principal]
            env["AWS_SECRET_ACCESS_KEY"] = secret or self.secret(principal)
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    def aws_ok(self, principal: str, *args: str) -> dict:
        result = self.aws(principal, *args)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout) if result.stdout.strip() else {}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("auth-e2e")
    principals = ""
    for name, key in KEYS.items():
        secret_file = root / f"{name}.secret"
        secret_file.write_text(f"secret-of-{name}-0123456789\n")
        secret_file.chmod(0o600)
        admin = "true" if name == "admin" else "false"
        principals += (
            f'[principal.{name}]\naccess_key_id = "{key}"\nsecret_access_key_file = "{secret_file}"\n'
            f"admin = {admin}\n\n"
        )
    m2 = FakeMavenRepository(M2).start()
    audit = root / "audit.jsonl"
    config = write_config(
        root,
        '[auth]\nanonymous = "none"\n\n'
        + principals
        + f'[upstream.m2]\nformat = "maven"\nurl = "{m2.url}"\n\n'
        "[repository.release]\npublish = true\n\n"
        '[repository.dev]\nupstreams = ["m2"]\npublish = true\n\n'
        "[repository.other]\npublish = true\n",
    )
    config.write_text(config.read_text().replace("[cache]", f'audit_log = "{audit}"\n\n[cache]', 1))
    daemon = start_daemon(config, root / "daemon.log")
    try:
        yield Setup(root, daemon, m2, audit)
    finally:
        daemon.stop()
        m2.close()


def policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(principal: str, *actions: str) -> dict:
    return {
        "Effect": "Allow",
        "Principal": {"AWS": ARN.format(principal)},
        "Action": [f"codeartifact:{a}" for a in actions],
        "Resource": "*",
    }


# -- the control plane: SigV4 and GetAuthorizationToken --------------------------------------------
def test_get_authorization_token_signed_with_a_principals_keys(setup: Setup) -> None:
    for principal in KEYS:
        answer = setup.aws_ok(principal, "get-authorization-token", "--duration-seconds", "3600")
        assert answer["authorizationToken"].startswith("cap1.")
        assert 3500 < answer["expiration"] - time.time() <= 3600  # botocore parsed the timestamp
        setup.tokens[principal] = answer["authorizationToken"]
    default = setup.aws_ok("ci", "get-authorization-token")
    assert 12 * 3600 - 100 < default["expiration"] - time.time() <= 12 * 3600


def test_a_wrong_secret_or_no_signature_is_refused(setup: Setup) -> None:
    wrong = setup.aws("ci", "get-authorization-token", secret="not-the-secret-of-ci")
    assert wrong.returncode != 0
    assert "AccessDeniedException" in wrong.stderr and "signature does not match" in wrong.stderr
    unsigned = setup.aws(None, "get-authorization-token")
    assert unsigned.returncode != 0 and "AccessDeniedException" in unsigned.stderr
    assert "not signed" in unsigned.stderr


def _signed(setup: Setup, body: bytes, *, minutes_ago: float = 0) -> AWSRequest:
    url = f"{setup.daemon.url}/v1/repository/permissions/policy?domain=local&repository=other"
    request = AWSRequest(method="PUT", url=url, data=body, headers={"Content-Type": "application/json"})
    when = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(minutes=minutes_ago)
    original = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda *a, **k: when  # type: ignore[assignment]
    try:
        SigV4Auth(Credentials(KEYS["admin"], setup.secret("admin")), "codeartifact", "eu-west-1").add_auth(
            request
        )
    finally:
        botocore.auth.get_current_datetime = original  # type: ignore[assignment]
    return request


def _send(request: AWSRequest, body: bytes) -> httpx.Response:
    return httpx.request(request.method, request.url, headers=dict(request.headers.items()), content=body)


def test_sigv4_refuses_a_body_changed_after_signing_and_a_request_10_minutes_old(setup: Setup) -> None:
    document = policy(allow("reader", "ReadFromRepository")).encode()
    body = json.dumps({"policyDocument": document.decode()}).encode()
    good = _send(_signed(setup, body), body)
    assert good.status_code == 200, good.text  # the same request, signed now: the control
    changed = body.replace(b"reader", b"ci0000")
    tampered = _send(_signed(setup, body), changed)
    assert tampered.status_code == 403
    assert tampered.headers["x-amzn-ErrorType"] == "AccessDeniedException"
    assert "signature does not match" in tampered.json()["message"]
    stale = _send(_signed(setup, body, minutes_ago=10), body)
    assert stale.status_code == 403 and "5 minutes" in stale.json()["message"]
    assert setup.aws_ok("admin", "delete-repository-permissions-policy", "--repository", "other")


def test_repository_policies_are_managed_with_the_aws_cli_and_checked(setup: Setup) -> None:
    release = policy(allow("reader", "ReadFromRepository"))
    dev = policy(allow("ci", "ReadFromRepository", "PublishPackageVersion", "GetRepositoryPermissionsPolicy"))
    put = setup.aws_ok(
        "admin", "put-repository-permissions-policy", "--repository", "release", "--policy-document", release
    )
    assert put["policy"]["resourceArn"].endswith(":repository/local/release")
    setup.aws_ok(
        "admin", "put-repository-permissions-policy", "--repository", "dev", "--policy-document", dev
    )
    got = setup.aws_ok("admin", "get-repository-permissions-policy", "--repository", "release")
    assert got["policy"]["document"] == release and got["policy"]["revision"] == put["policy"]["revision"]
    # the control plane follows the policies too: ci may read dev's policy, not release's
    assert (
        setup.aws_ok("ci", "get-repository-permissions-policy", "--repository", "dev")["policy"]["document"]
        == dev
    )
    denied = setup.aws("ci", "get-repository-permissions-policy", "--repository", "release")
    assert denied.returncode != 0 and "AccessDeniedException" in denied.stderr
    # reader may read release's packages but not change who may
    refused = setup.aws(
        "reader", "put-repository-permissions-policy", "--repository", "release", "--policy-document", dev
    )
    assert refused.returncode != 0 and "AccessDeniedException" in refused.stderr
    assert "codeartifact:PutRepositoryPermissionsPolicy" in refused.stderr
    bad = setup.aws(
        "admin", "put-domain-permissions-policy", "--policy-document", '{"Statement": [{"Effect": "Allow"}]}'
    )
    assert (
        bad.returncode != 0
        and "ValidationException" in bad.stderr
        and "Statement[0] has no Action" in bad.stderr
    )
    stale = setup.aws(
        "admin", "put-repository-permissions-policy", "--repository", "release",
        "--policy-document", release, "--policy-revision", "not-the-revision",
    )  # fmt: skip
    assert stale.returncode != 0 and "ConflictException" in stale.stderr


# -- npm -------------------------------------------------------------------------------------------
def npm(
    setup: Setup, token: str | None, repository: str, *args: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    return run_npm(setup.root, f"{setup.daemon.url}/npm/{repository}/", token, *args, cwd=cwd)


def run_npm(
    root: Path, registry: str, token: str | None, *args: str, cwd: Path, rc: str = ""
) -> subprocess.CompletedProcess[str]:
    """The real npm with its own HOME and config under ``root``, ``token`` as the registry's
    ``_authToken`` (None: no token line), ``rc`` added to its npmrc, and a fresh cache."""
    rc += f"registry={registry}\nupdate-notifier=false\naudit=false\nfund=false\nfetch-retries=0\n"
    if token is not None:
        rc += f"//{registry.split('://', 1)[1]}:_authToken={token}\n"
    home = root / "npm-home"
    home.mkdir(exist_ok=True)
    (home / "npmrc").write_text(rc)
    (home / "global").write_text("")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "npm_config_userconfig": str(home / "npmrc"),
        "npm_config_globalconfig": str(home / "global"),
    }
    command = [npm_binary(), *args, "--cache", str(root / f"npm-cache-{time.monotonic_ns()}")]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def npm_package(directory: Path, name: str, version: str, dependencies: dict[str, str] | None = None) -> Path:
    directory.mkdir(parents=True)
    manifest = {"name": name, "version": version, "main": "index.js", "dependencies": dependencies or {}}
    (directory / "package.json").write_text(json.dumps(manifest))
    (directory / "index.js").write_text(f"module.exports = {json.dumps(version)};\n")
    return directory


def test_npm_publish_and_install_with_tokens_and_rights(setup: Setup) -> None:
    lib = npm_package(setup.root / "npm-lib", "auth-hello", "1.0.0")
    published = npm(setup, setup.tokens["admin"], "release", "publish", cwd=lib)
    assert published.returncode == 0, published.stderr
    app = npm_package(setup.root / "npm-app", "auth-app", "1.0.0", {"auth-hello": "1.0.0"})
    installed = npm(setup, setup.tokens["reader"], "release", "install", cwd=app)
    assert installed.returncode == 0, installed.stderr
    assert (app / "node_modules" / "auth-hello" / "package.json").is_file()
    # reader may not publish: npm reports the 403
    lib2 = npm_package(setup.root / "npm-lib2", "auth-hello", "1.0.1")
    refused = npm(setup, setup.tokens["reader"], "release", "publish", cwd=lib2)
    assert refused.returncode != 0 and "E403" in refused.stderr
    # ci's read of a repository no policy gives it
    other = npm_package(setup.root / "npm-app-ci", "auth-app-ci", "1.0.0", {"auth-hello": "1.0.0"})
    forbidden = npm(setup, setup.tokens["ci"], "release", "install", cwd=other)
    assert forbidden.returncode != 0 and "E403" in forbidden.stderr


def test_npm_without_a_token_says_it_needs_authentication(setup: Setup) -> None:
    app = npm_package(setup.root / "npm-anon", "auth-anon", "1.0.0", {"auth-hello": "1.0.0"})
    result = npm(setup, None, "release", "install", cwd=app)
    assert result.returncode != 0
    assert "E401" in result.stderr and "Incorrect or missing password" in result.stderr
    # a token that is not (or no longer) valid: npm's own message for a bad token
    invalid = npm(setup, setup.tokens["reader"][:-2] + "xx", "release", "install", cwd=app)
    assert invalid.returncode != 0 and "E401" in invalid.stderr
    assert "authentication token seems to be invalid" in invalid.stderr


def test_an_expired_token_and_a_token_with_one_bit_changed_are_401(setup: Setup) -> None:
    keeper = TokenKeeper.load(setup.root / "keys" / "cache.key", "local")
    expired, _ = keeper.issue("reader", 900, now=time.time() - 901)
    valid = setup.tokens["reader"]
    flipped = valid[:-5] + chr(ord(valid[-5]) ^ 1) + valid[-4:]
    url = f"{setup.daemon.url}/npm/release/auth-hello"
    assert httpx.get(url, headers={"Authorization": f"Bearer {valid}"}).status_code == 200
    for token in (expired, flipped):
        for header in (f"Bearer {token}", "Basic " + base64.b64encode(f"aws:{token}".encode()).decode()):
            answer = httpx.get(url, headers={"Authorization": header})
            assert answer.status_code == 401
            assert answer.headers["WWW-Authenticate"].endswith('realm="codeartifact-proxy"')
    assert "expired" in httpx.get(url, headers={"Authorization": f"Bearer {expired}"}).json()["error"]


# -- pip and twine ---------------------------------------------------------------------------------
def pip_env(setup: Setup) -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "TWINE_"))}
    (setup.root / "pip-home").mkdir(exist_ok=True)
    return {**kept, "HOME": str(setup.root / "pip-home"), "PIP_CONFIG_FILE": os.devnull}


def twine(setup: Setup, token: str, repository: str, wheel: Path) -> subprocess.CompletedProcess[str]:
    (setup.root / "pypirc").write_text("")
    command = [str(VENV_BIN / "twine"), "upload", "--non-interactive", "--disable-progress-bar"]
    command += ["--config-file", str(setup.root / "pypirc"), "-u", "aws", "-p", token]
    command += ["--repository-url", f"{setup.daemon.url}/pypi/{repository}/", str(wheel)]
    return subprocess.run(command, env=pip_env(setup), capture_output=True, text=True, timeout=120)


def pip_install(
    setup: Setup, token: str | None, repository: str, package: str, *, prompt: bool = False
) -> subprocess.CompletedProcess[str]:
    """pip install into a fresh target; with ``prompt``, pip may ask for credentials (it gets none)."""
    host = setup.daemon.url.split("://", 1)[1]
    index = f"http://{'aws:' + token + '@' if token else ''}{host}/pypi/{repository}/simple/"
    target = setup.root / f"pip-target-{time.monotonic_ns()}"
    command = [sys.executable, "-m", "pip", "install", "--isolated", "--no-cache-dir"]
    command += [] if prompt else ["--no-input"]
    command += ["--disable-pip-version-check", "--index-url", index, "--target", str(target), package]
    return subprocess.run(command, env=pip_env(setup), capture_output=True, text=True, timeout=120, input="")


def wheel_file(setup: Setup, name: str, version: str) -> Path:
    filename, data = make_wheel(name, version)
    path = setup.root / "dist" / filename
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return path


def test_twine_upload_and_pip_install_with_tokens_and_rights(setup: Setup) -> None:
    uploaded = twine(setup, setup.tokens["ci"], "dev", wheel_file(setup, "auth-ci-pkg", "1.0.0"))
    assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr
    installed = pip_install(setup, setup.tokens["ci"], "dev", "auth-ci-pkg==1.0.0")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    refused = twine(setup, setup.tokens["reader"], "release", wheel_file(setup, "auth-reader-pkg", "1.0.0"))
    assert refused.returncode != 0 and "403" in refused.stdout + refused.stderr
    assert (
        twine(setup, setup.tokens["admin"], "release", wheel_file(setup, "auth-rel-pkg", "1.0.0")).returncode
        == 0
    )
    assert pip_install(setup, setup.tokens["reader"], "release", "auth-rel-pkg==1.0.0").returncode == 0
    forbidden = pip_install(setup, setup.tokens["ci"], "release", "auth-rel-pkg==1.0.0")
    # pip reports a refused index page as "no versions"; the proxy's access log has the 403
    assert forbidden.returncode != 0 and "from versions: none" in forbidden.stderr
    assert '"GET /pypi/release/simple/auth-rel-pkg/" 403' in setup.daemon.log_text()


def test_pip_without_a_token_asks_for_credentials(setup: Setup) -> None:
    result = pip_install(setup, None, "release", "auth-rel-pkg==1.0.0", prompt=True)
    assert result.returncode != 0
    assert f"User for 127.0.0.1:{setup.port}" in result.stdout + result.stderr, result.stdout + result.stderr


def test_an_explicit_deny_in_the_domain_policy_beats_the_repository_allow(setup: Setup) -> None:
    deny = {
        "Effect": "Deny",
        "Principal": {"AWS": ARN.format("ci")},
        "Action": "codeartifact:PublishPackageVersion",
        "Resource": "arn:aws:codeartifact:*:000000000000:repository/local/dev",
    }
    setup.aws_ok("admin", "put-domain-permissions-policy", "--policy-document", policy(deny))
    refused = twine(setup, setup.tokens["ci"], "dev", wheel_file(setup, "auth-ci-pkg", "1.0.1"))
    assert refused.returncode != 0 and "403" in refused.stdout + refused.stderr
    assert (
        pip_install(setup, setup.tokens["ci"], "dev", "auth-ci-pkg==1.0.0").returncode == 0
    )  # reads still allowed
    setup.aws_ok("admin", "delete-domain-permissions-policy")
    again = twine(setup, setup.tokens["ci"], "dev", wheel_file(setup, "auth-ci-pkg", "1.0.1"))
    assert again.returncode == 0, again.stdout + again.stderr


# -- Maven -----------------------------------------------------------------------------------------
def maven_settings(setup: Setup, name: str, mirror: str, token: str | None) -> Path:
    text = (MAVEN_TEMPLATES / "settings.xml").read_text().replace("@MIRROR_URL@", mirror)
    if token is None:
        text = re.sub(r"<servers>.*</servers>", "", text, flags=re.S)
    else:
        text = text.replace("@USERNAME@", "aws").replace("@PASSWORD@", token)
    path = setup.root / name
    path.write_text(text)
    return path


def test_mvn_resolves_and_deploys_with_a_token_and_fails_without(setup: Setup) -> None:
    binary = mvn_binary()
    url = f"{setup.daemon.url}/maven/dev/"
    maven = Maven(binary, maven_settings(setup, "settings-ci.xml", url, setup.tokens["ci"]))
    project = copy_project("lib", setup.root / "mvn-lib", VERSION="1.0.0", DEPLOY_URL=url)
    maven.run(project, setup.root / "m2-ci", "deploy", "-Dbuild.tag=auth")
    pom = httpx.get(
        f"{url}org/example/e2e/lib/1.0.0/lib-1.0.0.pom",
        headers={"Authorization": f"Bearer {setup.tokens['ci']}"},
    )
    assert pom.status_code == 200 and b"<artifactId>lib</artifactId>" in pom.content
    anonymous = Maven(binary, maven_settings(setup, "settings-none.xml", url, None))
    project2 = copy_project("lib", setup.root / "mvn-lib-anon", VERSION="1.0.0", DEPLOY_URL=url)
    failed = anonymous.run(project2, setup.root / "m2-none", "package", check=False)
    assert failed.returncode != 0
    assert "401" in failed.stdout + failed.stderr


# -- what the proxy wrote down ---------------------------------------------------------------------
def test_the_audit_log_has_every_write_with_its_principal_and_no_log_has_a_token(setup: Setup) -> None:
    lines = [json.loads(line) for line in setup.audit.read_text().splitlines()]
    writes = {(line["principal"], line["operation"], line["repository"], line["result"]) for line in lines}
    assert ("admin", "PutRepositoryPermissionsPolicy", "release", 200) in writes
    assert ("reader", "PutRepositoryPermissionsPolicy", "release", 403) in writes  # refusals too
    assert ("admin", "PublishPackageVersion", "release", 200) in writes  # npm publish
    assert ("ci", "PublishPackageVersion", "dev", 200) in writes  # twine
    assert ("reader", "PublishPackageVersion", "release", 403) in writes  # refused publish, audited
    assert ("admin", "PutDomainPermissionsPolicy", None, 200) in writes
    assert ("admin", "DeleteDomainPermissionsPolicy", None, 200) in writes
    assert any(
        line["package"] and "lib-1.0.0.jar" in line["package"] for line in lines if line["principal"] == "ci"
    )
    assert all(
        set(line) >= {"time", "principal", "operation", "repository", "package", "result"} for line in lines
    )
    logs = setup.daemon.log_text() + setup.audit.read_text()
    for principal, token in setup.tokens.items():
        assert token not in logs
        assert token.split(".")[2] not in logs
        assert setup.secret(principal) not in logs
    assert "cap1." not in logs and "Signature=" not in logs
