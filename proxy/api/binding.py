"""Binding handlers to the service model: each ``@operation`` handler gets its input as the model's
member names (query string, headers and JSON body parsed and checked against the shapes) and returns
its output as a dict of member names, serialised by the model (timestamps as epoch seconds, header
members as headers). A handler that streams (GetPackageVersionAsset) returns a ``web.StreamResponse``.

Routes: one aiohttp route per implemented operation, named after it, so middlewares can tell the
operation of a request by ``operation_of(request)`` before the handler runs.
"""

from __future__ import annotations

import datetime
import json
import re
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from aiohttp import web

from proxy.api.errors import ApiError, validation
from proxy.api.model import loaded_model, operation_routes

if TYPE_CHECKING:
    from botocore.model import OperationModel, Shape, StructureShape

MAX_BODY = 1024 * 1024  # a /v1 JSON body (policies are at most a few KB)


@dataclass(frozen=True)
class Call:
    """One /v1 request as its handler sees it."""

    request: web.Request
    operation: str
    params: dict[str, Any]


Handler = Callable[[Call], Awaitable[dict[str, Any] | web.StreamResponse]]
_HANDLERS: dict[str, Handler] = {}


def operation(name: str) -> Callable[[Handler], Handler]:
    """Register the handler of the model's operation ``name`` (a name the model lacks fails at start,
    in ``add_routes``)."""

    def register(handler: Handler) -> Handler:
        _HANDLERS[name] = handler
        return handler

    return register


def operation_of(request: web.Request) -> str | None:
    """The API operation a matched /v1 request is for, or None."""
    route = request.match_info.route
    name = getattr(route, "name", None)
    return name if name in _HANDLERS else None


def add_routes(app: web.Application) -> None:
    """Route every registered operation; other /v1 paths answer with CodeArtifact's error shape. The
    service model is loaded by the first request that needs it (``proxy.api.model``)."""
    routes = operation_routes()
    for name, handler in sorted(_HANDLERS.items()):
        method, uri = routes[name]
        app.router.add_route(method, uri, _endpoint(name, handler), name=name)
    app.router.add_route("*", "/v1/{tail:.*}", _unsupported)


async def _unsupported(request: web.Request) -> web.Response:
    return validation(
        f"{request.method} {request.path} is not an operation this proxy serves", "UNKNOWN_OPERATION"
    ).response()


def _endpoint(name: str, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        op = (await loaded_model()).operation_model(name)
        try:
            params = await parse_input(op, request)
            result = await handler(Call(request, op.name, params))
        except ApiError as exc:
            return exc.response()
        if isinstance(result, web.StreamResponse):
            return result
        return serialise_output(op, result)

    return endpoint


# -- input ----------------------------------------------------------------------------------------
async def parse_input(op: OperationModel, request: web.Request) -> dict[str, Any]:
    shape = op.input_shape
    if shape is None:
        return {}
    params: dict[str, Any] = {}
    body: dict[str, Any] | None = None
    payload = shape.serialization.get("payload")
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        if location == "querystring":
            values = request.query.getall(wire, [])
            if values:
                params[name] = _coerce(name, member, values if member.type_name == "list" else values[0])
        elif location == "header":
            if wire in request.headers:
                params[name] = _coerce(name, member, request.headers[wire])
        elif name == payload:
            params[name] = request  # a streamed payload: the handler reads it
        else:
            if body is None:
                body = await _json_body(request)
            if name in body:
                params[name] = _check(name, member, body[name])
    for name in shape.required_members:
        if name not in params:
            raise validation(f"{name} is required")
    return params


async def read_body(request: web.Request) -> bytes:
    """The request's body, read once (aiohttp keeps it, so a middleware that checked its signature and
    the handler read the same bytes). Refused past ``MAX_BODY`` or without a Content-Length, before
    any of it is read: a /v1 body is a small JSON document."""
    if not request.body_exists:
        return b""
    if request.content_length is None:
        raise validation("a request body needs a Content-Length")
    if request.content_length > MAX_BODY:
        raise validation(f"request body larger than {MAX_BODY} bytes")
    return await request.read()


async def _json_body(request: web.Request) -> dict[str, Any]:
    raw = await read_body(request)
    if not raw.strip():
        return {}
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        raise validation("request body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise validation("request body must be a JSON object")
    return doc


def _coerce(name: str, shape: Shape, raw: str | list[str]) -> Any:
    """A query-string or header value of the member's type."""
    if shape.type_name == "list":
        return [_coerce(name, shape.member, item) for item in raw]  # type: ignore[attr-defined]
    assert isinstance(raw, str)
    if shape.type_name in ("integer", "long"):
        try:
            return _check(name, shape, int(raw))
        except ValueError:
            raise validation(f"{name} must be an integer, not {raw!r}") from None
    if shape.type_name == "boolean":
        if raw.lower() not in ("true", "false"):
            raise validation(f"{name} must be true or false, not {raw!r}")
        return raw.lower() == "true"
    return _check(name, shape, raw)


def _check(name: str, shape: Shape, value: Any) -> Any:
    """``value`` checked against the shape's type, enum, length, range and pattern."""
    kind = shape.type_name
    meta = shape.metadata
    if kind == "string":
        if not isinstance(value, str):
            raise validation(f"{name} must be a string")
        if "enum" in meta and value not in meta["enum"]:
            raise validation(f"{name} must be one of {', '.join(meta['enum'])}, not {value!r}")
        if len(value) < meta.get("min", 0) or len(value) > meta.get("max", len(value)):
            raise validation(f"{name} must be {meta.get('min', 0)} to {meta.get('max', '-')} characters long")
        if "pattern" in meta and not _matches(meta["pattern"], value):
            raise validation(f"{name} {value!r} does not match {meta['pattern']}")
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise validation(f"{name} must be an integer")
        if value < meta.get("min", value) or value > meta.get("max", value):
            raise validation(f"{name} must be between {meta.get('min')} and {meta.get('max')}")
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise validation(f"{name} must be true or false")
    elif kind == "list":
        if not isinstance(value, list):
            raise validation(f"{name} must be a list")
        if len(value) < meta.get("min", 0) or len(value) > meta.get("max", len(value)):
            raise validation(f"{name} must have {meta.get('min', 0)} to {meta.get('max', '-')} items")
        return [_check(name, shape.member, item) for item in value]  # type: ignore[attr-defined]
    elif kind == "map":
        if not isinstance(value, dict):
            raise validation(f"{name} must be an object")
        return {
            _check(name, shape.key, k): _check(name, shape.value, v)  # type: ignore[attr-defined]
            for k, v in value.items()
        }
    elif kind == "structure":
        shape = cast("StructureShape", shape)  # what a structure's shape is
        if not isinstance(value, dict):
            raise validation(f"{name} must be an object")
        unknown = set(value) - set(shape.members)
        if unknown:
            raise validation(f"{name} has unknown members: {', '.join(sorted(unknown))}")
        for required in shape.required_members:
            if required not in value:
                raise validation(f"{name}.{required} is required")
        return {k: _check(f"{name}.{k}", shape.members[k], v) for k, v in value.items()}
    return value


# The model's Java-style Unicode classes, which Python's re lacks: a check of each character.
_UNICODE_PATTERNS: dict[str, Callable[[str], bool]] = {
    r"\P{C}*": lambda c: not _control(c),
    r"\P{C}+": lambda c: not _control(c),
    r"[\P{C}\s]+": lambda c: not _control(c) or c.isspace(),
    r"[^\p{C}\p{IsWhitespace}]+": lambda c: not _control(c) and not c.isspace(),
}


def _control(char: str) -> bool:
    return unicodedata.category(char).startswith("C")


def _matches(pattern: str, value: str) -> bool:
    allowed = _UNICODE_PATTERNS.get(pattern)
    if allowed is not None:
        return (pattern.endswith("*") or bool(value)) and all(allowed(c) for c in value)
    return re.fullmatch(pattern, value) is not None


# -- output ---------------------------------------------------------------------------------------
def serialise_output(op: OperationModel, result: dict[str, Any]) -> web.Response:
    shape = op.output_shape
    headers: dict[str, str] = {}
    body: dict[str, Any] = {}
    if shape is not None:
        for name, value in result.items():
            if value is None:
                continue
            member = shape.members[name]  # a KeyError here is a handler's bug, not the client's
            if member.serialization.get("location") == "header":
                headers[member.serialization.get("name", name)] = str(value)
            else:
                body[name] = _serialise(member, value)
    status = op.http.get("responseCode", 200)
    return web.json_response(body, status=status, headers=headers)


def _serialise(shape: Shape, value: Any) -> Any:
    kind = shape.type_name
    if kind == "timestamp":
        if isinstance(value, datetime.datetime):
            return value.timestamp()
        return float(value)
    if kind == "structure":
        shape = cast("StructureShape", shape)  # what a structure's shape is
        return {k: _serialise(shape.members[k], v) for k, v in value.items() if v is not None}
    if kind == "list":
        return [_serialise(shape.member, v) for v in value]  # type: ignore[attr-defined]
    if kind == "map":
        return {k: _serialise(shape.value, v) for k, v in value.items()}  # type: ignore[attr-defined]
    return value
