"""Content-addressed, encrypted, deduplicated blob files: the bytes layer of the store.

Layout under the cache root (directories 0700, files 0600)::

    blobs/ab/<rest of the id>   one sealed file per distinct content (see ``proxy.store.sealed``)
    blobs/small/                small fetched content: sealed values in an Index (``proxy.store.index``)
    tmp/<random>.part           writes in progress

Small blobs: fetched content of at most ``SMALL_BLOB_BYTES`` (most npm tarballs, many wheels and
POMs) is a row in ``blobs/small`` rather than a file of its own. Creating, writing and renaming a
file cost 0.2-0.7 ms of CPU per blob on the ext4 file system where this was measured, an insert into
the daemon's group of index writes about 0.05 ms; on a cold ``npm ci`` of 300 packages that was a
fifth of the proxy's CPU time. They follow the index's durability (see there): published content,
which must survive a power failure, is always a file, fsynced. A blob is one or the other; readers
do not care which.

A blob id is ``keyring.keyed_name("blob", sha256(content))``: identical content gets one blob
whichever repository or upstream it came through, and a name reveals nothing about the content
to someone without the key. After a key rotation, content already stored under an old key's
name is found through ``keyed_names`` and not written again.

A write goes to a temp file in ``tmp/``, then is renamed to its final name (content already stored
is found before and not written again: dedup; a rename over a file written meanwhile by another writer
replaces the same content). Only complete files ever appear under ``blobs/``, whatever moment the
process dies. A durable write (``place(durable=True)``: published content, the only copy) is fsynced
before the rename and its directory after it, so it also survives a power failure. Other content is
not: a power failure can leave such a blob empty or torn, and it then fails authentication when read,
is removed and is fetched again. One process at a time has a root open (the small blobs' index is
held exclusively; a second process is refused with ``IndexInUse``), so whatever is in ``tmp/`` when a
store opens was left by one that died, and is removed. Several workers of one daemon (``shared``)
leave that to their parent, which opens the store once before it starts them.

A blob's last chunk also authenticates its id (the sealed ``final_context``), so a valid blob
file put in another's place fails when read, without hashing. A blob that fails authentication
when read is removed (and logged by id only) and reported as ``BlobCorrupt``, so the caller
can fetch the content again. A blob sealed under a key missing
from the key ring is reported (``BlobKeyUnknown``) but kept: the key file may come back.

Concurrency: ``BlobStore`` methods may be called from several threads at once; files rely on atomic
file system operations, small blobs on their Index's lock. Each
``BlobWriter`` and ``BlobReader`` belongs to one thread at a time.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

from proxy.store.allocator import MMAP_THRESHOLD
from proxy.store.index import Index
from proxy.store.keyring import KeyRing, fsync_dir, make_private_dirs
from proxy.store.sealed import (
    CHUNK_SIZE,
    HEADER_SIZE,
    TAG_SIZE,
    ChunkCipher,
    SealError,
    SealWriter,
    UnknownKeyError,
)
from proxy.store.space import out_of_space

log = logging.getLogger(__name__)

_BLOB_ID = re.compile(r"[0-9a-f]{64}")
SMALL_BLOB_BYTES = 128 * 1024  # fetched content up to this size is a row in blobs/small
# Content up to this size is read as one piece (``BlobReader``): a server writes it to its client in
# one system call, where chunk by chunk took four and as many wake-ups of the client (a 0.8 MB npm
# tarball; most packages are smaller). Larger content streams chunk by chunk, holding one chunk at a
# time. Kept below the C allocator's mmap threshold (``proxy.store.allocator``), so that the piece
# comes from the heap: a fresh mapping costs a page fault per 4 KiB of it.
WHOLE_BYTES = MMAP_THRESHOLD - CHUNK_SIZE // 4
KNOWN_FILES = 4096  # blob ids remembered as files (``BlobStore._remember_file``): about 0.5 MB
_NAME_PURPOSE = "blob"
# Binds blob files to their role: a sealed index value cannot be passed off as a blob.
_CONTEXT = b"codeartifact-proxy blob"


class BlobError(Exception):
    def __init__(self, blob_id: str, message: str) -> None:
        super().__init__(message)
        self.blob_id = blob_id


class BlobMissing(BlobError):
    def __init__(self, blob_id: str) -> None:
        super().__init__(blob_id, f"blob {blob_id} does not exist")


class BlobCorrupt(BlobError):
    """The blob failed authentication or its identity check; the store has removed it."""

    def __init__(self, blob_id: str, reason: str) -> None:
        super().__init__(blob_id, f"blob {blob_id} is unreadable: {reason}")
        self.reason = reason


class BlobKeyUnknown(BlobCorrupt):
    """The blob was sealed under a key that is not in the key ring; the store has kept it."""


@dataclass(frozen=True)
class BlobInfo:
    """A blob's id and its plaintext's size and hex digests."""

    blob_id: str
    size: int
    sha256: str
    sha512: str
    sha1: str
    md5: str


class BlobStore:
    """Encrypted blob files under ``root``. Thread-safe; see the module docstring."""

    small_blob_bytes = SMALL_BLOB_BYTES  # fetched content up to this size goes to ``small``
    whole_blob_bytes = WHOLE_BYTES  # content up to this size is read as one piece
    # Blobs recently read from their own file, oldest first (see ``_remember_file``); made by the first
    # such read, so that subclasses with their own __init__ need not know of it.
    _files: OrderedDict[str, None] | None = None

    def __init__(
        self, root: Path, keyring: KeyRing, chunk_size: int = CHUNK_SIZE, *, shared: bool = False
    ) -> None:
        """``shared``: one of several workers of this host (``proxy.store.index``); the temp files
        are then the other workers' writes in progress, and their parent removed the dead ones."""
        self.root = root
        self.keyring = keyring
        self.chunk_size = chunk_size
        self._blobs = root / "blobs"
        self._tmp = root / "tmp"
        self._blobs_dir, self._tmp_dir = str(self._blobs), str(self._tmp)
        self.small = Index(self._blobs / "small", shared=shared)  # first: it refuses a second process
        try:
            make_private_dirs(self._tmp)
            self._make_fanouts()
            if not shared:
                self._remove_dead_temp_files()
        except BaseException:
            self.small.close()
            raise

    def close(self) -> None:
        self.small.close()

    def path(self, blob_id: str) -> Path:
        """Where the blob's file lives (whether or not it exists). For the store's own use."""
        return Path(self._file(blob_id))

    def _file(self, blob_id: str) -> str:
        # A string, not a Path: this is on every request's way, and pathlib costs microseconds.
        if not _BLOB_ID.fullmatch(blob_id):
            raise ValueError(f"not a blob id: {blob_id!r}")
        return f"{self._blobs_dir}/{blob_id[:2]}/{blob_id[2:]}"

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    def exists(self, blob_id: str) -> bool:
        path = self._file(blob_id)
        return self.small.has(blob_id) or os.path.isfile(path)

    def reader(self, blob_id: str, *, check_identity: bool = False) -> BlobReader:
        """Open a blob for reading (``BlobMissing`` if absent, ``BlobCorrupt`` if visibly broken).

        With ``check_identity`` the reader also checks, before releasing the last chunk, that the
        content's digest gives this blob id, which catches a valid blob file put in another's place.
        """
        path = self._file(blob_id)
        known_file = self._files is not None and blob_id in self._files
        if not known_file and (small := self._small_reader(blob_id, check_identity)) is not None:
            return small
        try:
            file = open(path, "rb", buffering=0)  # noqa: SIM115 - the reader owns it
        except FileNotFoundError:
            if known_file:  # no longer a file: it may have become a small blob since
                self._files.pop(blob_id, None)  # type: ignore[union-attr]
                if (small := self._small_reader(blob_id, check_identity)) is not None:
                    return small
            raise BlobMissing(blob_id) from None
        try:
            opened = os.fstat(file.fileno())
        except BaseException:
            file.close()
            raise
        self._remember_file(blob_id)
        remove = partial(_remove_if_same, path, opened)
        return BlobReader(self, blob_id, file, opened.st_size, remove, check_identity)

    def _small_reader(self, blob_id: str, check_identity: bool) -> BlobReader | None:
        sealed = self.small.get(blob_id)
        if sealed is None:
            return None
        remove = partial(self.small.delete, blob_id)
        return BlobReader(self, blob_id, io.BytesIO(sealed), len(sealed), remove, check_identity)

    def _remember_file(self, blob_id: str) -> None:
        """Note that ``blob_id`` was a file: its next read opens the file first, without asking the
        small blobs' index (a blob is one or the other; one found gone is looked up in both)."""
        files = self._files
        if files is None:
            files = self._files = OrderedDict()  # two threads racing here make a cache each: harmless
        if blob_id in files:
            return
        files[blob_id] = None
        if len(files) > KNOWN_FILES:
            with contextlib.suppress(KeyError):  # another thread emptied it meanwhile
                files.popitem(last=False)

    def delete(self, blob_id: str) -> bool:
        """Remove a blob; False if it did not exist."""
        path = self._file(blob_id)
        small = self.small.delete(blob_id)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return small
        return True

    def ids(self) -> Iterator[str]:
        """Every blob id in the store, in no particular order."""
        for fanout in _scandir(self._blobs):
            if len(fanout.name) == 2 and fanout.is_dir(follow_symlinks=False):
                for entry in _scandir(Path(fanout.path)):
                    blob_id = fanout.name + entry.name
                    if _BLOB_ID.fullmatch(blob_id):
                        yield blob_id
        yield from self.small.names()

    def disk_size(self, blob_id: str) -> int:
        """Bytes the blob takes (sealed size)."""
        path = self._file(blob_id)
        sealed = self.small.get(blob_id)
        if sealed is not None:
            return len(sealed)
        try:
            return os.stat(path).st_size
        except FileNotFoundError:
            raise BlobMissing(blob_id) from None

    def verify(self, blob_id: str) -> str | None:
        """Read the whole blob and check its identity: None if sound, else why not.

        A corrupt blob is removed, as by any reader.
        """
        try:
            with self.reader(blob_id, check_identity=True) as reader:
                for _ in reader:
                    pass
        except BlobMissing:
            return "missing"
        except BlobCorrupt as exc:
            return exc.reason
        return None

    def _stored_as(self, info: BlobInfo) -> str | None:
        """The id under which this content is stored already (under the current key or an old one)."""
        for blob_id in self.keyring.keyed_names(_NAME_PURPOSE, bytes.fromhex(info.sha256)):
            if self.exists(blob_id):
                return blob_id
        return None

    def _move_in(self, temp: str, blob_id: str, durable: bool) -> None:
        """Give a complete temp file the blob's name. A file of that name written meanwhile by another
        writer holds the same content (sealed differently), so replacing it changes nothing readers see."""
        final = self._file(blob_id)
        try:
            os.rename(temp, final)
        except FileNotFoundError:  # its fan-out directory was removed after start
            make_private_dirs(Path(final).parent)
            os.rename(temp, final)
            if durable:
                fsync_dir(self._blobs)
        if durable:
            fsync_dir(Path(final).parent)

    def _broken(self, blob_id: str, remove: Callable[[], None], error: SealError) -> BlobCorrupt:
        if isinstance(error, UnknownKeyError):
            log.warning("blob %s: %s; kept until that key file is configured again", blob_id, error.reason)
            return BlobKeyUnknown(blob_id, error.reason)
        remove()
        log.warning("blob %s is corrupt (%s); removed", blob_id, error.reason)
        return BlobCorrupt(blob_id, error.reason)

    def _make_fanouts(self) -> None:
        """Every fan-out directory, made once, so that a commit does not make (and fsync) one."""
        missing = [d for d in (self._blobs / f"{n:02x}" for n in range(256)) if not d.is_dir()]
        for directory in missing:
            with contextlib.suppress(FileExistsError):
                directory.mkdir(mode=0o700)
        if missing:
            fsync_dir(self._blobs)

    def _new_temp_file(self) -> tuple[int, str]:
        path = f"{self._tmp_dir}/{secrets.token_hex(16)}.part"
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), path

    def _remove_dead_temp_files(self) -> None:
        for entry in _scandir(self._tmp):
            if not entry.is_dir(follow_symlinks=False):
                Path(entry.path).unlink(missing_ok=True)


class BlobWriter:
    """Writes one blob: ``write()`` the content, ``finish()`` to get its digests, then ``commit()``.

    The temp file is created with the first complete chunk, so content smaller than a chunk (most
    packages) touches the disk only in ``commit()``: ``write()`` and ``finish()`` are then pure
    computation, and content already stored is not written at all. Used as a context manager, it
    aborts (removes its temp file) unless committed.

    When the disk is full (``proxy.store.space``), ``write()`` drops the temp file and goes on hashing,
    so the content can still be verified and handed on while it arrives; ``commit()`` then raises
    the error that stopped the writing.
    """

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        self._sealer = SealWriter(store.keyring.current, _CONTEXT, store.chunk_size)
        self._hashes = {name: hashlib.new(name) for name in ("sha256", "sha512", "sha1", "md5")}
        self._size = 0
        self._info: BlobInfo | None = None
        self._last_chunk = b""
        self._committed = False
        self._closed = False
        self._temp: str | None = None  # until the file is moved to its blob name
        self._fd: int | None = None
        self._out_of_space: OSError | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._committed:
            self.abort()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Add plaintext: hash it; its completed chunks go sealed to the temp file."""
        self._check_open()
        for digest in self._hashes.values():
            digest.update(data)
        self._size += len(data)
        if self._out_of_space is not None:
            return
        sealed = self._sealer.update(data)
        if sealed:
            try:
                _write_all(self._temp_file(), sealed)
            except OSError as exc:
                if not out_of_space(exc):
                    raise
                self._out_of_space = exc
                self._drop_temp_file()

    def finish(self) -> BlobInfo:
        """End the content and return its digests, so the caller can check them before ``commit()``."""
        self._check_open()
        if self._info is None:
            hexes = {name: digest.hexdigest() for name, digest in self._hashes.items()}
            blob_id = self._store.keyring.keyed_name(_NAME_PURPOSE, bytes.fromhex(hexes["sha256"]))
            self._last_chunk = self._sealer.finish(final_context=blob_id.encode())
            self._info = BlobInfo(blob_id=blob_id, size=self._size, **hexes)
        return self._info

    def commit(self, *, durable: bool = True) -> BlobInfo:
        """Make the blob visible, and durable unless told not to (see ``place``); return its info (the
        id of an identical blob if one exists)."""
        if self.prepare_commit():
            self.place(durable=durable)
        return self.complete_commit()

    # commit() in three steps, for callers that run only the one that waits on the disk off their
    # event loop: each system call in a worker thread is a GIL hand-over with the loop.
    def prepare_commit(self) -> bool:
        """False when the content is stored already, so there is nothing to place."""
        if self._committed:
            return False
        info = self.finish()
        stored = self._store._stored_as(info)
        if stored is not None:
            self._info = replace(info, blob_id=stored)
            return False
        return True

    def place(self, *, durable: bool) -> None:
        """Write the last chunk and move the file to its blob name, or, for small content that need
        not be durable, add it to the small blobs. ``durable`` fsyncs the content before the move and
        the directory after it: the steps that wait on the disk. Without them a power failure can leave
        the blob empty or torn; it then fails authentication when read and is removed."""
        if self._out_of_space is not None:
            raise self._out_of_space
        assert self._info is not None
        if self._fd is None and not durable and self._size <= self._store.small_blob_bytes:
            self._store.small.set(self._info.blob_id, self._sealer.header() + self._last_chunk)
            return
        fd = self._temp_file()
        _write_all(fd, self._last_chunk)
        assert self._temp is not None
        if durable:
            os.fsync(fd)
        self._store._move_in(self._temp, self._info.blob_id, durable)
        self._temp = None  # moved: nothing to remove

    def complete_commit(self) -> BlobInfo:
        assert self._info is not None
        self._committed = True
        self._close()
        return self._info

    def abort(self) -> None:
        """Drop everything written; safe to call more than once. Does nothing after ``commit()``."""
        if not self._committed:
            self._close()

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("blob writer is closed")

    def _temp_file(self) -> int:
        if self._fd is None:
            self._fd, self._temp = self._store._new_temp_file()
            _write_all(self._fd, self._sealer.header())
        return self._fd

    def _close(self) -> None:
        self._closed = True
        self._drop_temp_file()

    def _drop_temp_file(self) -> None:
        if self._fd is None:
            return
        if self._temp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._temp)
        fd, self._fd = self._fd, None
        os.close(fd)


class BlobReader:
    """Reads one blob: iterate it (once) for authenticated plaintext chunks.

    ``size`` is the plaintext size, known from the sealed size before anything is decrypted. The
    sealed size also tells which chunk is the last, so each chunk is released as soon as it opens;
    content of at most ``whole_blob_bytes`` comes out as one piece (a bytearray) once all of its chunks
    opened. ``remove`` removes the blob when it is found broken.
    """

    def __init__(
        self,
        store: BlobStore,
        blob_id: str,
        file: BinaryIO,
        sealed_size: int,
        remove: Callable[[], None],
        check_identity: bool,
    ) -> None:
        self.blob_id = blob_id
        self._store = store
        self._file = file
        self._sealed_size = sealed_size
        self._remove = remove
        self._check_identity = check_identity
        self._iterated = False
        try:
            self._cipher = ChunkCipher.for_reading(store.keyring, file.read(HEADER_SIZE), _CONTEXT)
            self.size = self._cipher.header.plaintext_size(sealed_size)
        except SealError as exc:
            raise self._fail(exc) from None
        except BaseException:
            file.close()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[bytes]:
        if self._iterated:
            raise ValueError("a blob reader can be iterated only once")
        self._iterated = True
        return self._plaintext()

    def close(self) -> None:
        self._file.close()

    def _plaintext(self) -> Iterator[bytes]:
        step = self._cipher.header.chunk_size + TAG_SIZE
        full_chunks, last_size = divmod(self._sealed_size - HEADER_SIZE, step)
        if self.size <= self._store.whole_blob_bytes:
            return self._whole(full_chunks, last_size, step)
        return self._chunks(full_chunks, last_size, step)

    def _whole(self, full_chunks: int, last_size: int, step: int) -> Iterator[bytes]:
        """The plaintext as one piece, every chunk decrypted in place into it, released once all of
        them authenticated (and the identity checked)."""
        plaintext = bytearray(self.size)
        out = memoryview(plaintext)
        opened = 0
        try:
            for index in range(full_chunks + 1):
                last = index == full_chunks
                ciphertext = self._read(last_size if last else step)
                into = out[opened : opened + len(ciphertext) - TAG_SIZE]
                self._cipher.open_into(
                    ciphertext, into, last=last, final_context=self.blob_id.encode() if last else b""
                )
                opened += len(into)
            if self._check_identity:
                self._verify_identity(hashlib.sha256(plaintext).digest())
        except SealError as exc:
            raise self._fail(exc) from None
        if plaintext:
            # A bytearray: handing it on as bytes would copy it. Nothing else holds it.
            yield plaintext  # type: ignore[misc]

    def _chunks(self, full_chunks: int, last_size: int, step: int) -> Iterator[bytes]:
        """The plaintext chunk by chunk, each one released as soon as it authenticated."""
        sha256 = hashlib.sha256() if self._check_identity else None
        try:
            for index in range(full_chunks + 1):
                last = index == full_chunks
                ciphertext = _ciphertext_buffer(step)[: last_size if last else step]
                self._read_exactly(ciphertext)
                chunk = self._cipher.open(
                    ciphertext, last=last, final_context=self.blob_id.encode() if last else b""
                )
                if sha256:
                    sha256.update(chunk)
                    if last:
                        self._verify_identity(sha256.digest())
                if chunk:
                    yield chunk
        except SealError as exc:
            raise self._fail(exc) from None

    def _read(self, size: int) -> bytes:
        """The next ``size`` bytes (in a new object, which unlike a reused buffer is not zeroed first)."""
        data = self._file.read(size)
        if len(data) < size:  # a file is read short only at its end, a BytesIO likewise
            raise SealError("truncated while being read")
        return data

    def _read_exactly(self, into: memoryview) -> None:
        filled = 0
        while filled < len(into):
            count = self._file.readinto(into[filled:])
            if not count:
                raise SealError("truncated while being read")
            filled += count

    def _verify_identity(self, sha256: bytes) -> None:
        if self.blob_id not in self._store.keyring.keyed_names(_NAME_PURPOSE, sha256):
            raise SealError("its content does not match its id")

    def _fail(self, error: SealError) -> BlobCorrupt:
        self.close()
        return self._store._broken(self.blob_id, self._remove, error)


# Each thread's buffer for a chunk's ciphertext (``BlobReader._chunks``): a chunk is read into it and
# decrypted before the reader yields, so every download in progress on a thread shares one instead of
# holding a chunk's worth each (50 downloads of a large asset: 12.5 MiB).
_buffers = threading.local()
_SHARED_STEP = CHUNK_SIZE + TAG_SIZE  # larger chunks (a store made with another chunk size) get their own


def _ciphertext_buffer(step: int) -> memoryview:
    """A buffer of at least ``step`` bytes, to fill and use up before the calling reader yields."""
    if step > _SHARED_STEP:
        return memoryview(bytearray(step))
    buffer: memoryview | None = getattr(_buffers, "buffer", None)
    if buffer is None:
        buffer = _buffers.buffer = memoryview(bytearray(_SHARED_STEP))
    return buffer


def _scandir(directory: Path) -> Iterator[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as entries:
            yield from entries
    except FileNotFoundError:
        return


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _remove_if_same(path: str, opened: os.stat_result) -> None:
    """Remove the very file that was opened: a good copy may have replaced it meanwhile."""
    try:
        current = os.stat(path)
        if (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino):
            os.unlink(path)
    except FileNotFoundError:
        pass
