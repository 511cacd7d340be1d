"""Serving an asset: from its encrypted blob in the store (``blob_response``), or, on a miss, as it
arrives from the upstream (``fetch_streaming`` with a ``StreamedAsset``). Never recompressed (tarballs,
wheels and jars are compressed already); HEAD answered without a body."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web

from proxy.store.protocols import BlobCorrupt, BlobMissing, BlobService

log = logging.getLogger(__name__)

T = TypeVar("T")

CACHE_CONTROL = "max-age=31536000"  # an asset's bytes never change under its name
# Whether an asset came from the store ("hit") or was downloaded for this request ("miss"): prefetch
# reports what was already there by it.
STORE_HEADER = "X-Codeartifact-Proxy-Store"
# A client that takes no bytes for this long is dropped: other requests may be waiting on the download.
WRITE_TIMEOUT = 30.0
BUFFERED_BYTES = 256 * 1024  # assets up to this size are answered in one piece, once verified


# A first piece of body up to this size goes out with the headers in one write; a larger one after
# them, in a write of its own: aiohttp joins headers and body into one new bytes object to write them
# together (Python < 3.12.9), and copying a large body costs more than the system call it saves.
COALESCED_BYTES = 64 * 1024


class _AssetResponse(web.StreamResponse):
    # The headers wait for the first body bytes and go out in the same write, as web.Response does:
    # one system call and one wake-up of the client fewer per asset.
    _send_headers_immediately = False


async def blob_response(
    request: web.Request,
    blobs: BlobService,
    blob_id: str,
    size: int,
    content_type: str,
    etag: str | None = None,
) -> web.StreamResponse | None:
    """Stream the blob to the client; None when it is gone (evicted or broken), so the caller can fetch
    it again. A blob found broken mid-stream ends the response early: the client sees a short read,
    never unauthenticated bytes (content read as one piece, ``BlobStore.whole_blob_bytes``, is found
    broken before the response starts, so it is fetched again instead). A client that leaves
    mid-response ends it quietly (the access log shows the bytes it got)."""
    headers = {"Content-Type": content_type, "Content-Length": str(size), "Cache-Control": CACHE_CONTROL}
    headers[STORE_HEADER] = "hit"
    if etag:
        headers["ETag"] = f'"{etag}"'
        if etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers={"ETag": headers["ETag"]})
    chunks = blobs.read(blob_id)
    try:
        first = await anext(chunks, b"")
    except (BlobMissing, BlobCorrupt):
        return None
    response = (_AssetResponse if len(first) <= COALESCED_BYTES else web.StreamResponse)(headers=headers)
    await response.prepare(request)
    if request.method == "HEAD":
        await chunks.aclose()
        return response
    if len(first) < size:
        _send_each_chunk_whole(request)
    try:
        await response.write(first)
        del first  # a chunk sent is not held while the next is read: 256 KiB a download
        async for chunk in chunks:
            await response.write(chunk)
            del chunk
    except BlobCorrupt:
        if request.transport is not None:
            request.transport.close()
        return response
    except ConnectionError:
        # The client went away mid-response: nobody is left to answer, and nothing failed here.
        await chunks.aclose()
        return response
    await response.write_eof()
    return response


def _send_each_chunk_whole(request: web.Request) -> None:
    """Let a response streamed chunk by chunk go on only once its transport has passed all of the last
    chunk to the kernel (whose socket buffer keeps the client busy meanwhile). With the default limits
    (pause past 64 KiB unsent, resume under 16 KiB) a chunk's unsent tail kept the whole chunk alive
    while the next one was read: two chunks held by a download, not one (measured: 50 downloads of a
    cached 256 MiB asset, peak RSS 6-8 MiB lower). The limits stay with the connection: a later response
    on it drains the same way."""
    if request.transport is not None:
        # high=1, not 0: a TLS transport pauses at ``size >= high``, so 0 paused it with nothing unsent,
        # where nothing would resume it.
        request.transport.set_write_buffer_limits(high=1, low=0)


class StreamedAsset:
    """A client's response that receives an asset while it is downloaded and stored (an AssetSink, see
    proxy.repository.fetch). Headers go out with the first bytes; the last piece and the end only after
    the asset was verified. A client that goes away or stalls is dropped, and the download goes on.

    An asset whose announced size is at most ``BUFFERED_BYTES`` (most packages) is kept in memory and
    sent in one piece once verified, before it is stored: nothing of it goes out before, so a failure
    is still a clean error response, and the client gets one write instead of a stream, without waiting
    for the store (during a cold ``npm ci`` npm keeps only a few requests open, so each one's latency
    counts)."""

    def __init__(self, request: web.Request, content_type: str) -> None:
        self._request = request
        self._content_type = content_type
        self.response: web.StreamResponse | None = None
        self._buffer: list[bytes] | None = None
        self._ended = False
        self._gone = False

    @property
    def started(self) -> bool:
        """Bytes may have gone out: the download can no longer be replaced by another one."""
        return self.response is not None

    async def start(self, size: int | None) -> None:
        if size is not None and size <= BUFFERED_BYTES:
            self._buffer = []
            return
        response = _AssetResponse(headers=self._headers())
        if size is not None:
            response.content_length = size
        self.response = response
        _send_each_chunk_whole(self._request)
        if not self._gone:
            await self._guarded(response.prepare(self._request))

    async def write(self, chunk: bytes) -> None:
        if self._buffer is not None:
            self._buffer.append(chunk)
        elif self.response is not None and not self._gone:
            await self._guarded(self.response.write(chunk))

    async def end(self) -> None:
        if self._buffer is not None:
            # Sent now, headers and body in one write: the client need not wait for the store.
            body = b"".join(self._buffer)
            self.response = _AssetResponse(headers=self._headers())
            self.response.content_length = len(body)
            await self._guarded(self._send_whole(self.response, body))
        elif self.response is not None and not self._gone:
            await self._guarded(self.response.write_eof())
        self._ended = True

    async def _send_whole(self, response: web.StreamResponse, body: bytes) -> None:
        await response.prepare(self._request)
        await response.write(body)
        await response.write_eof()

    def _headers(self) -> dict[str, str]:
        return {"Content-Type": self._content_type, "Cache-Control": CACHE_CONTROL, STORE_HEADER: "miss"}

    def failed(self, exc: Exception) -> web.StreamResponse:
        """The download into this response failed after it started: a client that has not got every
        byte yet sees its transfer fail (a client that has is kept: the failure came later, while the
        verified bytes were being stored)."""
        assert self.response is not None
        if self._ended:
            log.warning("asset served but not stored: %s", exc)
        else:
            log.warning("asset download failed after the response started: %s", exc)
            self._drop()
        return self.response

    async def _guarded(self, step: Awaitable[object]) -> None:
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                await step
        except (ConnectionError, TimeoutError) as exc:
            log.info("client left during a download (%s); the download goes on", type(exc).__name__)
            self._drop()

    def _drop(self) -> None:
        self._gone = True
        if self._request.transport is not None:
            self._request.transport.close()


async def fetch_streaming(
    request: web.Request, content_type: str, fetch: Callable[[StreamedAsset | None], Awaitable[T]]
) -> T | web.StreamResponse:
    """Run ``fetch`` with a StreamedAsset for a GET (an AssetSink, see proxy.repository.fetch).

    Returns what ``fetch`` returned or, when it streamed the asset to the client, the response to
    return as it is. A failure after the response started is not raised: the response comes back cut
    short (see ``StreamedAsset.failed``). A failure before it is raised.
    """
    sink = StreamedAsset(request, content_type) if request.method == "GET" else None
    try:
        result = await fetch(sink)
    except Exception as exc:
        if sink is None or not sink.started:
            raise
        return sink.failed(exc)
    if sink is not None and sink.response is not None:  # started: the client has its response
        return sink.response
    return result
