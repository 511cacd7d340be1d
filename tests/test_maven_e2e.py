"""The real ``mvn`` (3.8.7, JDK 17) through the proxy, with nothing but 127.0.0.1 behind it.

The machine's ~/.m2/repository holds real plugins and libraries; a fake plain Maven repository serves
it read only (making up metadata and checksum files) as the proxy's upstream. Every build starts from
an empty local repository and a settings.xml whose only mirror (``mirrorOf *``) is the proxy:

- ``mvn package`` of a small project (a class, a JUnit 5 test, commons-lang3) resolves every plugin
  and dependency through the proxy; then again with every upstream stopped, from the store alone;
- ``mvn deploy`` of a release and two SNAPSHOT builds; a build that depends on the SNAPSHOT resolves
  the newest build; deploying the release again is refused;
- the same ``mvn package`` through a repository of the fake CodeArtifact, seeded with the files the
  first build needed (the fake has no external connections of its own).

mvn is slow to start (seconds per run), so the tests share one proxy and run in file order.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from proxy.formats.maven.metadata import parse
from tests.fakes.codeartifact import FakeCodeArtifact, aws_environment
from tests.fakes.daemon import RunningDaemon, start_daemon, write_config
from tests.fakes.maven_client import Maven, copy_project, mvn_binary, write_settings
from tests.fakes.maven_repository import FakeMavenRepository

M2 = Path.home() / ".m2" / "repository"
OWNER = "111122223333"
LIB = "org/example/e2e/lib"
LIB_SNAPSHOT = """    <dependency>
      <groupId>org.example.e2e</groupId>
      <artifactId>lib</artifactId>
      <version>1.0.1-SNAPSHOT</version>
    </dependency>"""


@dataclass
class Setup:
    root: Path
    m2: FakeMavenRepository
    daemon: RunningDaemon
    maven: Maven
    repository_url: str  # the proxy's /maven/dev/
    served: set[str]  # asset paths the upstream served to the first build

    def fresh_local_repository(self, name: str) -> Path:
        path = self.root / "local" / name
        assert not path.exists()
        return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    binary = mvn_binary()
    if not (M2 / "org" / "apache" / "maven" / "plugins").is_dir():
        pytest.fail(f"{M2} does not hold the Maven plugins these tests build with")
    root = tmp_path_factory.mktemp("maven-e2e")
    m2 = FakeMavenRepository(M2).start()
    config = write_config(
        root,
        f'[upstream.m2]\nformat = "maven"\nurl = "{m2.url}"\n\n'
        '[repository.dev]\nupstreams = ["m2"]\npublish = true\n',
    )
    daemon = start_daemon(config, root / "daemon.log")
    url = f"{daemon.url}/maven/dev/"
    maven = Maven(binary, write_settings(root / "settings.xml", url))
    try:
        yield Setup(root, m2, daemon, maven, url, set())
    finally:
        daemon.stop()
        m2.close()


def _remote_repositories(local: Path) -> set[str]:
    """The repository ids Maven recorded as the source of what it downloaded (_remote.repositories)."""
    ids: set[str] = set()
    for record in local.rglob("_remote.repositories"):
        ids.update(re.findall(r">([^=\s]*)=", record.read_text()))
    return ids


def _passed_tests(project: Path) -> int:
    report = (project / "target" / "surefire-reports" / "org.example.app.GreeterTest.txt").read_text()
    match = re.search(r"Tests run: (\d+), Failures: 0, Errors: 0", report)
    assert match, report
    return int(match[1])


def test_package_through_a_plain_registry(setup: Setup) -> None:
    project = copy_project("app", setup.root / "app", LIB_DEPENDENCY="")
    local = setup.fresh_local_repository("plain")
    setup.maven.run(project, local, "package")
    assert _passed_tests(project) == 1
    assert (project / "target" / "app-1.0.jar").is_file()
    jars = {p.name for p in local.rglob("*.jar")}
    assert {
        "commons-lang3-3.14.0.jar",
        "junit-jupiter-api-5.10.2.jar",
        "maven-surefire-plugin-3.2.5.jar",
    } <= jars
    # every plugin and dependency came from the mirror, i.e. the proxy, which had them from the upstream
    assert _remote_repositories(local) == {"proxy"}
    setup.served.update(
        path
        for path in setup.m2.requests
        if not path.endswith((".sha1", ".sha256", "maven-metadata.xml")) and (M2 / path).is_file()
    )
    assert len(setup.served) > 100
    assert all(setup.m2.count(path) == 1 for path in setup.served)  # each downloaded once


def test_package_with_every_upstream_stopped(setup: Setup) -> None:
    setup.m2.stop()
    try:
        project = copy_project("app", setup.root / "app-offline", LIB_DEPENDENCY="")
        setup.maven.run(project, setup.fresh_local_repository("offline"), "package")
        assert _passed_tests(project) == 1
    finally:
        setup.m2.start()


def _deploy(setup: Setup, version: str, tag: str, *, check: bool = True) -> str:
    project = copy_project(
        "lib", setup.root / f"lib-{version}-{tag}", VERSION=version, DEPLOY_URL=setup.repository_url
    )
    result = setup.maven.run(
        project, setup.root / "local" / "deployer", "deploy", f"-Dbuild.tag={tag}", check=check
    )
    return result.stdout + result.stderr


def test_deploy_then_depend_on_the_newest_snapshot(setup: Setup) -> None:
    _deploy(setup, "1.0.0", "release")
    _deploy(setup, "1.0.1-SNAPSHOT", "one")
    _deploy(setup, "1.0.1-SNAPSHOT", "two")
    client = httpx.Client(base_url=setup.repository_url, timeout=30)
    versions = parse(client.get(f"{LIB}/maven-metadata.xml").content)
    assert versions.versions == ("1.0.0", "1.0.1-SNAPSHOT")
    assert (versions.latest, versions.release) == ("1.0.1-SNAPSHOT", "1.0.0")
    snapshot = parse(client.get(f"{LIB}/1.0.1-SNAPSHOT/maven-metadata.xml").content)
    assert snapshot.snapshot is not None and snapshot.snapshot.build_number == 2
    released = client.get(f"{LIB}/1.0.0/lib-1.0.0.jar")
    assert released.status_code == 200

    project = copy_project("app", setup.root / "consumer", LIB_DEPENDENCY=LIB_SNAPSHOT)
    local = setup.fresh_local_repository("consumer")
    setup.maven.run(project, local, "package")
    assert _passed_tests(project) == 1
    resolved = local / LIB / "1.0.1-SNAPSHOT" / "lib-1.0.1-SNAPSHOT.jar"
    with zipfile.ZipFile(resolved) as jar:
        assert jar.read("org/example/lib/build.properties").decode().strip() == "build=two"
    assert any(re.fullmatch(r"lib-1\.0\.1-\d{8}\.\d{6}-2\.jar", p.name) for p in resolved.parent.iterdir())

    output = _deploy(setup, "1.0.0", "again", check=False)
    assert "409" in output, output[-3000:]
    assert client.get(f"{LIB}/1.0.0/lib-1.0.0.jar").content == released.content


def test_package_through_codeartifact(setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not setup.served:
        pytest.skip("needs the files the first build downloaded")
    for name, value in aws_environment(
        tmp_path / "aws", access_key="AKIDEXAMPLE", secret_key="secret"
    ).items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    codeartifact = FakeCodeArtifact()
    codeartifact.start_in_thread()
    daemon = None
    try:
        domain = codeartifact.add_domain("corp", OWNER)
        domain.add_repository("team", upstreams=["mirror"])
        mirror = domain.add_repository("mirror")
        for path in setup.served:
            mirror.add_maven_file(path, (M2 / path).read_bytes())
        config = write_config(
            tmp_path,
            f'[codeartifact.corp]\ndomain = "corp"\ndomain_owner = "{OWNER}"\nregion = "us-east-1"\n'
            f'endpoint_url = "{codeartifact.url}"\n\n'
            '[upstream.team]\ncodeartifact = "corp"\nrepository = "team"\n\n'
            '[repository.ca]\nupstreams = ["team"]\n',
        )
        daemon = start_daemon(config, tmp_path / "daemon.log")
        maven = Maven(
            setup.maven.binary, write_settings(tmp_path / "settings.xml", f"{daemon.url}/maven/ca/")
        )
        project = copy_project("app", tmp_path / "app", LIB_DEPENDENCY="")
        local = tmp_path / "local"
        maven.run(project, local, "package")
        assert _passed_tests(project) == 1
        assert _remote_repositories(local) == {"proxy"}
        assert codeartifact.s3_authorization_headers == 0  # assets came by pre-signed URL, without the token
    finally:
        if daemon is not None:
            daemon.stop()
        codeartifact.stop_in_thread()
