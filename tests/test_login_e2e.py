"""``login`` then the real clients with no configuration of their own: each test gives the clients a
temporary HOME (some with a file the user had already), runs ``codeartifact-proxy login --tool T``,
then ``npm install``/``npm publish``, ``pip install``, ``twine upload --repository codeartifact``,
``mvn package``/``mvn deploy`` with no index, registry, settings or credential flags, and finally
``logout``, which must give every file back byte for byte (and remove the ones login created).

The clients get the test's environment minus the variables that would configure them (``PIP_*``,
``TWINE_*``, ``npm_config_*``, ``XDG_CONFIG_HOME``, ``MAVEN_ARGS``), so what they use is what login wrote.
Maven gets ``-Duser.home`` in ``MAVEN_OPTS`` (Java reads the home from the password database, not
``$HOME``). pip still reads the machine's site-wide files (/etc/pip.conf, /etc/xdg/pip/pip.conf: a CA
file and a constraints file), which set no index. One daemon serves all tests from a repository
``dev`` (a fake npm registry and a fake PyPI index upstream) and ``java`` (a fake Maven repository over
~/.m2).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.fakes.clients import real_client, yarn_berry_command
from tests.fakes.daemon import ROOT, RunningDaemon, start_daemon, write_config
from tests.fakes.maven_client import MAVEN_OPTS, copy_project, mvn_binary
from tests.fakes.maven_repository import FakeMavenRepository
from tests.fakes.npm_registry import FakeNpmRegistry
from tests.fakes.pypi_index import FakePypiIndex, make_wheel
from tests.test_npm_e2e import node_require, npm_binary, project

M2 = Path.home() / ".m2" / "repository"
VENV_BIN = Path(sys.executable).parent
CONFIGURING = (
    "PIP_",
    "TWINE_",
    "UV_",
    "npm_config_",
    "NPM_CONFIG_",
    "XDG_CONFIG_HOME",
    "MAVEN_ARGS",
    "JAVA_TOOL",
)


@dataclass
class Setup:
    daemon: RunningDaemon
    npm: FakeNpmRegistry
    pypi: FakePypiIndex
    m2: FakeMavenRepository


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("login-e2e")
    npm, pypi = FakeNpmRegistry(), FakePypiIndex()
    npm.add("e2e-hello", "1.0.0")
    pypi.add_wheel("e2e-wheel", "1.0.0")
    npm.start_in_thread()
    pypi.start_in_thread()
    m2 = FakeMavenRepository(M2).start()
    config = write_config(
        root,
        npm.upstream_config("public-npm")
        + pypi.upstream_config("public-pypi")
        + f'\n[upstream.m2]\nformat = "maven"\nurl = "{m2.url}"\n'
        + '\n[repository.dev]\nupstreams = ["public-npm", "public-pypi"]\npublish = true\n'
        # Maven gets a repository of its own: a Maven miss in a repository that also has an npm
        # upstream fails (the chain hands the Maven request to the npm upstream).
        + '\n[repository.java]\nupstreams = ["m2"]\npublish = true\n',
    )
    daemon = start_daemon(config, root / "daemon.log")
    try:
        yield Setup(daemon, npm, pypi, m2)
    finally:
        daemon.stop()
        m2.close()
        npm.stop_in_thread()
        pypi.stop_in_thread()


def client_env(home: Path) -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items() if not k.startswith(CONFIGURING)}
    # Java takes user.home from the password database, not $HOME: Maven is told the temporary HOME,
    # as a user's own HOME would be.
    return {**kept, "HOME": str(home), "MAVEN_OPTS": f"{MAVEN_OPTS} -Duser.home={home}"}


def run(
    command: list[str], home: Path, cwd: Path = ROOT, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command, cwd=cwd, env=client_env(home), capture_output=True, text=True, timeout=600
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{command} failed ({result.returncode}):\n{result.stdout[-5000:]}\n{result.stderr[-3000:]}"
        )
    return result


def proxy(setup: Setup, home: Path, command: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``codeartifact-proxy COMMAND ARGS`` for the shared daemon; login defaults to repository dev."""
    if command == "login" and "maven" not in args:
        args = (*args, "--repository", "dev")
    elif command == "login":
        args = (*args, "--repository", "java")
    return run([sys.executable, "-m", "proxy", "--config", str(setup.daemon.config), command, *args], home)


# What login and logout may touch (the clients leave caches of their own elsewhere in HOME).
CONFIG_FILES = (
    ".npmrc*",
    ".yarnrc.yml*",
    ".pypirc*",
    ".config/pip/*",
    ".config/uv/*",
    ".config/codeartifact-proxy/*",
    ".m2/settings*",
)


def snapshot(home: Path) -> dict[str, bytes]:
    found = {p for pattern in CONFIG_FILES for p in home.glob(pattern) if p.is_file()}
    return {str(p.relative_to(home)): p.read_bytes() for p in sorted(found)}


def user_home(tmp_path: Path, name: str, text: str) -> Path:
    """A temporary HOME holding the user's own ``name`` with ``text``."""
    home = tmp_path / "home"
    home.mkdir()
    (home / name).write_text(text)
    return home


def test_npm_install_and_publish(setup: Setup, tmp_path: Path) -> None:
    binary = npm_binary()
    home = user_home(
        tmp_path,
        ".npmrc",
        "# mine\nupdate-notifier=false\nfund=false\nregistry=https://registry.example.com/\n",
    )
    before = snapshot(home)
    dry = proxy(setup, home, "login", "--tool", "npm", "--dry-run")
    assert f"+registry={setup.daemon.url}/npm/dev/" in dry.stdout
    assert snapshot(home) == before  # a dry run writes nothing

    proxy(setup, home, "login", "--tool", "npm")
    npmrc = (home / ".npmrc").read_text()
    assert "# mine\nupdate-notifier=false\nfund=false\n" in npmrc  # other settings kept
    assert "registry.example.com" not in npmrc
    app = project(tmp_path / "app", {"e2e-hello": "^1.0.0"})
    run([binary, "install"], home, app)
    assert node_require(app, "e2e-hello") == ["e2e-hello@1.0.0"]
    published = project(tmp_path / "pub", {"e2e-hello": "1.0.0"}, name="e2e-login-published", version="2.0.0")
    run([binary, "publish"], home, published)
    packument = httpx.get(f"{setup.daemon.url}/npm/dev/e2e-login-published", timeout=30).json()
    assert list(packument["versions"]) == ["2.0.0"]

    proxy(setup, home, "logout", "--tool", "npm")
    after = snapshot(home)
    assert after[".npmrc"] == before[".npmrc"]
    assert not any(name.startswith(".npmrc.") for name in after)


def test_pip_install(setup: Setup, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    proxy(setup, home, "login", "--tool", "pip")
    assert (home / ".config" / "pip" / "pip.conf").is_file()
    served = setup.pypi.requests["/simple/e2e-wheel/"]
    target = tmp_path / "target"
    result = run(
        [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--target", str(target), "e2e-wheel"], home
    )
    assert f"Looking in indexes: {setup.daemon.url}/pypi/dev/simple/" in result.stdout
    assert (target / "e2e_wheel" / "__init__.py").read_text() == "__version__ = '1.0.0'\n"
    assert setup.pypi.requests["/simple/e2e-wheel/"] == served + 1  # through the proxy's upstream

    proxy(setup, home, "logout", "--tool", "pip")
    assert snapshot(home) == {}  # login created pip.conf; logout removed it and its record


def test_twine_upload(setup: Setup, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".pypirc").write_text("[distutils]\nindex-servers =\n    pypi\n\n[pypi]\nusername = __token__\n")
    before = snapshot(home)
    proxy(setup, home, "login", "--tool", "twine")
    filename, data = make_wheel("e2e-login-uploaded", "3.0.0")
    (tmp_path / filename).write_bytes(data)
    run([str(VENV_BIN / "twine"), "upload", "--repository", "codeartifact", str(tmp_path / filename)], home)
    page = httpx.get(
        f"{setup.daemon.url}/pypi/dev/simple/e2e-login-uploaded/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
        timeout=30,
    ).json()
    assert [file["filename"] for file in page["files"]] == [filename]

    proxy(setup, home, "logout", "--tool", "twine")
    assert snapshot(home) == before


def test_maven_package_deploy_snapshot_and_resolve_it(setup: Setup, tmp_path: Path) -> None:
    binary = mvn_binary()
    home = tmp_path / "home"
    (home / ".m2").mkdir(parents=True)
    (home / ".m2" / "settings.xml").write_text(
        '<?xml version="1.0"?>\n<!-- my settings -->\n<settings>\n'
        "  <interactiveMode>false</interactiveMode>\n  <mirrors/>\n</settings>\n"
    )
    before = snapshot(home)
    proxy(setup, home, "login", "--tool", "maven")
    mvn = [binary, "-B", "-q", "-Dstyle.color=never"]  # batch mode and quiet output only

    app = copy_project("app", tmp_path / "app", LIB_DEPENDENCY="")
    run([*mvn, "package"], home, app)
    assert (app / "target" / "app-1.0.jar").is_file()
    assert (home / ".m2" / "repository" / "org" / "apache" / "commons" / "commons-lang3").is_dir()

    url = f"{setup.daemon.url}/maven/java/"
    lib = copy_project("lib", tmp_path / "lib", VERSION="1.0.2-SNAPSHOT", DEPLOY_URL=url)
    pom = lib / "pom.xml"
    pom.write_text(pom.read_text().replace("<id>proxy-deploy</id>", "<id>codeartifact-proxy</id>"))
    run([*mvn, "deploy", "-Dbuild.tag=login"], home, lib)
    metadata = httpx.get(f"{url}org/example/e2e/lib/1.0.2-SNAPSHOT/maven-metadata.xml", timeout=30)
    assert metadata.status_code == 200 and b"<snapshot>" in metadata.content

    dependency = (
        "<dependency><groupId>org.example.e2e</groupId><artifactId>lib</artifactId>"
        "<version>1.0.2-SNAPSHOT</version></dependency>"
    )
    # the consumer gets the SNAPSHOT from the proxy, not from the deployer's local repository
    shutil.rmtree(home / ".m2" / "repository" / "org" / "example" / "e2e")
    consumer = copy_project("app", tmp_path / "consumer", LIB_DEPENDENCY=dependency)
    run([*mvn, "package"], home, consumer)
    assert list(
        (home / ".m2" / "repository" / "org" / "example" / "e2e" / "lib" / "1.0.2-SNAPSHOT").glob("*.jar")
    )

    proxy(setup, home, "logout", "--tool", "maven")
    assert snapshot(home) == before


def test_logins_and_logouts_of_several_tools_leave_nothing(setup: Setup, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".config" / "uv").mkdir(parents=True)
    (home / ".config" / "uv" / "uv.toml").write_text("native-tls = true\n\n[pip]\nno-build = true\n")
    (home / ".npmrc").write_text("fund=false")  # no final newline
    before = snapshot(home)
    for tool in ("npm", "pnpm", "uv", "pip", "twine", "maven", "uv"):
        proxy(setup, home, "login", "--tool", tool)
    uv = (home / ".config" / "uv" / "uv.toml").read_text()
    assert uv.count("[[index]]") == 1 and uv.startswith("native-tls = true\n\n[pip]\nno-build = true\n")
    assert json.loads((home / ".config" / "codeartifact-proxy" / "logins.json").read_text())
    for tool in ("npm", "pnpm", "uv", "pip", "twine", "maven"):
        proxy(setup, home, "logout", "--tool", tool)
    assert snapshot(home) == before


@pytest.mark.parametrize("tool", ["pnpm", "yarn"])
def test_pnpm_and_yarn_install(setup: Setup, tmp_path: Path, tool: str) -> None:
    binary = real_client(tool)
    home = tmp_path / "home"
    home.mkdir()
    before = snapshot(home)
    proxy(setup, home, "login", "--tool", tool)
    app = project(tmp_path / "app", {"e2e-hello": "^1.0.0"})
    # e2e-hello exists only upstream of the proxy, which only login's ~/.npmrc names.
    run([binary, "install"], home, app)
    assert node_require(app, "e2e-hello") == ["e2e-hello@1.0.0"]
    if tool == "yarn":
        tarball = f"{setup.daemon.url}/npm/dev/e2e-hello/-/e2e-hello-1.0.0.tgz"
        assert tarball in (app / "yarn.lock").read_text()

    proxy(setup, home, "logout", "--tool", tool)
    assert snapshot(home) == before


def test_yarn_berry_install(setup: Setup, tmp_path: Path) -> None:
    yarn = yarn_berry_command()
    # The user's own file: its settings stay (telemetry off keeps yarn from calling out).
    text = "# mine\nenableTelemetry: false\nnpmRegistryServer: https://registry.example.com\n"
    home = user_home(tmp_path, ".yarnrc.yml", text)
    before = snapshot(home)
    proxy(setup, home, "login", "--tool", "yarn-berry")
    written = (home / ".yarnrc.yml").read_text()
    assert written.startswith("# mine\nenableTelemetry: false\n") and "registry.example.com" not in written
    app = project(tmp_path / "app", {"e2e-hello": "^1.0.0"})
    # --no-immutable: under CI yarn refuses to write a lockfile by default.
    run([*yarn, "install", "--no-immutable"], home, app)
    required = run([*yarn, "node", "-p", "require('e2e-hello')"], home, app)
    assert required.stdout.strip() == "e2e-hello@1.0.0"
    assert "e2e-hello@npm:1.0.0" in (app / "yarn.lock").read_text()
    asked = [line for line in setup.daemon.log_text().splitlines() if "/npm/dev/e2e-hello" in line]
    assert any('"got (' in line for line in asked), asked  # yarn asked the proxy (its HTTP library)

    proxy(setup, home, "logout", "--tool", "yarn-berry")
    assert snapshot(home) == before


def test_uv_pip_install(setup: Setup, tmp_path: Path) -> None:
    binary = real_client("uv", VENV_BIN)
    home = tmp_path / "home"
    home.mkdir()
    proxy(setup, home, "login", "--tool", "uv")
    target = tmp_path / "target"
    run(
        [
            binary,
            "pip",
            "install",
            "--no-cache",
            "--python",
            sys.executable,
            "--target",
            str(target),
            "e2e-wheel",
        ],
        home,
    )
    assert (target / "e2e_wheel" / "__init__.py").read_text() == "__version__ = '1.0.0'\n"
    asked = [line for line in setup.daemon.log_text().splitlines() if "/pypi/dev/simple/e2e-wheel/" in line]
    assert any('"uv/' in line for line in asked)  # uv asked the proxy (its User-Agent in the access log)

    proxy(setup, home, "logout", "--tool", "uv")
    assert snapshot(home) == {}
