"""One access-log line per request. The path is logged without its query string, and no header that
can carry credentials (Authorization, Cookie) is ever logged."""

from __future__ import annotations

import logging

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse


class AccessLogger(AbstractAccessLogger):
    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        remote = request.remote or "-"
        size = response.body_length
        ms = round(time * 1000, 1)
        agent = request.headers.get("User-Agent", "-")
        self.logger.info(
            '%s "%s %s" %d %d %.1fms "%s"',
            remote,
            request.method,
            request.path,
            response.status,
            size,
            ms,
            agent,
            extra={
                "remote": remote,
                "method": request.method,
                "path": request.path,
                "status": response.status,
                "bytes": size,
                "duration_ms": ms,
                "user_agent": agent,
            },
        )


access_logger = logging.getLogger("proxy.access")
