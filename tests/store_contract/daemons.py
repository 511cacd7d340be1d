"""Two daemons of one shared store, as two hosts run them: the same ``[store]`` table and cache key, each
its own cache path and configuration file."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.fakes.daemon import RunningDaemon, start_daemon, write_config


@contextmanager
def two_daemons(
    tmp_path: Path, shared_config: Path, tables: str
) -> Iterator[tuple[RunningDaemon, RunningDaemon]]:
    """Daemons ``a`` and ``b`` of the store ``shared_config`` names, ``tables`` in each file; both must
    stop cleanly."""
    store = shared_config.read_text().split("[store]", 1)[1]
    hosts = []
    for name in ("host-a", "host-b"):
        (tmp_path / name).mkdir()
        hosts.append(write_config(tmp_path / name, tables + "\n[store]" + store))
    key_a = str(tmp_path / "host-a" / "keys" / "cache.key")  # one cache key for every daemon of a store
    hosts[1].write_text(hosts[1].read_text().replace(str(tmp_path / "host-b" / "keys" / "cache.key"), key_a))
    started: list[RunningDaemon] = []
    try:
        started.append(start_daemon(hosts[0], tmp_path / "a.log"))
        started.append(start_daemon(hosts[1], tmp_path / "b.log"))
        yield started[0], started[1]
    finally:
        for daemon in started:
            assert daemon.stop() == 0, daemon.log_text()
