"""The interpreter's cyclic garbage collector, for a process that parses large documents.

A packument or a project page read from an upstream is tens of thousands of dictionaries and lists.
With the collector's default threshold (a collection every 700 new containers) reading one runs dozens
of collections, and each older one walks every container the daemon holds: the merged views, the
configuration, the modules' own objects. Measured on a cold npm replay, that was about a tenth of the
daemon's CPU. What the daemon frees is almost never a cycle (reference counting frees it at once), so
collecting less often costs little memory, and what exists once the daemon has started lives until it
stops, so it is set aside for good (``gc.freeze``: never walked again, and, in workers forked after it,
never written to by the collector, so their pages stay shared with the parent).
"""

from __future__ import annotations

import gc

# New containers between two collections of the youngest generation (the interpreter's default: 700).
YOUNG_THRESHOLD = 20_000


def tune_collector() -> None:
    """Set what exists now aside and collect less often (call once, when the daemon has started)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
