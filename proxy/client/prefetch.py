"""Fetch what lockfile entries name through a running daemon, so its store holds them before a build.

Each entry asks what its client would: npm the packument, then the tarball (checked against the
lockfile's ``integrity``); pip the project's simple page (PEP 691 JSON), then the chosen files (checked
against the page's sha256) and their PEP 658 ``.metadata``; Maven the POM, its parent POMs and imported
BOMs (followed, each once), the artifact, and each file's ``.sha1``; then the POMs Maven reads while
it collects dependencies (``Candidates``): for each dependency a POM declares (compile or runtime, not
optional), the version it names and every version some POM's dependency management gives it. Maven
goes on without such a POM when no upstream has it, and so does prefetch (``Outcome.absent``); asking
is what makes the daemon remember that no upstream has it, so a build with the upstreams gone gets
the same 404 (negative lookups) instead of a 502. A candidate's POM is fetched with its parents (Maven
reads them together), but what it declares is not followed: a candidate Maven picks is in the list.

Requests run concurrently, at most ``concurrency`` at a time, on one httpx client; bodies are streamed
and dropped (only the daemon keeps them). Whether the daemon had a file already comes from its
``X-Codeartifact-Proxy-Store`` header.

Concurrency: one event loop (``asyncio.run`` in the command); ``Prefetch`` is not shared between runs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urljoin

import httpx
from defusedxml import ElementTree
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from proxy.lockfiles import Entry, MavenEntry, NpmEntry, PypiEntry

STORE_HEADER = "X-Codeartifact-Proxy-Store"
PYPI_JSON = "application/vnd.pypi.simple.v1+json"
# A packaging's file extension where it is not the packaging's own name.
EXTENSIONS = {
    "maven-plugin": "jar",
    "bundle": "jar",
    "ejb": "jar",
    "test-jar": "jar",
    "eclipse-plugin": "jar",
}


class FetchFailed(Exception):
    """One request failed; the message is the reason shown to the user, ``status`` the daemon's answer
    (None when there was none to read)."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.status = status


@dataclass
class Outcome:
    """What prefetching one entry did."""

    entry: Entry
    files: int = 0  # files fetched through the daemon
    downloaded: int = 0  # of which the daemon did not have before
    error: str | None = None
    absent: bool = False  # a probe no upstream has (the daemon now remembers that)

    @property
    def status(self) -> str:
        if self.error is not None:
            return "failed"
        if self.absent:
            return "not in upstreams"
        return "fetched" if self.downloaded else "already there"


class Prefetch:
    """Prefetch entries from one repository of the daemon at ``base`` (a URL ending in ``/``)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base: str,
        repository: str,
        *,
        concurrency: int = 8,
        on_start: Callable[[Entry], None] = lambda entry: None,
        on_done: Callable[[Outcome], None] = lambda outcome: None,
    ) -> None:
        self._client = client
        self._base = base
        self._repository = repository
        self._slots = asyncio.Semaphore(concurrency)
        self._on_start = on_start
        self._on_done = on_done
        self._poms: dict[tuple[str, str, str], bool] = {}  # asked for, and whether as a probe only
        self._candidates = Candidates()
        self.outcomes: list[Outcome] = []
        self._tasks: asyncio.TaskGroup | None = None

    async def run(self, entries: list[Entry]) -> list[Outcome]:
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            for entry in entries:
                self._spawn(entry)
        return self.outcomes

    def _spawn(self, entry: Entry) -> None:
        if isinstance(entry, MavenEntry):
            key = (entry.group, entry.artifact, entry.version)
            # A POM asked for as a probe is asked again as a listed one: that one is followed.
            if key in self._poms and entry.packaging == "pom" and (entry.probe or not self._poms[key]):
                return
            self._poms[key] = entry.probe and self._poms.get(key, True)
        assert self._tasks is not None
        self._on_start(entry)
        self._tasks.create_task(self._one(entry))

    async def _one(self, entry: Entry) -> None:
        outcome = Outcome(entry)
        try:
            if isinstance(entry, NpmEntry):
                await self._npm(entry, outcome)
            elif isinstance(entry, PypiEntry):
                await self._pypi(entry, outcome)
            else:
                await self._maven(entry, outcome)
        except FetchFailed as error:
            outcome.error = str(error)
        except httpx.HTTPError as error:
            outcome.error = f"no answer from the daemon: {type(error).__name__}: {error}"
        self.outcomes.append(outcome)
        self._on_done(outcome)

    # -- requests ---------------------------------------------------------------------------------
    async def _json(self, url: str, accept: str) -> Any:
        async with self._slots:
            response = await self._client.get(url, headers={"Accept": accept})
        if response.status_code != 200:
            raise FetchFailed(_failure(response), response.status_code)
        try:
            return response.json()
        except ValueError:
            raise FetchFailed(f"{url}: the daemon's answer is not JSON") from None

    async def _file(self, url: str, outcome: Outcome, digest: tuple[str, str] | None = None) -> bytes | None:
        """GET ``url`` to its end, checking ``digest`` ((hashlib name, hex or base64 value)); returns
        the body only for POMs, which are read."""
        keep = url.endswith(".pom")
        async with self._slots, self._client.stream("GET", url) as response:
            if response.status_code != 200:
                await response.aread()
                raise FetchFailed(_failure(response), response.status_code)
            hasher = hashlib.new(digest[0]) if digest else None
            body = bytearray()
            async for chunk in response.aiter_bytes():
                if hasher:
                    hasher.update(chunk)
                if keep:
                    body += chunk
            # Files the daemon derives (checksums, PEP 658 metadata) carry no such header.
            downloaded = response.headers.get(STORE_HEADER) == "miss"
        if (
            hasher
            and digest
            and digest[1] not in (hasher.hexdigest(), base64.b64encode(hasher.digest()).decode())
        ):
            raise FetchFailed(f"{url}: its {digest[0]} does not match the lockfile's")
        outcome.files += 1
        outcome.downloaded += downloaded
        return bytes(body) if keep else None

    # -- npm --------------------------------------------------------------------------------------
    async def _npm(self, entry: NpmEntry, outcome: Outcome) -> None:
        url = f"{self._base}npm/{self._repository}/{quote(entry.name, safe='@/').replace('/', '%2f')}"
        packument = await self._json(url, "application/json")
        version = (packument.get("versions") or {}).get(entry.version)
        if not isinstance(version, dict):
            raise FetchFailed(f"{entry.name} has no version {entry.version} in repository {self._repository}")
        tarball = (version.get("dist") or {}).get("tarball")
        if not isinstance(tarball, str):
            raise FetchFailed(f"{entry.name}@{entry.version} has no dist.tarball")
        await self._file(urljoin(url, tarball), outcome, _sri(entry.integrity))

    # -- PyPI -------------------------------------------------------------------------------------
    async def _pypi(self, entry: PypiEntry, outcome: Outcome) -> None:
        page_url = f"{self._base}pypi/{self._repository}/simple/{entry.name}/"
        page = await self._json(page_url, PYPI_JSON)
        files = [f for f in page.get("files", []) if isinstance(f, dict) and _wanted(entry, f)]
        if not files:
            having = " with the lockfile's hashes" if entry.sha256 or entry.filenames else ""
            raise FetchFailed(
                f"no file of {entry.name}=={entry.version}{having} in repository {self._repository}"
            )
        for file in files:
            url = urljoin(page_url, file["url"])
            sha256 = (file.get("hashes") or {}).get("sha256")
            await self._file(url, outcome, ("sha256", sha256) if sha256 else None)
            if file.get("core-metadata") or file.get("dist-info-metadata"):
                await self._file(f"{url.split('#', 1)[0]}.metadata", outcome)

    # -- Maven ------------------------------------------------------------------------------------
    async def _maven(self, entry: MavenEntry, outcome: Outcome) -> None:
        group = entry.group.replace(".", "/")
        directory = f"{self._base}maven/{self._repository}/{group}/{entry.artifact}/{entry.version}/"
        stem = f"{directory}{entry.artifact}-{entry.version}"
        try:
            pom = await self._file(f"{stem}.pom", outcome)
        except FetchFailed as failed:
            if entry.probe and failed.status == 404:
                outcome.absent = True
                return
            raise
        await self._file(f"{stem}.pom.sha1", outcome)
        project = _pom(pom or b"", f"{stem}.pom")
        if entry.probe:
            # Maven reads a candidate's parents with it, but what it declares only if it wins: that
            # one would be in the list.
            for related in project.related:
                self._spawn(replace(related, probe=True))
            return
        for related in (*project.related, *self._candidates.learn(project)):
            self._spawn(related)
        packaging = entry.packaging or project.packaging
        if packaging == "pom":
            return
        classifier = entry.classifier or ("tests" if packaging == "test-jar" else None)
        artifact = f"{stem}{f'-{classifier}' if classifier else ''}.{EXTENSIONS.get(packaging, packaging)}"
        await self._file(artifact, outcome)
        await self._file(f"{artifact}.sha1", outcome)


def _failure(response: httpx.Response) -> str:
    try:
        reason = response.json().get("error")
    except (ValueError, AttributeError):
        reason = None
    return f"{response.request.url}: HTTP {response.status_code}{f' ({reason})' if reason else ''}"


def _sri(integrity: str | None) -> tuple[str, str] | None:
    """The strongest digest of an SRI string (``sha512-BASE64 sha1-...``)."""
    for algorithm in ("sha512", "sha384", "sha256", "sha1"):
        for part in (integrity or "").split():
            if part.startswith(f"{algorithm}-"):
                return algorithm, part.split("-", 1)[1]
    return None


def _wanted(entry: PypiEntry, file: dict[str, Any]) -> bool:
    if entry.sha256:
        return (file.get("hashes") or {}).get("sha256", "").lower() in entry.sha256
    filename = file.get("filename")
    if not isinstance(filename, str):
        return False
    if entry.filenames:
        return filename in entry.filenames
    try:
        if filename.endswith(".whl"):
            version = parse_wheel_filename(filename)[1]
        else:
            version = parse_sdist_filename(filename)[1]
        return version == Version(entry.version)
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return False


@dataclass(frozen=True)
class _Project:
    packaging: str
    related: list[MavenEntry]  # the parent and imported BOMs, as POM-only entries
    declared: list[tuple[str, str, str | None]]  # dependencies Maven follows; version None: managed
    managed: list[tuple[str, str, str]]  # dependency management (not imports)


# Scopes whose dependencies Maven follows in a dependency's POM (test and provided ones it does not).
_FOLLOWED_SCOPES = frozenset({"compile", "runtime"})


class Candidates:
    """The dependency versions Maven may read a POM of: for every (group, artifact) some POM declares
    as a dependency, the version declared and each version a dependency management gives it (the
    management of the project being built wins in Maven, and prefetch does not know which project
    that is, so it asks for all of them). Used from the event loop only."""

    def __init__(self) -> None:
        self._declared: set[tuple[str, str]] = set()
        self._versions: dict[tuple[str, str], set[str]] = {}

    def learn(self, project: _Project) -> list[MavenEntry]:
        """What ``project`` adds; returns the new candidates, as probes."""
        new: list[tuple[str, str, str]] = []
        for group, artifact, version in project.declared:
            if (group, artifact) not in self._declared:
                self._declared.add((group, artifact))
                new.extend((group, artifact, v) for v in self._versions.get((group, artifact), ()))
            if version is not None:
                new.extend(self._add(group, artifact, version))
        for group, artifact, version in project.managed:
            added = self._add(group, artifact, version)
            new.extend(added if (group, artifact) in self._declared else [])
        return [MavenEntry(*coordinate, packaging="pom", probe=True) for coordinate in dict.fromkeys(new)]

    def _add(self, group: str, artifact: str, version: str) -> list[tuple[str, str, str]]:
        versions = self._versions.setdefault((group, artifact), set())
        if version in versions:
            return []
        versions.add(version)
        return [(group, artifact, version)]


def _pom(data: bytes, url: str) -> _Project:
    try:
        root = ElementTree.fromstring(data)
    except Exception as error:  # defusedxml raises several kinds for a bad or hostile document
        raise FetchFailed(f"{url}: not a POM the prefetch can read ({type(error).__name__})") from None

    def child(element: Any, name: str) -> Any:
        return next((c for c in element if c.tag.rsplit("}", 1)[-1] == name), None)

    def text(element: Any, name: str) -> str | None:
        found = child(element, name) if element is not None else None
        return found.text.strip() if found is not None and found.text else None

    parent = child(root, "parent")
    properties = {"project.version": text(root, "version") or text(parent, "version")}
    properties["project.groupId"] = text(root, "groupId") or text(parent, "groupId")
    props = child(root, "properties")
    for prop in props if props is not None else []:
        if prop.text:
            properties[prop.tag.rsplit("}", 1)[-1]] = prop.text.strip()

    def resolved(value: str | None) -> str | None:
        if value is None:
            return None
        value = re.sub(r"\$\{([^}]+)\}", lambda m: properties.get(m[1]) or m[0], value)
        return None if "${" in value else value

    related = []
    if parent is not None:
        coordinates = [text(parent, name) for name in ("groupId", "artifactId", "version")]
        if all(coordinates):
            related.append(MavenEntry(*coordinates, packaging="pom"))  # type: ignore[misc]
    managed = []
    management = child(root, "dependencyManagement")
    for dependency in _dependencies(child(management, "dependencies") if management is not None else None):
        group, artifact, version = (
            resolved(text(dependency, n)) for n in ("groupId", "artifactId", "version")
        )
        if not (group and artifact and version):
            continue
        if text(dependency, "scope") == "import" and text(dependency, "type") == "pom":
            related.append(MavenEntry(group, artifact, version, packaging="pom"))
        elif _exact(version):
            managed.append((group, artifact, version))
    declared = []
    for dependency in _dependencies(child(root, "dependencies")):
        if (text(dependency, "scope") or "compile") not in _FOLLOWED_SCOPES:
            continue
        if text(dependency, "optional") == "true":
            continue
        group, artifact, version = (
            resolved(text(dependency, n)) for n in ("groupId", "artifactId", "version")
        )
        if group and artifact:
            # No version, or one that names a range or a parent's property: Maven's to pick.
            declared.append((group, artifact, version if version and _exact(version) else None))
    return _Project(text(root, "packaging") or "jar", related, declared, managed)


def _dependencies(element: Any) -> list[Any]:
    return [] if element is None else [d for d in element if d.tag.rsplit("}", 1)[-1] == "dependency"]


def _exact(version: str) -> bool:
    """Whether ``version`` is one version (not a range)."""
    return not version.startswith(("[", "("))
