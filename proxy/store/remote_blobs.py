"""Blob stores that several daemons share: a shared file system path (NFS/EFS-style,
``[store] blobs = "/mnt/shared/blobs"``) and S3 (``blobs = "s3://bucket/prefix"``, through botocore).

Both are ``proxy.store.blobs.BlobStore`` with another place for sealed blobs: the same writer (hash,
seal, check the declared digests, then commit), the same reader (authenticate every chunk and the id,
remove what fails), the same names (keyed hashes), so the file system or the bucket sees sealed bytes
under keyed names, never plaintext or a content digest.

No small blobs: the one-host store keeps small fetched content in a SQLite file, which several hosts
cannot share (SQLite's locking does not work over NFS). Here every blob is a file or an object.

Shared path layout::

    DIR/ab/<rest of the id>      as ``ROOT/blobs`` of the one-host store
    DIR/tmp/<host>.<pid>/        this daemon's writes in progress (renamed into place: atomic on NFS)

A daemon removes its own temp directory when it closes, and at start any temp file under ``DIR/tmp``
not written for ``STALE_TEMP_SECONDS`` (what a daemon that died left there).

S3 layout: one object ``<prefix><blob id>`` per blob. A write goes to a local temp file, then is put
whole (the put is atomic: readers see no object or the whole one). Two daemons putting identical
content at once both put the same plaintext, sealed differently; either object reads back.

Concurrency rule: as ``BlobStore``; every call may block on the network, so the daemon runs them in
worker threads (``proxy.store.sqlite_backend.AsyncBlobs`` with ``offload=True``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError

from proxy.store.blobs import _BLOB_ID, BlobMissing, BlobReader, BlobStore
from proxy.store.keyring import KeyRing, make_private_dirs
from proxy.store.sealed import CHUNK_SIZE

STALE_TEMP_SECONDS = 3600.0


class NoSmallBlobs:
    """Stands for the one-host store's small-blob index in stores that have none."""

    def has(self, name: str) -> bool:
        return False

    def get(self, name: str) -> bytes | None:
        return None

    def set(self, name: str, value: bytes) -> None:
        raise AssertionError("no small blobs in a shared blob store")  # small_blob_bytes < 0

    def delete(self, name: str) -> bool:
        return False

    def names(self) -> list[str]:
        return []

    def commit(self) -> None:
        """Nothing to commit."""

    def sync(self) -> None:
        """Nothing to sync."""

    def compact(self) -> None:
        """Nothing to compact."""

    def close(self) -> None:
        """Nothing to close."""


class SharedBlobStore(BlobStore):
    """Blob files in a directory that daemons on several hosts share."""

    small_blob_bytes = -1

    def __init__(self, directory: Path, keyring: KeyRing, chunk_size: int = CHUNK_SIZE) -> None:
        # Not BlobStore.__init__: no small-blob index, and a temp directory of this daemon's own.
        self.root = directory
        self.keyring = keyring
        self.chunk_size = chunk_size
        self._blobs = directory
        self._tmp = directory / "tmp" / f"{socket.gethostname()}.{os.getpid()}"
        self._blobs_dir, self._tmp_dir = str(self._blobs), str(self._tmp)
        self.small = NoSmallBlobs()  # type: ignore[assignment]
        make_private_dirs(self._tmp)
        self._make_fanouts()
        _remove_stale_temp_files(directory / "tmp", keep=self._tmp)

    def _new_temp_file(self) -> tuple[int, str]:
        try:
            return super()._new_temp_file()
        except FileNotFoundError:
            # Another daemon starting removed this daemon's temp directory while it was empty (it
            # cannot tell an idle daemon's from a dead one's): make it again.
            make_private_dirs(self._tmp)
            return super()._new_temp_file()

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)


def _remove_stale_temp_files(tmp: Path, keep: Path) -> None:
    stale_before = time.time() - STALE_TEMP_SECONDS
    for directory in tmp.iterdir():
        if directory == keep or not directory.is_dir():
            continue
        files = list(directory.iterdir())
        for file in files:
            with contextlib.suppress(FileNotFoundError):
                if file.stat().st_mtime < stale_before:
                    file.unlink()
        with contextlib.suppress(OSError):  # not empty: another daemon is writing there
            directory.rmdir()


class S3BlobStore(BlobStore):
    """Blob objects in an S3 bucket under a prefix; ``client`` is a botocore S3 client; ``tmp`` is this
    daemon's own local directory for writes in progress (in a parent that other daemons may share)."""

    small_blob_bytes = -1

    def __init__(
        self, client: Any, bucket: str, prefix: str, keyring: KeyRing, tmp: Path, chunk_size: int = CHUNK_SIZE
    ) -> None:
        # Not BlobStore.__init__: no blob directory, no small-blob index; ``tmp`` is local.
        self.root = tmp
        self.keyring = keyring
        self.chunk_size = chunk_size
        self._client = client
        self._bucket = bucket
        self._prefix = prefix
        self._blobs = self._tmp = tmp
        self._blobs_dir = self._tmp_dir = str(tmp)
        self.small = NoSmallBlobs()  # type: ignore[assignment]
        make_private_dirs(tmp)
        _remove_stale_temp_files(tmp.parent, keep=tmp)

    def close(self) -> None:
        self._client.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _key(self, blob_id: str) -> str:
        if not _BLOB_ID.fullmatch(blob_id):
            raise ValueError(f"not a blob id: {blob_id!r}")
        return self._prefix + blob_id

    def path(self, blob_id: str) -> Path:
        raise NotImplementedError("an S3 blob has no path")

    def exists(self, blob_id: str) -> bool:
        return self._head(blob_id) is not None

    def _head(self, blob_id: str) -> dict[str, Any] | None:
        try:
            return self._client.head_object(Bucket=self._bucket, Key=self._key(blob_id))
        except ClientError as exc:
            if _not_found(exc):
                return None
            raise

    def reader(self, blob_id: str, *, check_identity: bool = False) -> BlobReader:
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=self._key(blob_id))
        except ClientError as exc:
            if _not_found(exc):
                raise BlobMissing(blob_id) from None
            raise
        remove = partial(self.delete, blob_id)
        body = _Body(response["Body"])
        return BlobReader(self, blob_id, body, response["ContentLength"], remove, check_identity)  # type: ignore[arg-type]

    def delete(self, blob_id: str) -> bool:
        if not self.exists(blob_id):
            return False
        self._client.delete_object(Bucket=self._bucket, Key=self._key(blob_id))
        return True

    def ids(self) -> Iterator[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=self._prefix):
            for item in page.get("Contents", []):
                blob_id = item["Key"][len(self._prefix) :]
                if _BLOB_ID.fullmatch(blob_id):
                    yield blob_id

    def disk_size(self, blob_id: str) -> int:
        head = self._head(blob_id)
        if head is None:
            raise BlobMissing(blob_id)
        return head["ContentLength"]

    def _move_in(self, temp: str, blob_id: str, durable: bool) -> None:
        # S3 acknowledges a put once it is stored durably: nothing to fsync.
        try:
            with open(temp, "rb") as body:
                self._client.put_object(Bucket=self._bucket, Key=self._key(blob_id), Body=body)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)

    def _make_fanouts(self) -> None:
        """Nothing: a bucket has no directories."""


def s3_client(*, region: str | None, endpoint_url: str | None = None) -> Any:
    """A botocore S3 client with the default credential chain (environment, profile, instance role).
    ``endpoint_url``: an S3-compatible server, addressed by path (its name may be an IP address)."""
    config = Config(s3={"addressing_style": "path"}) if endpoint_url else None
    return botocore.session.get_session().create_client(
        "s3", region_name=region, endpoint_url=endpoint_url, config=config
    )


def _not_found(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code")
    return code in ("404", "NoSuchKey", "NotFound")


class _Body:
    """A botocore streaming body as the file ``BlobReader`` reads: ``read`` and ``readinto`` that return
    short only at the end."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def read(self, size: int) -> bytes:
        parts: list[bytes] = []
        wanted = size
        while wanted > 0:
            part = self._body.read(wanted)
            if not part:
                break
            parts.append(part)
            wanted -= len(part)
        return b"".join(parts)

    def readinto(self, into: memoryview) -> int:
        data = self.read(len(into))
        into[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._body.close()
