"""Chaos soak: npm, PyPI and Maven traffic at once through the daemon, with upstreams that fail, reset,
truncate, lie and stall at random, the daemon SIGKILLed at random and restarted, publishes interleaved.

    python bench/chaos.py [--minutes 10] [--workers 12] [--seed N]

Not part of CI (it runs for minutes). What it drives, at the HTTP level (httpx; no real clients, so
that it stays cheap enough to run for long):
- npm: a packument, then the tarball it lists (``/npm/dev/NAME``, ``/npm/dev/NAME/-/FILE``);
- PyPI: a PEP 691 project page, then the wheel it lists (``/pypi/dev/simple/P/`` and its file URL);
- Maven: a jar and its POM (``/maven/dev/org/chaos/...``);
- publishes: ``npm publish`` bodies (PUT ``/npm/dev/NAME``) and twine uploads (POST ``/pypi/dev/``) of
  new packages, interleaved with the fetches.
The upstreams are the fakes of tests/fakes (npm registry, PyPI index, Maven repository), each on its
own thread, wrapped so that any request may get a 5xx, a reset connection, a stall of seconds, a
truncated or altered body (assets) or a truncated document (metadata). The repository ``dev`` has all
three upstreams (a polyglot chain). Every so many seconds the daemon is killed with SIGKILL and
started again on the same store.

Printed at the end: requests by kind, failures by kind, **wrong bytes served** (a 200 whose body
differs from what the upstream or the publisher gave: must be 0), **acknowledged publishes lost** (a
publish answered 2xx that is not served byte for byte after the last restart: must be 0), and the
verdict of ``codeartifact-proxy verify`` on the store, with the daemon stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from aiohttp import web

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fakes.daemon import RunningDaemon, start_daemon, write_config  # noqa: E402
from tests.fakes.maven_repository import FakeMavenRepository  # noqa: E402
from tests.fakes.npm_registry import FakeNpmRegistry  # noqa: E402
from tests.fakes.pypi_index import FakePypiIndex, make_wheel  # noqa: E402

PYPI_JSON = "application/vnd.pypi.simple.v1+json"
PACKAGES = 40  # per format


# ---- chaotic upstreams ------------------------------------------------------------------------------
class Chaos:
    """The faults an upstream request may meet, with their odds (the rest are answered properly)."""

    def __init__(self, rng: random.Random, rate: float) -> None:
        self.rng = rng
        self.rate = rate
        self.injected: Counter[str] = Counter()

    def pick(self, kinds: tuple[str, ...]) -> str | None:
        if self.rng.random() >= self.rate:
            return None
        kind = self.rng.choice(kinds)
        self.injected[kind] += 1
        return kind

    def stall_seconds(self) -> float:
        return self.rng.uniform(0.5, 6.0)


async def chaotic(chaos: Chaos, request: web.Request, inner, *, asset: bool) -> web.StreamResponse:  # type: ignore[no-untyped-def]
    """``inner(request)`` spoilt by a fault chosen at random."""
    kinds = (
        ("status", "reset", "stall", "truncate", "alter")
        if asset
        else ("status", "reset", "stall", "truncate")
    )
    fault = chaos.pick(kinds)
    if fault == "status":
        return web.Response(status=chaos.rng.choice((500, 502, 503, 429)), text="chaos\n")
    if fault == "reset":
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)
    if fault == "stall":
        await asyncio.sleep(chaos.stall_seconds())
    response = await inner(request)
    if fault in ("truncate", "alter") and isinstance(response, web.Response) and response.body:
        body = bytes(response.body)  # type: ignore[arg-type]
        if fault == "alter":
            spoilt = bytearray(body)
            spoilt[chaos.rng.randrange(len(spoilt))] ^= 0x20
            return web.Response(body=bytes(spoilt), headers=_entity_headers(response))
        cut = web.StreamResponse(headers={**_entity_headers(response), "Content-Length": str(len(body))})
        await cut.prepare(request)
        await cut.write(body[: len(body) // 2])
        if request.transport is not None:
            request.transport.abort()
        return cut
    return response


def _entity_headers(response: web.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.lower() not in ("content-length",)}


class ChaoticNpm(FakeNpmRegistry):
    chaos: Chaos

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        return await chaotic(self.chaos, request, super()._handle, asset="/-/" in request.path)


class ChaoticPypi(FakePypiIndex):
    chaos: Chaos

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        return await chaotic(
            self.chaos, request, super()._handle, asset=request.path.startswith("/packages/")
        )


class ChaoticMaven(FakeMavenRepository):
    chaos: Chaos

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        asset = request.path.endswith((".jar", ".pom"))
        return await chaotic(self.chaos, request, super()._handle, asset=asset)


# ---- the soak ------------------------------------------------------------------------------------
@dataclass
class Tally:
    requests: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    wrong_bytes: list[str] = field(default_factory=list)
    acknowledged: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # id -> (kind, bytes)
    kills: int = 0


class Soak:
    def __init__(self, home: Path, rng: random.Random, rate: float) -> None:
        self.home = home
        self.rng = rng
        self.tally = Tally()
        self.chaos = Chaos(rng, rate)
        for cls in (ChaoticNpm, ChaoticPypi, ChaoticMaven):
            cls.chaos = self.chaos
        self.npm, self.pypi, self.maven = ChaoticNpm(), ChaoticPypi(), ChaoticMaven()
        self.expected: dict[str, bytes] = {}  # what each asset must be, by a key per format
        self.daemon: RunningDaemon | None = None
        self.config: Path | None = None
        self._published = 0

    # -- set-up --------------------------------------------------------------------------------
    def start(self) -> None:
        self.npm.start_in_thread()
        self.pypi.start_in_thread()
        self.maven.start()
        for i in range(PACKAGES):
            size = self.rng.choice((600, 20_000, 150_000, 400_000))
            name = f"chaos-npm-{i}"
            data = self.rng.randbytes(size)
            self.npm.add(name, "1.0.0", tarball=data)
            self.expected[f"npm:{name}"] = data
            wheel_name, wheel = make_wheel(f"chaos-py-{i}", "1.0", payload_size=size)
            self.pypi.add(f"chaos-py-{i}", wheel_name, wheel)
            self.expected[f"pypi:chaos-py-{i}"] = wheel
            base = f"org/chaos/lib{i}/1.0/lib{i}-1.0"
            jar = self.rng.randbytes(size)
            self.maven.add(f"{base}.jar", jar)
            self.maven.add(f"{base}.pom", f"<project><artifactId>lib{i}</artifactId></project>".encode())
            self.expected[f"maven:{base}.jar"] = jar
        body = (
            self.npm.upstream_config("up-npm")
            + self.pypi.upstream_config("up-pypi")
            + f'\n[upstream.up-maven]\nformat = "maven"\nurl = "{self.maven.url}"\n'
            + '\n[repository.dev]\nupstreams = ["up-npm", "up-pypi", "up-maven"]\npublish = true\n'
        )
        # A short TTL so metadata is asked for again and again; a small cache so eviction runs too.
        self.config = write_config(self.home, body, metadata_ttl="3s")
        text = self.config.read_text().replace("[cache]\n", '[cache]\nmax_size = "12MB"\n')
        self.config.write_text(text)
        self.daemon = start_daemon(self.config, self.home / "daemon-0.log")

    def stop(self) -> None:
        if self.daemon is not None and self.daemon.process.poll() is None:
            self.daemon.stop()
        self.npm.stop_in_thread()
        self.pypi.stop_in_thread()
        self.maven.close()

    # -- the daemon killer ---------------------------------------------------------------------------
    async def killer(self, until: float) -> None:
        while time.monotonic() < until:
            await asyncio.sleep(self.rng.uniform(4.0, 20.0))
            if time.monotonic() >= until:
                break
            assert self.daemon is not None and self.config is not None
            self.daemon.process.send_signal(signal.SIGKILL)
            self.daemon.process.wait()
            self.tally.kills += 1
            log = self.home / f"daemon-{self.tally.kills}.log"
            self.daemon = await asyncio.to_thread(start_daemon, self.config, log)

    # -- clients ---------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self.daemon is not None
        return self.daemon.url

    async def worker(self, client: httpx.AsyncClient, until: float) -> None:
        actions = (self.npm_fetch, self.pypi_fetch, self.maven_fetch) * 4 + (
            self.npm_publish,
            self.pypi_publish,
        )
        while time.monotonic() < until:
            action = self.rng.choice(actions)
            try:
                await action(client)
            except httpx.TransportError as exc:
                self.tally.failures[f"transport: {type(exc).__name__}"] += 1
                if isinstance(exc, httpx.ConnectError):
                    await asyncio.sleep(0.2)  # the daemon is being restarted: do not spin
            except Unexpected as exc:
                self.tally.failures[str(exc)] += 1

    async def get(self, client: httpx.AsyncClient, kind: str, path: str, **kw: object) -> httpx.Response:
        self.tally.requests[kind] += 1
        response = await client.get(f"{self.url}{path}", **kw)  # type: ignore[arg-type]
        if response.status_code != 200:
            raise Unexpected(f"{kind}: HTTP {response.status_code}")
        return response

    def check(self, key: str, body: bytes) -> None:
        if body != self.expected[key]:
            self.tally.wrong_bytes.append(key)

    async def npm_fetch(self, client: httpx.AsyncClient) -> None:
        name = f"chaos-npm-{self.rng.randrange(PACKAGES)}"
        packument = (await self.get(client, "npm packument", f"/npm/dev/{name}")).json()
        if "1.0.0" not in packument.get("versions", {}):
            raise Unexpected("npm packument: version missing")
        tarball = await self.get(client, "npm tarball", f"/npm/dev/{name}/-/{name}-1.0.0.tgz")
        self.check(f"npm:{name}", tarball.content)

    async def pypi_fetch(self, client: httpx.AsyncClient) -> None:
        project = f"chaos-py-{self.rng.randrange(PACKAGES)}"
        page = await self.get(
            client, "pypi page", f"/pypi/dev/simple/{project}/", headers={"Accept": PYPI_JSON}
        )
        files = page.json().get("files", [])
        if not files:
            raise Unexpected("pypi page: no files")
        url = httpx.URL(f"{self.url}/pypi/dev/simple/{project}/").join(files[0]["url"])
        self.tally.requests["pypi file"] += 1
        wheel = await client.get(url)
        if wheel.status_code != 200:
            raise Unexpected(f"pypi file: HTTP {wheel.status_code}")
        self.check(f"pypi:{project}", wheel.content)

    async def maven_fetch(self, client: httpx.AsyncClient) -> None:
        i = self.rng.randrange(PACKAGES)
        base = f"org/chaos/lib{i}/1.0/lib{i}-1.0"
        await self.get(client, "maven pom", f"/maven/dev/{base}.pom")
        jar = await self.get(client, "maven jar", f"/maven/dev/{base}.jar")
        self.check(f"maven:{base}.jar", jar.content)

    async def npm_publish(self, client: httpx.AsyncClient) -> None:
        self._published += 1
        name = f"chaos-pub-{os.getpid()}-{self._published}"
        data = self.rng.randbytes(self.rng.choice((300, 50_000, 300_000)))
        body = {
            "name": name,
            "dist-tags": {"latest": "1.0.0"},
            "versions": {"1.0.0": {"name": name, "version": "1.0.0", "dist": {}}},
            "_attachments": {
                f"{name}-1.0.0.tgz": {"data": base64.b64encode(data).decode(), "length": len(data)}
            },
        }
        self.tally.requests["npm publish"] += 1
        response = await client.put(f"{self.url}/npm/dev/{name}", content=json.dumps(body).encode())
        if response.status_code != 201:
            raise Unexpected(f"npm publish: HTTP {response.status_code}")
        self.tally.acknowledged[f"npm:{name}"] = ("npm", data)

    async def pypi_publish(self, client: httpx.AsyncClient) -> None:
        self._published += 1
        project = f"chaospub{os.getpid()}x{self._published}"
        filename, data = make_wheel(project, "1.0", payload_size=self.rng.choice((0, 50_000, 300_000)))
        fields = {
            ":action": "file_upload",
            "protocol_version": "1",
            "name": project,
            "version": "1.0",
            "filetype": "bdist_wheel",
            "pyversion": "py3",
            "metadata_version": "2.1",
            "sha256_digest": hashlib.sha256(data).hexdigest(),
        }
        self.tally.requests["pypi upload"] += 1
        response = await client.post(
            f"{self.url}/pypi/dev/",
            data=fields,
            files={"content": (filename, data, "application/octet-stream")},
            auth=("chaos", "chaos"),
        )
        if response.status_code != 200:
            raise Unexpected(f"pypi upload: HTTP {response.status_code}")
        self.tally.acknowledged[f"pypi:{project}"] = ("pypi", data)

    # -- the end ---------------------------------------------------------------------------------
    async def lost_publishes(self, client: httpx.AsyncClient) -> list[str]:
        """Acknowledged publishes that are not served byte for byte (upstreams calm by then)."""
        lost = []
        for key, (kind, data) in self.tally.acknowledged.items():
            name = key.split(":", 1)[1]
            try:
                if kind == "npm":
                    response = await client.get(f"{self.url}/npm/dev/{name}/-/{name}-1.0.0.tgz")
                else:
                    page = await client.get(
                        f"{self.url}/pypi/dev/simple/{name}/", headers={"Accept": PYPI_JSON}
                    )
                    url = httpx.URL(f"{self.url}/pypi/dev/simple/{name}/").join(
                        page.json()["files"][0]["url"]
                    )
                    response = await client.get(url)
                if response.status_code != 200 or response.content != data:
                    lost.append(f"{key} (HTTP {response.status_code})")
            except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
                lost.append(f"{key} ({type(exc).__name__})")
        return lost


class Unexpected(Exception):
    """A response the soak counts as a failure (by kind), not a crash."""


async def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        soak = Soak(Path(tmp), rng, args.fault_rate)
        soak.start()
        started = time.monotonic()
        until = started + args.minutes * 60
        try:
            limits = httpx.Limits(max_connections=args.workers * 2)
            async with httpx.AsyncClient(timeout=30, limits=limits) as client:
                await asyncio.gather(
                    soak.killer(until), *(soak.worker(client, until) for _ in range(args.workers))
                )
                # The last restart, with calm upstreams: every acknowledged publish must be there.
                assert soak.daemon is not None and soak.config is not None
                soak.daemon.process.send_signal(signal.SIGKILL)
                soak.daemon.process.wait()
                soak.tally.kills += 1
                soak.chaos.rate = 0.0
                soak.daemon = start_daemon(soak.config, soak.home / "daemon-final.log")
                lost = await soak.lost_publishes(client)
            soak.daemon.stop()
            assert soak.config is not None
            verify = subprocess.run(
                [sys.executable, "-m", "proxy", "--config", str(soak.config), "verify"],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=600,
            )
        finally:
            soak.stop()
        tally = soak.tally
        print(f"chaos soak: {time.monotonic() - started:.0f} s, {args.workers} workers, seed {args.seed}")
        print(
            f"requests: {sum(tally.requests.values())}  "
            + ", ".join(f"{k} {v}" for k, v in sorted(tally.requests.items()))
        )
        print(
            f"upstream faults injected: {sum(soak.chaos.injected.values())}  "
            + ", ".join(f"{k} {v}" for k, v in sorted(soak.chaos.injected.items()))
        )
        print(f"daemon SIGKILLs: {tally.kills}")
        print(f"failures seen by clients: {sum(tally.failures.values())}")
        for kind, count in tally.failures.most_common():
            print(f"  {count:6d}  {kind}")
        print(
            f"wrong bytes served: {len(tally.wrong_bytes)}"
            + (f" {tally.wrong_bytes[:10]}" if tally.wrong_bytes else "")
        )
        print(
            f"acknowledged publishes: {len(tally.acknowledged)}, lost: {len(lost)}"
            + (f" {lost[:10]}" if lost else "")
        )
        verdict = (verify.stdout.strip().splitlines() or ["(no output)"])[-1]
        print(f"verify: exit {verify.returncode}: {verdict}")
        if verify.returncode != 0:
            print(verify.stdout + verify.stderr)
        ok = not tally.wrong_bytes and not lost and verify.returncode == 0
        return 0 if ok else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--workers", type=int, default=12)
    p.add_argument("--seed", type=int, default=int(time.time()))
    p.add_argument("--fault-rate", type=float, default=0.25, help="share of upstream requests spoilt")
    return asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
