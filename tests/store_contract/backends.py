"""The backends the storage contract suite runs against, each opened fresh for one test.

A ``Backend`` bundles the four storage protocols of one configuration with what the suite needs to
look behind them: ``raw`` (every byte the backend holds, to show that no plaintext is among them),
``corrupt`` (damage one stored blob) and ``peer`` (a second catalog on the same storage, as another
daemon would open it; None where one process owns the store).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from proxy.store.blobs import BlobStore
from proxy.store.keyring import KeyRing
from proxy.store.local import LocalCatalog, LocalMetadata
from proxy.store.postgres import PostgresIndexes
from proxy.store.protocols import BlobBackend, CatalogBackend, LedgerBackend, MetadataBackend
from proxy.store.remote_blobs import S3BlobStore, SharedBlobStore, s3_client
from proxy.store.sqlite_backend import AsyncBlobs, SqliteLedger
from proxy.store.store import Store
from tests.store_contract.postgres import Cluster


@dataclass
class Backend:
    catalog: CatalogBackend
    ledger: LedgerBackend
    metadata: MetadataBackend
    blobs: BlobBackend
    raw: Callable[[], Awaitable[bytes]]
    corrupt: Callable[[str], Awaitable[None]]
    peer: CatalogBackend | None = None


def files_under(root: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file())


def flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


@contextlib.asynccontextmanager
async def local_backend(root: Path, keyring: KeyRing) -> AsyncIterator[Backend]:
    """The one-host store: SQLite indexes and blob files under ``root``, as the daemon serves it (the
    storage services of ``proxy.store.local``)."""
    store = Store(root, keyring, max_size=2**40)
    blob_store = store.blobs
    blobs = AsyncBlobs(blob_store, offload=False)

    async def corrupt(blob_id: str) -> None:
        sealed = blob_store.small.get(blob_id)
        if sealed is None:
            flip_last_byte(blob_store.path(blob_id))
        else:
            blob_store.small.set(blob_id, sealed[:-1] + bytes([sealed[-1] ^ 0xFF]))

    backend = Backend(
        catalog=LocalCatalog(store),
        ledger=SqliteLedger(store.ledger),
        metadata=LocalMetadata(store),
        blobs=blobs,
        raw=lambda: _async(files_under(root)),
        corrupt=corrupt,
    )
    try:
        yield backend
    finally:
        await close(backend)


async def close(backend: Backend) -> None:
    for part in (backend.catalog, backend.ledger, backend.metadata, backend.blobs, backend.peer):
        if part is not None:
            await part.close()


async def _async(value: bytes) -> bytes:
    return value


@contextlib.asynccontextmanager
async def postgres_backend(
    cluster: Cluster, dsn: str, blobs: str, keyring: KeyRing, local: Path, s3_endpoint: str | None
) -> AsyncIterator[Backend]:
    """Catalog, ledger and metadata in the database ``dsn``; blobs at the shared path or S3 URL ``blobs``."""
    indexes = await PostgresIndexes.open(dsn, keyring)
    peer = await PostgresIndexes.open(dsn, keyring)  # another daemon on the same store
    if blobs.startswith("s3://"):
        bucket, _, prefix = blobs.removeprefix("s3://").partition("/")
        client = s3_client(region="us-east-1", endpoint_url=s3_endpoint)
        client.create_bucket(Bucket=bucket)
        blob_store: BlobStore = S3BlobStore(client, bucket, prefix, keyring, local / "tmp" / "s3")

        async def blob_bytes() -> bytes:
            keys = [
                item["Key"]
                for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
                for item in page.get("Contents", [])
            ]
            return b"".join(
                key.encode() + client.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys
            )

        async def corrupt(blob_id: str) -> None:
            data = client.get_object(Bucket=bucket, Key=prefix + blob_id)["Body"].read()
            client.put_object(Bucket=bucket, Key=prefix + blob_id, Body=data[:-1] + bytes([data[-1] ^ 0xFF]))
    else:
        shared = SharedBlobStore(Path(blobs), keyring)
        blob_store = shared

        async def blob_bytes() -> bytes:
            return files_under(Path(blobs))

        async def corrupt(blob_id: str) -> None:
            flip_last_byte(shared.path(blob_id))

    async def raw() -> bytes:
        admin = await asyncpg.connect(cluster.dsn())
        try:
            await admin.execute("CHECKPOINT")  # the tables' pages into their files
        finally:
            await admin.close()
        return cluster.data_files() + await blob_bytes()

    backend = Backend(
        catalog=indexes.catalog,
        ledger=indexes.ledger,
        metadata=indexes.metadata,
        blobs=AsyncBlobs(blob_store, offload=True),
        raw=raw,
        corrupt=corrupt,
        peer=peer.catalog,
    )
    try:
        yield backend
    finally:
        await close(backend)
        await peer.close()
        await indexes.close()
