"""The asset locator every format uses: from a request for an asset to the bytes, the same way for
npm tarballs, PyPI files and Maven assets.

A format gives ``locate(repository, key, sink)``: find the asset's record, from the catalog (a place of
the chain that holds it, with its blob still there) or by downloading it from the upstream its metadata
names (``Fetcher.asset``: verified before commit, the bytes passed on to ``sink`` while they are
stored), and record it. The locator adds the rest:

- warm path: an in-memory map (repository, key) -> asset, so a warm asset costs no catalog read, only
  the blob's streaming; a blob found gone (evicted, broken) drops the entry and the asset is located
  again, once;
- single flight: concurrent misses for one asset share one ``locate`` (one download, one catalog
  write); the GET that started it receives the asset as it arrives (``fetch_streaming``), the others
  are served from the store once it is committed. Across the daemons of a shared store the ``locate``
  runs under the asset's lease (``AssetLeases``): one daemon downloads, the others wait and then
  locate the committed asset in the catalog, so concurrent misses anywhere cost one upstream fetch;
- serving: ``blob_response`` (ETag, 304, HEAD, a short read instead of unauthenticated bytes);
- warm restarts: ``warm_state`` and ``restore`` carry the warm map over (``proxy.formats.common.warm``).

Concurrency: on the event loop; the map is only a cache of the catalog.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from functools import partial
from typing import Generic, TypeVar

from aiohttp import web
from cachetools import LRUCache

from proxy.formats.common.assets import StreamedAsset, blob_response, fetch_streaming
from proxy.store.protocols import AssetLeases, AssetRecord, BlobService
from proxy.store.singleflight import SingleFlight

K = TypeVar("K", bound=Hashable)

KNOWN_BYTES = 8 * 1024**2  # memory of the warm map: about 6,000 assets (a miss reads the catalog)
KNOWN_OVERHEAD = 950  # bytes an entry takes (key, record, hashes, LRU) besides its strings' characters


def _known_weight(asset: AssetRecord) -> int:
    return KNOWN_OVERHEAD + len(asset.name) + len(asset.blob_id) + sum(map(len, asset.hashes.values()))


Locate = Callable[[str, K, StreamedAsset | None], Awaitable[AssetRecord]]


class AssetLocator(Generic[K]):
    """``key``s name an asset within a repository; their ``repr`` names it the same way in every
    daemon (tuples of strings and dataclasses do), which makes the key of its lease."""

    def __init__(
        self, blobs: BlobService, locate: Locate[K], known: int = KNOWN_BYTES, *, leases: AssetLeases
    ) -> None:
        self._blobs = blobs
        self._locate = locate
        self._leases = leases
        self._known: LRUCache[tuple[str, K], AssetRecord] = LRUCache(known, getsizeof=_known_weight)
        self._locating: SingleFlight[AssetRecord] = SingleFlight()
        self.located = 0  # assets located (not in the warm map), for tests and figures

    def remember(self, repository: str, key: K, asset: AssetRecord) -> None:
        self._known[(repository, key)] = asset

    def forget(self, repository: str, key: K) -> None:
        self._known.pop((repository, key), None)

    def forget_where(self, belongs: Callable[[K], bool]) -> None:
        """Forget the locations of the assets whose key ``belongs`` (one package's: its statuses changed)."""
        for slot in [slot for slot in self._known if belongs(slot[1])]:
            self._known.pop(slot, None)

    def forget_all(self) -> None:
        """Forget where every asset was found (a repository's upstream list changed)."""
        self._known.clear()

    def warm_state(self) -> list[tuple[tuple[str, K], AssetRecord]]:
        """Where each asset was found (``proxy.formats.common.warm``)."""
        return list(self._known.items())

    def restore(self, state: object) -> int:
        """The locations of ``warm_state`` known again, as far as the map's bound goes."""
        assert isinstance(state, list)
        for slot, asset in state:
            self._known[slot] = asset
        return len(self._known)

    async def locate(self, repository: str, key: K, sink: StreamedAsset | None = None) -> AssetRecord:
        """The asset's record, located once however many requests ask at once (only the first one's
        ``sink`` is used). Raises what ``locate`` raises (a refusal, an upstream failure, a 404)."""
        asset = self._known.get((repository, key))
        if asset is None:
            self.located += 1
            asset = await self._locating.do(
                (repository, key),
                lambda: self._leases.exclusive(
                    (repository, repr(key)), lambda: self._locate(repository, key, sink)
                ),
            )
            self._known[(repository, key)] = asset
        return asset

    async def serve(
        self, request: web.Request, repository: str, key: K, content_type: str
    ) -> web.StreamResponse:
        """The asset, from the store, or streamed to this client as it is downloaded."""
        for _ in range(2):
            asset = self._known.get((repository, key))
            if asset is None:
                located = await fetch_streaming(request, content_type, partial(self.locate, repository, key))
                if isinstance(located, web.StreamResponse):
                    return located
                asset = located
            etag = asset.hashes["SHA-256"][:32]
            response = await blob_response(
                request, self._blobs, asset.blob_id, asset.size, content_type, etag
            )
            if response is not None:
                return response
            self.forget(repository, key)
        raise web.HTTPBadGateway(reason=f"{asset.name} could not be read back from the store")


async def held(blobs: BlobService, asset: AssetRecord | None) -> AssetRecord | None:
    """``asset`` when its blob is in the store (a catalog entry can outlive an evicted blob)."""
    if asset is None or not await blobs.has_blob(asset.blob_id):
        return None
    return asset
