"""Cached package metadata documents, as fetched from one upstream (packuments, simple pages,
maven-metadata.xml), with what is needed to revalidate them (ETag, Last-Modified) and to tell fresh
from stale. A 404 is cached too, briefly, so a missing package does not cost an upstream request each time.

Entries live in an Index (``proxy.store.index``) under ``index/metadata``, named by keyed hash and
sealed like the catalog.

A store that is out of disk space (proxy.store.space) caches nothing more: ``put`` and ``delete`` log
that and return, and the document is served all the same.

Concurrency rule: whole-document replace; the last writer wins, which is right for a cache.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from proxy.store.index import Index, entry_namer
from proxy.store.keyring import KeyRing
from proxy.store.sealed import SealError, seal, unseal
from proxy.store.space import unless_out_of_space

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CachedDocument:
    status: int  # 200, or 404 for a remembered "not there"
    body: bytes
    fetched_at: float = field(default_factory=time.time)
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None

    def age(self, now: float | None = None) -> float:
        return (now if now is not None else time.time()) - self.fetched_at


def pack_document(doc: CachedDocument) -> bytes:
    """The plaintext an entry seals: a length-prefixed JSON head, then the body."""
    head = json.dumps(
        {
            "status": doc.status,
            "fetched_at": doc.fetched_at,
            "etag": doc.etag,
            "last_modified": doc.last_modified,
            "content_type": doc.content_type,
        }
    ).encode()
    return len(head).to_bytes(4, "big") + head + doc.body


def unpack_document(plain: bytes) -> CachedDocument:
    head_len = int.from_bytes(plain[:4], "big")
    head = json.loads(plain[4 : 4 + head_len])
    return CachedDocument(body=plain[4 + head_len :], **head)


def check_entry(keyring: KeyRing, name: str, raw: bytes | None) -> str | None:
    """None if the sealed entry ``raw`` named ``name`` opens with the key ring, else why not."""
    if raw is None:
        return "missing"
    try:
        unseal(keyring, raw, context=name.encode())
    except SealError as exc:
        return str(exc)
    return None


class MetadataCache:
    def __init__(self, root: Path, keyring: KeyRing, *, shared: bool = False) -> None:
        self.index = Index(root, shared=shared)
        self._keyring = keyring
        self._name = entry_namer(keyring, "metadata")

    def close(self) -> None:
        self.index.close()

    def get(self, *key: str) -> CachedDocument | None:
        name = self._name(key)
        raw = self.index.get(name)
        if raw is None:
            return None
        return unpack_document(unseal(self._keyring, raw, context=name.encode()))

    def put(self, doc: CachedDocument, *key: str) -> None:
        name = self._name(key)
        with unless_out_of_space(log, "metadata not cached"):
            self.index.set(name, seal(self._keyring, pack_document(doc), context=name.encode()))

    def delete(self, *key: str) -> None:
        with unless_out_of_space(log, "metadata not removed from the cache"):
            self.index.delete(self._name(key))

    def names(self) -> list[str]:
        return self.index.names()

    def check(self, name: str) -> str | None:
        """None if the entry opens with the key ring, else the reason (for verify)."""
        return check_entry(self._keyring, name, self.index.get(name))
