"""The C allocator's thresholds (proxy.store.allocator): after ``tune_allocator``, a buffer of a sealed
chunk's size comes from the heap, not from a fresh mmap (glibc; checked in a new process, so this test
process keeps its own allocator state)."""

from __future__ import annotations

import ctypes
import platform
import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys
from proxy.store.allocator import tune_allocator
from proxy.store.sealed import CHUNK_SIZE

class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                 "fordblks", "keepcost")]

mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = Mallinfo2
if sys.argv[1] == "tuned":
    assert tune_allocator()
before = mallinfo2().hblks
chunk = bytearray(CHUNK_SIZE + 16)
print(mallinfo2().hblks - before)
"""


def _glibc_with_mallinfo2() -> bool:
    if platform.libc_ver()[0] != "glibc":
        return False
    return hasattr(ctypes.CDLL(None), "mallinfo2")


@pytest.mark.skipif(not _glibc_with_mallinfo2(), reason="glibc's mallinfo2 tells where a buffer came from")
def test_a_chunk_sized_buffer_comes_from_the_heap_once_tuned() -> None:
    mmapped = {}
    for state in ("default", "tuned"):
        probe = subprocess.run(
            [sys.executable, "-c", PROBE, state], capture_output=True, text=True, check=True
        )
        mmapped[state] = int(probe.stdout)
    assert mmapped == {"default": 1, "tuned": 0}
