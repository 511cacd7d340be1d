"""What an offline daemon answers where a connected one would have asked an upstream.

With every upstream offline (``proxy.upstream.offline``), a package or asset that is not in the store
ends as an "upstream unavailable" 502 in the format handlers; this middleware (installed only in
offline mode, inside the error middleware's JSON bodies) turns that into the 404 it is, with a reason
that says the proxy is offline, and adds the same words to every other 404.
"""

from __future__ import annotations

import json

from aiohttp import web

from proxy.server.errors import Handler, error_response

REASON = "the proxy is offline: it asks no upstream, and serves only what its store holds"


@web.middleware
async def offline_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if response.status not in (404, 502) or not isinstance(response, web.Response):
        return response
    try:
        reason = json.loads(response.body or b"{}").get("error") if response.body else None
    except (ValueError, AttributeError):
        reason = None
    if response.status == 502 or not reason:
        reason = f"not found in the store: {request.path}"
    return error_response(404, f"{reason} ({REASON})")
