"""Several daemons on one shared store (one PostgreSQL, one blob path), as several hosts run them: three
daemons behind nginx (round robin), two of them with `[server] workers = 2`, the real npm, pip, twine
and mvn through them.

- concurrent misses of one tarball spread over every daemon cost one upstream fetch (the asset's lease);
- what one daemon publishes (npm publish, twine upload, mvn deploy) or changes through /v1 (a status)
  the others serve at once, even when they had the package's merged view cached (the change is
  announced through PostgreSQL);
- a daemon killed (SIGKILL) mid-fetch holds its lease at most ``[store] lease_timeout``: another
  daemon fetches the asset after it, the installs through nginx go on, and ``verify`` finds the store
  clean.

The daemons and nginx are shared by the module's tests, which run in file order (the last kills one).
"""

from __future__ import annotations

import asyncio
import io
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from proxy.cli import main
from proxy.store.keyring import KeyRing
from tests.api_cli import Aws
from tests.fakes.clients import real_client
from tests.fakes.daemon import RunningDaemon, eventually, free_port, start_daemon, write_config
from tests.fakes.maven_client import Maven, copy_project, mvn_binary, write_settings
from tests.fakes.maven_repository import FakeMavenRepository
from tests.fakes.npm_registry import FakeNpmRegistry, make_tarball
from tests.fakes.pypi_index import make_wheel
from tests.store_contract.postgres import Cluster, require_bindir
from tests.test_npm_e2e import Npm, project
from tests.test_pypi_e2e import Clients, write_dist

M2 = Path.home() / ".m2" / "repository"
LEASE_TIMEOUT = 2.0  # seconds a killed daemon's lease holds the others back, at most
NAMES = ("a", "b", "c")
WORKERS = ("b", "c")  # these run [server] workers = 2


class Nginx:
    """nginx in front of the daemons, round robin, unprivileged (``nobody`` when the tests run as
    root), its configuration, pid file, logs and temp files in a directory of its own."""

    def __init__(self, backends: list[str]) -> None:
        binary = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
        if binary is None:
            real_client("nginx")  # fails under CI, skips elsewhere
        self.dir = Path(tempfile.mkdtemp(prefix="proxy-test-nginx-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        servers = "".join(f"    server {backend.split('://', 1)[1]};\n" for backend in backends)
        temp = "".join(
            f"  {kind}_temp_path {self.dir / kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (self.dir / "nginx.conf").write_text(
            f"""daemon off;
worker_processes 1;
pid {self.dir / "nginx.pid"};
error_log {self.dir / "error.log"} warn;
events {{ worker_connections 512; }}
http {{
  access_log {self.dir / "access.log"};
{temp}  client_max_body_size 0;
  upstream daemons {{
{servers}  }}
  server {{
    listen 127.0.0.1:{self.port};
    location / {{
      proxy_pass http://daemons;
      proxy_http_version 1.1;
      proxy_set_header Host $http_host;
      proxy_set_header Connection "";
      proxy_request_buffering off;
      proxy_buffering off;
      proxy_next_upstream error timeout;
      proxy_connect_timeout 2s;
      proxy_read_timeout 60s;
    }}
  }}
}}
"""
        )
        as_user: list[str] = []
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            for path in (self.dir, *self.dir.iterdir()):
                os.chown(path, nobody.pw_uid, nobody.pw_gid)
            as_user = ["runuser", "-u", "nobody", "--"]
        self.process = subprocess.Popen(
            [*as_user, str(binary), "-p", str(self.dir), "-c", str(self.dir / "nginx.conf")],
            stdout=subprocess.DEVNULL,
            stderr=(self.dir / "stderr").open("wb"),
        )

        def listening() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"nginx exited: {(self.dir / 'stderr').read_text()}")
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                return True
            except httpx.TransportError:
                return False

        eventually(listening, timeout=15)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Farm:
    root: Path
    registry: FakeNpmRegistry
    m2: FakeMavenRepository
    daemons: dict[str, RunningDaemon]
    nginx: Nginx
    dsn: str

    def repository(self, url: str, fmt: str) -> str:
        return f"{url}/{fmt}/team/"


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    root = tmp_path_factory.mktemp("scale")
    cluster = Cluster(require_bindir())
    registry = FakeNpmRegistry()
    m2 = FakeMavenRepository(M2)
    daemons: dict[str, RunningDaemon] = {}
    nginx: Nginx | None = None
    try:
        cluster.start()
        asyncio.run(_create_database(cluster))
        registry.start_in_thread()
        m2.start()
        key_file = root / "shared-key" / "cache.key"
        KeyRing.load(key_file)  # one cache key for every daemon of the store
        store = (
            f'\n[store]\ncatalog = "{cluster.dsn("farm")}"\nblobs = "{root / "shared-blobs"}"\n'
            f'lease_timeout = "{LEASE_TIMEOUT}s"\n'
            + registry.upstream_config()
            + f'\n[upstream.m2]\nformat = "maven"\nurl = "{m2.url}"\n'
            + '\n[repository.team]\nupstreams = ["public", "m2"]\npublish = true\n'
        )
        configs = {}
        for name in NAMES:
            (root / name).mkdir()
            config = write_config(root / name, store)
            config.write_text(
                config.read_text().replace(str(root / name / "keys" / "cache.key"), str(key_file))
            )
            if name in WORKERS:  # two processes on one address (SO_REUSEPORT)
                config.write_text(config.read_text().replace("[server]\n", "[server]\nworkers = 2\n", 1))
            configs[name] = config
        with ThreadPoolExecutor(len(NAMES)) as pool:
            started = {n: pool.submit(start_daemon, configs[n], root / f"{n}.log") for n in NAMES}
            for name, future in started.items():
                daemons[name] = future.result()
        for name in WORKERS:
            eventually(lambda name=name: _listening(daemons[name]) == 2)
        nginx = Nginx([daemons[n].url for n in NAMES])
        yield Farm(root, registry, m2, daemons, nginx, cluster.dsn("farm"))
    finally:
        if nginx is not None:
            nginx.stop()
        for daemon in daemons.values():
            daemon.stop(signal.SIGKILL if daemon.process.poll() is None else 15)
        registry.stop_in_thread()
        m2.close()
        cluster.stop()


async def _create_database(cluster: Cluster) -> None:
    admin = await asyncpg.connect(cluster.dsn())
    try:
        await admin.execute("CREATE DATABASE farm")
    finally:
        await admin.close()


def _get_in_thread(
    url: str, results: dict[str, httpx.Response | BaseException], key: str
) -> threading.Thread:
    def get() -> None:
        try:
            results[key] = httpx.get(url, timeout=60)
        except BaseException as exc:  # reported by the test
            results[key] = exc

    thread = threading.Thread(target=get, daemon=True)
    thread.start()
    return thread


def test_concurrent_misses_on_every_daemon_cost_one_upstream_fetch(farm: Farm) -> None:
    data = farm.registry.add(
        "slow-pkg", "1.0.0", tarball=make_tarball("slow-pkg", "1.0.0", files={"index.js": os.urandom(65536)})
    )
    farm.registry.stalled.clear()
    farm.registry.tarball_faults["slow-pkg-1.0.0.tgz"] = "stall"  # half, then nothing until released
    path = "npm/team/slow-pkg/-/slow-pkg-1.0.0.tgz"
    results: dict[str, httpx.Response | BaseException] = {}
    # The first miss, on daemon a: it takes the asset's lease and fetches; the upstream stalls.
    threads = [_get_in_thread(f"{farm.daemons['a'].url}/{path}", results, "first")]
    eventually(lambda: farm.registry.tarball_requests("slow-pkg", "1.0.0") == 1)
    # Then 99 more, on every daemon (and worker), directly and through nginx's round robin.
    for n in range(99):
        url = farm.daemons[NAMES[n % 3]].url if n < 30 else farm.nginx.url
        threads.append(_get_in_thread(f"{url}/{path}", results, str(n)))
    for other in ("b", "c"):  # the other daemons got their requests, which wait on the lease
        eventually(lambda other=other: _in_flight(farm.daemons[other]) >= 10)
    assert not results, "nothing can be answered while the only fetch stalls"
    farm.registry.stalled.set()
    _all_served(threads, results, 100, data)
    assert farm.registry.tarball_requests("slow-pkg", "1.0.0") == 1


Results = dict[str, httpx.Response | BaseException]


def _all_served(threads: list[threading.Thread], results: Results, count: int, data: bytes) -> None:
    """Once ``threads`` end, each of the ``count`` requests was answered 200 with ``data``."""
    for thread in threads:
        thread.join(60)
    assert len(results) == count
    for response in results.values():
        assert isinstance(response, httpx.Response) and response.status_code == 200, response
        assert response.content == data


def _listening(daemon: RunningDaemon) -> int:
    """Sockets listening on the daemon's port: one per worker process."""
    return _sockets(daemon, "0A")


def _in_flight(daemon: RunningDaemon) -> int:
    """Connections open to the daemon's port (``/proc/net/tcp``): requests it has been sent and not
    answered yet, as nothing else holds a connection to it open here."""
    return _sockets(daemon, "01")


def _sockets(daemon: RunningDaemon, state: str) -> int:
    """The daemon's port's TCP sockets in ``state`` (``/proc/net/tcp``: 01 established, 0A listening)."""
    port = int(daemon.url.rsplit(":", 1)[1])
    found = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
            found += 1
    return found


def test_an_npm_publish_on_one_daemon_is_served_by_the_others_at_once(farm: Farm) -> None:
    binary = real_client("npm")
    on_a = Npm(binary, farm.root / "npm-a", farm.repository(farm.daemons["a"].url, "npm"))
    on_b = Npm(binary, farm.root / "npm-b", farm.repository(farm.daemons["b"].url, "npm"))
    package = project(farm.root / "shared-pub", {}, name="shared-pub", version="1.0.0")
    on_a.run("publish", cwd=package)
    packument = httpx.get(f"{on_b.registry}shared-pub", timeout=30).json()
    assert list(packument["versions"]) == ["1.0.0"]  # b holds its merged view of shared-pub now

    project(farm.root / "shared-pub", {}, name="shared-pub", version="1.1.0")
    on_a.run("publish", cwd=package)
    assert on_b.run("view", "shared-pub", "version", cwd=farm.root).stdout.strip() == "1.1.0"

    # A /v1 status change through a is heard by b too: the unlisted version leaves b's packument.
    changed = Aws(farm.daemons["a"].url)(
        "update-package-versions-status",
        *("--repository", "team", "--format", "npm", "--package", "shared-pub"),
        *("--versions", "1.0.0", "--target-status", "Unlisted"),
    )
    assert changed["successfulVersions"]["1.0.0"]["status"] == "Unlisted", changed
    assert list(httpx.get(f"{on_b.registry}shared-pub", timeout=30).json()["versions"]) == ["1.1.0"]


def test_a_twine_upload_on_one_daemon_installs_through_another_at_once(farm: Farm) -> None:
    on_a = Clients(farm.root / "pypi-a", farm.daemons["a"].url, repository="team")
    on_b = Clients(farm.root / "pypi-b", farm.daemons["b"].url, repository="team")
    on_a.twine(write_dist(farm.root / "dist", make_wheel("shared-wheel", "1.0")))
    page = httpx.get(f"{farm.daemons['b'].url}/pypi/team/simple/shared-wheel/", timeout=30).text
    assert "shared_wheel-1.0-" in page and "2.0" not in page  # b holds its merged view now
    on_a.twine(write_dist(farm.root / "dist", make_wheel("shared-wheel", "2.0")))
    assert on_b.install("shared-wheel")[0] == {"shared_wheel-2.0"}


SHARED_DEPENDENCY = """
    <dependency>
      <groupId>org.example.scale</groupId>
      <artifactId>shared</artifactId>
      <version>[1.0,)</version>
    </dependency>
"""
SHARED = "org/example/scale/shared"


def test_an_mvn_deploy_on_one_daemon_resolves_through_another_at_once(farm: Farm) -> None:
    if not (M2 / "org" / "apache" / "maven" / "plugins").is_dir():
        pytest.fail(f"{M2} does not hold the Maven plugins this test deploys with")
    on_a = f"{farm.daemons['a'].url}/maven/team/"
    on_b = f"{farm.daemons['b'].url}/maven/team/"
    pom = b"<project><modelVersion>4.0.0</modelVersion><groupId>org.example.scale</groupId>"
    for ext, body in (
        ("pom", pom + b"<artifactId>shared</artifactId><version>1.0</version></project>"),
        ("jar", _jar("1.0")),
    ):
        assert httpx.put(f"{on_a}{SHARED}/1.0/shared-1.0.{ext}", content=body, timeout=30).status_code == 201
    # b holds its merged maven-metadata.xml of the artifact now, listing 1.0 only.
    assert b"<version>1.0</version>" in httpx.get(f"{on_b}{SHARED}/maven-metadata.xml", timeout=30).content

    binary = mvn_binary()
    jar = farm.root / "shared-1.1.jar"
    jar.write_bytes(_jar("1.1"))
    deployer = Maven(binary, write_settings(farm.root / "settings-a.xml", on_a))
    deployer.run(
        farm.root,
        farm.root / "m2-a",
        "org.apache.maven.plugins:maven-deploy-plugin:3.1.2:deploy-file",
        f"-Dfile={jar}",
        "-DgroupId=org.example.scale",
        "-DartifactId=shared",
        "-Dversion=1.1",
        "-Dpackaging=jar",
        "-DgeneratePom=true",
        f"-Durl={on_a}",
        "-DrepositoryId=proxy-deploy",
    )
    # b had 1.0 alone in its merged maven-metadata.xml: it lists 1.1 at once.
    assert b"<version>1.1</version>" in httpx.get(f"{on_b}{SHARED}/maven-metadata.xml", timeout=30).content
    consumer = copy_project("app", farm.root / "consumer", LIB_DEPENDENCY=SHARED_DEPENDENCY)
    through_nginx = f"{farm.nginx.url}/maven/team/"
    resolver = Maven(binary, write_settings(farm.root / "settings-nginx.xml", through_nginx))
    # mvn package through nginx resolves the range [1.0,) from any daemon's maven-metadata.xml: 1.1.
    resolver.run(consumer, farm.root / "m2-nginx", "package")
    resolved = farm.root / "m2-nginx" / SHARED / "1.1" / "shared-1.1.jar"
    assert resolved.read_bytes() == _jar("1.1")
    assert (consumer / "target" / "app-1.0.jar").is_file()


def _jar(version: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as jar:
        jar.writestr(zipfile.ZipInfo("org/example/scale/version.txt", (2024, 1, 1, 0, 0, 0)), version)
    return buffer.getvalue()


def test_a_daemon_killed_mid_fetch_blocks_the_others_only_for_its_lease(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    data = farm.registry.add(
        "killed-pkg",
        "1.0.0",
        tarball=make_tarball("killed-pkg", "1.0.0", files={"index.js": os.urandom(65536)}),
    )
    farm.registry.stalled.clear()
    farm.registry.tarball_faults["killed-pkg-1.0.0.tgz"] = "stall"
    path = "npm/team/killed-pkg/-/killed-pkg-1.0.0.tgz"
    results: dict[str, httpx.Response | BaseException] = {}
    _get_in_thread(f"{farm.daemons['a'].url}/{path}", results, "on a")
    eventually(lambda: farm.registry.tarball_requests("killed-pkg", "1.0.0") == 1)  # a holds the lease
    waiting = _get_in_thread(f"{farm.daemons['b'].url}/{path}", results, "on b")
    eventually(lambda: _in_flight(farm.daemons["b"]) >= 1)
    farm.daemons["a"].stop(signal.SIGKILL)
    assert "on b" not in results and farm.registry.tarball_requests("killed-pkg", "1.0.0") == 1
    farm.registry.stalled.set()  # the upstream answers whole from now on

    # b waits for a's lease to expire ([store] lease_timeout), then fetches the tarball itself.
    waiting.join(60)
    served = results["on b"]
    assert isinstance(served, httpx.Response) and served.status_code == 200 and served.content == data
    assert farm.registry.tarball_requests("killed-pkg", "1.0.0") == 2

    # nginx passes over the dead daemon: the clients go on installing, published and fetched packages.
    npm = Npm(real_client("npm"), farm.root / "npm-after", farm.repository(farm.nginx.url, "npm"))
    app = project(
        farm.root / "app-after", {"shared-pub": "1.1.0", "killed-pkg": "1.0.0", "slow-pkg": "1.0.0"}
    )
    npm.run("install", cwd=app)
    shutil.rmtree(app / "node_modules")
    npm.run("ci", cwd=app)  # from the lockfile the install wrote, as a build agent installs
    assert (app / "node_modules" / "killed-pkg" / "package.json").is_file()
    pip = Clients(farm.root / "pypi-after", farm.nginx.url, repository="team")
    assert pip.install("shared-wheel")[0] == {"shared_wheel-2.0"}

    for name in ("b", "c"):  # stopped together: each drains its requests meanwhile
        farm.daemons[name].process.send_signal(signal.SIGTERM)
    for name in ("b", "c"):
        assert farm.daemons[name].process.wait(30) == 0, farm.daemons[name].log_text()
    assert main(["--config", str(farm.daemons["b"].config), "verify"]) == 0
    assert "ok" in capsys.readouterr().out
