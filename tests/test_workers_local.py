"""``[server] workers = 2`` on the one-host store (SQLite indexes and files under ``[cache] path``): two
processes on one address (SO_REUSEPORT) sharing the store through ``proxy.store.host``.

- concurrent misses of one tarball, held by both workers, cost one upstream fetch (the host's lease);
- an ``npm publish`` is served by both workers at once, though both held the package's merged view;
- a repository created through /v1 on one worker is served by both at once;
- concurrent publishes of different versions of one package through both workers lose none;
- a lease whose holder died (never renewed, never released) is taken over once it expires;
- eviction runs in one worker at a time;
- ``verify`` is refused while the workers run, and after SIGTERM finds the store clean.

One daemon serves the module's tests, which run in file order (the last stops it).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from proxy.config.model import CacheConfig
from proxy.store.host import HostLeases
from proxy.store.keyring import KeyRing
from proxy.store.store import Store, _file_lock
from tests.api_cli import Aws
from tests.fakes.clients import real_client
from tests.fakes.daemon import RunningDaemon, eventually, run_command, start_daemon, write_config
from tests.fakes.npm_registry import FakeNpmRegistry, make_tarball
from tests.test_npm_e2e import Npm, project
from tests.test_npm_http import publish_body
from tests.test_scale_daemons import _all_served, _get_in_thread


class Workers:
    def __init__(self, root: Path, registry: FakeNpmRegistry, daemon: RunningDaemon) -> None:
        self.root, self.registry, self.daemon = root, registry, daemon
        self.npm = f"{daemon.url}/npm/team/"

    def pids(self) -> list[int]:
        pid = self.daemon.process.pid
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]

    def connections(self, pid: int) -> int:
        """Client connections ``pid`` holds open on the daemon's port (``/proc``)."""
        port = int(self.daemon.url.rsplit(":", 1)[1])
        inodes = set()
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        found = 0
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01" and fields[9] in inodes:
                found += 1
        return found


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    root = tmp_path_factory.mktemp("workers")
    registry = FakeNpmRegistry()
    registry.start_in_thread()
    config = write_config(
        root, registry.upstream_config() + '\n[repository.team]\nupstreams = ["public"]\npublish = true\n'
    )
    config.write_text(config.read_text().replace("[server]\n", "[server]\nworkers = 2\n", 1))
    daemon = start_daemon(config, root / "daemon.log")
    try:
        running = Workers(root, registry, daemon)
        eventually(lambda: len(running.pids()) == 2)
        yield running
    finally:
        daemon.stop(signal.SIGKILL if daemon.process.poll() is None else 15)
        registry.stop_in_thread()


def test_concurrent_misses_on_both_workers_cost_one_upstream_fetch(workers: Workers) -> None:
    data = workers.registry.add(
        "slow-pkg", "1.0.0", tarball=make_tarball("slow-pkg", "1.0.0", files={"index.js": os.urandom(65536)})
    )
    workers.registry.stalled.clear()
    workers.registry.tarball_faults["slow-pkg-1.0.0.tgz"] = "stall"  # half, then nothing until released
    url = f"{workers.npm}slow-pkg/-/slow-pkg-1.0.0.tgz"
    results: dict[str, httpx.Response | BaseException] = {}
    threads = [_get_in_thread(url, results, "first")]
    eventually(lambda: workers.registry.tarball_requests("slow-pkg", "1.0.0") == 1)
    threads += [_get_in_thread(url, results, str(n)) for n in range(29)]
    # Each worker holds some of the waiting requests (the kernel spreads the connections).
    for pid in workers.pids():
        eventually(lambda pid=pid: workers.connections(pid) >= 3)
    assert not results, "nothing can be answered while the only fetch stalls"
    workers.registry.stalled.set()
    _all_served(threads, results, 30, data)
    assert workers.registry.tarball_requests("slow-pkg", "1.0.0") == 1


def test_an_npm_publish_is_served_by_every_worker_at_once(workers: Workers) -> None:
    npm = Npm(real_client("npm"), workers.root / "npm", workers.npm)
    package = project(workers.root / "pub", {}, name="worker-pub", version="1.0.0")
    npm.run("publish", cwd=package)
    for _ in range(16):  # new connections: both workers hold their merged view of worker-pub now
        assert list(httpx.get(f"{workers.npm}worker-pub", timeout=30).json()["versions"]) == ["1.0.0"]
    project(package, {}, name="worker-pub", version="1.1.0")
    npm.run("publish", cwd=package)
    for _ in range(3):  # each npm run connects anew, to either worker
        assert npm.run("view", "worker-pub", "version", cwd=workers.root).stdout.strip() == "1.1.0"
    for _ in range(16):
        assert sorted(httpx.get(f"{workers.npm}worker-pub", timeout=30).json()["versions"]) == [
            "1.0.0",
            "1.1.0",
        ]


def test_a_repository_created_on_one_worker_is_served_by_every_worker_at_once(workers: Workers) -> None:
    created = Aws(workers.daemon.url)(
        "create-repository", "--repository", "fresh", "--upstreams", "repositoryName=team"
    )
    assert created["repository"]["name"] == "fresh", created
    for _ in range(16):  # new connections, to either worker
        response = httpx.get(f"{workers.daemon.url}/npm/fresh/worker-pub", timeout=30)
        assert response.status_code == 200, response.text
        assert sorted(response.json()["versions"]) == ["1.0.0", "1.1.0"]


def test_a_policy_stored_through_one_worker_is_every_workers_at_once(workers: Workers) -> None:
    statement = {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": ["codeartifact:ReadFromRepository"]}
    document = json.dumps({"Version": "2012-10-17", "Statement": [{**statement, "Resource": "*"}]})
    stored = Aws(workers.daemon.url)("put-domain-permissions-policy", "--policy-document", document)["policy"]
    for _ in range(16):  # new connections, to either worker
        answer = httpx.get(f"{workers.daemon.url}/v1/domain/permissions/policy?domain=local", timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["policy"]["revision"] == stored["revision"]
    # Each worker checks a revision against what is stored: a stale one is a conflict on either.
    replaced = Aws(workers.daemon.url)(
        "put-domain-permissions-policy",
        "--policy-document",
        document,
        "--policy-revision",
        stored["revision"],
    )["policy"]
    assert replaced["revision"] != stored["revision"]
    for _ in range(8):
        stale = Aws(workers.daemon.url).run(
            "delete-domain-permissions-policy", "--policy-revision", stored["revision"]
        )
        assert stale.returncode != 0 and "ConflictException" in stale.stderr


def test_concurrent_publishes_of_one_package_lose_no_version(workers: Workers) -> None:
    versions = [f"2.0.{n}" for n in range(24)]

    def publish(version: str) -> int:
        body = publish_body("many-pub", version, make_tarball("many-pub", version))
        body["dist-tags"] = {}
        return httpx.put(f"{workers.npm}many-pub", json=body, timeout=60).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(publish, versions))
    assert all(status in (200, 201) for status in statuses), statuses
    for _ in range(8):  # whichever worker answers
        packument = httpx.get(f"{workers.npm}many-pub", timeout=30).json()
        assert sorted(packument["versions"]) == sorted(versions)


def test_a_dead_workers_lease_holds_the_others_back_until_it_expires(tmp_path: Path) -> None:
    keyring = KeyRing.load(tmp_path / "cache.key")
    dead = HostLeases(tmp_path / "leases", keyring, ttl=1.0)
    alive = HostLeases(tmp_path / "leases", keyring, ttl=1.0, poll=0.01)
    key = ("npm", "team", "pkg-1.0.0.tgz")
    assert dead._cache.add(dead._name(key), "a worker killed mid-fetch", expire=dead.ttl)
    ran: list[str] = []

    async def work() -> str:
        ran.append("fetched")
        return "committed"

    async def take_over() -> None:
        waiting = asyncio.ensure_future(alive.exclusive(key, work))
        await asyncio.sleep(0.05)
        assert not ran  # held: the other worker waits
        assert await waiting == "committed"

    asyncio.run(take_over())
    assert ran == ["fetched"]
    assert not alive._cache.get(alive._name(key))  # released after the work
    dead.close()
    alive.close()


def test_verify_is_refused_while_the_workers_run_and_finds_the_store_clean_after(workers: Workers) -> None:
    refused = run_command(workers.daemon.config, "verify")
    assert refused.returncode != 0 and "in use" in refused.stderr, refused.stderr
    assert workers.daemon.stop(signal.SIGTERM) == 0
    checked = run_command(workers.daemon.config, "verify")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert not list((workers.root / "cache" / "tmp").iterdir())  # no write in progress was left


def test_eviction_runs_in_one_worker_at_a_time(tmp_path: Path) -> None:
    cache = CacheConfig(path=tmp_path / "cache", key_file=tmp_path / "cache.key")
    Store.prepare_workers(cache).release()
    one, other = Store.open(cache, workers=True), Store.open(cache, workers=True)

    async def fill() -> None:
        for n in range(4):
            async with one.ingest() as writer:
                writer.write(os.urandom(1000) + bytes([n]))
                writer.finish()
                await writer.commit(published=False)

    asyncio.run(fill())
    other.max_size = 0  # over: every cached blob may go
    other.ledger.refresh()  # the figures as the other worker left them
    assert other.ledger.blob_count == 4
    with _file_lock(tmp_path / "cache" / "workers" / "evict.lock") as held:  # a third worker evicting
        assert held
        assert other.evict() == []
    assert len(other.evict()) == 4
    one.ledger.refresh()
    assert one.ledger.blob_count == 0 and not list(one.blobs.ids())
    one.close()
    other.close()
