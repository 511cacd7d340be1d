"""aiohttp handlers of ``/maven/{repo}/``: a Maven 2 layout repository that ``mvn`` uses unmodified.

GET/HEAD: assets (``assets``), merged maven-metadata.xml (``documents``), and the checksum of either,
always computed by the proxy. PUT: ``mvn deploy`` (``publish``); its refusals are answered instead of
``100 Continue`` when the client asks first, so a refused jar is never uploaded. Handlers only translate
HTTP to the format's modules and back.
"""

from __future__ import annotations

from aiohttp import HttpVersion11, web

from proxy.daemon import Daemon
from proxy.formats.maven import checksums
from proxy.formats.maven.assets import Assets
from proxy.formats.maven.documents import MetadataDocuments, Rendered
from proxy.formats.maven.paths import BadPath, MavenPath, MetadataPath, parse_path
from proxy.formats.maven.publish import Deployer, DeployRefused
from proxy.repository.fetch import UpstreamInvalid
from proxy.repository.resolve import NoUpstreamAnswered
from proxy.server.context import DAEMON
from proxy.server.errors import error_response
from proxy.store.catalog import PackageCoordinate
from proxy.upstream.base import UpstreamUnavailable

_STALE_WARNING = '110 - "Response is Stale"'
_ROUTE = "/maven/{repo}/{tail:.*}"


class MavenFormat:
    """The Maven format's state for one application: warm assets, rendered metadata, deploy checks."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.assets = Assets(daemon)
        self.documents = MetadataDocuments(daemon)
        self.deployer = Deployer(daemon, self.assets, self.documents)

    def package_changed(self, coordinate: PackageCoordinate) -> None:
        """A /v1 operation changed the artifact's versions or statuses: forget what was merged or located."""
        self.documents.invalidate()
        self.assets._known.clear()


MAVEN = web.AppKey("maven", MavenFormat)


def add_routes(app: web.Application) -> None:
    app[MAVEN] = MavenFormat(app[DAEMON])
    app.router.add_put(_ROUTE, put, expect_handler=expect)
    app.router.add_get(_ROUTE, get)


def _target(request: web.Request) -> tuple[MavenFormat, str, MavenPath]:
    maven = request.app[MAVEN]
    repository = request.match_info["repo"]
    if repository not in maven.daemon.config.repositories:
        raise web.HTTPNotFound(reason=f"no repository named {repository!r} is configured")
    if "/../" in f"{request.raw_path.split('?', 1)[0]}/":
        raise web.HTTPBadRequest(reason="'..' is not allowed in a Maven repository path")
    try:
        return maven, repository, parse_path(request.match_info["tail"])
    except BadPath as exc:
        raise web.HTTPBadRequest(reason=str(exc)) from None


async def get(request: web.Request) -> web.StreamResponse:
    maven, repository, path = _target(request)
    try:
        if isinstance(path, MetadataPath):
            return await _metadata(request, maven, repository, path)
        if path.checksum is not None:
            asset = await maven.assets.locate(repository, path)
            return _checksum_response(checksums.of_asset(asset, path.checksum))
        return await maven.assets.serve(request, repository, path)
    except (NoUpstreamAnswered, UpstreamUnavailable, UpstreamInvalid) as exc:
        raise web.HTTPBadGateway(reason=str(exc)) from None


async def _metadata(
    request: web.Request, maven: MavenFormat, repository: str, path: MetadataPath
) -> web.StreamResponse:
    rendered = await maven.documents.rendered(repository, path)
    if rendered is None:
        raise web.HTTPNotFound(
            reason=f"{path.document_path} is not in repository {repository} or its upstreams"
        )
    if path.checksum is not None:
        return _checksum_response(rendered.checksums[path.checksum])
    return _document_response(request, rendered)


def _document_response(request: web.Request, rendered: Rendered) -> web.Response:
    headers = {"ETag": f'"{rendered.etag}"', "Vary": "Accept-Encoding", "Cache-Control": "no-cache"}
    if rendered.stale:
        headers["Warning"] = _STALE_WARNING
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
    try:
        await maven.deployer.deploy(request, repository, path)
    except DeployRefused as exc:
        return error_response(exc.status, exc.reason)
    return web.Response(status=201)


async def expect(request: web.Request) -> web.StreamResponse | None:
    """Answer ``Expect: 100-continue`` with the refusal when a deploy would be refused anyway."""
    try:
        maven, repository, path = _target(request)
        await maven.deployer.precheck(repository, path)
    except (web.HTTPException, DeployRefused) as exc:
        return error_response(exc.status, exc.reason)
    if request.version != HttpVersion11:
        return None
    if request.headers.get("Expect", "").lower() != "100-continue":
        return error_response(417, f"unknown Expect: {request.headers.get('Expect')}")
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0  # the interim response is not part of the body's size
    return None
