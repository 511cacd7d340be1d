"""The authentication and authorization middlewares.

Control plane (``/v1/``): a SigV4-signed request is its principal's (proxy.auth.sigv4); then the
policies must allow ``codeartifact:<Operation>`` on the domain or the repository the request names.
Refusals are 403 with CodeArtifact's ``AccessDeniedException`` shape.

Data plane (``/NAME/R/`` of every registered format): the token of GetAuthorizationToken, as the
format's clients send it (``Authorization: Bearer``, or HTTP Basic with user ``aws`` and the token as
password). The format says which action a request needs (``Format.action``: ReadFromRepository,
PublishPackageVersion, PutPackageMetadata, DeletePackageVersions). No token is 401 with
``WWW-Authenticate: Basic realm=...`` (Maven then retries with its credentials, pip asks for them,
npm 11 says "Incorrect or missing password"); an expired or forged token is 401 too, challenged with
the format's ``token_challenge`` (npm's Bearer makes npm say the token "seems to be invalid"); a
valid token without the right is 403.

Either way, what ``[auth] anonymous`` allows needs no credentials at all (so a stale token on a laptop
is no obstacle), and /healthz, /readyz and /metrics are never checked. Every write is audited once its
answer is known. Nothing here logs or echoes a token, a secret or a signature.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from aiohttp import web

from proxy.api.binding import MAX_BODY, operation_of, read_body
from proxy.api.errors import ApiError, access_denied
from proxy.api.model import loaded_model
from proxy.auth.authorizer import AUTHORIZER, CALLER, READ_ACTION, Authorizer, is_read
from proxy.auth.principals import Principal
from proxy.auth.sigv4 import SignatureRefused, SignedRequest, is_signed, verify
from proxy.auth.tokens import TokenRefused

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]
REALM = 'realm="codeartifact-proxy"'


class DataPlane(Protocol):
    """What the middleware needs of a format (``proxy.formats.format.Format`` has it)."""

    @property
    def name(self) -> str: ...

    @property
    def token_challenge(self) -> str: ...

    def action(self, method: str, path: str) -> str: ...


def auth_middleware(formats: Iterable[DataPlane]) -> Middleware:
    """The middleware checking /v1 and every one of ``formats``' ``/NAME/{repo}/`` paths."""
    by_name = {f.name: f for f in formats}

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        authorizer = request.app[AUTHORIZER]
        first = request.path.split("/", 2)[1] if request.path.count("/") >= 1 else ""
        if first == "v1":
            return await _control_plane(request, handler, authorizer)
        served = by_name.get(first)
        if served is not None and request.path.count("/") >= 2:
            return await _data_plane(request, handler, authorizer, served)
        if first == "-" and not authorizer.anonymous_may(READ_ACTION) and not _from_this_host(request):
            # The daemon's own endpoints (status, the catalog export reads) show what every repository
            # holds: where anonymous reads are not allowed, only this host's operator may ask.
            reason = "this endpoint answers only on the daemon's host when [auth] allows no anonymous read"
            return web.json_response({"error": reason}, status=403)
        return await handler(request)

    return middleware


def _from_this_host(request: web.Request) -> bool:
    """A request over a unix socket or from a loopback address."""
    transport = request.transport
    if transport is None:
        return False
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family == socket.AF_UNIX:
        return True
    peer = transport.get_extra_info("peername")
    try:
        return isinstance(peer, tuple) and ipaddress.ip_address(peer[0]).is_loopback
    except ValueError:
        return False


# -- control plane --------------------------------------------------------------------------------
async def _control_plane(
    request: web.Request, handler: Handler, authorizer: Authorizer
) -> web.StreamResponse:
    operation = operation_of(request)
    if operation is None:
        return await handler(request)  # not an operation: the binding answers with its error shape
    principal: Principal | None = None
    checks = _control_checks(operation, request)
    repository = checks[0][1]
    body: bytes | None = None
    try:
        principal, body = await _signer(request, authorizer, operation)
    except SignatureRefused as exc:
        response: web.StreamResponse = access_denied(str(exc)).response()
    except ApiError as exc:
        response = exc.response()
    else:
        refused = [(a, r) for a, r in checks if not authorizer.allowed(principal, a, r)]
        if not refused:
            CALLER.set(principal)
            response = await handler(request)
        else:
            action, where = refused[0]
            response = access_denied(
                f"User: {principal.arn} is not authorized to perform: codeartifact:{action} "
                f"on resource: {authorizer.resource_arn(where)}"
            ).response()
    if not is_read(operation):
        package = request.query.get("package")
        authorizer.audit.write(
            principal=principal.name if principal else "(unauthenticated)",
            operation=operation,
            result=response.status,
            repository=repository,
            package=package if package is None else _qualified(request.query.get("namespace"), package),
            versions=_versions(body),
        )
    return response


def _control_checks(operation: str, request: web.Request) -> list[tuple[str, str | None]]:
    """What ``operation`` needs: (action, repository or None for the domain) pairs, the first one
    being the resource it changes. A copy also needs to read its source, as CodeArtifact has it."""
    query = request.query
    if operation == "CopyPackageVersions":
        return [
            (operation, query.get("destination-repository")),
            (READ_ACTION, query.get("source-repository")),
        ]
    return [(operation, query.get("repository"))]


async def _signer(
    request: web.Request, authorizer: Authorizer, operation: str
) -> tuple[Principal, bytes | None]:
    """The principal that signed ``request`` (or the anonymous one when anonymity may do this), and
    the body when it had to be read (it is put back for the handler)."""
    if not is_signed(request.headers):
        if not authorizer.anonymous_may(operation):
            raise SignatureRefused("the request is not signed; sign it with a principal's access key (SigV4)")
        if is_read(operation) or request.content_length is None or request.content_length > MAX_BODY:
            return authorizer.anonymous, None
        return authorizer.anonymous, await request.read()  # a small write's: its versions are audited
    body = await read_body(request)  # raises ApiError (too large, no length) before reading any
    op = (await loaded_model()).operation_model(operation)
    signed = SignedRequest(
        method=request.method,
        raw_path=request.raw_path,
        headers=request.headers,
        body=body,
        unsigned_body_allowed=op.auth_type == "v4-unsigned-body",
    )
    try:
        return verify(signed, authorizer.principals), body
    except SignatureRefused:
        key = _access_key(request.headers.get("Authorization", ""))
        # The laptop default accepts the aws CLI with whatever dummy keys it has.
        if authorizer.anonymous_mode == "all" and authorizer.principals.by_access_key(key) is None:
            return authorizer.anonymous, body
        raise


def _access_key(authorization: str) -> str:
    _, _, rest = authorization.partition("Credential=")
    return rest.split("/", 1)[0]


def _versions(body: bytes | None) -> list[str] | None:
    """The package versions a JSON body names (DeletePackageVersions...), for the audit log."""
    try:
        doc = json.loads(body) if body and body.strip() else {}
    except ValueError:
        return None
    if isinstance(doc, dict) and isinstance(doc.get("versions"), list):
        return [str(v) for v in doc["versions"]][:100]
    return None


def _qualified(namespace: str | None, package: str) -> str:
    return f"{namespace}/{package}" if namespace else package


# -- data plane -----------------------------------------------------------------------------------
async def _data_plane(
    request: web.Request, handler: Handler, authorizer: Authorizer, served: DataPlane
) -> web.StreamResponse:
    _, fmt, repository, *rest = request.path.split("/", 3)
    tail = rest[0] if rest else ""
    action = served.action(request.method, tail)
    principal, response = _data_plane_caller(request, authorizer, action, repository, served.token_challenge)
    if response is None:
        CALLER.set(principal)
        response = await handler(request)
    if action != READ_ACTION:
        authorizer.audit.write(
            principal=principal.name if principal else "(unauthenticated)",
            operation=action,
            result=response.status,
            repository=repository,
            package=f"{fmt}:{tail}" if tail else fmt,
        )
    return response


def _data_plane_caller(
    request: web.Request, authorizer: Authorizer, action: str, repository: str, scheme: str
) -> tuple[Principal | None, web.Response | None]:
    """The caller, and the refusal to answer with instead of the handler's answer (None: go on).
    A refused token is challenged with ``scheme``, the format's; no token at all with Basic."""
    if authorizer.anonymous_may(action):
        return authorizer.anonymous, None
    token = _token_of(request.headers.get("Authorization", ""))
    if token is None:
        reason = "this repository needs an authorization token (GetAuthorizationToken)"
        return None, _unauthorized(reason, "Basic")
    try:
        claims = authorizer.tokens.verify(token)
    except TokenRefused as exc:
        return None, _unauthorized(str(exc), scheme)
    principal = authorizer.principals.by_name(claims.principal)
    if principal is None:
        return None, _unauthorized("the token's principal is no longer configured", scheme)
    if not authorizer.allowed(principal, action, repository):
        reason = (
            f"{principal.arn} is not authorized to perform codeartifact:{action} "
            f"on {authorizer.resource_arn(repository)}"
        )
        return principal, web.json_response({"error": reason}, status=403)
    return principal, None


def _token_of(authorization: str) -> str | None:
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return value
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return ""
        _, _, password = decoded.partition(":")
        return password
    return None


def _unauthorized(reason: str, scheme: str) -> web.Response:
    return web.json_response({"error": reason}, status=401, headers={"WWW-Authenticate": f"{scheme} {REALM}"})
