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

from proxy.store.blobs import BlobStore
from proxy.store.catalog import Catalog
from proxy.store.keyring import KeyRing
from proxy.store.ledger import BlobLedger
from proxy.store.local import AsyncBlobs, LocalCatalog, LocalLedger, LocalMetadata
from proxy.store.metadata import MetadataCache
from proxy.store.protocols import BlobBackend, CatalogBackend, LedgerBackend, MetadataBackend


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
    """The one-host store: SQLite indexes and blob files under ``root``."""
    blob_store = BlobStore(root, keyring)
    blobs = AsyncBlobs(blob_store, offload=False)

    async def corrupt(blob_id: str) -> None:
        sealed = blob_store.small.get(blob_id)
        if sealed is None:
            flip_last_byte(blob_store.path(blob_id))
        else:
            blob_store.small.set(blob_id, sealed[:-1] + bytes([sealed[-1] ^ 0xFF]))

    backend = Backend(
        catalog=LocalCatalog(Catalog(root / "index" / "catalog", keyring)),
        ledger=LocalLedger(BlobLedger(root / "index" / "ledger")),
        metadata=LocalMetadata(MetadataCache(root / "index" / "metadata", keyring)),
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
