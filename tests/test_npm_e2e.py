"""The real ``npm`` against the proxy: install through a chain, ci from the store, publish, integrity.

npm runs isolated: its own HOME, user config, empty global config and cache in the test's temp dir, so
the machine's ~/.npmrc never applies. The proxy runs as a subprocess (tests.fakes.daemon); the fakes run
on threads of this process, on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from proxy.config.loader import load_config
from proxy.formats.registry import format_names
from proxy.store.catalog import PackageCoordinate
from proxy.store.store import Store
from tests.fakes.clients import npm_binary
from tests.fakes.codeartifact import FakeCodeArtifact, aws_environment
from tests.fakes.daemon import start_daemon
from tests.fakes.npm_registry import FakeNpmRegistry, make_tarball

OWNER = "111122223333"


@dataclass
class Npm:
    """The real npm, confined to ``root``; ``registry`` is the proxy's repository URL."""

    binary: str
    root: Path
    registry: str
    caches: int = 0

    def __post_init__(self) -> None:
        (self.root / "home").mkdir(parents=True, exist_ok=True)
        (self.root / "globalrc").write_text("")
        host_path = self.registry.split("://", 1)[1]
        (self.root / "npmrc").write_text(
            f"registry={self.registry}\n"
            f"//{host_path}:_authToken=anything\n"
            "update-notifier=false\naudit=false\nfund=false\nfetch-retries=0\nloglevel=warn\n"
        )
        self.fresh_cache()

    def fresh_cache(self) -> None:
        self.caches += 1
        self.cache = self.root / f"cache-{self.caches}"

    def run(self, *args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(self.root / "home"),
            "npm_config_userconfig": str(self.root / "npmrc"),
            "npm_config_globalconfig": str(self.root / "globalrc"),
        }
        result = subprocess.run(
            [self.binary, *args, "--cache", str(self.cache)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"npm {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result


def project(
    directory: Path, dependencies: dict[str, str], name: str = "e2e-app", version: str = "1.0.0"
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    manifest = {"name": name, "version": version, "main": "index.js", "dependencies": dependencies}
    (directory / "package.json").write_text(json.dumps(manifest, indent=2))
    (directory / "index.js").write_text(f"module.exports = {json.dumps(f'{name}@{version}')};\n")
    return directory


def node_require(directory: Path, *names: str) -> list[str]:
    script = f"console.log(JSON.stringify({json.dumps(list(names))}.map(n => require(n))))"
    out = subprocess.run(["node", "-e", script], cwd=directory, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.fixture
def public() -> Iterator[FakeNpmRegistry]:
    with FakeNpmRegistry() as fake:
        yield fake


def start_proxy(daemon_factory, body: str):  # type: ignore[no-untyped-def]
    running = daemon_factory(body)
    return running, f"{running.url}/npm/dev/"


def open_store(config: Path) -> Store:
    return Store.open(load_config(config, formats=format_names()).cache)


# -- install through a chain, then ci from the store ---------------------------------------------
def test_install_through_a_chain_then_ci_from_the_store(tmp_path, daemon_factory, public, monkeypatch):
    binary = npm_binary()
    for name, value in aws_environment(
        tmp_path / "aws", access_key="AKIDEXAMPLE", secret_key="secret"
    ).items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    codeartifact = FakeCodeArtifact()
    codeartifact.start_in_thread()
    try:
        domain = codeartifact.add_domain("dom", OWNER)
        domain.add_repository("team", upstreams=["store"])
        # The middle of the tree lives in the CodeArtifact repository "store", reached through "team".
        domain.add_repository("store").add_npm_package(
            {"name": "mid", "dist-tags": {"latest": "1.0.0"}},
            {"1.0.0": make_tarball("mid", "1.0.0", dependencies={"leaf": "^1.0.0"})},
        )
        domain.repositories["store"].npm["mid"]["versions"]["1.0.0"]["dependencies"] = {"leaf": "^1.0.0"}
        # leaf 1.0.0 is in "team" and in the plain registry: the first in chain order wins.
        team_leaf = make_tarball(
            "leaf", "1.0.0", files={"index.js": b"module.exports = 'leaf@1.0.0 from team';\n"}
        )
        domain.repositories["team"].add_npm_package(
            {"name": "leaf", "dist-tags": {"latest": "1.0.0"}}, {"1.0.0": team_leaf}
        )
        public.add("leaf", "1.0.0")
        public.add("leaf", "1.1.0")
        public.add("@e2e/dep", "1.0.0")

        proxy, registry = start_proxy(
            daemon_factory,
            f"""
[codeartifact.corp]
domain = "dom"
domain_owner = "{OWNER}"
region = "us-east-1"
endpoint_url = "{codeartifact.url}"

[upstream.team]
codeartifact = "corp"
repository = "team"
{public.upstream_config()}
[repository.dev]
upstreams = ["team", "public"]
publish = true
""",
        )
        npm = Npm(binary, tmp_path / "npm", registry)
        # The top of the tree is published into the local repository.
        top = project(tmp_path / "top", {"mid": "^1.0.0", "@e2e/dep": "^1.0.0"}, name="@e2e/top")
        npm.run("publish", cwd=top)

        app = project(tmp_path / "app", {"@e2e/top": "^1.0.0", "leaf": "^1.0.0"})
        npm.run("install", cwd=app)
        expected = ["@e2e/top@1.0.0", "mid@1.0.0", "leaf@1.1.0", "@e2e/dep@1.0.0"]
        assert node_require(app, "@e2e/top", "mid", "leaf", "@e2e/dep") == expected
        lock = json.loads((app / "package-lock.json").read_text())
        resolved = {path: entry["resolved"] for path, entry in lock["packages"].items() if path}
        assert set(resolved) == {f"node_modules/{n}" for n in ("@e2e/top", "mid", "leaf", "@e2e/dep")}
        assert all(url.startswith(registry) for url in resolved.values()), resolved
        assert codeartifact.s3_authorization_headers == 0

        # An exact pin on 1.0.0 takes leaf from "team", the first place that has that version.
        pinned = project(tmp_path / "pinned", {"leaf": "1.0.0"})
        npm.run("install", cwd=pinned)
        assert node_require(pinned, "leaf") == ["leaf@1.0.0 from team"]

        # npm ci from the lockfile, empty npm cache: every tarball through the proxy.
        shutil.rmtree(app / "node_modules")
        npm.fresh_cache()
        npm.run("ci", cwd=app)
        assert node_require(app, "@e2e/top", "mid", "leaf", "@e2e/dep") == expected
        assert public.tarball_requests("leaf", "1.1.0") == 1  # the second download came from the store

        # Every upstream stopped: npm ci is served from the store.
        codeartifact.stop_in_thread()
        public.stop_server()
        shutil.rmtree(app / "node_modules")
        npm.fresh_cache()
        npm.run("ci", cwd=app)
        assert node_require(app, "@e2e/top", "mid", "leaf", "@e2e/dep") == expected
        assert proxy.process.poll() is None
    finally:
        codeartifact.stop_in_thread()


# -- npm ci after a graceful restart (warm) and after a crash (from the store) --------------------
def test_npm_ci_after_a_graceful_restart_and_after_a_crash(tmp_path, daemon_factory, public):
    binary = npm_binary()
    public.add("leaf", "1.0.0")
    public.add("@e2e/dep", "1.0.0")
    proxy, registry = start_proxy(
        daemon_factory, f'{public.upstream_config()}[repository.dev]\nupstreams = ["public"]\n'
    )
    npm = Npm(binary, tmp_path / "npm", registry)
    app = project(tmp_path / "app", {"leaf": "^1.0.0", "@e2e/dep": "^1.0.0"})
    npm.run("install", cwd=app)
    public.stop_server()  # from here on, only what the proxy holds
    try:
        # The restart after SIGTERM starts from what the daemon held; the one after SIGKILL, which
        # leaves nothing, from the store.
        for stop, warm in ((signal.SIGTERM, True), (signal.SIGKILL, False)):
            assert proxy.stop(stop) == (0 if warm else -signal.SIGKILL)
            proxy = start_daemon(proxy.config, tmp_path / f"after-{stop.name}.log")
            shutil.rmtree(app / "node_modules")
            npm.fresh_cache()
            npm.run("ci", cwd=app)
            assert node_require(app, "leaf", "@e2e/dep") == ["leaf@1.0.0", "@e2e/dep@1.0.0"]
            assert ("warm start: 2 npm packuments, 2 npm tarballs," in proxy.log_text()) == warm, (
                proxy.log_text()
            )
    finally:
        proxy.stop()


# -- publish, install, republish, shadowing, dist-tags ------------------------------------------
def test_publish_install_and_the_rules_of_publishing(tmp_path, daemon_factory, public):
    binary = npm_binary()
    public.add("shadowed", "1.0.0")
    public.add("shadowed", "2.0.0")
    public.add("fetched", "1.0.0")
    proxy, registry = start_proxy(
        daemon_factory,
        public.upstream_config()
        + """
[repository.dev]
upstreams = ["public"]
publish = true

[repository.readonly]
upstreams = ["public"]
""",
    )
    npm = Npm(binary, tmp_path / "npm", registry)

    # First version and a later one, scoped.
    pkg = project(tmp_path / "pub", {}, name="@e2e/pub", version="1.0.0")
    npm.run("publish", cwd=pkg)
    project(pkg, {}, name="@e2e/pub", version="1.1.0")
    npm.run("publish", "--tag", "next", cwd=pkg)
    app = project(tmp_path / "app", {"@e2e/pub": "^1.0.0"})
    npm.run("install", cwd=app)
    assert node_require(app, "@e2e/pub") == ["@e2e/pub@1.0.0"]  # latest stays 1.0.0; 1.1.0 went to "next"

    # Republishing a version is refused: by npm itself, and by the proxy when asked anyway.
    again = npm.run("publish", cwd=pkg, check=False)
    assert again.returncode != 0 and "previously published" in again.stderr
    body = {
        "name": "@e2e/pub",
        "versions": {"1.1.0": {"name": "@e2e/pub", "version": "1.1.0", "dist": {}}},
        "_attachments": {"@e2e/pub-1.1.0.tgz": {"data": "eA==", "length": 1}},
    }
    refused = httpx.put(f"{registry}@e2e%2fpub", json=body)
    assert refused.status_code == 409
    assert "cannot publish over the previously published versions: 1.1.0" in refused.json()["error"]

    # dist-tags with the real client.
    npm.run("dist-tag", "add", "@e2e/pub@1.1.0", "stable", cwd=app)
    listed = npm.run("dist-tag", "ls", "@e2e/pub", cwd=app).stdout
    assert {"latest: 1.0.0", "next: 1.1.0", "stable: 1.1.0"} <= set(listed.splitlines())
    npm.run("dist-tag", "rm", "@e2e/pub", "next", cwd=app)
    listed = npm.run("dist-tag", "ls", "@e2e/pub", cwd=app).stdout
    assert "next" not in listed and "stable: 1.1.0" in listed

    # A published name shadows the upstream package of that name.
    assert json.loads(npm.run("view", "shadowed", "versions", "--json", cwd=app).stdout) == ["1.0.0", "2.0.0"]
    shadow = project(tmp_path / "shadow", {}, name="shadowed", version="3.0.0")
    npm.run("publish", cwd=shadow)
    assert json.loads(npm.run("view", "shadowed", "versions", "--json", cwd=app).stdout) == ["3.0.0"]
    clean = project(tmp_path / "clean", {"shadowed": "*"})
    npm.fresh_cache()
    npm.run("install", cwd=clean)
    assert node_require(clean, "shadowed") == ["shadowed@3.0.0"]

    # A package first fetched from an upstream refuses publishing (origin controls).
    fetched = project(tmp_path / "fetched-user", {"fetched": "1.0.0"})
    npm.run("install", cwd=fetched)
    own = project(tmp_path / "fetched", {}, name="fetched", version="9.0.0")
    refused_publish = npm.run("publish", cwd=own, check=False)
    assert refused_publish.returncode != 0
    assert "publish=BLOCK" in refused_publish.stderr

    # A repository without publish = true refuses with a reason.
    readonly = Npm(binary, tmp_path / "npm-ro", f"{proxy.url}/npm/readonly/")
    denied = readonly.run("publish", cwd=project(tmp_path / "ro", {}, name="ro-pkg"), check=False)
    assert denied.returncode != 0 and "does not accept publishing" in denied.stderr


# -- integrity ------------------------------------------------------------------------------------
def test_a_tarball_that_fails_its_integrity_fails_the_install_and_is_not_stored(
    tmp_path, daemon_factory, public
):
    binary = npm_binary()
    public.add("good", "1.0.0")
    public.add("liar", "1.0.0")
    public.tarball_faults["liar-1.0.0.tgz"] = "wrong-bytes"
    proxy, registry = start_proxy(
        daemon_factory,
        public.upstream_config() + '\n[repository.dev]\nupstreams = ["public"]\n',
    )
    npm = Npm(binary, tmp_path / "npm", registry)
    npm.run("install", cwd=project(tmp_path / "ok", {"good": "1.0.0"}))
    blobs_before = proxy.blob_count()

    failed = npm.run("install", cwd=project(tmp_path / "app", {"liar": "1.0.0"}), check=False)
    assert failed.returncode != 0
    assert "502" in failed.stderr
    direct = httpx.get(f"{registry}liar/-/liar-1.0.0.tgz")
    assert direct.status_code == 502 and "public" in direct.json()["error"]
    assert "dist.integrity" in direct.json()["error"]
    assert "public" in proxy.log_text() and "fails verification" in proxy.log_text()

    assert proxy.blob_count() == blobs_before
    proxy.stop()
    store = open_store(proxy.config)
    try:
        assert len(list(store.blobs.ids())) == blobs_before
        assert store.catalog.package("dev", PackageCoordinate("npm", "", "liar")) is None
        good = store.catalog.package("dev", PackageCoordinate("npm", "", "good"))
        assert good is not None and "good-1.0.0.tgz" in good.versions["1.0.0"].assets
    finally:
        store.close()
