"""Shared fixtures: the daemon as a real subprocess on a free port (helpers in tests/fakes/daemon.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.daemon import RunningDaemon, start_daemon, write_config


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator:
    started: list[RunningDaemon] = []

    def factory(body: str = "[repository.local]\npublish = true\n", **kw: object) -> RunningDaemon:
        config = write_config(tmp_path, body)
        running = start_daemon(config, tmp_path / f"daemon-{len(started)}.log", **kw)  # type: ignore[arg-type]
        started.append(running)
        return running

    yield factory
    for running in started:
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait()
