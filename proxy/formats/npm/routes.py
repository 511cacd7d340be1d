"""aiohttp handlers of ``/npm/{repo}/``: an npm registry root the real ``npm`` uses unmodified.

One route takes every path under the prefix; ``names.parse_path`` says what it asks for (the decoded
path, so ``@scope%2fname`` and ``@scope/name`` are one), and a table picks the handler by that and the
method. Handlers only translate HTTP to the format's modules and back.

Endpoints CodeArtifact does not offer answer at once and cleanly, so ``npm install`` never waits on
them: audit (200 ``{}``: nothing known), search (no results), whoami.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from proxy.formats.common.documents import Entry
from proxy.formats.common.http import STALE_WARNING, base_url, no_such_repository
from proxy.formats.format import Services
from proxy.formats.npm.metadata import ABBREVIATED_TYPE, Packument, dumps, tarball_prefix, version_document
from proxy.formats.npm.names import (
    InvalidName,
    PackageName,
    Target,
    UnknownPath,
    full_name,
    parse_name,
    parse_path,
)
from proxy.formats.npm.packuments import Packuments
from proxy.formats.npm.publish import publish, set_dist_tag
from proxy.formats.npm.tarballs import Tarballs
from proxy.store.protocols import PackageCoordinate


class NpmService:
    """The npm format's state for one application: merged packuments and the warm tarball map."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.packuments = Packuments(services)
        self.tarballs = Tarballs(services, self.packuments)

    def add_routes(self, app: web.Application) -> None:
        app[NPM] = self
        app.router.add_route("*", "/npm/{repo}/{tail:.*}", dispatch)

    def invalidate(self, package: PackageCoordinate) -> None:
        self.packuments.invalidate(full_name(package))
        self.tarballs.forget_package(full_name(package))

    def invalidate_all(self) -> None:
        self.packuments.invalidate_all()
        self.tarballs.forget_all()

    def base_url(self, request: web.Request) -> str:
        return base_url(request, self.services.public_url)


NPM = web.AppKey("npm", NpmService)
DIST_TAG_BODY = 1024  # the body of a dist-tag PUT: one version, as a JSON string
Handler = Callable[[web.Request, NpmService, str, Target], Awaitable[web.StreamResponse]]


async def dispatch(request: web.Request) -> web.StreamResponse:
    npm = request.app[NPM]
    repository = request.match_info["repo"]
    if repository not in npm.services.repositories:
        raise no_such_repository(repository)
    try:
        target = parse_path(request.match_info["tail"])
    except UnknownPath as exc:
        raise web.HTTPNotFound(reason=str(exc)) from None
    except InvalidName as exc:
        raise web.HTTPBadRequest(reason=str(exc)) from None
    method = "GET" if request.method == "HEAD" else request.method
    handler = _HANDLERS.get((target.kind, method))
    if handler is None:
        allowed = [m for k, m in _HANDLERS if k == target.kind]
        raise web.HTTPMethodNotAllowed(
            request.method,
            allowed,
            reason=f"{request.method} is not supported here, only {', '.join(allowed)}",
        )
    return await handler(request, npm, repository, target)


def _package(target: Target) -> PackageName:
    assert target.package is not None, "the path parser gives every package path its package"
    return target.package


async def _found(npm: NpmService, repository: str, package: PackageName) -> Entry[Packument]:
    entry = await npm.packuments.lookup(repository, package)
    if not entry.found:
        raise web.HTTPNotFound(
            reason=f"package {package.full} is not in repository {repository} or its upstreams"
        )
    return entry


def _json(doc: object, status: int = 200) -> web.Response:
    return web.Response(body=dumps(doc), status=status, content_type="application/json")


# -- reading ------------------------------------------------------------------------------------
async def get_packument(
    request: web.Request, npm: NpmService, repository: str, target: Target
) -> web.StreamResponse:
    package = _package(target)
    entry = await _found(npm, repository, package)
    abbreviated = ABBREVIATED_TYPE in request.headers.get("Accept", "")
    rendered = await npm.packuments.rendered(entry, repository, package, npm.base_url(request), abbreviated)
    gzipped = "gzip" in request.headers.get("Accept-Encoding", "")
    etag = f'"{rendered.etag}-gz"' if gzipped else f'"{rendered.etag}"'
    headers = {"ETag": etag, "Vary": "Accept, Accept-Encoding", "Cache-Control": "no-cache"}
    if entry.stale:
        headers["Warning"] = STALE_WARNING
    if rendered.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    headers["Content-Type"] = rendered.content_type
    if gzipped:
        headers["Content-Encoding"] = "gzip"
        return web.Response(body=rendered.gzipped, headers=headers)
    return web.Response(body=rendered.body, headers=headers)


async def get_version(
    request: web.Request, npm: NpmService, repository: str, target: Target
) -> web.StreamResponse:
    package = _package(target)
    packument = await npm.packuments.complete(await _found(npm, repository, package))
    assert packument is not None
    version = packument.version_for(target.arg)
    if version is None:
        raise web.HTTPNotFound(reason=f"package {package.full} has no version or dist-tag {target.arg!r}")
    return _json(
        version_document(packument, version, tarball_prefix(npm.base_url(request), repository, package))
    )


async def get_tarball(
    request: web.Request, npm: NpmService, repository: str, target: Target
) -> web.StreamResponse:
    return await npm.tarballs.serve(request, repository, _package(target), target.arg)


# -- publishing ---------------------------------------------------------------------------------
def _check_publishable(npm: NpmService, repository: str) -> None:
    if not npm.services.repositories[repository].publish:
        raise web.HTTPForbidden(
            reason=f"repository {repository} does not accept publishing (publish = false)"
        )


async def put_packument(
    request: web.Request, npm: NpmService, repository: str, target: Target
) -> web.StreamResponse:
    _check_publishable(npm, repository)
    try:
        package = parse_name(_package(target).full, new=True)
    except InvalidName as exc:
        raise web.HTTPBadRequest(reason=str(exc)) from None
    services = npm.services
    try:  # the body streams into the store: a publish is never held whole
        await publish(
            services.catalog, services.blobs, repository, package, request.content, request.client_max_size
        )
    finally:
        npm.packuments.invalidate(package.full)
    return _json({"ok": True, "id": package.full}, status=201)


async def get_dist_tags(
    request: web.Request, npm: NpmService, repository: str, target: Target
) -> web.StreamResponse:
    package = _package(target)
    packument = await npm.packuments.value(await _found(npm, repository, package))
    assert packument is not None
    tags = packument.dist_tags
    if not target.arg:
        return _json(tags)
    if target.arg not in tags:
        raise web.HTTPNotFound(reason=f"package {package.full} has no dist-tag {target.arg!r}")
    return _json(tags[target.arg])


async def put_dist_tag(
    request: web.Request, npm: NpmService, repository: str, target: Target
) -> web.StreamResponse:
    _check_publishable(npm, repository)
    if not target.arg:
        raise web.HTTPBadRequest(reason="which dist-tag? PUT /-/package/{name}/dist-tags/{tag}")
    body = await request.content.read(DIST_TAG_BODY + 1)
    if len(body) > DIST_TAG_BODY:
        raise web.HTTPRequestEntityTooLarge(
            max_size=DIST_TAG_BODY,
            actual_size=len(body),
            reason=f"a dist-tag body is a version as a JSON string, at most {DIST_TAG_BODY} bytes",
        )
    try:
        version = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        version = None
    if not isinstance(version, str):
        raise web.HTTPBadRequest(reason="the body must be the version as a JSON string")
    return await _change_tag(npm, repository, _package(target), target.arg, version)


async def delete_dist_tag(
    request: web.Request, npm: NpmService, repository: str, target: Target
) -> web.StreamResponse:
    _check_publishable(npm, repository)
    if not target.arg:
        raise web.HTTPBadRequest(reason="which dist-tag? DELETE /-/package/{name}/dist-tags/{tag}")
    return await _change_tag(npm, repository, _package(target), target.arg, None)


async def _change_tag(
    npm: NpmService, repository: str, package: PackageName, tag: str, version: str | None
) -> web.StreamResponse:
    try:
        await set_dist_tag(npm.services.catalog, repository, package, tag, version)
    finally:
        npm.packuments.invalidate(package.full)
    return _json({"ok": True}, status=201 if version else 200)


# -- endpoints CodeArtifact does not offer ------------------------------------------------------
async def ping(request: web.Request, npm: NpmService, repository: str, target: Target) -> web.StreamResponse:
    return _json({})


async def whoami(
    request: web.Request, npm: NpmService, repository: str, target: Target
) -> web.StreamResponse:
    return _json({"username": "anonymous"})


async def search(
    request: web.Request, npm: NpmService, repository: str, target: Target
) -> web.StreamResponse:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return _json({"objects": [], "total": 0, "time": now})


async def audit(request: web.Request, npm: NpmService, repository: str, target: Target) -> web.StreamResponse:
    return _json({})


_HANDLERS: dict[tuple[str, str], Handler] = {
    ("packument", "GET"): get_packument,
    ("packument", "PUT"): put_packument,
    ("version", "GET"): get_version,
    ("tarball", "GET"): get_tarball,
    ("dist-tags", "GET"): get_dist_tags,
    ("dist-tags", "PUT"): put_dist_tag,
    ("dist-tags", "DELETE"): delete_dist_tag,
    ("ping", "GET"): ping,
    ("whoami", "GET"): whoami,
    ("search", "GET"): search,
    ("audit", "POST"): audit,
}
