"""The audit log: one JSON line per write (publish, delete, dispose, status change, copy, repository
and policy changes) with time, principal, operation, repository, package, versions and result.

It goes to ``[server] audit_log`` (appended, created 0600) or, without it, to stderr beside the
access log (the journal under systemd). Never holds a token, secret or signature: callers pass names.

Concurrency: one ``write`` is one ``os.write`` of a whole line on an O_APPEND descriptor, so lines
from concurrent requests never interleave.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


class AuditLog:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fd: int | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def write(
        self,
        *,
        principal: str,
        operation: str,
        result: int,
        repository: str | None = None,
        package: str | None = None,
        versions: list[str] | None = None,
    ) -> None:
        now = time.time()
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z",
            "principal": principal,
            "operation": operation,
            "repository": repository,
            "package": package,
            "versions": versions,
            "result": result,
        }
        data = (json.dumps(line, separators=(",", ":")) + "\n").encode()
        if self._fd is not None:
            os.write(self._fd, data)
        else:
            sys.stderr.flush()  # what logging wrote first stays first
            sys.stderr.buffer.write(data)
            sys.stderr.flush()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
