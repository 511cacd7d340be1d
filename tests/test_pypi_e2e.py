"""The real ``pip`` and ``twine`` against the proxy: install through a chain (a local repository, a fake
CodeArtifact repository with its own upstream, a plain index by URL), ``--require-hashes``, PEP 658
resolution from metadata alone, uploads, integrity failures, and installs with every upstream stopped.

pip runs isolated as CLIENTS.md says (``PIP_CONFIG_FILE=/dev/null``, ``--isolated``, ``--no-cache-dir``,
no ``PIP_*`` variables, credentials in ``--index-url``) and installs with ``--target`` into a fresh
directory each time: a clean environment without a venv. twine runs with its own empty config file
and HOME. The proxy runs as a subprocess (tests.fakes.daemon); the fakes run on threads of this process.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from proxy.formats.pypi.negotiate import JSON_V1
from tests.fakes.codeartifact import FakeCodeArtifact, isolate_aws
from tests.fakes.daemon import RunningDaemon, eventually, start_daemon, write_config
from tests.fakes.pypi_index import FakeFile, FakePypiIndex, make_sdist, make_wheel

OWNER = "111122223333"
VENV_BIN = Path(sys.executable).parent


def _require(tool: str, command: list[str]) -> None:
    if subprocess.run(command, capture_output=True).returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is not installed, and CI requires the real client")
        pytest.skip(f"{tool} is not installed")


@dataclass
class Clients:
    """pip and twine, confined to ``root``, pointed at one repository of the proxy."""

    root: Path
    proxy_url: str  # http://127.0.0.1:PORT
    repository: str = "dev"
    targets: int = 0

    def __post_init__(self) -> None:
        _require("pip", [sys.executable, "-m", "pip", "--version"])
        _require("twine", [str(VENV_BIN / "twine"), "--version"])
        (self.root / "home").mkdir(parents=True, exist_ok=True)
        (self.root / "pypirc").write_text("")

    @property
    def index_url(self) -> str:
        host = self.proxy_url.split("://", 1)[1]
        return f"http://user:secret@{host}/pypi/{self.repository}/simple/"

    def _env(self) -> dict[str, str]:
        kept = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "TWINE_"))}
        return {**kept, "HOME": str(self.root / "home"), "PIP_CONFIG_FILE": os.devnull}

    def pip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "pip", *args, "--isolated", "--no-cache-dir", "--no-input"]
        command += ["--disable-pip-version-check", "--index-url", self.index_url]
        result = subprocess.run(command, env=self._env(), capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"pip {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def install(self, *args: str, check: bool = True) -> tuple[set[str], subprocess.CompletedProcess[str]]:
        """``pip install`` into a new empty target; returns the installed ``name-version`` set."""
        self.targets += 1
        target = self.root / f"target-{self.targets}"
        result = self.pip("install", "--target", str(target), *args, check=check)
        installed = {p.name.removesuffix(".dist-info") for p in target.glob("*.dist-info")}
        return installed, result

    def twine(
        self, *files: Path, check: bool = True, extra: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        command = [str(VENV_BIN / "twine"), "upload", "--non-interactive", "--disable-progress-bar"]
        command += ["--config-file", str(self.root / "pypirc"), "-u", "user", "-p", "secret"]
        command += ["--repository-url", f"{self.proxy_url}/pypi/{self.repository}/", *extra]
        result = subprocess.run(
            [*command, *map(str, files)], env=self._env(), capture_output=True, text=True, timeout=120
        )
        if check and result.returncode != 0:
            raise AssertionError(f"twine upload failed:\n{result.stdout}\n{result.stderr}")
        return result


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_dist(directory: Path, dist: tuple[str, bytes]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / dist[0]
    path.write_bytes(dist[1])
    return path


def access_log_paths(proxy: RunningDaemon) -> list[str]:
    """The paths of the GET requests the proxy logged so far, in order."""
    return re.findall(r'"GET (\S+)"', proxy.log_text())


# -- a chain: local repository -> CodeArtifact (with its own upstream) -> plain index ----------------
def test_install_through_a_chain_with_hashes_and_with_every_upstream_stopped(
    tmp_path, daemon_factory, monkeypatch
):
    isolate_aws(monkeypatch, tmp_path / "aws", access_key="AKIDEXAMPLE", secret_key="secret")
    codeartifact = FakeCodeArtifact()
    codeartifact.start_in_thread()
    plain = FakePypiIndex()
    plain.start_in_thread()
    try:
        domain = codeartifact.add_domain("dom", OWNER)
        team = domain.add_repository("team", upstreams=["store"])
        store = domain.add_repository("store")
        # mid-lib lives in the CodeArtifact repository "store", reached through "team".
        store.add_pypi_file("mid-lib", *make_wheel("mid-lib", "1.0", requires_dist=["leaf-lib>=1.0"]))
        # leaf-lib 1.0 is in "team" and (other bytes) in the plain index: the first in chain order wins.
        team_leaf = make_wheel("leaf-lib", "1.0", payload_size=64)
        team.add_pypi_file("leaf-lib", *team_leaf)
        plain.add_wheel("leaf-lib", "1.0")
        plain.add_wheel("leaf-lib", "1.1", requires_python=">=3.8")
        plain.add_wheel("far-lib", "2.0")
        plain.add_wheel("far-lib", "3.0", requires_python="<3")  # pip must skip it on this Python

        proxy = daemon_factory(
            f"""
[codeartifact.corp]
domain = "dom"
domain_owner = "{OWNER}"
region = "us-east-1"
endpoint_url = "{codeartifact.url}"

[upstream.team]
codeartifact = "corp"
repository = "team"
{plain.upstream_config()}
[repository.dev]
upstreams = ["team", "plain"]
publish = true
"""
        )
        clients = Clients(tmp_path / "clients", proxy.url)
        # The top of the tree is uploaded into the local repository.
        top = make_wheel("App_Top", "1.0", requires_dist=["mid-lib>=1", "leaf-lib", "far-lib"])
        clients.twine(write_dist(tmp_path / "dist", top))

        installed, _ = clients.install("app-top")
        assert installed == {"app_top-1.0", "mid_lib-1.0", "leaf_lib-1.1", "far_lib-2.0"}
        assert codeartifact.s3_authorization_headers == 0  # credentials never followed the redirect

        pins = {
            "app-top==1.0": top,
            "mid-lib==1.0": make_wheel("mid-lib", "1.0", requires_dist=["leaf-lib>=1.0"]),
            "leaf-lib==1.0": team_leaf,  # team's bytes, not the plain index's
            "far-lib==2.0": make_wheel("far-lib", "2.0"),
        }
        requirements = tmp_path / "requirements.txt"
        requirements.write_text(
            "".join(f"{pin} --hash=sha256:{sha256_of(data)}\n" for pin, (_, data) in pins.items())
        )
        installed, _ = clients.install("--require-hashes", "-r", str(requirements))
        assert installed == {"app_top-1.0", "mid_lib-1.0", "leaf_lib-1.0", "far_lib-2.0"}
        assert plain.file_requests(team_leaf[0]) == 0

        # Every upstream stopped: what was fetched before still installs, hashes and all.
        codeartifact.stop_in_thread()
        plain.stop_server()
        installed, _ = clients.install("--require-hashes", "-r", str(requirements))
        assert installed == {"app_top-1.0", "mid_lib-1.0", "leaf_lib-1.0", "far_lib-2.0"}
        installed, _ = clients.install("app-top")
        assert installed == {"app_top-1.0", "mid_lib-1.0", "leaf_lib-1.1", "far_lib-2.0"}
    finally:
        codeartifact.stop_in_thread()
        plain.stop_in_thread()


# -- one proxy in front of one plain index -----------------------------------------------------------
@pytest.fixture(scope="module")
def plain() -> Iterator[FakePypiIndex]:
    with FakePypiIndex() as fake:
        yield fake


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, plain) -> Iterator[RunningDaemon]:
    tmp = tmp_path_factory.mktemp("pypi-e2e")
    body = plain.upstream_config() + '\n[repository.dev]\nupstreams = ["plain"]\npublish = true\n'
    body += "\n[repository.own]\npublish = true\n"
    running = start_daemon(write_config(tmp, body), tmp / "daemon.log")
    yield running
    running.stop()


def listed(proxy: RunningDaemon, project: str, file: FakeFile) -> dict:
    """How the proxy's PEP 691 page of ``project`` lists ``file``."""
    page = httpx.get(
        f"{proxy.url}/pypi/dev/simple/{project}/",
        headers={"Accept": JSON_V1},
        timeout=30,
    ).json()
    return next(f for f in page["files"] if f["filename"] == file.filename)


def test_pip_resolves_a_cached_wheel_from_its_metadata_alone(tmp_path, proxy, plain):
    top = plain.add_wheel("meta-top", "1.0", requires_dist=["meta-dep>=1"])
    dep = plain.add_wheel("meta-dep", "1.0")
    clients = Clients(tmp_path, proxy.url)
    installed, _ = clients.install("meta-top")  # the index has no PEP 658: pip downloads both wheels
    assert installed == {"meta_top-1.0", "meta_dep-1.0"}

    # The pages list the metadata taken out of the wheels once rendered again, in the background.
    for project, file in (("meta-top", top), ("meta-dep", dep)):
        eventually(lambda project=project, file=file: "core-metadata" in listed(proxy, project, file))
    seen = len(access_log_paths(proxy))
    report = tmp_path / "report.json"
    clients.pip("install", "--dry-run", "--ignore-installed", "--report", str(report), "meta-top")
    requests = access_log_paths(proxy)[seen:]
    prefix = "/pypi/dev/files/"
    metadata = [f"{prefix}meta-top/{top.filename}.metadata", f"{prefix}meta-dep/{dep.filename}.metadata"]
    assert set(metadata) <= set(requests)
    # Resolution is every page and metadata request; pip 23 fetches the chosen wheels only after it
    # has finished (to "prepare more"), so no wheel may come before the last of those.
    resolving = [i for i, path in enumerate(requests) if "/simple/" in path or path.endswith(".metadata")]
    wheels = [i for i, path in enumerate(requests) if path.endswith(".whl")]
    assert not wheels or min(wheels) > max(resolving), requests
    resolved = {
        item["metadata"]["name"]: item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    assert resolved == {"meta-top": "1.0", "meta-dep": "1.0"}
    assert plain.file_requests(top.filename) == plain.file_requests(dep.filename) == 1


def test_a_file_that_fails_its_hash_fails_the_install_and_is_not_stored(tmp_path, proxy, plain):
    file = plain.add_wheel("bad-bytes", "1.0")
    plain.file_faults[file.filename] = "wrong-bytes"
    clients = Clients(tmp_path, proxy.url)
    before = proxy.blob_count()
    installed, result = clients.install("bad-bytes", check=False)
    assert result.returncode != 0 and not installed
    assert "502" in result.stdout + result.stderr
    assert proxy.blob_count() == before

    plain.file_faults.clear()
    installed, _ = clients.install("bad-bytes")
    assert installed == {"bad_bytes-1.0"}
    assert plain.file_requests(file.filename) == 2  # the bad copy was not kept


def test_twine_uploads_a_wheel_and_an_sdist_then_pip_installs_them(tmp_path, proxy):
    clients = Clients(tmp_path, proxy.url, repository="own")
    wheel = write_dist(tmp_path / "dist", make_wheel("Uploaded.Pkg", "1.0"))
    sdist = write_dist(tmp_path / "dist", make_sdist("Uploaded.Pkg", "1.0"))
    clients.twine(wheel, sdist)

    installed, _ = clients.install("uploaded-pkg")
    assert installed == {"uploaded_pkg-1.0"}
    # The sdist is listed next to the wheel and served as uploaded (pip prefers the wheel).
    page = httpx.get(f"{proxy.url}/pypi/own/simple/uploaded-pkg/", headers={"Accept": JSON_V1}).json()
    listed = {f["filename"]: f for f in page["files"]}
    assert set(listed) == {wheel.name, sdist.name}
    assert httpx.get(listed[sdist.name]["url"]).content == sdist.read_bytes()
    assert "core-metadata" in listed[wheel.name]

    again = clients.twine(wheel, check=False)
    assert again.returncode != 0 and "File already exists" in again.stdout + again.stderr
