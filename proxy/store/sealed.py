"""The at-rest format of everything the store writes: chunked AES-256-GCM ("sealed" data).

Layout::

    header = MAGIC (7) | version (1) | key_id (8) | salt (16) | chunk_size (4, big-endian)
    body   = chunk_0 | chunk_1 | ... | chunk_n        each chunk = AES-GCM ciphertext + 16-byte tag

Every chunk but the last holds exactly ``chunk_size`` plaintext bytes; the last holds fewer
(possibly none), so there is always at least one chunk and a sealed size maps to one plaintext
size (``Header.plaintext_size``). Each sealed stream has its own subkey, HKDF-SHA256(master
secret, salt), so chunks cannot move between streams. A chunk's nonce is its 11-byte big-endian index
plus a "last chunk" flag byte; its associated data is the header, the caller's ``context``
(length-prefixed) and, for the last chunk only, a ``final_context`` given when the stream
ends: facts known only then, such as a name derived from the content. Hence a flipped bit, a
truncation (at a chunk boundary too: the new final chunk was not sealed as last), reordered,
duplicated or foreign chunks, trailing bytes, a different context, or a header edited to name
another key all fail authentication.

``SealReader`` never releases plaintext of a chunk before it has authenticated. A complete
chunk at the end of the data seen so far may be the last one, whose flag is only known once
more data or the end arrives, so it is held back until then.

Concurrency: ``SealWriter`` and ``SealReader`` are stateful streams for one thread at a time;
``seal``/``unseal`` and ``Header`` are safe anywhere.
"""

from __future__ import annotations

import functools
import os
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from proxy.store.keyring import KEY_ID_SIZE, Key, KeyRing

MAGIC = b"CAPSEAL"
VERSION = 1
SALT_SIZE = 16
TAG_SIZE = 16
CHUNK_SIZE = 256 * 1024
MAX_CHUNK_SIZE = 16 * 1024 * 1024
_HEADER = struct.Struct(f">{len(MAGIC)}sB{KEY_ID_SIZE}s{SALT_SIZE}sI")
HEADER_SIZE = _HEADER.size
_COUNTER_SIZE = 11
_SUBKEY_INFO = b"codeartifact-proxy seal v1"


class SealError(Exception):
    """Sealed data cannot be opened: corrupt, truncated, tampered with, or not sealed data at all."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownKeyError(SealError):
    """Sealed under a key that is not in the key ring (a missing old key file, or a damaged header)."""

    def __init__(self, key_id: bytes) -> None:
        super().__init__(f"sealed with key id {key_id.hex()}, which is not in the key ring")
        self.key_id = key_id


@dataclass(frozen=True)
class Header:
    """The clear-text start of sealed data: which key, which per-stream salt, what chunk size."""

    key_id: bytes
    salt: bytes
    chunk_size: int

    @classmethod
    def new(cls, key: Key, chunk_size: int = CHUNK_SIZE) -> Header:
        """The header of a new stream sealed under ``key``: a fresh salt, so a subkey of its own."""
        return cls(key_id=key.key_id, salt=os.urandom(SALT_SIZE), chunk_size=chunk_size)

    def to_bytes(self) -> bytes:
        return _HEADER.pack(MAGIC, VERSION, self.key_id, self.salt, self.chunk_size)

    @classmethod
    def parse(cls, data: bytes | bytearray) -> Header:
        """Read the header at the start of ``data``. It is authenticated only with the first chunk."""
        if len(data) < HEADER_SIZE:
            raise SealError("truncated header")
        magic, version, key_id, salt, chunk_size = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise SealError("not sealed data (bad magic)")
        if version != VERSION:
            raise SealError(f"unsupported format version {version}")
        if not 0 < chunk_size <= MAX_CHUNK_SIZE:
            raise SealError(f"bad chunk size {chunk_size}")
        return cls(key_id=key_id, salt=salt, chunk_size=chunk_size)

    def plaintext_size(self, sealed_size: int) -> int:
        """The plaintext size of sealed data of ``sealed_size`` bytes (header included) with this header."""
        full_chunks, last = divmod(sealed_size - HEADER_SIZE, self.chunk_size + TAG_SIZE)
        if sealed_size < HEADER_SIZE or last < TAG_SIZE:
            raise SealError("truncated: the sealed size does not end with a last chunk")
        return full_chunks * self.chunk_size + last - TAG_SIZE


class ChunkCipher:
    """Seals or opens the chunks of one sealed stream, strictly in order.

    ``SealWriter`` and ``SealReader`` are built on it; a reader that knows where the data ends
    (a file of known size) can use it directly, since it then knows which chunk is the last.
    """

    def __init__(self, key: Key, header: Header, context: bytes = b"", *, aead: AESGCM | None = None) -> None:
        """``aead``: the stream's cipher under its subkey, when the caller has it already."""
        self.header = header
        self._aead = aead if aead is not None else _stream_cipher(key.secret, header.salt)
        self._aad = header.to_bytes() + len(context).to_bytes(4, "big") + context
        self._index = 0

    @classmethod
    def for_reading(
        cls, keyring: KeyRing, raw_header: bytes | bytearray, context: bytes = b""
    ) -> ChunkCipher:
        """The cipher for the sealed data that starts with ``raw_header``, under its key from the ring."""
        header = Header.parse(raw_header)
        try:
            key = keyring.get(header.key_id)
        except KeyError:
            raise UnknownKeyError(header.key_id) from None
        return cls(key, header, context, aead=_opening_cipher(key.secret, header.salt))

    def _next_nonce(self, last: bool) -> bytes:
        nonce = self._index.to_bytes(_COUNTER_SIZE, "big") + (b"\x01" if last else b"\x00")
        self._index += 1
        return nonce

    def _aad_for(self, last: bool, final_context: bytes) -> bytes:
        if final_context and not last:
            raise ValueError("only the last chunk has a final context")
        return self._aad + final_context

    def seal(
        self, plaintext: bytes | bytearray | memoryview, last: bool, final_context: bytes = b""
    ) -> bytes:
        aad = self._aad_for(last, final_context)
        return self._aead.encrypt(self._next_nonce(last), plaintext, aad)

    def open(
        self, ciphertext: bytes | bytearray | memoryview, last: bool, final_context: bytes = b""
    ) -> bytes:
        """The plaintext of the next chunk; ``SealError`` unless it authenticates as that chunk."""
        aad = self._aad_for(last, final_context)
        try:
            return self._aead.decrypt(self._next_nonce(last), ciphertext, aad)
        except InvalidTag:
            raise self._failed(last) from None

    def open_into(
        self,
        ciphertext: bytes | bytearray | memoryview,
        into: memoryview,
        last: bool,
        final_context: bytes = b"",
    ) -> None:
        """``open``, writing the plaintext into ``into`` (exactly its size: the ciphertext's less the
        tag) instead of a new object. After a ``SealError`` ``into`` holds unauthenticated bytes:
        the caller must not release them."""
        aad = self._aad_for(last, final_context)
        try:
            self._aead.decrypt_into(self._next_nonce(last), ciphertext, aad, into)
        except InvalidTag:
            raise self._failed(last) from None

    def _failed(self, last: bool) -> SealError:
        where = "last chunk" if last else f"chunk {self._index - 1}"
        return SealError(f"authentication failed at {where} (corrupt, truncated or tampered)")


def _stream_cipher(secret: bytes, salt: bytes) -> AESGCM:
    """The cipher of one sealed stream: AES-GCM under HKDF-SHA256(secret, salt)."""
    hkdf = HKDF(hashes.SHA256(), length=32, salt=salt, info=_SUBKEY_INFO)
    return AESGCM(hkdf.derive(secret))


# The streams read most (a popular asset's blob, served again and again) keep their cipher: deriving
# the subkey costs about as much as opening a small chunk. Keyed by the master secret itself, so a
# key file replaced under the same id is not confused with the old one. Thread-safe (lru_cache); an
# AESGCM object holds no per-message state, so readers in several threads can share one.
_opening_cipher = functools.lru_cache(maxsize=1024)(_stream_cipher)


def _check_chunk_size(chunk_size: int) -> None:
    if not 0 < chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk size must be within 1..{MAX_CHUNK_SIZE}, got {chunk_size}")


class SealWriter:
    """Seals a stream: write ``header()``, then every ``update()`` result, then ``finish()``."""

    def __init__(self, key: Key, context: bytes = b"", chunk_size: int = CHUNK_SIZE) -> None:
        _check_chunk_size(chunk_size)
        header = Header.new(key, chunk_size)
        self._header = header.to_bytes()
        self._chunk_size = chunk_size
        self._cipher = ChunkCipher(key, header, context)
        self._pending = bytearray()
        self._finished = False

    def header(self) -> bytes:
        return self._header

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        """Ciphertext of every chunk completed by ``data``; the rest is kept for later."""
        if self._finished:
            raise ValueError("seal writer is finished")
        size = self._chunk_size
        view = memoryview(data)
        out: list[bytes] = []
        if self._pending:
            taken = size - len(self._pending)
            self._pending += view[:taken]
            view = view[taken:]
            if len(self._pending) < size:
                return b""
            out.append(self._cipher.seal(self._pending, last=False))
            self._pending.clear()
        # Full chunks are sealed as "not last" right away: the last chunk is always a short one.
        while len(view) >= size:
            out.append(self._cipher.seal(view[:size], last=False))
            view = view[size:]
        self._pending += view
        return b"".join(out)

    def finish(self, final_context: bytes = b"") -> bytes:
        """The last chunk: whatever plaintext is pending (possibly none), also binding ``final_context``."""
        if self._finished:
            raise ValueError("seal writer is finished")
        self._finished = True
        last = self._cipher.seal(self._pending, last=True, final_context=final_context)
        self._pending.clear()
        return last


class SealReader:
    """Opens a stream sealed by ``SealWriter``: feed ciphertext to ``update()``, end with ``finish()``.

    Both raise ``SealError`` on any failure, after which the reader is unusable.
    """

    def __init__(self, keyring: KeyRing, context: bytes = b"") -> None:
        self._keyring = keyring
        self._context = context
        self._pending = bytearray()
        self._cipher: ChunkCipher | None = None
        self._step = 0
        self._done = False

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        """Plaintext of the chunks that ``data`` completes and that are known not to be the last."""
        self._check_open()
        self._pending += data
        try:
            if self._cipher is None:
                if len(self._pending) < HEADER_SIZE:
                    return b""
                self._start()
            return self._open_ready()
        except SealError:
            self._done = True
            raise

    def finish(self, final_context: bytes = b"") -> bytes:
        """Plaintext of the last chunk, once it authenticates as the last (with ``final_context``)."""
        self._check_open()
        self._done = True
        if self._cipher is None:
            raise SealError("truncated header")
        if len(self._pending) < TAG_SIZE:
            raise SealError("truncated: the last chunk is missing")
        return self._cipher.open(self._pending, last=True, final_context=final_context)

    def _check_open(self) -> None:
        if self._done:
            raise ValueError("seal reader is finished")

    def _start(self) -> None:
        self._cipher = ChunkCipher.for_reading(self._keyring, self._pending, self._context)
        self._step = self._cipher.header.chunk_size + TAG_SIZE
        del self._pending[:HEADER_SIZE]

    def _open_ready(self) -> bytes:
        assert self._cipher is not None
        step = self._step
        # Strictly more than whole chunks must be pending: only a byte beyond a chunk proves it is
        # not the last one.
        ready = (len(self._pending) - 1) // step
        if ready <= 0:
            return b""
        with memoryview(self._pending) as view:
            out = [self._cipher.open(view[i * step : (i + 1) * step], last=False) for i in range(ready)]
        del self._pending[: ready * step]
        return b"".join(out)


class SealingFile:
    """A file-like ``write`` that seals what it is given and hands the sealed stream to ``out``: the
    header at once, then each chunk as it completes; ``finish`` hands the last one. Only a chunk's worth
    is held at a time (a pickle dumped into it is never held whole)."""

    def __init__(
        self, key: Key, out: Callable[[bytes], object], context: bytes = b"", chunk_size: int = CHUNK_SIZE
    ) -> None:
        self._writer = SealWriter(key, context, chunk_size)
        self._out = out
        out(self._writer.header())

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._out(self._writer.update(data))
        return len(data)

    def finish(self) -> None:
        self._out(self._writer.finish())


class OpeningFile:
    """The plaintext of the sealed stream in ``file`` as a file to read (``read``, ``readinto``,
    ``readline``: what ``pickle.load`` asks), opened a chunk at a time. Only authenticated plaintext is
    returned, and the last chunk only once the stream ended there: a reader gets to the end of what
    was sealed or a ``SealError``."""

    def __init__(self, keyring: KeyRing, file: BinaryIO, context: bytes = b"") -> None:
        self._reader = SealReader(keyring, context)
        self._file = file
        self._plain = bytearray()
        self._ended = False

    def _fill(self, wanted: int, until: bytes | None = None) -> None:
        """Open chunks until ``wanted`` bytes (or, with ``until``, a line) are ready or the stream ended."""
        while not self._ended and len(self._plain) < wanted and (until is None or until not in self._plain):
            sealed = self._file.read(CHUNK_SIZE)
            self._plain += self._reader.update(sealed) if sealed else self._reader.finish()
            self._ended = not sealed

    def _take(self, size: int) -> bytes:
        taken = bytes(self._plain[:size])
        del self._plain[:size]
        return taken

    def read(self, size: int = -1) -> bytes:
        self._fill(size if size >= 0 else sys.maxsize)
        return self._take(size if size >= 0 else len(self._plain))

    def readinto(self, buffer: bytearray | memoryview) -> int:
        size = len(buffer)
        self._fill(size)
        taken = min(size, len(self._plain))
        buffer[:taken] = self._plain[:taken]
        del self._plain[:taken]
        return taken

    def readline(self) -> bytes:
        self._fill(sys.maxsize, until=b"\n")
        end = self._plain.find(b"\n")
        return self._take(end + 1 if end >= 0 else len(self._plain))


def sealed_size(plaintext_size: int) -> int:
    """The size of ``plaintext_size`` bytes sealed by ``seal``."""
    return HEADER_SIZE + plaintext_size + (plaintext_size // CHUNK_SIZE + 1) * TAG_SIZE


def seal_to(
    keyring: KeyRing,
    plaintext: bytes | bytearray | memoryview,
    write: Callable[[bytes], object],
    context: bytes = b"",
) -> None:
    """Seal a value held whole under the current key, handing ``write`` the header, then each chunk in
    turn: only one chunk's ciphertext exists at a time."""
    sealing = SealingFile(keyring.current, write, context)
    data = memoryview(plaintext)
    for start in range(0, len(data), CHUNK_SIZE):
        sealing.write(data[start : start + CHUNK_SIZE])
    sealing.finish()


def seal(
    keyring: KeyRing, plaintext: bytes | bytearray | memoryview, context: bytes = b""
) -> bytes | bytearray:
    """Seal a value held whole (index entries, metadata) under the current key, into one buffer of its
    size (a large document is not held several times over while it is sealed)."""
    if len(plaintext) < CHUNK_SIZE:  # most index entries: the header and the last chunk, at once
        key = keyring.current
        header = Header.new(key)
        return header.to_bytes() + ChunkCipher(key, header, context).seal(plaintext, last=True)
    out = bytearray(sealed_size(len(plaintext)))
    at = 0

    def write(piece: bytes) -> None:
        nonlocal at
        out[at : at + len(piece)] = piece
        at += len(piece)

    seal_to(keyring, plaintext, write, context)
    return out


def unseal(keyring: KeyRing, data: bytes | bytearray, context: bytes = b"") -> bytes:
    """Open a value sealed by ``seal`` (or any sealed stream held whole); ``SealError`` on failure."""
    view = memoryview(data)
    return unseal_from(keyring, lambda start, end: view[start:end], len(data), context)


def unseal_from(
    keyring: KeyRing, read: Callable[[int, int], bytes | memoryview], size: int, context: bytes = b""
) -> bytes:
    """``unseal`` of ``size`` sealed bytes that ``read(start, end)`` gives a chunk's worth at a time, in
    order: the sealed bytes are never held whole."""
    if size <= CHUNK_SIZE:  # most index entries: one read, and one chunk unless a writer chose small ones
        data = read(0, size)
        cipher = ChunkCipher.for_reading(keyring, data, context)
        if size - HEADER_SIZE < cipher.header.chunk_size + TAG_SIZE:  # the last chunk is the only one
            return cipher.open(memoryview(data)[HEADER_SIZE:], last=True)
    reader = SealReader(keyring, context)
    parts = [
        reader.update(read(start, min(start + CHUNK_SIZE, size))) for start in range(0, size, CHUNK_SIZE)
    ]
    parts.append(reader.finish())
    return b"".join(parts)
