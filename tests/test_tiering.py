"""Tiering: a laptop daemon whose upstreams are a farm daemon's repository (plain URL upstreams, one per
format), the farm closed to anonymous clients (``[auth] anonymous = "none"``): the laptop's upstreams
carry a proxy token from a file (``token_file``), got the CodeArtifact way (``aws codeartifact
get-authorization-token`` against the farm). The real clients work through laptop -> farm -> fake
public registries: ``npm install``, ``pip install``, ``mvn package``; what is published on the farm
(``npm publish``, ``twine upload``, a Maven deploy's PUTs) installs through the laptop, with every URL
pointing at the laptop. A token written to the file later is used without a restart, and never logged.
"""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx

from tests.fakes.codeartifact import aws_environment
from tests.fakes.daemon import RunningDaemon, start_daemon, write_config
from tests.fakes.maven_client import Maven, copy_project, mvn_binary, write_settings
from tests.fakes.maven_repository import FakeMavenRepository
from tests.fakes.npm_registry import FakeNpmRegistry
from tests.fakes.pypi_index import FakePypiIndex, make_wheel
from tests.test_npm_e2e import Npm, node_require, npm_binary, project
from tests.test_pypi_e2e import Clients

VENV_BIN = Path(sys.executable).parent
M2 = Path.home() / ".m2" / "repository"
KEY_ID, SECRET = "AKIDLAPTOP0001", "secret-of-the-laptop-principal"
POM = (
    b"<project><modelVersion>4.0.0</modelVersion><groupId>org.tier</groupId><artifactId>t</artifactId>"
    b"<version>1.0</version></project>"
)
LIB_DEPENDENCY = (
    "<dependency><groupId>org.tier</groupId><artifactId>t</artifactId><version>1.0</version></dependency>"
)


def farm_config(root: Path, npm: FakeNpmRegistry, pypi: FakePypiIndex, m2: FakeMavenRepository) -> Path:
    secret = root / "laptop.secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    return write_config(
        root,
        '[auth]\nanonymous = "none"\n\n'
        f'[principal.laptop]\naccess_key_id = "{KEY_ID}"\nsecret_access_key_file = "{secret}"\nadmin = true\n'
        + npm.upstream_config("n")
        + pypi.upstream_config("p")
        + f'\n[upstream.m]\nformat = "maven"\nurl = "{m2.url}"\n'
        + '\n[repository.dev]\nupstreams = ["n", "p", "m"]\npublish = true\n',
    )


def get_token(root: Path, farm: RunningDaemon) -> str:
    """A proxy token of the farm, as its users get one: the aws CLI signed with a principal's keys."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({k: v for k, v in aws_environment(root / "aws").items() if v is not None})
    env.update({"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET})
    command = [str(VENV_BIN / "aws"), "codeartifact", "get-authorization-token", "--domain", "local"]
    command += ["--endpoint-url", farm.url, "--region", "us-east-1", "--query", "authorizationToken"]
    command += ["--output", "text"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def empty_jar() -> bytes:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as jar:
        jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
    return data.getvalue()


def publish_on_the_farm(root: Path, farm: RunningDaemon, token: str) -> None:
    npm = Npm(npm_binary(), root / "npm-farm", f"{farm.url}/npm/dev/")
    npmrc = root / "npm-farm" / "npmrc"
    npmrc.write_text(npmrc.read_text().replace("_authToken=anything", f"_authToken={token}"))
    package = project(root / "e2e-tier", {"e2e-dep": "^1.0.0"}, name="e2e-tier", version="1.0.0")
    npm.run("publish", cwd=package)
    wheel_name, wheel = make_wheel("e2e-tier", "1.0.0", requires_dist=["e2e-tier-dep"])
    (root / wheel_name).write_bytes(wheel)
    Clients(root / "twine", farm.url).twine(root / wheel_name, extra=("-u", "aws", "-p", token))
    basic = {"Authorization": "Basic " + base64.b64encode(f"aws:{token}".encode()).decode()}
    for name, body in (("t-1.0.pom", POM), ("t-1.0.jar", empty_jar())):
        put = httpx.put(
            f"{farm.url}/maven/dev/org/tier/t/1.0/{name}", content=body, headers=basic, timeout=30
        )
        assert put.status_code == 201, put.text


def test_a_laptop_tiered_on_a_closed_farm_with_a_proxy_token(tmp_path: Path) -> None:
    npm_bin, mvn_bin = npm_binary(), mvn_binary()
    npm_fake, pypi_fake, m2 = FakeNpmRegistry(), FakePypiIndex(), FakeMavenRepository(M2)
    npm_fake.add("e2e-dep", "1.0.0")
    pypi_fake.add_wheel("e2e-tier-dep", "2.0.0")
    npm_fake.start_in_thread()
    pypi_fake.start_in_thread()
    m2.start()
    (tmp_path / "farm").mkdir()
    (tmp_path / "laptop").mkdir()
    farm = start_daemon(farm_config(tmp_path / "farm", npm_fake, pypi_fake, m2), tmp_path / "farm.log")
    laptop = None
    try:
        assert httpx.get(f"{farm.url}/npm/dev/e2e-dep", timeout=30).status_code == 401  # closed
        token = get_token(tmp_path, farm)
        publish_on_the_farm(tmp_path, farm, token)

        token_file = tmp_path / "laptop" / "farm.token"
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
        body = "".join(
            f'[upstream.farm-{fmt}]\nformat = "{fmt}"\nurl = "{farm.url}/{fmt}/dev/"\n'
            f'token_file = "{token_file}"\n\n'
            for fmt in ("npm", "pypi", "maven")
        )
        body += '[repository.dev]\nupstreams = ["farm-npm", "farm-pypi", "farm-maven"]\n'
        laptop = start_daemon(write_config(tmp_path / "laptop", body), tmp_path / "laptop.log")

        # npm: a package published on the farm, and its dependency from the farm's public upstream
        npm = Npm(npm_bin, tmp_path / "npm-laptop", f"{laptop.url}/npm/dev/")
        app = project(tmp_path / "app", {"e2e-tier": "^1.0.0"})
        npm.run("install", cwd=app)
        assert node_require(app, "e2e-tier", "e2e-dep") == ["e2e-tier@1.0.0", "e2e-dep@1.0.0"]
        packument = httpx.get(f"{laptop.url}/npm/dev/e2e-tier", timeout=30).json()
        assert packument["versions"]["1.0.0"]["dist"]["tarball"].startswith(f"{laptop.url}/npm/dev/")

        # pip: likewise
        installed, _ = Clients(tmp_path / "pip", laptop.url).install("e2e-tier")
        assert installed == {"e2e_tier-1.0.0", "e2e_tier_dep-2.0.0"}

        # a token written to the file later is read again (the farm refuses a wrong one)
        token_file.write_text("cap1.not-a-token.at-all\n")
        refused = httpx.get(f"{laptop.url}/pypi/dev/simple/e2e-nowhere/", timeout=30)
        assert refused.status_code == 502, refused.text
        token_file.write_text(token + "\n")  # as a timer refreshing the token would

        # Maven: plugins and dependencies from the farm's upstream, org.tier:t published on the farm
        maven = Maven(mvn_bin, write_settings(tmp_path / "settings.xml", f"{laptop.url}/maven/dev/"))
        built = copy_project("app", tmp_path / "mvn", LIB_DEPENDENCY=LIB_DEPENDENCY)
        maven.run(built, tmp_path / "local", "package")
        assert (built / "target" / "app-1.0.jar").is_file()
        assert (tmp_path / "local" / "org" / "tier" / "t" / "1.0" / "t-1.0.pom").read_bytes() == POM
    finally:
        if laptop is not None:
            laptop.stop()
        farm.stop()
        npm_fake.stop_in_thread()
        pypi_fake.stop_in_thread()
        m2.close()
    logs = laptop.log_text() + farm.log_text() if laptop is not None else ""
    assert token not in logs and "cap1.not-a-token" not in logs
    assert "token read again" in logs
