"""HTTP helpers every format's handlers use."""

from __future__ import annotations

from aiohttp import web

from proxy.repository.errors import Refused

STALE_WARNING = '110 - "Response is Stale"'  # on a response built from a copy served past its freshness


def base_url(request: web.Request, public_url: str | None) -> str:
    """The base URL handed to clients: ``server.public_url`` when set, else the request's own scheme and
    Host, so every link a client receives points back at the proxy."""
    if public_url:
        return public_url
    return f"{request.scheme}://{request.host}/"


def error_response(status: int, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    """A failure as every client sees one: a short JSON reason with the status."""
    return web.json_response({"error": reason}, status=status, headers=headers)


class BodyLimit:
    """Counts a publish body as it streams in: a 413 (Refused) once more than ``limit`` bytes
    (``server.max_publish_size``, the application's ``client_max_size``) arrived, whether or not the
    body announced a length. The Content-Length check (``proxy.server.limits``) comes first."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.received = 0

    def count(self, data: bytes) -> bytes:
        self.received += len(data)
        if self.received > self.limit:
            raise Refused(
                413,
                f"the request body is over the limit of {self.limit} bytes (server.max_publish_size); "
                "nothing was stored",
            )
        return data


def no_such_repository(name: str) -> web.HTTPNotFound:
    return web.HTTPNotFound(reason=f"no repository named {name!r} is configured")
