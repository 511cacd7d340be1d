"""The PyPI endpoints (aiohttp handlers only):

    GET  /pypi/{repo}/simple/                              project list (PEP 503 HTML / PEP 691 JSON)
    GET  /pypi/{repo}/simple/{project}/                    project page; a non-normalized name -> 301
    GET  /pypi/{repo}/files/{project}/{filename}           a distribution file
    GET  /pypi/{repo}/files/{project}/{filename}.metadata  its core metadata (PEP 658)
    POST /pypi/{repo}/                                     twine upload (legacy upload API)

Pages are negotiated by ``Accept`` (406 when nothing offered is acceptable), carry an ETag (304 on
``If-None-Match``), are sent gzipped to clients that accept it (compressed once per rendering), and
say ``Warning: 110`` when built from an upstream page served past its freshness.
"""

from __future__ import annotations

from aiohttp import web

from proxy.formats.common.documents import Rendered
from proxy.formats.common.http import STALE_WARNING, base_url
from proxy.formats.format import Services
from proxy.formats.pypi.files import Files
from proxy.formats.pypi.names import normalize
from proxy.formats.pypi.negotiate import HTML_V1, JSON_V1, TEXT_HTML, Choice, choose
from proxy.formats.pypi.project import ProjectViews
from proxy.formats.pypi.simple import render_index
from proxy.formats.pypi.upload import publish
from proxy.repository.errors import Refused
from proxy.store.protocols import PackageCoordinate
from proxy.store.repositories import RepositoryRecord


class PypiService:
    """The PyPI format's state for one application: project views and file serving."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.views = ProjectViews(services)
        self.files = Files(services, self.views)

    def add_routes(self, app: web.Application) -> None:
        app[PYPI] = self
        for method, path, handler in _ROUTES:
            # add_get also answers HEAD.
            add = app.router.add_get if method == "GET" else app.router.add_post
            add(path, handler)

    def invalidate(self, package: PackageCoordinate) -> None:
        self.views.invalidate(package.name)
        self.files.forget_project(package.name)

    def invalidate_all(self) -> None:
        self.views.invalidate_all()
        self.files.forget_all()


PYPI = web.AppKey("pypi", PypiService)


def _base_url(request: web.Request) -> str:
    return base_url(request, request.app[PYPI].services.public_url)


def _repository(request: web.Request) -> RepositoryRecord:
    name = request.match_info["repo"]
    repository = request.app[PYPI].services.repositories.get(name)
    if repository is None:
        raise web.HTTPNotFound(reason=f"repository {name} is not configured")
    return repository


def _choice(request: web.Request) -> Choice:
    choice = choose(request.headers.get("Accept"))
    if choice is None:
        raise web.HTTPNotAcceptable(reason=f"this index serves {JSON_V1}, {HTML_V1} and {TEXT_HTML}")
    return choice


def _etag_matches(header: str, etag: str) -> bool:
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or f'"{etag}"' in tags


def _page_response(
    request: web.Request, rendered: Rendered, content_type: str, *, stale: bool
) -> web.Response:
    gzipped = "gzip" in request.headers.get("Accept-Encoding", "")
    etag = rendered.etag + ("-gz" if gzipped else "")
    headers = {
        "ETag": f'"{etag}"',
        "Vary": "Accept, Accept-Encoding",
        "Cache-Control": "max-age=0, must-revalidate",
    }
    if stale:
        headers["Warning"] = STALE_WARNING
    if _etag_matches(request.headers.get("If-None-Match", ""), etag):
        return web.Response(status=304, headers=headers)
    headers["Content-Type"] = content_type
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=rendered.gzipped if gzipped else rendered.body, headers=headers)


async def add_slash(request: web.Request) -> web.StreamResponse:
    repository = _repository(request)
    raise web.HTTPMovedPermanently(location=f"{_base_url(request)}pypi/{repository.name}/simple/")


async def project_list(request: web.Request) -> web.StreamResponse:
    """Every project a local repository of the chain publishes or has cached. Upstream projects never
    fetched through the proxy are not listed: listing them would mean fetching every upstream's full
    index, and pip never asks for this page anyway."""
    repository = _repository(request)
    choice = _choice(request)
    services = request.app[PYPI].services
    places = [p.name for p in services.chain.places(repository.name) if p.is_repository]
    projects = {
        c.name for place in places for c in await services.catalog.packages(place) if c.format == "pypi"
    }
    rendered = Rendered.of(render_index(projects, choice.representation), choice.content_type)
    return _page_response(request, rendered, choice.content_type, stale=False)


async def project_redirect(request: web.Request) -> web.StreamResponse:
    repository = _repository(request)
    project = normalize(request.match_info["project"])
    raise web.HTTPMovedPermanently(location=f"{_base_url(request)}pypi/{repository.name}/simple/{project}/")


async def project_page(request: web.Request) -> web.StreamResponse:
    repository = _repository(request)
    requested = request.match_info["project"]
    project = normalize(requested)
    if requested != project:
        raise web.HTTPMovedPermanently(
            location=f"{_base_url(request)}pypi/{repository.name}/simple/{project}/"
        )
    choice = _choice(request)
    views = request.app[PYPI].views
    view = await views.get(repository.name, project)
    if not view.found:
        raise web.HTTPNotFound(
            reason=f"project {project} not found in repository {repository.name} or its upstreams"
        )
    rendered = await views.rendered(repository.name, project, view, _base_url(request), choice.representation)
    return _page_response(request, rendered, choice.content_type, stale=view.stale)


async def file(request: web.Request) -> web.StreamResponse:
    repository = _repository(request)
    project = normalize(request.match_info["project"])
    return await request.app[PYPI].files.serve(
        request, repository.name, project, request.match_info["filename"]
    )


async def upload(request: web.Request) -> web.StreamResponse:
    repository = _repository(request)
    if not repository.publish:
        return _upload_refusal(403, f"repository {repository.name} does not take uploads (publish = false)")
    state = request.app[PYPI]
    try:
        published = await publish(state.services.catalog, state.services.blobs, repository.name, request)
    except Refused as exc:
        return _upload_refusal(exc.status, exc.reason)
    state.files.remember(repository.name, published.project, published.file)
    state.views.invalidate(published.project)
    return web.Response(text="OK\n")


def _upload_refusal(status: int, reason: str) -> web.Response:
    # twine shows the status line's reason phrase, where PyPI puts the message too.
    phrase = " ".join(reason.split()).encode("ascii", "replace").decode()
    return web.json_response({"error": reason}, status=status, reason=phrase)


_ROUTES = (
    ("GET", "/pypi/{repo}/simple/", project_list),
    ("GET", "/pypi/{repo}/simple", add_slash),
    ("GET", "/pypi/{repo}/simple/{project}/", project_page),
    ("GET", "/pypi/{repo}/simple/{project}", project_redirect),
    ("GET", "/pypi/{repo}/files/{project}/{filename}", file),
    ("POST", "/pypi/{repo}/", upload),
    ("POST", "/pypi/{repo}", upload),
)
