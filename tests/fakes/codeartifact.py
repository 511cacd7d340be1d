"""A fake AWS CodeArtifact for tests: control plane, repository endpoints and an "S3" for assets.

Two aiohttp servers:
- the service on 127.0.0.1 (random port): the control-plane calls with the paths and JSON shapes of
  botocore's ``codeartifact`` model (GetAuthorizationToken, GetRepositoryEndpoint, DescribeRepository,
  DescribeDomain, ListDomains, ListRepositoriesInDomain, CreateRepository, and for npm versions
  GetPackageVersionAsset, GetPackageVersionReadme, ListPackageVersionDependencies),
  and the repository endpoints ``/{domain}-{owner}/{format}/{repository}/`` for npm, pypi and maven;
- "S3" on 127.0.0.2 (another host, as in AWS): asset downloads answer 307 to a pre-signed-style URL
  there, and like S3 it rejects (400) any request that carries an ``Authorization`` header.

Content is an in-memory model the tests fill: domains hold repositories, a repository holds npm
packuments and tarballs, PyPI files and Maven files, and lists upstream repositories of the same
domain that requests resolve through, in order (as CodeArtifact does).

Use it in an async test (``async with FakeCodeArtifact() as fake``: runs on the test's loop) or,
for end-to-end tests with real clients in subprocesses, on a thread with its own loop
(``with FakeCodeArtifact() as fake``, or ``start_in_thread()``/``stop_in_thread()``).

``aws_environment``/``isolate_aws`` confine botocore and the aws cli to dummy credentials and
files in a temporary directory, for this process or a subprocess.

Concurrency: the handlers run on the fake's own loop; tests read counters and add content from
another thread between requests (plain dict/list/Counter operations, atomic under the GIL).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
import html
import json
import re
import secrets
import socket
import struct
import time
import urllib.parse
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
from aiohttp import web
from packaging.utils import canonicalize_name

from tests.fakes.server import FakeServer

Format = Literal["npm", "pypi", "maven"]
FaultKind = Literal["status", "throttle", "reset", "slow", "truncate", "corrupt"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_SIGV4 = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/\s]+)/(?P<date>\d{8})/(?P<region>[^/\s]+)"
    r"/codeartifact/aws4_request,\s*SignedHeaders=[a-z0-9;-]+,\s*Signature=[0-9a-f]{64}$"
)
_CHECKSUMS = {".sha1": "sha1", ".md5": "md5", ".sha256": "sha256", ".sha512": "sha512"}
_PYPI_JSON = "application/vnd.pypi.simple.v1+json"


@dataclass
class IssuedToken:
    """A token the fake handed out with GetAuthorizationToken."""

    value: str = field(repr=False)
    domain: str
    owner: str
    access_key: str
    region: str
    issued_at: float
    expires_at: float
    revoked: bool = False


@dataclass
class ControlRequest:
    """One control-plane call, as signed by the client (access key id and region of the scope)."""

    operation: str
    access_key: str
    region: str
    params: dict[str, str]


@dataclass
class PypiFile:
    filename: str
    data: bytes = field(repr=False)
    requires_python: str | None = None
    core_metadata: bytes | None = field(default=None, repr=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class _Fault:
    pattern: re.Pattern[str]
    kind: FaultKind
    status: int
    delay: float
    retry_after: str | None
    remaining: int | None


@dataclass
class FakeRepository:
    """A repository: its own content plus upstream repositories (names in the same domain)."""

    domain: FakeDomain
    name: str
    upstreams: list[str] = field(default_factory=list)
    npm: dict[str, dict[str, Any]] = field(default_factory=dict)
    npm_tarballs: dict[str, bytes] = field(default_factory=dict, repr=False)  # "<name>/-/<file>"
    pypi: dict[str, dict[str, PypiFile]] = field(default_factory=dict)  # normalized project -> files
    maven: dict[str, bytes] = field(default_factory=dict, repr=False)  # "g/r/o/u/p/a/v/file"

    def add_npm_package(self, packument: Mapping[str, Any], tarballs: Mapping[str, bytes]) -> None:
        """Add a packument; ``tarballs`` maps version -> tarball bytes.

        ``dist.shasum`` and ``dist.integrity`` are filled in unless the packument sets them (a test
        may set wrong ones on purpose); ``dist.tarball`` is written when served, pointing at the fake.
        """
        stored = copy.deepcopy(dict(packument))
        name = stored["name"]
        for version, data in tarballs.items():
            filename = f"{name.rsplit('/', 1)[-1]}-{version}.tgz"
            self.npm_tarballs[f"{name}/-/{filename}"] = data
            entry = stored.setdefault("versions", {}).setdefault(version, {"name": name, "version": version})
            dist = entry.setdefault("dist", {})
            dist.setdefault("shasum", hashlib.sha1(data).hexdigest())
            dist.setdefault("integrity", "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode())
            dist["_file"] = filename
        self.npm[name] = stored

    def add_pypi_file(
        self,
        project: str,
        filename: str,
        data: bytes,
        *,
        requires_python: str | None = None,
        core_metadata: bytes | None = None,
    ) -> None:
        files = self.pypi.setdefault(canonicalize_name(project), {})
        files[filename] = PypiFile(filename, data, requires_python, core_metadata)

    def add_maven_file(self, path: str, data: bytes) -> None:
        """Any Maven 2 layout path; checksum files are computed on request unless stored."""
        self.maven[path.lstrip("/")] = data


@dataclass
class FakeDomain:
    fake: FakeCodeArtifact
    name: str
    owner: str
    repositories: dict[str, FakeRepository] = field(default_factory=dict)

    def add_repository(self, name: str, upstreams: list[str] | tuple[str, ...] = ()) -> FakeRepository:
        repository = FakeRepository(self, name, list(upstreams))
        self.repositories[name] = repository
        return repository

    def endpoint(self, repository: str, format: Format) -> str:
        return f"{self.fake.url}/{self.name}-{self.owner}/{format}/{repository}/"

    def resolution_order(self, repository: str) -> list[FakeRepository]:
        """The repository, then its upstreams in order, depth first, each once."""
        order: list[FakeRepository] = []

        def visit(name: str) -> None:
            repo = self.repositories.get(name)
            if repo is not None and repo not in order:
                order.append(repo)
                for upstream in repo.upstreams:
                    visit(upstream)

        visit(repository)
        return order


ControlHandler = Callable[[Any, web.Request, ControlRequest, "FakeDomain"], Awaitable[web.Response]]


def _controlled(
    operation: str,
) -> Callable[[ControlHandler], Callable[[Any, web.Request], Awaitable[web.Response]]]:
    """A control-plane handler that gets the signed call and its domain, after the service's checks."""

    def wrap(handler: ControlHandler) -> Callable[[Any, web.Request], Awaitable[web.Response]]:
        async def handle(self: FakeCodeArtifact, request: web.Request) -> web.Response:
            call = self._authenticate(request, operation)
            if isinstance(call, web.Response):
                return call
            domain = self._domain_of(request.query)
            if isinstance(domain, web.Response):
                return domain
            return await handler(self, request, call, domain)

        return handle

    return wrap


class FakeCodeArtifact(FakeServer):
    """The fake service. Construct, fill with ``add_domain(...).add_repository(...)``, start."""

    def __init__(
        self,
        *,
        token_lifetime: float = 3600.0,
        host: str = "127.0.0.1",
        s3_host: str = "127.0.0.2",
        presign_expires: int = 60,
    ) -> None:
        super().__init__(host)
        self.token_lifetime = token_lifetime  # the service caps the asked duration at this
        self.presign_expires = presign_expires
        self.stale_token_status = 401  # set to 404 to play the endpoints that answer a stale token with 404
        self.domains: dict[tuple[str, str], FakeDomain] = {}
        self.denied_access_keys: set[str] = set()
        self.tokens: list[IssuedToken] = []
        self.control_requests: list[ControlRequest] = []
        self.requests: Counter[str] = Counter()  # per path, on both servers
        self.expired_token_requests = 0
        self.revoked_token_requests = 0
        self.unauthenticated_requests = 0  # missing, malformed or unknown credentials
        self.s3_authorization_headers = 0
        self._s3_host = s3_host
        self._tokens_by_value: dict[str, IssuedToken] = {}
        self._faults: list[_Fault] = []
        self._blobs: dict[str, bytes] = {}
        self._sign_key = secrets.token_bytes(32)
        self._runners: list[web.AppRunner] = []
        self.s3_url = ""

    # ---- content model and controls -------------------------------------------------------------

    def add_domain(self, name: str, owner: str = "111122223333") -> FakeDomain:
        return self.domains.setdefault((name, owner), FakeDomain(self, name, owner))

    def deny_access_key(self, access_key: str) -> None:
        self.denied_access_keys.add(access_key)

    def revoke_all(self) -> None:
        for token in self.tokens:
            token.revoked = True

    def fail(
        self,
        pattern: str,
        kind: FaultKind = "status",
        *,
        status: int = 500,
        times: int | None = None,
        delay: float = 2.0,
        retry_after: str | None = None,
    ) -> None:
        """Make requests whose path matches ``pattern`` (re.search) fail; ``times=None`` is forever.

        status: answer ``status`` (with ``Retry-After`` if given); throttle: 429 ThrottlingException;
        reset: abort the connection; slow: wait ``delay`` first; truncate: send half the body and
        close; corrupt: same length, different bytes.
        """
        self._faults.append(_Fault(re.compile(pattern), kind, status, delay, retry_after, times))

    def clear_faults(self) -> None:
        self._faults.clear()

    def operations(self, operation: str) -> int:
        return sum(1 for request in self.control_requests if request.operation == operation)

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> str:
        service = web.Application(middlewares=[self._faults_middleware])
        service.router.add_post("/v1/authorization-token", self._get_authorization_token)
        service.router.add_get("/v1/repository/endpoint", self._get_repository_endpoint)
        service.router.add_get("/v1/repository", self._describe_repository)
        service.router.add_post("/v1/repository", self._create_repository)
        service.router.add_get("/v1/domain", self._describe_domain)
        service.router.add_post("/v1/domains", self._list_domains)
        service.router.add_post("/v1/domain/repositories", self._list_repositories_in_domain)
        service.router.add_get("/v1/package/version/asset", self._get_package_version_asset)
        service.router.add_get("/v1/package/version/readme", self._get_package_version_readme)
        service.router.add_post("/v1/package/version/dependencies", self._list_package_version_dependencies)
        service.router.add_route("*", "/{domain_owner}/{format}/{repository}/{tail:.*}", self._repository)
        s3 = web.Application(middlewares=[self._faults_middleware])
        s3.router.add_get("/s3/{blob}", self._s3_object)
        self.url = await self._serve(service, self._host)
        self.s3_url = await self._serve(s3, self._s3_host)
        return self.url

    async def stop(self) -> None:  # both servers: the service and its "S3"
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    async def _serve(self, app: web.Application, host: str) -> str:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, 0)
        await site.start()
        self._runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://{host}:{port}"

    # ---- faults ----------------------------------------------------------------------------------

    def _take_fault(self, path: str) -> _Fault | None:
        for fault in self._faults:
            if fault.remaining != 0 and fault.pattern.search(path):
                if fault.remaining is not None:
                    fault.remaining -= 1
                return fault
        return None

    @web.middleware
    async def _faults_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests[request.path] += 1
        fault = self._take_fault(request.path)
        if fault is None:
            return await handler(request)
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay)
            return await handler(request)
        if fault.kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return web.Response(status=fault.status, text="injected fault\n", headers=headers)
        if fault.kind == "throttle":
            return _aws_error(429, "ThrottlingException", "Rate exceeded", {"Retry-After": "1"})
        if fault.kind == "reset":
            _reset_connection(request)
        response = await handler(request)
        if not isinstance(response, web.Response) or response.body is None:
            return response
        body = bytes(response.body)  # type: ignore[arg-type]
        if fault.kind == "corrupt":
            return web.Response(
                status=response.status, body=bytes(b ^ 0xFF for b in body), headers=response.headers
            )
        return await _truncated(request, response, body)

    # ---- control plane ---------------------------------------------------------------------------

    def _authenticate(self, request: web.Request, operation: str) -> ControlRequest | web.Response:
        match = _SIGV4.match(request.headers.get("Authorization", ""))
        if match is None or "X-Amz-Date" not in request.headers:
            return _aws_error(403, "AccessDeniedException", "Missing or malformed SigV4 Authorization header")
        call = ControlRequest(operation, match["key"], match["region"], dict(request.query))
        self.control_requests.append(call)
        if call.access_key in self.denied_access_keys:
            return _aws_error(
                403,
                "AccessDeniedException",
                f"User: arn:aws:iam::000000000000:user/{call.access_key} is not authorized to perform: "
                f"codeartifact:{operation}",
            )
        return call

    def _domain_of(self, query: Mapping[str, str]) -> FakeDomain | web.Response:
        domain = self.domains.get((query.get("domain", ""), query.get("domain-owner", "")))
        if domain is None:
            return _aws_error(404, "ResourceNotFoundException", "Domain not found")
        return domain

    async def _get_authorization_token(self, request: web.Request) -> web.Response:
        call = self._authenticate(request, "GetAuthorizationToken")
        if isinstance(call, web.Response):
            return call
        domain = self._domain_of(request.query)
        if isinstance(domain, web.Response):
            return domain
        asked = float(request.query.get("duration", "43200"))
        lifetime = min(asked, self.token_lifetime) if asked > 0 else self.token_lifetime
        now = time.time()
        token = IssuedToken(
            value=secrets.token_urlsafe(48),
            domain=domain.name,
            owner=domain.owner,
            access_key=call.access_key,
            region=call.region,
            issued_at=now,
            expires_at=now + lifetime,
        )
        self.tokens.append(token)
        self._tokens_by_value[token.value] = token
        return web.json_response({"authorizationToken": token.value, "expiration": token.expires_at})

    async def _get_repository_endpoint(self, request: web.Request) -> web.Response:
        call = self._authenticate(request, "GetRepositoryEndpoint")
        if isinstance(call, web.Response):
            return call
        domain = self._domain_of(request.query)
        if isinstance(domain, web.Response):
            return domain
        repository, format = request.query.get("repository", ""), request.query.get("format", "")
        if format not in ("npm", "pypi", "maven"):
            return _aws_error(400, "ValidationException", f"Unsupported format {format!r}")
        if repository not in domain.repositories:
            return _aws_error(404, "ResourceNotFoundException", f"Repository {repository} not found")
        return web.json_response({"repositoryEndpoint": domain.endpoint(repository, format)})  # type: ignore[arg-type]

    async def _describe_repository(self, request: web.Request) -> web.Response:
        call = self._authenticate(request, "DescribeRepository")
        if isinstance(call, web.Response):
            return call
        domain = self._domain_of(request.query)
        if isinstance(domain, web.Response):
            return domain
        repository = domain.repositories.get(request.query.get("repository", ""))
        if repository is None:
            return _aws_error(404, "ResourceNotFoundException", "Repository not found")
        arn = f"arn:aws:codeartifact:{call.region}:{domain.owner}:repository/{domain.name}/{repository.name}"
        description = {
            "name": repository.name,
            "administratorAccount": domain.owner,
            "domainName": domain.name,
            "domainOwner": domain.owner,
            "arn": arn,
            "upstreams": [{"repositoryName": name} for name in repository.upstreams],
            "externalConnections": [],
        }
        return web.json_response({"repository": description})

    def _control(
        self, request: web.Request, operation: str
    ) -> tuple[ControlRequest, FakeDomain] | web.Response:
        """The signed call and its domain, or the error response the service gives instead."""
        call = self._authenticate(request, operation)
        if isinstance(call, web.Response):
            return call
        domain = self._domain_of(request.query)
        return domain if isinstance(domain, web.Response) else (call, domain)

    @_controlled("DescribeDomain")
    async def _describe_domain(
        self, request: web.Request, call: ControlRequest, domain: FakeDomain
    ) -> web.Response:
        description = {
            "name": domain.name,
            "owner": domain.owner,
            "arn": f"arn:aws:codeartifact:{call.region}:{domain.owner}:domain/{domain.name}",
            "status": "Active",
            "createdTime": 1700000000.0,
            "repositoryCount": len(domain.repositories),
            "assetSizeBytes": 0,
        }
        return web.json_response({"domain": description})

    async def _list_domains(self, request: web.Request) -> web.Response:
        """Every domain of the fake, by name, ``maxResults`` a page (default 2 here, so tests see a
        second page); ``nextToken`` is the last name of the page before."""
        call = self._authenticate(request, "ListDomains")
        if isinstance(call, web.Response):
            return call
        asked = await request.json() if request.can_read_body else {}
        domains = sorted(self.domains.values(), key=lambda d: d.name)
        after = asked.get("nextToken")
        if after is not None:
            domains = [d for d in domains if d.name > after]
        size = int(asked.get("maxResults", 2))
        page = domains[:size]
        summaries = [
            {
                "name": d.name,
                "owner": d.owner,
                "arn": f"arn:aws:codeartifact:{call.region}:{d.owner}:domain/{d.name}",
                "status": "Active",
                "createdTime": 1700000000.0,
                "encryptionKey": f"arn:aws:kms:{call.region}:{d.owner}:key/fake",
            }
            for d in page
        ]
        body: dict[str, Any] = {"domains": summaries}
        if len(domains) > size:
            body["nextToken"] = page[-1].name
        return web.json_response(body)

    @_controlled("ListRepositoriesInDomain")
    async def _list_repositories_in_domain(
        self, request: web.Request, _call: ControlRequest, domain: FakeDomain
    ) -> web.Response:
        """Paged by name, ``max-results`` a page (default 2 here, so tests see a second page)."""
        prefix = request.query.get("repository-prefix", "")
        names = sorted(n for n in domain.repositories if n.startswith(prefix))
        after = request.query.get("next-token")
        if after is not None:
            names = [n for n in names if n > after]
        size = int(request.query.get("max-results", "2"))
        page = names[:size]
        summaries = [
            {
                "name": n,
                "domainName": domain.name,
                "domainOwner": domain.owner,
                "administratorAccount": domain.owner,
            }
            for n in page
        ]
        body: dict[str, Any] = {"repositories": summaries}
        if len(names) > size:
            body["nextToken"] = page[-1]
        return web.json_response(body)

    @_controlled("GetPackageVersionAsset")
    async def _get_package_version_asset(
        self, request: web.Request, _call: ControlRequest, domain: FakeDomain
    ) -> web.Response:
        """An npm tarball of the repository itself (no upstreams), as GetPackageVersionAsset sends it."""
        query = request.query
        repository = domain.repositories.get(query.get("repository", ""))
        scope = f"@{query['namespace']}/" if query.get("namespace") else ""
        key = f"{scope}{query.get('package', '')}/-/{query.get('asset', '')}"
        if repository is None or query.get("format") != "npm" or key not in repository.npm_tarballs:
            return _aws_error(404, "ResourceNotFoundException", "Asset not found")
        headers = {
            "X-AssetName": query["asset"],
            "X-PackageVersion": query.get("version", ""),
            "X-PackageVersionRevision": "rev-1",
        }
        return web.Response(body=repository.npm_tarballs[key], headers=headers)

    @_controlled("GetPackageVersionReadme")
    async def _get_package_version_readme(
        self, request: web.Request, _call: ControlRequest, domain: FakeDomain
    ) -> web.Response:
        """An npm version's readme (its own, else the packument's), as GetPackageVersionReadme answers."""
        found = _npm_version(domain, request.query)
        if isinstance(found, web.Response):
            return found
        packument, entry = found
        return web.json_response(
            {
                **_version_coordinate(request.query),
                "versionRevision": "rev-1",
                "readme": entry.get("readme", packument.get("readme", "")),
            }
        )

    @_controlled("ListPackageVersionDependencies")
    async def _list_package_version_dependencies(
        self, request: web.Request, _call: ControlRequest, domain: FakeDomain
    ) -> web.Response:
        """An npm version's dependencies of every type (package.json order), paged by 2 so that tests
        see a ``nextToken`` (an index here; opaque to callers, as the service's)."""
        found = _npm_version(domain, request.query)
        if isinstance(found, web.Response):
            return found
        _packument, entry = found
        dependencies = []
        for field_name, kind in _NPM_DEPENDENCY_TYPES.items():
            for name, requirement in entry.get(field_name, {}).items():
                scope, _, bare = name.rpartition("/")
                item = {"package": bare, "dependencyType": kind, "versionRequirement": requirement}
                if scope:
                    item["namespace"] = scope.removeprefix("@")
                dependencies.append(item)
        token = request.query.get("next-token", "0")
        if not token.isdigit():
            return _aws_error(400, "ValidationException", "Invalid nextToken")
        start = int(token)
        body: dict[str, Any] = {
            **_version_coordinate(request.query),
            "versionRevision": "rev-1",
            "dependencies": dependencies[start : start + 2],
        }
        if start + 2 < len(dependencies):
            body["nextToken"] = str(start + 2)
        return web.json_response(body)

    @_controlled("CreateRepository")
    async def _create_repository(
        self, request: web.Request, _call: ControlRequest, domain: FakeDomain
    ) -> web.Response:
        name = request.query.get("repository", "")
        if name in domain.repositories:
            return _aws_error(409, "ConflictException", f"Repository {name} already exists")
        domain.add_repository(name)
        return web.json_response({"repository": {"name": name, "domainName": domain.name}})

    # ---- repository endpoints --------------------------------------------------------------------

    def _check_token(self, request: web.Request, domain: FakeDomain, format: str) -> web.Response | None:
        challenge = (
            'Bearer realm="codeartifact"' if format == "npm" else f'Basic realm="{domain.name}/{format}"'
        )
        value = _presented_token(request.headers.get("Authorization", ""), format)
        token = self._tokens_by_value.get(value or "")
        if token is None or (token.domain, token.owner) != (domain.name, domain.owner):
            self.unauthenticated_requests += 1
            return _unauthorized(401, challenge)
        if token.revoked or time.time() >= token.expires_at:
            if token.revoked:
                self.revoked_token_requests += 1
            else:
                self.expired_token_requests += 1
            return _unauthorized(self.stale_token_status, challenge)
        return None

    async def _repository(self, request: web.Request) -> web.Response:
        domain_name, _, owner = request.match_info["domain_owner"].rpartition("-")
        domain = self.domains.get((domain_name, owner))
        format = request.match_info["format"]
        repository = request.match_info["repository"]
        if domain is None or repository not in domain.repositories or format not in ("npm", "pypi", "maven"):
            return web.Response(status=404, text="repository not found\n")
        denied = self._check_token(request, domain, format)
        if denied is not None:
            return denied
        # The raw path keeps npm's encoded scope separator (@scope%2fname).
        prefix = f"/{domain_name}-{owner}/{format}/{repository}/"
        tail = urllib.parse.unquote(request.raw_path.split("?", 1)[0][len(prefix) :])
        order = domain.resolution_order(repository)
        endpoint = domain.endpoint(repository, format)  # type: ignore[arg-type]
        if format == "npm":
            return self._npm(order, endpoint, tail)
        if format == "pypi":
            return self._pypi(order, request, tail)
        return self._maven(order, tail)

    def _npm(self, order: list[FakeRepository], endpoint: str, tail: str) -> web.Response:
        if "/-/" in tail:
            data = next((repo.npm_tarballs[tail] for repo in order if tail in repo.npm_tarballs), None)
            return self._redirect_to_s3(data)
        merged: dict[str, Any] | None = None
        for repo in order:
            packument = repo.npm.get(tail)
            if packument is None:
                continue
            if merged is None:
                merged = copy.deepcopy(packument)
            for version, entry in packument.get("versions", {}).items():
                merged["versions"].setdefault(version, copy.deepcopy(entry))
        if merged is None:
            return web.Response(status=404, text="package not found\n")
        for entry in merged.get("versions", {}).values():
            dist = entry.get("dist", {})
            if "_file" in dist:
                dist["tarball"] = f"{endpoint}{merged['name']}/-/{dist.pop('_file')}"
        return web.json_response(merged)

    def _pypi(self, order: list[FakeRepository], request: web.Request, tail: str) -> web.Response:
        parts = tail.split("/")
        if len(parts) == 3 and parts[0] == "files":
            files = _pypi_files(order, parts[1])
            if parts[2].endswith(".metadata") and parts[2][: -len(".metadata")] in files:
                metadata = files[parts[2][: -len(".metadata")]].core_metadata
                return web.Response(body=metadata) if metadata else web.Response(status=404)
            found = files.get(parts[2])
            return self._redirect_to_s3(found.data if found else None)
        if len(parts) == 3 and parts[0] == "simple" and parts[2] == "":
            project = canonicalize_name(parts[1])
            files = _pypi_files(order, project)
            if not files:
                return web.Response(status=404, text="project not found\n")
            if _PYPI_JSON in request.headers.get("Accept", ""):
                return _pypi_json(project, files)
            return _pypi_html(project, files)
        return web.Response(status=404, text="not found\n")

    def _maven(self, order: list[FakeRepository], tail: str) -> web.Response:
        stored = next((repo.maven[tail] for repo in order if tail in repo.maven), None)
        if stored is not None:
            if tail.endswith(("maven-metadata.xml", *_CHECKSUMS)):
                return web.Response(body=stored)
            return self._redirect_to_s3(stored)
        base, dot, ext = tail.rpartition(".")
        algorithm = _CHECKSUMS.get(dot + ext)
        data = next((repo.maven[base] for repo in order if base in repo.maven), None) if algorithm else None
        if algorithm is None or data is None:
            return web.Response(status=404, text="not found\n")
        return web.Response(text=hashlib.new(algorithm, data).hexdigest())

    def _redirect_to_s3(self, data: bytes | None) -> web.Response:
        if data is None:
            return web.Response(status=404, text="asset not found\n")
        blob = hashlib.sha256(data).hexdigest()
        self._blobs[blob] = data
        expires_at = int(time.time()) + self.presign_expires
        query = urllib.parse.urlencode(
            {
                "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
                "X-Amz-Date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
                "X-Amz-Expires": str(self.presign_expires),
                "X-Amz-SignedHeaders": "host",
                "X-Amz-Expires-At": str(expires_at),
                "X-Amz-Signature": self._presign(blob, expires_at),
            }
        )
        return web.Response(status=307, headers={"Location": f"{self.s3_url}/s3/{blob}?{query}"})

    def _presign(self, blob: str, expires_at: int) -> str:
        return hmac.new(self._sign_key, f"{blob}:{expires_at}".encode(), hashlib.sha256).hexdigest()

    async def _s3_object(self, request: web.Request) -> web.Response:
        if "Authorization" in request.headers:
            self.s3_authorization_headers += 1
            return _s3_error(400, "InvalidArgument", "Only one auth mechanism allowed")
        blob = request.match_info["blob"]
        expires_at = int(request.query.get("X-Amz-Expires-At", "0"))
        signature = request.query.get("X-Amz-Signature", "")
        if not hmac.compare_digest(signature, self._presign(blob, expires_at)):
            return _s3_error(403, "SignatureDoesNotMatch", "The request signature does not match")
        if time.time() > expires_at:
            return _s3_error(403, "AccessDenied", "Request has expired")
        data = self._blobs.get(blob)
        if data is None:
            return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
        return web.Response(body=data, content_type="application/octet-stream")


def aws_environment(
    directory: Path, *, access_key: str | None = None, secret_key: str | None = None
) -> dict[str, str | None]:
    """Environment variables that confine botocore and the aws cli to ``directory`` (None: unset).

    Config and credentials files live in ``directory`` (neither exists until a test writes it),
    instance metadata is off, and nothing from the machine's own AWS setup leaks in. With
    ``access_key``/``secret_key``, those dummy credentials come from the environment.
    """
    environment: dict[str, str | None] = {
        name: None
        for name in (
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_SECURITY_TOKEN",
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "AWS_DEFAULT_REGION",
            "AWS_REGION",
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_CODEARTIFACT",
        )
    }
    environment.update(
        HOME=str(directory),
        AWS_CONFIG_FILE=str(directory / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(directory / "aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        AWS_ACCESS_KEY_ID=access_key,
        AWS_SECRET_ACCESS_KEY=secret_key,
    )
    return environment


def isolate_aws(
    monkeypatch: pytest.MonkeyPatch,
    directory: Path,
    *,
    access_key: str | None = None,
    secret_key: str | None = None,
) -> None:
    """Apply ``aws_environment`` to this process for one test."""
    for name, value in aws_environment(directory, access_key=access_key, secret_key=secret_key).items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


def _presented_token(authorization: str, format: str) -> str | None:
    scheme, _, credentials = authorization.partition(" ")
    if format == "npm":
        return credentials if scheme == "Bearer" else None
    if scheme != "Basic":
        return None
    try:
        username, _, password = base64.b64decode(credentials, validate=True).decode().partition(":")
    except ValueError:
        return None
    return password if username == "aws" else None


def _pypi_files(order: list[FakeRepository], project: str) -> dict[str, PypiFile]:
    merged: dict[str, PypiFile] = {}
    for repo in order:
        for filename, file in repo.pypi.get(canonicalize_name(project), {}).items():
            merged.setdefault(filename, file)
    return merged


def _pypi_html(project: str, files: Mapping[str, PypiFile]) -> web.Response:
    links = []
    for file in files.values():
        attributes = ""
        if file.requires_python:
            attributes += f' data-requires-python="{html.escape(file.requires_python)}"'
        if file.core_metadata is not None:
            attributes += f' data-core-metadata="sha256={hashlib.sha256(file.core_metadata).hexdigest()}"'
        href = f"../../files/{project}/{file.filename}#sha256={file.sha256}"
        links.append(f'<a href="{html.escape(href)}"{attributes}>{html.escape(file.filename)}</a><br/>')
    page = (
        '<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.0">'
        f"<title>Links for {project}</title></head><body><h1>Links for {project}</h1>\n"
        + "\n".join(links)
        + "\n</body></html>\n"
    )
    return web.Response(text=page, content_type="text/html")


def _pypi_json(project: str, files: Mapping[str, PypiFile]) -> web.Response:
    entries = []
    for file in files.values():
        entry: dict[str, Any] = {
            "filename": file.filename,
            "url": f"../../files/{project}/{file.filename}",
            "hashes": {"sha256": file.sha256},
        }
        if file.requires_python:
            entry["requires-python"] = file.requires_python
        if file.core_metadata is not None:
            entry["core-metadata"] = {"sha256": hashlib.sha256(file.core_metadata).hexdigest()}
        entries.append(entry)
    body = {"meta": {"api-version": "1.0"}, "name": project, "files": entries}
    return web.Response(text=json.dumps(body), content_type=_PYPI_JSON)


_NPM_DEPENDENCY_TYPES = {
    "dependencies": "regular",
    "devDependencies": "dev",
    "peerDependencies": "peer",
    "optionalDependencies": "optional",
}


def _npm_version(
    domain: FakeDomain, query: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, Any]] | web.Response:
    """The packument and version entry a package-version call names (npm, the repository itself)."""
    repository = domain.repositories.get(query.get("repository", ""))
    if repository is None:
        return _aws_error(404, "ResourceNotFoundException", "Repository not found")
    if query.get("format") != "npm":
        return _aws_error(404, "ResourceNotFoundException", "Package not found")
    scope = f"@{query['namespace']}/" if query.get("namespace") else ""
    packument = repository.npm.get(f"{scope}{query.get('package', '')}")
    entry = (packument or {}).get("versions", {}).get(query.get("version", ""))
    if packument is None or entry is None:
        return _aws_error(404, "ResourceNotFoundException", "Package version not found")
    return packument, entry


def _version_coordinate(query: Mapping[str, str]) -> dict[str, str]:
    coordinate = {"format": query["format"], "package": query["package"], "version": query["version"]}
    if query.get("namespace"):
        coordinate["namespace"] = query["namespace"]
    return coordinate


def _aws_error(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"message": message}, status=status, headers={"x-amzn-ErrorType": code, **(headers or {})}
    )


def _s3_error(status: int, code: str, message: str) -> web.Response:
    body = f"<?xml version='1.0'?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    return web.Response(status=status, text=body, content_type="application/xml")


def _unauthorized(status: int, challenge: str) -> web.Response:
    headers = {"WWW-Authenticate": challenge} if status == 401 else {}
    return web.Response(status=status, text="unauthorized\n", headers=headers)


def _reset_connection(request: web.Request) -> None:
    """Abort with a TCP RST, then end the handler without a response."""
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    raise asyncio.CancelledError


async def _truncated(request: web.Request, response: web.Response, body: bytes) -> web.StreamResponse:
    """Announce the whole body, send half of it, close the connection."""
    stream = web.StreamResponse(status=response.status, headers=response.headers)
    stream.content_length = len(body)
    await stream.prepare(request)
    await stream.write(body[: len(body) // 2])
    if request.transport is not None:
        request.transport.close()
    return stream
