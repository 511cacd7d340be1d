"""Request bodies: every body this API takes is a publish (``npm publish``, ``twine upload``, ``mvn
deploy``, a dist-tag), so one limit, ``server.max_publish_size``, bounds them all.

A body that announces a larger ``Content-Length`` is refused with 413 before any of it is read; the
client gets the answer at once instead of after uploading it. A chunked body has no length to look
at; ``client_max_size`` (set to the same limit) stops whatever reads it whole, the npm publish reader
counts what streams in against it, and the other streaming readers (multipart uploads, Maven deploys)
are bounded by the store's space.

Concurrency: a stateless middleware on the event loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def body_limit_middleware(max_size: int) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    @web.middleware
    async def limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        length = request.content_length
        if length is not None and length > max_size:
            raise web.HTTPRequestEntityTooLarge(
                max_size=max_size,
                actual_size=length,
                reason=f"the request body of {length} bytes is over the limit of {max_size} bytes "
                "(server.max_publish_size); nothing was read or stored",
            )
        return await handler(request)

    return limit
