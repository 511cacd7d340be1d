"""A stored blob as a seekable file, for readers that need to seek (``zipfile`` reading a wheel).

A stored blob is encrypted and can only be read forward, so ``SeekableBlob`` streams the decrypted blob,
restarts the stream on a backward seek, and keeps the blob's tail in memory (a zip's central directory
and, as wheel builders write ``.dist-info`` last, usually its METADATA too): one pass over the blob in
the common case, and no plaintext ever written to disk. Blocking: use it from a worker thread.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

from proxy.store.blobs import BlobReader, BlobStore

# Wheel builders write .dist-info last: METADATA, RECORD and the central directory fit in this much at
# the end of the largest wheels; it is held in memory while a wheel's metadata is taken out.
_TAIL_SIZE = 2 * 1024 * 1024
_BUFFER_SIZE = 256 * 1024


class SeekableBlob(io.RawIOBase):
    """A stored blob as a seekable, read-only binary file (see the module docstring). Blocking: use it
    from a worker thread. Raises BlobMissing/BlobCorrupt as the blob's reader does."""

    def __init__(self, blobs: BlobStore, blob_id: str) -> None:
        super().__init__()
        self._blobs = blobs
        self._blob_id = blob_id
        self._reader: BlobReader | None = None
        self._chunks: Iterator[bytes] = iter(())
        self._chunk = b""
        self._chunk_start = 0
        self._restart()
        assert self._reader is not None
        self._size = self._reader.size
        self._tail_start = max(0, self._size - _TAIL_SIZE)
        self._tail: bytearray | None = None
        self._pos = 0

    def _restart(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._reader = self._blobs.reader(self._blob_id)
        self._chunks = iter(self._reader)
        self._chunk, self._chunk_start = b"", 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        wanted = min(len(buffer), self._size - self._pos)
        if wanted <= 0:
            return 0
        if self._pos >= self._tail_start:
            tail = self._read_tail()
            data = tail[self._pos - self._tail_start : self._pos - self._tail_start + wanted]
        else:
            data = self._stream(self._pos, min(wanted, self._tail_start - self._pos))
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def _read_tail(self) -> bytes | bytearray:
        if self._tail is None:
            tail, position = bytearray(self._size - self._tail_start), self._tail_start
            while part := self._stream(position, _BUFFER_SIZE):
                tail[position - self._tail_start : position - self._tail_start + len(part)] = part
                position += len(part)
            self._tail = tail
        return self._tail

    def _stream(self, position: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``position`` from the forward stream (b"" at the end)."""
        if position < self._chunk_start:
            self._restart()
        while position >= self._chunk_start + len(self._chunk):
            self._chunk_start += len(self._chunk)
            self._chunk = next(self._chunks, b"")
            if not self._chunk:
                return b""
        offset = position - self._chunk_start
        return self._chunk[offset : offset + size]

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        super().close()
