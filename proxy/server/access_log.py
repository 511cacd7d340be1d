"""One access-log line per request. The path is logged without its query string, and no header that
can carry credentials (Authorization, Cookie) is ever logged.

The record is the one ``logger.info(message, extra=fields)`` would make (same message, same
attributes, same filters and handlers), built directly: ``Logger.info`` also looks up the caller's
source line by walking the stack, which no format of the daemon's (``proxy.logs``) shows, and which
was a third of the line's cost. Concurrency: called by aiohttp on the event loop, once per request.
"""

from __future__ import annotations

import logging

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

_FORMAT = '%s "%s %s" %d %d %.1fms "%s"'


class AccessLogger(AbstractAccessLogger):
    @property
    def enabled(self) -> bool:
        # aiohttp asks once per connection: a disabled logger then costs nothing per request.
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO):
            return
        remote = request.remote or "-"
        method, path, status = request.method, request.path, response.status
        size = response.body_length
        ms = round(time * 1000, 1)
        agent = request.headers.get("User-Agent", "-")
        record = logging.getLogRecordFactory()(
            logger.name, logging.INFO, "", 0, _FORMAT, (remote, method, path, status, size, ms, agent), None
        )
        fields = record.__dict__
        fields["remote"] = remote
        fields["method"] = method
        fields["path"] = path
        fields["status"] = status
        fields["bytes"] = size
        fields["duration_ms"] = ms
        fields["user_agent"] = agent
        logger.handle(record)


access_logger = logging.getLogger("proxy.access")
