"""The blob ledger: size, pin and last access of every blob, for LRU eviction of cached content.

A blob is *pinned* when a published asset uses it: published packages are primary data and never
evicted. Everything else is cache, evicted least-recently-used once the cached bytes exceed
``cache.max_size``.

Entries are keyed by blob id (already a keyed hash) and hold only numbers, so nothing here reveals
content. Reads only touch an in-memory map of access times, flushed in batches, so a warm read costs
no database write.

Concurrency rule: safe from several threads; eviction runs under the ledger's lock.
"""

from __future__ import annotations

import contextlib
import logging
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from proxy.store.index import Index
from proxy.store.space import unless_out_of_space

log = logging.getLogger(__name__)


_ENTRY = struct.Struct(">Q?d")  # size, pinned, last access


@dataclass(frozen=True)
class LedgerEntry:
    size: int
    pinned: bool
    last_access: float

    def pack(self) -> bytes:
        return _ENTRY.pack(self.size, self.pinned, self.last_access)

    @classmethod
    def unpack(cls, value: bytes) -> LedgerEntry:
        return cls(*_ENTRY.unpack(value))


class BlobLedger:
    def __init__(self, root: Path, *, shared: bool = False) -> None:
        self.index = Index(root, shared=shared)
        self._lock = threading.Lock()
        self._touched: dict[str, float] = {}
        entries = self.entries()
        self._cached_total = sum(e.size for e in entries.values() if not e.pinned)
        self._count = len(entries)

    @property
    def cached_size(self) -> int:
        """Bytes of unpinned (evictable) blobs."""
        return self._cached_total

    @property
    def blob_count(self) -> int:
        """Blobs recorded (every blob in the store, pinned or not)."""
        return self._count

    def close(self) -> None:
        self.flush()
        self.index.close()

    def sync(self) -> None:
        """Make every record so far survive a power failure (see proxy.store.index)."""
        self.index.sync()

    def record(self, blob_id: str, size: int, *, pinned: bool) -> None:
        """Note a committed blob; pinning is sticky (cached content that is later published stays pinned)."""
        # Several workers: read and write under the index's write lock, or a pin could be lost.
        with self._lock, self.index.transaction() if self.index.shared else contextlib.nullcontext():
            old = self._entry(blob_id)
            now_pinned = pinned or bool(old and old.pinned)
            self.index.set(blob_id, LedgerEntry(size, now_pinned, time.time()).pack())
            self._cached_total += (0 if now_pinned else size) - (old.size if old and not old.pinned else 0)
            if old is None:
                self._count += 1

    def touch(self, blob_id: str) -> None:
        self._touched[blob_id] = time.time()

    def forget(self, blob_id: str) -> None:
        with self._lock:
            self._touched.pop(blob_id, None)
            old = self._entry(blob_id)
            if old is not None:
                self.index.delete(blob_id)
                self._count -= 1
                if not old.pinned:
                    self._cached_total -= old.size

    def flush(self) -> None:
        with self._lock:
            touched, self._touched = self._touched, {}
            # Unsaved, they only make eviction take those blobs as older than they are.
            unsaved = unless_out_of_space(log, f"access times of {len(touched)} blobs not saved")
            with unsaved, self.index.transaction():
                for blob_id, when in touched.items():
                    old = self._entry(blob_id)
                    if old is not None:
                        self.index.set(blob_id, replace(old, last_access=max(old.last_access, when)).pack())

    def entries(self) -> dict[str, LedgerEntry]:
        return {blob_id: LedgerEntry.unpack(value) for blob_id, value in self.index.items()}

    def pinned(self, blob_id: str) -> bool:
        """Whether a published asset uses the blob (so it must be in the store)."""
        entry = self._entry(blob_id)
        return entry is not None and entry.pinned

    def _entry(self, blob_id: str) -> LedgerEntry | None:
        value = self.index.get(blob_id)
        return None if value is None else LedgerEntry.unpack(value)

    def _unpinned_now(self, blob_id: str) -> bool:
        entry = self._entry(blob_id)
        return entry is not None and not entry.pinned

    def refresh(self) -> None:
        """Recount the figures from the index: several workers write it, each counting only its own."""
        with self._lock:
            entries = self.entries()
            self._cached_total = sum(e.size for e in entries.values() if not e.pinned)
            self._count = len(entries)

    def set_pins(self, pinned: Iterable[str]) -> None:
        """Recompute pins from the catalog (gc): exactly the blobs of published assets are pinned."""
        wanted = set(pinned)
        with self._lock:
            for blob_id, entry in self.entries().items():
                now = blob_id in wanted
                if entry.pinned != now:
                    self.index.set(blob_id, replace(entry, pinned=now).pack())
                    self._cached_total += entry.size if entry.pinned else -entry.size

    def evict(self, max_size: int, delete_blob: Callable[[str], object]) -> list[str]:
        """Delete least-recently-used unpinned blobs until cached content fits in ``max_size`` bytes."""
        self.flush()
        with self._lock:
            cached = sorted(
                ((e.last_access, blob_id, e.size) for blob_id, e in self.entries().items() if not e.pinned),
            )
            total = sum(size for _, _, size in cached)
            evicted: list[str] = []
            for _, blob_id, size in cached:
                if total <= max_size:
                    break
                if self.index.shared and not self._unpinned_now(blob_id):
                    continue  # another worker published it meanwhile
                delete_blob(blob_id)
                self.index.delete(blob_id)
                self._count -= 1
                total -= size
                evicted.append(blob_id)
            self._cached_total = total
        if evicted:
            log.info("evicted %d cached blobs; cached content now %d bytes", len(evicted), total)
        return evicted
