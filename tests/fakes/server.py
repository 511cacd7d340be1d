"""The life cycle every plain fake registry shares: an aiohttp server on 127.0.0.1, run in the test's
loop (``async with``) or on a thread with its own loop (``with`` / ``start_in_thread()``), stoppable and
restartable on the same port (``stop_server()`` then ``start_in_thread()``) to play an upstream that
went away and came back.

Faults an asset can be served with (``serve_asset``): other bytes than its metadata declares
(``wrong-bytes``); half of it, then a hang-up (``truncate``); half of it, then nothing until the test
sets ``stalled`` (``stall``)."""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import Literal, Self

from aiohttp import web

Fault = Literal["wrong-bytes", "truncate", "stall"]


async def serve_asset(
    request: web.Request, data: bytes, fault: Fault | None, stalled: threading.Event
) -> web.StreamResponse:
    """``data`` as an asset, spoilt by ``fault``; a ``stall`` waits for ``stalled`` halfway."""
    if fault == "wrong-bytes":
        data = bytes(b ^ 0x5A for b in data)
    if fault not in ("truncate", "stall"):
        return web.Response(body=data, content_type="application/octet-stream")
    response = web.StreamResponse(headers={"Content-Length": str(len(data))})
    await response.prepare(request)
    # The first half in two pieces that arrive apart, as from a real network: a proxy that streams
    # passes the first on before the second arrives.
    await response.write(data[: len(data) // 4])
    await asyncio.sleep(0.05)
    await response.write(data[len(data) // 4 : len(data) // 2])
    if fault == "stall":
        await asyncio.to_thread(stalled.wait, 60)
        await response.write(data[len(data) // 2 :])
        return response
    if request.transport is not None:
        request.transport.close()
    return response


class FakeServer:
    thread_name = "fake-server"

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.stalled = threading.Event()  # set it to let a "stall" asset send its second half
        self.url = ""
        self._host = host
        self._port = 0
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)  # the same port again after stop()
        await site.start()
        self._port = self._runner.addresses[0][1]
        self.url = f"http://{self._host}:{self._port}/"
        return self.url

    async def serve_asset(self, request: web.Request, data: bytes, fault: Fault | None) -> web.StreamResponse:
        return await serve_asset(request, data, fault, self.stalled)

    async def stop(self) -> None:
        self.stalled.set()  # a stalled asset must not hold up the shutdown
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def start_in_thread(self) -> str:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name=self.thread_name, daemon=True)
            self._thread.start()
        return asyncio.run_coroutine_threadsafe(self.start(), self._loop).result(timeout=30)

    def stop_server(self) -> None:
        """Stop answering (connections refused) but keep the thread, so ``start_in_thread`` can resume."""
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self.stop(), self._loop).result(timeout=30)

    def stop_in_thread(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self.stop_server()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> Self:
        self.start_in_thread()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_in_thread()
