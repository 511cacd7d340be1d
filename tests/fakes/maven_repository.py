"""A fake plain Maven repository on 127.0.0.1: a folder (e.g. the machine's ~/.m2/repository, read only)
and files added in memory, served in the Maven 2 layout.

A local repository holds only .pom/.jar files, so the fake makes up what a remote repository has:
``maven-metadata.xml`` from the folder listing (versions of an artifact, plugin prefixes of a group,
the builds of a SNAPSHOT version) and ``.md5 .sha1 .sha256 .sha512`` of any file, so Maven's strict
checksum policy passes.

For tests: request counters (``count(path)``), switchable faults per path (``fault(path, kind)``),
and ``stop()``/``start()`` on the same port to play an upstream that went away. It runs its own event
loop in a background thread, so synchronous tests, subprocess clients and benchmarks can all use it.
Never writes to the folder it serves.

    python -m tests.fakes.maven_repository --root ~/.m2/repository --port 8081
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import re
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Literal
from xml.sax.saxutils import escape

from aiohttp import web

from tests.fakes.server import serve_asset

Fault = Literal[
    "status500",  # 500 with an HTML body
    "html",  # 200 with an HTML error page instead of the file
    "broken_xml",  # 200 with a cut-off XML document
    "wrong_bytes",  # other bytes than the checksums describe
    "wrong_checksum",  # checksum files that do not match the bytes
    "truncated",  # announces the full length, sends half and hangs up
    "not_found",  # 404 although the file exists
    "forbidden",  # 403: the upstream refuses (fails at once, where a 5xx is retried)
    "slow",  # answers after SLOW_SECONDS
    "stall",  # sends half, then nothing until the test sets ``stalled``
]
SLOW_SECONDS = 0.5
CHECKSUMS = {"md5": hashlib.md5, "sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}
_PLUGIN = re.compile(r"^(?:maven-(?P<a>.+)-plugin|(?P<b>.+)-maven-plugin)$")
_TIMESTAMPED = re.compile(r"-(\d{8}\.\d{6})-(\d+)(?:-([^.]+))?\.(.+)$")
HTML_ERROR = b"<!DOCTYPE html><html><head><title>Error</title></head><body><h1>Oops</h1></body></html>"


class FakeMavenRepository:
    def __init__(self, root: Path | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.root = root.resolve() if root else None
        self.host = host
        self.port = port
        self.files: dict[str, bytes] = {}  # path -> bytes, served before the folder
        self.stalled = threading.Event()  # set it to let a "stall" file send its second half
        self.faults: dict[str, Fault] = {}
        self.requests: Counter[str] = Counter()  # path -> number of GET/HEAD requests
        self.log: list[tuple[str, str]] = []  # (method, path) in arrival order
        self._digests: dict[tuple[str, str], str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # -- control ----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def add(self, path: str, body: bytes) -> None:
        self.files[path.strip("/")] = body

    def fault(self, path: str, kind: Fault | None) -> None:
        if kind is None:
            self.faults.pop(path.strip("/"), None)
        else:
            self.faults[path.strip("/")] = kind

    def count(self, path: str) -> int:
        return self.requests[path.strip("/")]

    def start(self) -> FakeMavenRepository:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="fake-maven", daemon=True)
            self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        """Stop answering (connections are refused); ``start()`` serves again on the same port."""
        self.stalled.set()  # a stalled file must not hold up the shutdown
        if self._loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._runner = None

    def close(self) -> None:
        self.stop()
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()
            self._loop = None

    def __enter__(self) -> FakeMavenRepository:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        if not self.port:
            self.port = self._runner.addresses[0][1]

    # -- serving ----------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"].strip("/")
        self.log.append((request.method, path))
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, text="read-only repository")
        self.requests[path] += 1
        fault = self.faults.get(path)
        if fault == "slow":
            await asyncio.sleep(SLOW_SECONDS)
        if fault == "status500":
            return web.Response(status=500, body=HTML_ERROR, content_type="text/html")
        if fault == "html":
            return web.Response(body=HTML_ERROR, content_type="text/html")
        if fault == "not_found":
            return web.Response(status=404, text="not found")
        if fault == "forbidden":
            return web.Response(status=403, text="forbidden")
        body = await asyncio.to_thread(self._body, path)
        if body is None:
            return web.Response(status=404, text="not found")
        if fault == "broken_xml":
            body = body[: len(body) // 2]
        elif fault == "wrong_bytes":
            body = body[:-1] + bytes([body[-1] ^ 0xFF]) if body else b"x"
        elif fault == "wrong_checksum":
            body = hashlib.new(path.rsplit(".", 1)[-1], b"something else").hexdigest().encode()
        elif fault in ("truncated", "stall"):
            return await serve_asset(
                request, body, "truncate" if fault == "truncated" else "stall", self.stalled
            )
        content_type = "text/xml" if path.endswith((".xml", ".pom")) else "application/octet-stream"
        return web.Response(body=body, content_type=content_type)

    def _body(self, path: str) -> bytes | None:
        if ".." in path.split("/"):
            return None
        stem, _, suffix = path.rpartition(".")
        if suffix in CHECKSUMS and stem:
            content = self._body(stem)
            if content is None:
                return None
            return CHECKSUMS[suffix](content).hexdigest().encode()
        if path in self.files:
            return self.files[path]
        if path == "maven-metadata.xml" or path.endswith("/maven-metadata.xml"):
            return self._metadata(path.rpartition("/")[0])
        file = self._file(path)
        return file.read_bytes() if file is not None and file.is_file() else None

    def _file(self, path: str) -> Path | None:
        if self.root is None:
            return None
        file = (self.root / path).resolve()
        return file if file.is_relative_to(self.root) else None

    def _listing(self, folder: str) -> set[str]:
        """Names directly under ``folder``: from the root folder and the in-memory files."""
        names: set[str] = set()
        directory = self._file(folder)
        if directory is not None and directory.is_dir():
            names.update(entry.name for entry in directory.iterdir())
        prefix = f"{folder}/"
        names.update(p[len(prefix) :].split("/", 1)[0] for p in self.files if p.startswith(prefix))
        return names

    def _has_pom(self, folder: str) -> bool:
        return any(name.endswith(".pom") for name in self._listing(folder))

    def _metadata(self, folder: str) -> bytes | None:
        """Made-up maven-metadata.xml for a folder: artifact level, SNAPSHOT level and/or group level."""
        parts = folder.split("/")
        children = sorted(self._listing(folder))
        versions = [name for name in children if self._has_pom(f"{folder}/{name}")]
        builds = (
            [m for name in children if (m := _TIMESTAMPED.search(name))]
            if folder.endswith("-SNAPSHOT")
            else []
        )
        plugins = [(name, _PLUGIN.match(name)) for name in children if self._listing(f"{folder}/{name}")]
        plugins = [(name, m["a"] or m["b"]) for name, m in plugins if m]
        if not versions and not builds and not plugins:
            return None
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
        xml = ['<?xml version="1.0" encoding="UTF-8"?>', "<metadata>"]
        if builds:
            *group, artifact, version = parts
            newest = max(builds, key=lambda m: int(m[2]))
            xml += [
                f"<groupId>{escape('.'.join(group))}</groupId><artifactId>{escape(artifact)}</artifactId>",
                f"<version>{escape(version)}</version><versioning><snapshot><timestamp>{newest[1]}</timestamp>",
                f"<buildNumber>{newest[2]}</buildNumber></snapshot><lastUpdated>{stamp}</lastUpdated>",
                "<snapshotVersions>",
            ]
            base = version.removesuffix("SNAPSHOT")
            for m in builds:
                if m[2] == newest[2]:
                    xml += [
                        f"<snapshotVersion><classifier>{escape(m[3] or '')}</classifier>",
                        f"<extension>{escape(m[4])}</extension><value>{base}{m[1]}-{m[2]}</value>",
                        f"<updated>{m[1].replace('.', '')}</updated></snapshotVersion>",
                    ]
            xml.append("</snapshotVersions></versioning>")
        elif versions:
            *group, artifact = parts
            xml += [
                f"<groupId>{escape('.'.join(group))}</groupId><artifactId>{escape(artifact)}</artifactId>",
                "<versioning><versions>",
                *(f"<version>{escape(v)}</version>" for v in versions),
                f"</versions><lastUpdated>{stamp}</lastUpdated></versioning>",
            ]
        if plugins:
            xml.append("<plugins>")
            xml += [
                f"<plugin><prefix>{escape(p)}</prefix><artifactId>{escape(a)}</artifactId></plugin>"
                for a, p in plugins
            ]
            xml.append("</plugins>")
        xml.append("</metadata>")
        return "\n".join(xml).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path.home() / ".m2" / "repository")
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args()
    with FakeMavenRepository(args.root, port=args.port) as fake:
        print(f"serving {args.root} read-only at {fake.url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
