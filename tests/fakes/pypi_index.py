"""A fake plain PyPI simple index (an external connection by URL) for tests and benchmarks.

Serves the project list at ``/simple/``, project pages at ``/simple/<project>/`` (PEP 503 HTML, or
PEP 691 JSON when ``Accept`` asks for it; ETag and 304 on ``If-None-Match``), files at
``/packages/<filename>`` (linked relatively, ``#sha256=`` on every link) and, for files added with
``pep658=True``, their core metadata at ``/packages/<filename>.metadata``. It counts requests per
path and has switchable faults: a file served with other bytes than its hash says, a truncated file,
a file that stalls halfway until the test releases it (``stalled``), one status (e.g. 500) for
everything, broken project pages, and stopping the server.

``make_wheel`` and ``make_sdist`` build real, installable distributions by hand (zipfile, tarfile),
fast and without a build backend.

Use it in an async test (``async with FakePypiIndex() as fake``) or, for real clients in subprocesses,
on a thread with its own loop (``with FakePypiIndex() as fake`` or ``start_in_thread()``).

Concurrency: handlers run on the fake's loop; tests add content and read counters from another thread
between requests (dict and Counter operations, atomic under the GIL).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import html
import io
import json
import random
import tarfile
import zipfile
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from packaging.utils import canonicalize_name

from tests.fakes.server import FakeServer, Fault

JSON_V1 = "application/vnd.pypi.simple.v1+json"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def dist_name(name: str) -> str:
    """The name as it appears in filenames and .dist-info directories (``foo_bar``)."""
    return canonicalize_name(name).replace("-", "_")


def core_metadata(
    name: str,
    version: str,
    *,
    requires_dist: Iterable[str] = (),
    requires_python: str | None = None,
    metadata_version: str = "2.1",
    summary: str = "a test project",
) -> bytes:
    lines = [
        f"Metadata-Version: {metadata_version}",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {summary}",
    ]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines += [f"Requires-Dist: {requirement}" for requirement in requires_dist]
    return ("\n".join(lines) + "\n\n").encode()


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def make_wheel(
    name: str,
    version: str,
    *,
    requires_dist: Iterable[str] = (),
    requires_python: str | None = None,
    payload_size: int = 0,
) -> tuple[str, bytes]:
    """A pure-Python wheel (``py3-none-any``) with one module; ``payload_size`` adds that many
    incompressible bytes. Returns (filename, bytes); the same arguments give the same bytes."""
    module, info_dir = dist_name(name), f"{dist_name(name)}-{version}.dist-info"
    contents = {
        f"{module}/__init__.py": f"__version__ = {version!r}\n".encode(),
        f"{info_dir}/METADATA": core_metadata(
            name, version, requires_dist=requires_dist, requires_python=requires_python
        ),
        f"{info_dir}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: fake-pypi-index\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    if payload_size:
        contents[f"{module}/payload.bin"] = random.Random(f"{name}-{version}").randbytes(payload_size)
    record = [_record_line(path, data) for path, data in contents.items()] + [f"{info_dir}/RECORD,,"]
    contents[f"{info_dir}/RECORD"] = ("\n".join(record) + "\n").encode()
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as wheel:
        for path, data in contents.items():
            entry = zipfile.ZipInfo(path, _ZIP_TIME)
            stored = path.endswith("payload.bin")
            entry.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            wheel.writestr(entry, data)
    return f"{module}-{version}-py3-none-any.whl", raw.getvalue()


def make_sdist(
    name: str, version: str, *, requires_dist: Iterable[str] = (), metadata_version: str = "2.1"
) -> tuple[str, bytes]:
    """A source distribution with PKG-INFO, a setuptools pyproject.toml and one module."""
    base = f"{dist_name(name)}-{version}"
    pyproject = (
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "{name}"\nversion = "{version}"\n'
        f"dependencies = {json.dumps(list(requires_dist))}\n"
    )
    contents = {
        f"{base}/PKG-INFO": core_metadata(
            name, version, requires_dist=requires_dist, metadata_version=metadata_version
        ),
        f"{base}/pyproject.toml": pyproject.encode(),
        f"{base}/{dist_name(name)}/__init__.py": f"__version__ = {version!r}\n".encode(),
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data in contents.items():
            entry = tarfile.TarInfo(path)
            entry.size, entry.mode, entry.mtime = len(data), 0o644, 0
            tar.addfile(entry, io.BytesIO(data))
    return f"{base}.tar.gz", gzip.compress(raw.getvalue(), mtime=0)


def wheel_core_metadata(data: bytes) -> bytes:
    """The METADATA file inside a wheel's bytes."""
    with zipfile.ZipFile(io.BytesIO(data)) as wheel:
        name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        return wheel.read(name)


@dataclass
class FakeFile:
    filename: str
    data: bytes = field(repr=False)
    requires_python: str | None = None
    yanked: str | None = None  # None: not yanked
    metadata: bytes | None = field(default=None, repr=False)  # served as PEP 658 when set

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


class FakePypiIndex(FakeServer):
    thread_name = "fake-pypi"

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self.projects: dict[str, dict[str, FakeFile]] = {}  # normalized project -> filename -> file
        self.requests: Counter[str] = Counter()  # per path
        self.status: int | None = None  # answer every request with this status (e.g. 500)
        self.broken_pages = False  # project pages that are not a simple page at all
        self.file_faults: dict[str, Fault] = {}  # filename -> fault
        self.pep691 = True  # False: HTML whatever the Accept header asks, as an index that predates PEP 691
        self.pages_served: Counter[str] = Counter()  # per content type

    # ---- content ------------------------------------------------------------------------------
    def add(
        self,
        project: str,
        filename: str,
        data: bytes,
        *,
        requires_python: str | None = None,
        yanked: str | None = None,
        metadata: bytes | None = None,
    ) -> FakeFile:
        file = FakeFile(filename, data, requires_python, yanked, metadata)
        self.projects.setdefault(canonicalize_name(project), {})[filename] = file
        return file

    def add_wheel(
        self,
        name: str,
        version: str,
        *,
        requires_dist: Iterable[str] = (),
        requires_python: str | None = None,
        payload_size: int = 0,
        pep658: bool = False,
        yanked: str | None = None,
    ) -> FakeFile:
        filename, data = make_wheel(
            name,
            version,
            requires_dist=requires_dist,
            requires_python=requires_python,
            payload_size=payload_size,
        )
        metadata = wheel_core_metadata(data) if pep658 else None
        return self.add(
            name, filename, data, requires_python=requires_python, yanked=yanked, metadata=metadata
        )

    def upstream_config(self, name: str = "plain") -> str:
        """The proxy's ``[upstream.NAME]`` table for this index."""
        return f'\n[upstream.{name}]\nformat = "pypi"\nurl = "{self.url}"\n'

    def file_requests(self, filename: str) -> int:
        return self.requests[f"/packages/{filename}"]

    def page_requests(self, project: str) -> int:
        return self.requests[f"/simple/{canonicalize_name(project)}/"]

    # ---- serving ------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.requests[path] += 1
        if self.status is not None:
            return web.Response(status=self.status, text="injected fault\n")
        parts = path.strip("/").split("/")
        if parts == ["simple"]:
            return self._index(request)
        if len(parts) == 2 and parts[0] == "simple" and path.endswith("/"):
            return self._page(request, parts[1])
        if len(parts) == 2 and parts[0] == "packages":
            return await self._file(request, parts[1])
        return web.Response(status=404, text="not found\n")

    def _index(self, request: web.Request) -> web.Response:
        links = "".join(f'<a href="{p}/">{p}</a>\n' for p in sorted(self.projects))
        return web.Response(
            text=f"<!DOCTYPE html><html><body>\n{links}</body></html>\n", content_type="text/html"
        )

    def _page(self, request: web.Request, project: str) -> web.Response:
        files = self.projects.get(project)
        if files is None:
            return web.Response(status=404, text="project not found\n")
        if self.broken_pages:
            return web.Response(body=b"\x89PNG\r\n\x1a\n\xff\xfe broken", content_type="text/html")
        if self.pep691 and JSON_V1 in request.headers.get("Accept", ""):
            body, content_type = _json_page(project, files.values()), JSON_V1
        else:
            body, content_type = _html_page(project, files.values()), "text/html"
        self.pages_served[content_type] += 1
        etag = f'"{hashlib.sha256(body).hexdigest()[:24]}"'
        if etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=body, headers={"ETag": etag, "Content-Type": content_type})

    async def _file(self, request: web.Request, filename: str) -> web.StreamResponse:
        wants_metadata = filename.endswith(".metadata")
        file = next(
            (
                f
                for files in self.projects.values()
                for f in files.values()
                if f.filename == filename.removesuffix(".metadata")
            ),
            None,
        )
        if file is None or (wants_metadata and file.metadata is None):
            return web.Response(status=404, text="not found\n")
        data = file.metadata if wants_metadata and file.metadata is not None else file.data
        return await self.serve_asset(
            request, data, None if wants_metadata else self.file_faults.get(filename)
        )


def _html_page(project: str, files: Iterable[FakeFile]) -> bytes:
    links = []
    for file in files:
        attributes = f'href="../../packages/{file.filename}#sha256={file.sha256}"'
        if file.requires_python:
            attributes += f' data-requires-python="{html.escape(file.requires_python)}"'
        if file.yanked is not None:
            attributes += f' data-yanked="{html.escape(file.yanked)}"'
        if file.metadata is not None:
            attributes += f' data-dist-info-metadata="sha256={hashlib.sha256(file.metadata).hexdigest()}"'
        links.append(f"<a {attributes}>{html.escape(file.filename)}</a><br/>\n")
    return (
        f"<!DOCTYPE html>\n<html><head><title>Links for {project}</title></head>"
        f"<body><h1>Links for {project}</h1>\n{''.join(links)}</body></html>\n"
    ).encode()


def _json_page(project: str, files: Iterable[FakeFile]) -> bytes:
    entries: list[dict[str, Any]] = []
    for file in files:
        entry: dict[str, Any] = {
            "filename": file.filename,
            "url": f"../../packages/{file.filename}",
            "hashes": {"sha256": file.sha256},
            "yanked": False if file.yanked is None else (file.yanked or True),
        }
        if file.requires_python:
            entry["requires-python"] = file.requires_python
        if file.metadata is not None:
            entry["core-metadata"] = {"sha256": hashlib.sha256(file.metadata).hexdigest()}
        entries.append(entry)
    return json.dumps({"meta": {"api-version": "1.0"}, "name": project, "files": entries}).encode()


def requirements(pins: Mapping[str, FakeFile]) -> str:
    """A ``--require-hashes`` requirements file pinning each project to the given file."""
    lines = []
    for project, file in pins.items():
        version = file.filename.split("-")[1]
        lines.append(f"{project}=={version} --hash=sha256:{file.sha256}")
    return "\n".join(lines) + "\n"
