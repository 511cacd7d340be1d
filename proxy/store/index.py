"""The SQLite files under ``ROOT/index`` (catalog, ledger, metadata), opened one way.

diskcache is used as a durable key-value store, not as a cache: nothing in it expires or is evicted
by diskcache itself (the ledger decides what goes), so its eviction and culling are off; culling
would cost a query on every write.
"""

from __future__ import annotations

from pathlib import Path

import diskcache


def open_index(root: Path) -> diskcache.Cache:
    return diskcache.Cache(str(root), eviction_policy="none", size_limit=2**62, cull_limit=0)
