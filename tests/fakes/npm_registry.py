"""A fake plain npm registry (an external connection by URL) for tests and benchmarks.

Serves packuments at ``/{name}``, ``/@scope%2fname`` and ``/@scope/name`` (with ETag, 304 on
``If-None-Match`` and gzip when asked) and tarballs at ``/{name}/-/{file}.tgz`` (``dist.tarball`` is
absolute, built from the request's Host as real registries do). It counts requests per path and has
switchable faults: a tarball served with other bytes than its integrity says, a truncated tarball, a
tarball that stalls halfway until the test releases it (``stalled``), 500 for everything, broken
packuments, and stopping the server.

``make_tarball`` builds real npm tarballs (gzipped tar with ``package/package.json``), so the real
``npm`` can install what the fake serves.

Use it in an async test (``async with FakeNpmRegistry() as fake``) or, for real clients in subprocesses,
on a thread with its own loop (``with FakeNpmRegistry() as fake`` or ``start_in_thread()``).

Concurrency: handlers run on the fake's loop; tests add content and read counters from another thread
between requests (dict and Counter operations, atomic under the GIL).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
import urllib.parse
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.server import FakeServer, Fault


def make_tarball(
    name: str,
    version: str,
    *,
    dependencies: Mapping[str, str] | None = None,
    files: Mapping[str, bytes] | None = None,
) -> bytes:
    """A deterministic npm package tarball: ``package/package.json`` plus ``files`` (default: index.js)."""
    manifest = {
        "name": name,
        "version": version,
        "main": "index.js",
        "dependencies": dict(dependencies or {}),
    }
    contents = {"package.json": json.dumps(manifest, indent=2).encode()}
    contents.update(files or {"index.js": f"module.exports = {json.dumps(f'{name}@{version}')};\n".encode()})
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path, data in contents.items():
            info = tarfile.TarInfo(f"package/{path}")
            info.size, info.mode, info.mtime = len(data), 0o644, 499162500  # npm's fixed 1985 mtime
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def integrity_of(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


@dataclass
class FakePackage:
    name: str
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    dist_tags: dict[str, str] = field(default_factory=dict)
    time: dict[str, str] = field(default_factory=dict)
    tarballs: dict[str, bytes] = field(default_factory=dict, repr=False)  # file name -> bytes
    extra: dict[str, Any] = field(default_factory=dict)  # other top-level fields (readme, ...)


class FakeNpmRegistry(FakeServer):
    thread_name = "fake-npm"

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self.packages: dict[str, FakePackage] = {}
        self.requests: Counter[str] = Counter()  # per decoded path
        self.status: int | None = None  # answer every request with this status (e.g. 500)
        self.broken_packuments = False  # packuments that are not JSON
        self.tarball_faults: dict[str, Fault] = {}  # tarball file name -> fault
        # (name, base URL) -> (json, gzip, etag)
        self._rendered: dict[tuple[str, str], tuple[bytes, bytes, str]] = {}

    # ---- content ------------------------------------------------------------------------------
    def add(
        self,
        name: str,
        version: str,
        *,
        dependencies: Mapping[str, str] | None = None,
        tags: tuple[str, ...] = ("latest",),
        tarball: bytes | None = None,
        published: str = "2024-01-01T00:00:00.000Z",
        **fields: Any,
    ) -> bytes:
        """Add a version (a real tarball unless given); ``fields`` go into the version document.
        Returns the tarball bytes."""
        data = tarball if tarball is not None else make_tarball(name, version, dependencies=dependencies)
        package = self.packages.setdefault(name, FakePackage(name))
        file = f"{name.rsplit('/', 1)[-1]}-{version}.tgz"
        package.tarballs[file] = data
        package.versions[version] = {
            "name": name,
            "version": version,
            "dependencies": dict(dependencies or {}),
            **fields,
            "dist": {
                "shasum": hashlib.sha1(data).hexdigest(),
                "integrity": integrity_of(data),
                "_file": file,
            },
        }
        for tag in tags:
            package.dist_tags[tag] = version
        package.time.setdefault("created", published)
        package.time["modified"] = max(package.time.get("modified", published), published)
        package.time[version] = published
        for key in [key for key in self._rendered if key[0] == name]:
            del self._rendered[key]
        return data

    def upstream_config(self, name: str = "public") -> str:
        """The proxy's ``[upstream.NAME]`` table for this registry."""
        return f'\n[upstream.{name}]\nformat = "npm"\nurl = "{self.url}"\n'

    def tarball_requests(self, name: str, version: str) -> int:
        return self.requests[f"/{name}/-/{name.rsplit('/', 1)[-1]}-{version}.tgz"]

    def packument_requests(self, name: str) -> int:
        return self.requests[f"/{name}"]

    # ---- serving ------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        # The raw path keeps the encoded scope separator; decode it ourselves so both spellings count once.
        path = urllib.parse.unquote(request.raw_path.split("?", 1)[0])
        self.requests[path] += 1
        if self.status is not None:
            return web.Response(status=self.status, text="injected fault\n")
        name, sep, file = path[1:].partition("/-/")
        if sep:
            return await self._tarball(request, name, file)
        return self._packument(request, name)

    def _packument(self, request: web.Request, name: str) -> web.Response:
        package = self.packages.get(name)
        if package is None:
            return web.json_response({"error": "Not found"}, status=404)
        if self.broken_packuments:
            return web.Response(body=b'{"name": "broken', content_type="application/json")
        body, gz, etag = self._render(package, f"http://{request.host}/")
        if etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers={"ETag": etag})
        headers = {"ETag": etag, "Content-Type": "application/json"}
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            return web.Response(body=gz, headers={**headers, "Content-Encoding": "gzip"})
        return web.Response(body=body, headers=headers)

    def _render(self, package: FakePackage, base: str) -> tuple[bytes, bytes, str]:
        cached = self._rendered.get((package.name, base))
        if cached is None:
            versions = {}
            for version, vdoc in package.versions.items():
                dist = {k: v for k, v in vdoc["dist"].items() if k != "_file"}
                dist["tarball"] = f"{base}{package.name}/-/{vdoc['dist']['_file']}"
                versions[version] = {**vdoc, "dist": dist}
            doc = {
                "_id": package.name,
                "name": package.name,
                **package.extra,
                "dist-tags": package.dist_tags,
                "versions": versions,
                "time": package.time,
            }
            body = json.dumps(doc).encode()
            etag = f'"{hashlib.sha256(body).hexdigest()[:24]}"'
            cached = (body, gzip.compress(body, mtime=0), etag)
            self._rendered[(package.name, base)] = cached
        return cached

    async def _tarball(self, request: web.Request, name: str, file: str) -> web.StreamResponse:
        package = self.packages.get(name)
        data = package.tarballs.get(file) if package else None
        if data is None:
            return web.json_response({"error": "Not found"}, status=404)
        return await self.serve_asset(request, data, self.tarball_faults.get(file))
