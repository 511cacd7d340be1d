"""aiohttp handlers of ``/maven/{repo}/``: a Maven 2 layout repository that ``mvn`` uses unmodified.

GET/HEAD: assets (``assets``), merged maven-metadata.xml (``documents``), and the checksum of either,
always computed by the proxy. PUT: ``mvn deploy`` (``publish``); its refusals are answered instead of
``100 Continue`` when the client asks first, so a refused jar is never uploaded. Handlers only translate
HTTP to the format's modules and back.
"""

from __future__ import annotations

from aiohttp import HttpVersion11, web

from proxy.formats.common.documents import Rendered
from proxy.formats.common.http import STALE_WARNING, error_response, no_such_repository
from proxy.formats.format import Services
from proxy.formats.maven import checksums
from proxy.formats.maven.assets import Assets
from proxy.formats.maven.documents import MetadataDocuments
from proxy.formats.maven.paths import BadPath, MavenPath, MetadataPath, parse_path
from proxy.formats.maven.publish import Deployer
from proxy.repository.errors import Refused
from proxy.store.protocols import PackageCoordinate

_ROUTE = "/maven/{repo}/{tail:.*}"


class MavenService:
    """The Maven format's state for one application: warm assets, rendered metadata, deploy checks."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.assets = Assets(services)
        self.documents = MetadataDocuments(services)
        self.deployer = Deployer(services, self.assets, self.documents)

    def add_routes(self, app: web.Application) -> None:
        app[MAVEN] = self
        app.router.add_put(_ROUTE, put, expect_handler=expect)
        app.router.add_get(_ROUTE, get)

    def invalidate(self, package: PackageCoordinate) -> None:
        self.documents.invalidate(package)
        self.assets.forget_package(package)

    def invalidate_all(self) -> None:
        self.documents.invalidate_all()
        self.assets.forget_all()


MAVEN = web.AppKey("maven", MavenService)


def _target(request: web.Request) -> tuple[MavenService, str, MavenPath]:
    maven = request.app[MAVEN]
    repository = request.match_info["repo"]
    if repository not in maven.services.repositories:
        raise no_such_repository(repository)
    if "/../" in f"{request.raw_path.split('?', 1)[0]}/":
        raise web.HTTPBadRequest(reason="'..' is not allowed in a Maven repository path")
    try:
        return maven, repository, parse_path(request.match_info["tail"])
    except BadPath as exc:
        raise web.HTTPBadRequest(reason=str(exc)) from None


async def get(request: web.Request) -> web.StreamResponse:
    maven, repository, path = _target(request)
    if isinstance(path, MetadataPath):
        return await _metadata(request, maven, repository, path)
    if path.checksum is not None:
        asset = await maven.assets.locate(repository, path)
        return _checksum_response(checksums.of_asset(asset, path.checksum))
    return await maven.assets.serve(request, repository, path)


async def _metadata(
    request: web.Request, maven: MavenService, repository: str, path: MetadataPath
) -> web.StreamResponse:
    found = await maven.documents.rendered(repository, path)
    if found is None:
        raise web.HTTPNotFound(
            reason=f"{path.document_path} is not in repository {repository} or its upstreams"
        )
    rendered, stale = found
    if path.checksum is not None:
        return _checksum_response(rendered.checksums[path.checksum])
    return _document_response(request, rendered, stale)


def _document_response(request: web.Request, rendered: Rendered, stale: bool) -> web.Response:
    headers = {"ETag": f'"{rendered.etag}"', "Vary": "Accept-Encoding", "Cache-Control": "no-cache"}
    if stale:
        headers["Warning"] = STALE_WARNING
    if rendered.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    headers["Content-Type"] = "text/xml"
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return web.Response(body=rendered.gzipped, headers=headers)
    return web.Response(body=rendered.body, headers=headers)


def _checksum_response(digest: str) -> web.Response:
    return web.Response(text=digest, content_type="text/plain")


async def put(request: web.Request) -> web.StreamResponse:
    maven, repository, path = _target(request)
    await maven.deployer.deploy(request, repository, path)
    return web.Response(status=201)


async def expect(request: web.Request) -> web.StreamResponse | None:
    """Answer ``Expect: 100-continue`` with the refusal when a deploy would be refused anyway."""
    try:
        maven, repository, path = _target(request)
        await maven.deployer.precheck(repository, path)
    except (web.HTTPException, Refused) as exc:
        return error_response(exc.status, exc.reason)
    if request.version != HttpVersion11:
        return None
    if request.headers.get("Expect", "").lower() != "100-continue":
        return error_response(417, f"unknown Expect: {request.headers.get('Expect')}")
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0  # the interim response is not part of the body's size
    return None
