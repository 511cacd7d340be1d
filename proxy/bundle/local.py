"""A daemon of a stopped one's store, in this process, for ``export`` and ``import`` when none runs.

It runs offline (no upstream is asked: only what the store holds is exported) on a free loopback
port, with publishing on for the repository being imported into, so the same HTTP code path serves
both cases. Opening the store fails with ``StoreUnavailable`` while another daemon holds it.

Concurrency: its own event loop on one thread; ``local_daemon`` returns once it listens and stops it
(closing the store) on exit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import MappingProxyType

from aiohttp import web

from proxy.config.model import Config
from proxy.daemon import Daemon
from proxy.server.app import build_app


@contextmanager
def local_daemon(config: Config, repository: str) -> Iterator[str]:
    """Yields the base URL (ending in ``/``) of an in-process offline daemon over ``config``'s store."""
    repositories = dict(config.repositories)
    repositories[repository] = dataclasses.replace(repositories[repository], publish=True)
    server = dataclasses.replace(config.server, offline=True, public_url=None)
    config = dataclasses.replace(config, server=server, repositories=MappingProxyType(repositories))
    ready: list[str | BaseException] = []
    started = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        try:
            daemon = await Daemon.open(config)
        except BaseException as error:
            ready.append(error)
            started.set()
            return
        runner = web.AppRunner(build_app(daemon), handle_signals=False, access_log=None)
        try:
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.append(f"http://127.0.0.1:{port}/")
            started.set()
            await stop.wait()
        except BaseException as error:
            if not started.is_set():
                ready.append(error)
                started.set()
            raise
        finally:
            await runner.cleanup()
            await daemon.close()

    thread = threading.Thread(
        target=loop.run_until_complete, args=(main(),), name="local-daemon", daemon=True
    )
    thread.start()
    started.wait()
    if isinstance(ready[0], BaseException):
        thread.join()
        loop.close()
        raise ready[0]
    try:
        yield ready[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join()
        loop.close()
