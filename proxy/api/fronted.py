"""Fronted domains on /v1: a request whose ``domain`` query parameter names a ``[codeartifact.X]``
domain is answered by CodeArtifact, not by the proxy's own domain.

Read operations (List*, Describe*, GetPackageVersionReadme, GetPackageVersionAsset; so also
ListPackageVersionDependencies) are forwarded,
signed by botocore with the proxy's own credentials (the credential chain of that domain's token
provider), so a build agent with no AWS credentials can look into the real domain. Everything else is a
write and refused with AccessDeniedException, unless ``allow_writes = true`` on that
``[codeartifact.X]``. GetAuthorizationToken is never forwarded: it would hand out the proxy's access.

The layer sits before every local handler (a middleware on /v1): the request is parsed and checked by
the service model as a local one would be, the call goes through botocore (off the event loop), and
botocore's parsed answer is serialised back by the same model; CodeArtifact's errors keep their code,
message and status. Concurrency: botocore clients are thread-safe; one per fronted domain.

ListDomains names no domain: ``fronted_summaries`` asks each fronted CodeArtifact for its domains (the
proxy's own domain is merged in by ``proxy.api.domains``). A fronted CodeArtifact that cannot be asked
is left out of the listing with a warning in the log, so one unreachable domain does not hide the
others.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web
from botocore import xform_name
from botocore.exceptions import BotoCoreError, ClientError

from proxy.api.binding import parse_input, serialise_output
from proxy.api.errors import ApiError, access_denied
from proxy.api.model import service_model
from proxy.api.services import API
from proxy.codeartifact.domain import DomainClient, classify
from proxy.config.model import CodeArtifactDomain

if TYPE_CHECKING:
    from botocore.model import OperationModel

log = logging.getLogger(__name__)

READS = frozenset({"GetPackageVersionReadme", "GetPackageVersionAsset"})
NEVER_FORWARDED = frozenset({"GetAuthorizationToken"})
CHUNK = 256 * 1024
_BODY_HEADERS = ("content-type", "content-length")


class FrontedDomains:
    """The botocore clients of the fronted domains, by CodeArtifact domain name."""

    def __init__(self, domains: Mapping[str, CodeArtifactDomain]) -> None:
        self._clients = {d.domain: DomainClient(d) for d in domains.values()}

    def get(self, domain: str | None) -> DomainClient | None:
        return self._clients.get(domain or "")

    def clients(self) -> list[DomainClient]:
        return list(self._clients.values())

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


FRONTED = web.AppKey("fronted_domains", FrontedDomains)


def install(app: web.Application) -> None:
    """Answer /v1 requests for fronted domains in ``app`` (before its local handlers)."""
    domains = app[API].codeartifact
    if not domains:
        return
    app[FRONTED] = FrontedDomains(domains)

    async def close(app: web.Application) -> None:
        app[FRONTED].close()

    app.on_cleanup.append(close)


async def fronted_summaries(app: web.Application) -> list[dict[str, Any]]:
    """The DomainSummary of every fronted domain that its CodeArtifact lists, in botocore's parsed form;
    a domain whose CodeArtifact cannot be asked is left out (logged)."""
    fronted = app.get(FRONTED)
    if fronted is None:
        return []
    found = await asyncio.gather(*(_summary_of(client) for client in fronted.clients()))
    return [summary for summary in found if summary is not None]


async def _summary_of(client: DomainClient) -> dict[str, Any] | None:
    """The fronted domain's summary from CodeArtifact's ListDomains (every page), or None."""
    domain = client.config
    params: dict[str, Any] = {}
    try:
        while True:
            result = await asyncio.to_thread(client.call_as_is, "list_domains", params)
            for summary in result.get("domains", []):
                if summary.get("name") == domain.domain and summary.get("owner") == domain.domain_owner:
                    return summary
            if not result.get("nextToken"):
                break
            params = {"nextToken": result["nextToken"]}
    except (BotoCoreError, ClientError) as exc:
        reason, _detail = classify(exc)
        log.warning(
            "ListDomains: [codeartifact.%s] (domain %s) left out of the listing: %s",
            domain.name,
            domain.domain,
            reason,
        )
        return None
    log.warning(
        "ListDomains: [codeartifact.%s]: CodeArtifact does not list domain %s of owner %s; left out",
        domain.name,
        domain.domain,
        domain.domain_owner,
    )
    return None


def is_read(operation: str) -> bool:
    return operation.startswith(("List", "Describe")) or operation in READS


async def answer(request: web.Request, handler: Any) -> web.StreamResponse:
    """A /v1 request: forwarded when it names a fronted domain, else ``handler``'s."""
    fronted = request.app.get(FRONTED)
    client = fronted.get(request.query.get("domain")) if fronted is not None else None
    op = _operation(request) if client is not None else None
    if client is None or op is None:
        return await handler(request)
    try:
        return await forward(request, op, client)
    except ApiError as exc:
        return exc.response()


def _operation(request: web.Request) -> OperationModel | None:
    """The model's operation for the request's method and path."""
    return _operations().get((request.method, request.path))


@functools.cache
def _operations() -> dict[tuple[str, str], OperationModel]:
    model = service_model()
    ops = (model.operation_model(name) for name in model.operation_names)
    return {(op.http["method"], op.http["requestUri"].split("?")[0]): op for op in ops}


async def forward(request: web.Request, op: OperationModel, client: DomainClient) -> web.StreamResponse:
    """Answer ``op`` from CodeArtifact. Raises ApiError for a refused write or a malformed request."""
    domain = client.config
    if op.name in NEVER_FORWARDED:
        raise access_denied(
            f"{op.name} on domain {domain.domain} is not forwarded: it would hand out the proxy's access"
        )
    if not is_read(op.name) and not domain.allow_writes:
        raise access_denied(
            f"{op.name} on domain {domain.domain} is refused: this proxy forwards only read operations "
            f"(List*, Describe*, GetPackageVersionReadme, GetPackageVersionAsset) unless "
            f"allow_writes = true on [codeartifact.{domain.name}]"
        )
    params = await parse_input(op, request)
    for name, value in list(params.items()):
        if isinstance(value, web.Request):  # a streamed payload (an asset being published)
            params[name] = await value.read()
    if "domainOwner" in op.input_shape.members:
        params.setdefault("domainOwner", domain.domain_owner)
    try:
        result = await asyncio.to_thread(client.call_as_is, xform_name(op.name), params)
    except ClientError as exc:
        return _error_response(exc)
    except BotoCoreError as exc:
        reason, _detail = classify(exc)
        log.warning("/v1 %s for fronted domain %s failed: %s", op.name, domain.name, reason)
        return _bad_gateway(f"CodeArtifact domain {domain.domain} could not be asked: {reason}")
    result.pop("ResponseMetadata", None)
    payload = op.output_shape.serialization.get("payload") if op.output_shape else None
    if payload and payload in result:
        return await _stream(request, op, result, payload)
    return serialise_output(op, result)


def _error_response(exc: ClientError) -> web.Response:
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "")
    message = str(error.get("Message") or code)
    if code in {shape.name for shape in service_model().error_shapes}:
        # The shape's members: botocore puts body ones in "Error", header ones (ThrottlingException's
        # retryAfterSeconds, from Retry-After) at the top of the response.
        members = set(service_model().shape_for(code).members) - {"message"}
        fields = {k: v for k in members if (v := error.get(k, exc.response.get(k))) is not None}
        return ApiError(code, message, **fields).response()
    return _bad_gateway(f"CodeArtifact answered {code or 'an unknown error'}: {message}")


def _bad_gateway(message: str) -> web.Response:
    return web.json_response(
        {"message": message}, status=502, headers={"x-amzn-ErrorType": "InternalServerException"}
    )


async def _stream(
    request: web.Request, op: OperationModel, result: dict[str, Any], payload: str
) -> web.StreamResponse:
    """Send a streamed output member (an asset's bytes) with the output's header members."""
    body = result.pop(payload)
    headers = serialise_output(op, result).headers
    response = web.StreamResponse(
        headers={k: v for k, v in headers.items() if k.lower() not in _BODY_HEADERS}
    )
    response.content_type = "application/octet-stream"
    await response.prepare(request)
    try:
        while chunk := await asyncio.to_thread(body.read, CHUNK):
            await response.write(chunk)
    finally:
        body.close()
    await response.write_eof()
    return response
