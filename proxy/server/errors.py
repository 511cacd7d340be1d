"""Error responses: every failure a client sees is a short JSON reason with the right status, never a
traceback. A refusal (``Refused``) is its own status and reason; an upstream that failed
(``UPSTREAM_FAILURES``) is 502, here and nowhere else, unless the daemon is offline and no upstream was
asked (``NoUpstreamAnswered.offline``, ``UpstreamOffline``): that miss is a 404 whose reason says the
proxy is offline; a store that is out of disk space is 507 (see proxy.store.space); other unexpected
exceptions are logged here with their traceback and answered 500."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from proxy.formats.common.http import error_response
from proxy.repository.errors import UPSTREAM_FAILURES, NoUpstreamAnswered, Refused
from proxy.store.protocols import StoreDamaged
from proxy.store.space import out_of_space
from proxy.upstream.offline import UpstreamOffline

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

OFFLINE_REASON = "the proxy is offline: it asks no upstream, and serves only what its store holds"


def one_line(text: str) -> str:
    """A reason on one line (an upstream's message can hold several)."""
    return " ".join(text.split())


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        # Handlers raise e.g. HTTPConflict(reason="...") and the reason becomes the JSON body.
        kept = {k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")}
        return error_response(exc.status, exc.reason, kept)
    except StoreDamaged as exc:
        return error_response(500, str(exc))
    except Refused as exc:
        return error_response(exc.status, exc.reason)
    except UPSTREAM_FAILURES as exc:
        if isinstance(exc, UpstreamOffline) or (isinstance(exc, NoUpstreamAnswered) and exc.offline):
            return error_response(404, f"not found in the store: {request.path} ({OFFLINE_REASON})")
        return error_response(502, one_line(str(exc)))
    except Exception as exc:
        if out_of_space(exc):
            log.warning("%s %s: the store is full: %s", request.method, request.path, exc)
            return error_response(507, "the proxy's store is out of disk space; nothing was stored")
        log.exception("unhandled error serving %s %s", request.method, request.path)
        return error_response(500, "internal error; see the proxy's log")
