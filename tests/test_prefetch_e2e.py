"""``prefetch`` fills the store from lockfiles; then, with every upstream stopped, the real clients
build from the store alone, through the same daemon, still online: ``npm ci``, ``pip install
--require-hashes``, and ``mvn package``. An entry that does not exist upstream is reported and the exit
status is non-zero.

The lockfiles are made by the clients themselves through a first daemon (its own cache) on the same
port as the second: ``npm install`` writes package-lock.json (whose ``resolved`` URLs name that port),
``mvn package`` fills a local repository whose files become the coordinate list. The second daemon,
with an empty store, is filled by ``prefetch`` alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.fakes.daemon import free_port, start_daemon, write_config
from tests.fakes.maven_client import Maven, copy_project, mvn_binary, write_settings
from tests.fakes.maven_repository import FakeMavenRepository
from tests.fakes.npm_registry import FakeNpmRegistry
from tests.fakes.pypi_index import FakePypiIndex, requirements
from tests.test_npm_e2e import Npm, node_require, npm_binary, project
from tests.test_pypi_e2e import Clients

M2 = Path.home() / ".m2" / "repository"


def prefetch(config: Path, repository: str, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "proxy",
            "--config",
            str(config),
            "prefetch",
            "--repository",
            repository,
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )


@dataclass
class FakeUpstreams:
    """A fake npm registry, PyPI index and Maven repository (over ~/.m2), for repositories ``dev``
    (npm and PyPI) and ``java`` (Maven) of a daemon."""

    npm: FakeNpmRegistry = field(default_factory=FakeNpmRegistry)
    pypi: FakePypiIndex = field(default_factory=FakePypiIndex)
    m2: FakeMavenRepository = field(default_factory=lambda: FakeMavenRepository(M2))

    def start(self) -> str:
        """Start all three; returns the daemon configuration's upstream and repository tables."""
        self.npm.start_in_thread()
        self.pypi.start_in_thread()
        self.m2.start()
        return (
            self.npm.upstream_config("n")
            + self.pypi.upstream_config("p")
            + f'\n[upstream.m]\nformat = "maven"\nurl = "{self.m2.url}"\n'
            + '\n[repository.dev]\nupstreams = ["n", "p"]\n\n[repository.java]\nupstreams = ["m"]\n'
        )

    def stop(self) -> None:
        self.npm.stop_in_thread()
        self.pypi.stop_in_thread()
        self.m2.stop()

    def close(self) -> None:
        self.stop()
        self.m2.close()

    def served(self) -> tuple[int, int, int]:
        """Requests each has answered so far."""
        return (
            sum(self.npm.requests.values()),
            sum(self.pypi.requests.values()),
            sum(self.m2.requests.values()),
        )


def coordinates(local: Path) -> list[str]:
    """A coordinate list of a local Maven repository: ``group:artifact:version`` where the jar is
    there, ``group:artifact:version:pom`` where only the POM is (parents, BOMs, and the POMs Maven
    reads while it picks among versions)."""
    lines = []
    for pom in sorted(local.rglob("*.pom")):
        version_dir = pom.parent
        artifact_dir = version_dir.parent
        if pom.name != f"{artifact_dir.name}-{version_dir.name}.pom":
            continue
        group = ".".join(artifact_dir.parent.relative_to(local).parts)
        jar = pom.with_suffix(".jar").is_file()
        lines.append(f"{group}:{artifact_dir.name}:{version_dir.name}{'' if jar else ':pom'}")
    return lines


def test_prefetch_then_build_with_every_upstream_stopped(tmp_path: Path) -> None:
    npm_bin, mvn_bin = npm_binary(), mvn_binary()
    upstreams = FakeUpstreams()
    npm_fake, pypi_fake = upstreams.npm, upstreams.pypi
    npm_fake.add("e2e-dep", "1.0.0")
    npm_fake.add("@e2e/top", "1.2.0", dependencies={"e2e-dep": "^1.0.0"})
    pins = {
        "e2e-pre": pypi_fake.add_wheel("e2e-pre", "1.0.0", requires_dist=["e2e-pre-dep"], pep658=True),
        "e2e-pre-dep": pypi_fake.add_wheel("e2e-pre-dep", "2.0.0"),
    }
    pypi_fake.add_wheel("e2e-pre", "0.9.0")  # another version, not prefetched
    body = upstreams.start()
    port = free_port()
    daemon = None
    try:
        # 1. the lockfiles, made by the clients through a first daemon
        (tmp_path / "a").mkdir()
        daemon = start_daemon(write_config(tmp_path / "a", body, port=port), tmp_path / "a.log")
        npm = Npm(npm_bin, tmp_path / "npm", f"{daemon.url}/npm/dev/")
        app = project(tmp_path / "app", {"@e2e/top": "^1.0.0"})
        npm.run("install", cwd=app)
        lock = app / "package-lock.json"
        assert set(json.loads(lock.read_text())["packages"]) == {
            "",
            "node_modules/@e2e/top",
            "node_modules/e2e-dep",
        }
        maven = Maven(mvn_bin, write_settings(tmp_path / "settings.xml", f"{daemon.url}/maven/java/"))
        maven.run(copy_project("app", tmp_path / "mvn-a", LIB_DEPENDENCY=""), tmp_path / "local-a", "package")
        coordinate_list = tmp_path / "maven-dependencies.txt"
        coordinate_list.write_text(
            "# made from a local repository\n" + "\n".join(coordinates(tmp_path / "local-a")) + "\n"
        )
        assert daemon.stop() == 0
        reqs = tmp_path / "requirements.txt"
        reqs.write_text(requirements(pins))

        # 2. a second daemon, empty, filled by prefetch
        (tmp_path / "b").mkdir()
        config = write_config(tmp_path / "b", body, port=port)
        daemon = start_daemon(config, tmp_path / "b.log")
        served_before = sum(npm_fake.requests.values())
        done = prefetch(config, "dev", lock, reqs)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "4 entries (5 files): 4 fetched, 0 already there, 0 failed" in done.stdout, done.stdout
        assert sum(npm_fake.requests.values()) > served_before
        done = prefetch(config, "java", coordinate_list)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        again = prefetch(config, "dev", lock, reqs)
        assert "0 fetched, 4 already there, 0 failed" in again.stdout, again.stdout

        # 3. a lockfile entry that does not exist upstream
        missing = tmp_path / "requirements-missing.txt"
        missing.write_text(reqs.read_text() + "e2e-nowhere==1.0 --hash=sha256:" + "0" * 64 + "\n")
        failed = prefetch(config, "dev", missing)
        assert failed.returncode == 1
        assert "failed: pypi e2e-nowhere==1.0: " in failed.stderr and "1 failed" in failed.stdout

        # 4. every upstream stopped: the clients build from the store
        upstreams.stop()
        npm.fresh_cache()
        (app / "node_modules").rename(tmp_path / "node_modules-a")
        npm.run("ci", cwd=app)
        assert node_require(app, "@e2e/top", "e2e-dep") == ["@e2e/top@1.2.0", "e2e-dep@1.0.0"]
        clients = Clients(tmp_path / "pip", daemon.url, repository="dev")
        installed, _ = clients.install("--require-hashes", "-r", str(reqs))
        assert installed == {"e2e_pre-1.0.0", "e2e_pre_dep-2.0.0"}
        # The same daemon, still online: Maven asks for POMs the upstream never had (maven-core 3.2.5,
        # which a dependency management picks) and goes on after a 404, which the daemon remembers
        # from the prefetch (negative lookups), where a miss nobody answered would be a 502.
        project_b = copy_project("app", tmp_path / "mvn-b", LIB_DEPENDENCY="")
        maven.run(project_b, tmp_path / "local-b", "package")
        assert (project_b / "target" / "app-1.0.jar").is_file()
        never_had = '"GET /maven/java/org/apache/maven/maven-core/3.2.5/maven-core-3.2.5.pom" 404'
        assert never_had in daemon.log_text()
        assert '" 502 ' not in daemon.log_text()
    finally:
        if daemon is not None:
            daemon.stop()
        upstreams.close()
