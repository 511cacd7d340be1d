"""Client connections: a deadline for the request head, and a log line when accepting fails.

aiohttp bounds an idle keep-alive connection but not a request head that arrives a byte at a time, so
a few thousand such connections hold as many sockets (and file descriptors) for ever. Here every
connection must deliver each request's head within ``header_timeout`` seconds of its first byte (or
of being opened), else it is closed. Bodies are not concerned: a large upload may take long.

When the process runs out of file descriptors it cannot accept connections. asyncio's loop reports
that through its exception handler, which is set here to log it; uvloop (libuv) drops such
connections without a word, so a watchdog also counts open descriptors against ``RLIMIT_NOFILE`` and
logs when they near it. Each message is logged once a minute at most, as the condition repeats, so
an operator sees why health probes fail.

Concurrency: everything runs on the event loop.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import resource
import time
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger(__name__)

ACCEPT_LOG_INTERVAL = 60.0


class HeadTimeoutHandler(RequestHandler):
    """A request handler that closes its connection when a request head is not complete in time.
    It reads ``RequestHandler``'s count of parsed heads (``_request_count``) to tell progress."""

    def __init__(self, manager: web.Server, *, head_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._head_timeout = head_timeout
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None and not self._request_in_progress:
            self._arm_head_timer()
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        loop = asyncio.get_running_loop()
        self._head_timer = loop.call_later(self._head_timeout, self._head_overdue, self._request_count)

    def _head_overdue(self, heads_before: int) -> None:
        self._head_timer = None
        if self._request_count != heads_before or self._request_in_progress or self.transport is None:
            return
        log.debug("closing a connection whose request head took over %.0f s", self._head_timeout)
        self.transport.close()


class HeadTimeoutServer(web.Server):
    """aiohttp's low-level server, making ``HeadTimeoutHandler``s."""

    head_timeout: float = 30.0

    def __call__(self) -> RequestHandler:
        return HeadTimeoutHandler(self, loop=self._loop, head_timeout=self.head_timeout, **self._kwargs)


class GuardedAppRunner(web.AppRunner):
    """An ``AppRunner`` whose connections have a request-head deadline."""

    def __init__(self, app: web.Application, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._header_timeout = header_timeout

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # The application builds a plain Server with its own request factory; only how it makes
        # protocol instances changes, so its class is swapped rather than the construction copied.
        server.__class__ = HeadTimeoutServer
        server.head_timeout = self._header_timeout  # type: ignore[attr-defined]
        return server


def log_loop_exceptions(loop: asyncio.AbstractEventLoop) -> None:
    """Log what the event loop reports (accept failing for want of file descriptors, among others)."""
    last_logged: dict[str, float] = {}

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", "event loop error"))
        exc = context.get("exception")
        now = time.monotonic()
        if now - last_logged.get(message, -ACCEPT_LOG_INTERVAL) < ACCEPT_LOG_INTERVAL:
            return
        last_logged[message] = now
        if isinstance(exc, OSError):
            log.error("%s: %s (open files at their limit? see LimitNOFILE)", message, exc)
        else:
            log.error("%s", message, exc_info=exc if isinstance(exc, BaseException) else None)

    loop.set_exception_handler(handler)


FD_WATCH_INTERVAL = 5.0
FD_WARN_SHARE = 0.9


def open_descriptors() -> int | None:
    """File descriptors this process has open; None where /proc does not tell. At the limit, listing
    them needs one more and fails: that counts as the limit."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError as exc:
        if exc.errno == errno.EMFILE:
            return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        return None


async def watch_file_descriptors(interval: float = FD_WATCH_INTERVAL) -> None:
    """Run until cancelled: log (at most once a minute) when open descriptors pass 90 % of the limit,
    where new connections start being refused."""
    last = -ACCEPT_LOG_INTERVAL
    while True:
        await asyncio.sleep(interval)
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        count = open_descriptors()
        if count is None or limit == resource.RLIM_INFINITY or count < limit * FD_WARN_SHARE:
            continue
        if time.monotonic() - last >= ACCEPT_LOG_INTERVAL:
            last = time.monotonic()
            log.error(
                "%d of %d file descriptors open: new connections are refused or will be soon "
                "(raise LimitNOFILE / ulimit -n, or look for clients holding connections)",
                count,
                limit,
            )
