"""Serving a stored asset: streamed from its encrypted blob, with its length, never recompressed
(tarballs, wheels and jars are compressed already), HEAD answered without a body."""

from __future__ import annotations

from aiohttp import web

from proxy.store.blobs import BlobCorrupt, BlobMissing
from proxy.store.store import Store


async def blob_response(
    request: web.Request,
    store: Store,
    blob_id: str,
    size: int,
    content_type: str,
    etag: str | None = None,
) -> web.StreamResponse | None:
    """Stream the blob to the client; None when it is gone (evicted or broken), so the caller can fetch
    it again. A blob found broken mid-stream ends the response early: the client sees a short read,
    never unauthenticated bytes."""
    headers = {"Content-Type": content_type, "Content-Length": str(size), "Cache-Control": "max-age=31536000"}
    if etag:
        headers["ETag"] = f'"{etag}"'
        if etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers={"ETag": headers["ETag"]})
    chunks = store.read(blob_id)
    try:
        first = await anext(chunks, b"")
    except (BlobMissing, BlobCorrupt):
        return None
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    if request.method == "HEAD":
        await chunks.aclose()
        return response
    try:
        await response.write(first)
        async for chunk in chunks:
            await response.write(chunk)
    except BlobCorrupt:
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response
