"""Logging set-up: one line per record, plain text or JSON (``server.log_format``)."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Literal

# Fields that callers attach with ``extra=`` and that belong in a JSON line.
_EXTRA_FIELDS = (
    "remote",
    "method",
    "path",
    "status",
    "bytes",
    "duration_ms",
    "user_agent",
    "upstream",
    "repository",
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({k: getattr(record, k) for k in _EXTRA_FIELDS if hasattr(record, k)})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, separators=(",", ":"))


def setup_logging(log_format: Literal["text", "json"] = "text", level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Client libraries log request URLs and headers at DEBUG; keep them quiet even when we are not.
    for noisy in ("aiohttp.client", "aiohttp.internal", "botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
