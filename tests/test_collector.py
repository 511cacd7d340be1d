"""The cyclic garbage collector's tuning (proxy.server.collector): what exists at start is set aside, and
reading a large document (many new containers) runs no collection. Checked in a new process, so this
test process keeps its own collector state."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import gc, json, sys
from proxy.server.collector import tune_collector
startup = [{"kept": i} for i in range(5000)]
if sys.argv[1] == "tuned":
    tune_collector()
frozen = gc.get_freeze_count()
before = sum(generation["collections"] for generation in gc.get_stats())
document = [{"version": str(i), "dist": {"tarball": "t"}} for i in range(5000)]  # 10,000 containers
print(json.dumps({"frozen": frozen, "collections": sum(g["collections"] for g in gc.get_stats()) - before}))
"""


def _probe(mode: str) -> dict[str, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_startup_objects_are_set_aside_and_a_large_document_runs_no_collection() -> None:
    default, tuned = _probe("default"), _probe("tuned")
    assert default["frozen"] == 0 and default["collections"] > 0  # the default collects while reading it
    assert tuned["frozen"] > 5000 and tuned["collections"] == 0
