"""Logging set-up: one line per record, plain text or JSON (``server.log_format``), on stderr.

Lines logged on the event loop (one access-log line per request, most of what the daemon logs) are
written together once per turn of the loop, in one system call, rather than one call per line: the
lines and their order are the same, and none waits longer than the loop's current turn. A line
logged on another thread (or with no loop running) goes out at once, after those pending. Writes
are cut at line ends into pieces of at most PIPE_BUF bytes (``ATOMIC_WRITE``), so that the lines of
the workers of one daemon (``server.workers``) sharing a pipe never interleave mid-line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Literal, TextIO

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
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# A pipe write up to PIPE_BUF (4096 bytes on Linux) is never interleaved with another; in characters
# of at most 4 bytes each (UTF-8):
ATOMIC_WRITE = 4096 // 4


class _Seconds:
    """A timestamp's text up to the second, made once per second (``time.strftime`` costs more than
    the rest of an access line's formatting). One per formatter; a race between threads at worst
    makes the same text twice."""

    def __init__(self, convert: Callable[[float], time.struct_time], pattern: str) -> None:
        self._convert = convert
        self._pattern = pattern
        self._second = -1
        self._text = ""

    def text(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._text = time.strftime(self._pattern, self._convert(second))
            self._second = second
        return self._text


class TextFormatter(logging.Formatter):
    """``TEXT_FORMAT``, with ``logging.Formatter``'s default time stamp (local time, milliseconds)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self._seconds = _Seconds(self.converter, self.default_time_format)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        return self.default_msec_format % (self._seconds.text(record.created), record.msecs)


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._seconds = _Seconds(time.gmtime, "%Y-%m-%dT%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": f"{self._seconds.text(record.created)}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({k: getattr(record, k) for k in _EXTRA_FIELDS if hasattr(record, k)})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, separators=(",", ":"))


class LoopBatchedHandler(logging.StreamHandler[TextIO]):
    """A StreamHandler writing the lines of one turn of the event loop together (see the module).

    Concurrency: every step runs under the handler's lock (``Handler.handle`` takes it around
    ``emit``); the write of pending lines is scheduled on the loop that logged them.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._scheduled = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._pending.append(self.format(record) + self.terminator)
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self._write_pending()
                return
            if not self._scheduled:
                loop.call_soon(self._write_scheduled)
                self._scheduled = True
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        """Write what is pending, then flush the stream (``logging.shutdown`` calls it at exit)."""
        with self.lock:  # type: ignore[union-attr]
            self._write_pending()
            super().flush()

    def _write_scheduled(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._scheduled = False
            self._write_pending()

    def _write_pending(self) -> None:
        pending, self._pending = self._pending, []
        if not pending or self.stream is None:
            return
        try:
            for piece in _pieces(pending, ATOMIC_WRITE):
                self.stream.write(piece)
                self.stream.flush()
        except Exception:
            # The stream failed (closed, a broken pipe): as a StreamHandler would, say so on stderr
            # (logging.raiseExceptions) and drop the lines rather than raise into the caller.
            self.handleError(logging.makeLogRecord({"msg": "%d log lines lost", "args": (len(pending),)}))


def _pieces(lines: list[str], limit: int) -> list[str]:
    """``lines`` joined into pieces of at most ``limit`` characters where they fit, cut at line ends
    (a longer line is a piece of its own)."""
    if len(lines) == 1:
        return lines
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for line in lines:
        if current and size + len(line) > limit:
            pieces.append("".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line)
    pieces.append("".join(current))
    return pieces


def setup_logging(log_format: Literal["text", "json"] = "text", level: int = logging.INFO) -> None:
    handler = LoopBatchedHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Client libraries log request URLs and headers at DEBUG; keep them quiet even when we are not.
    for noisy in ("aiohttp.client", "aiohttp.internal", "botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
