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


def _probe(source: str) -> dict[str, int]:
    """What ``source`` prints in a new process, untuned and tuned."""
    printed = {}
    for state in ("default", "tuned"):
        probe = subprocess.run(
            [sys.executable, "-c", source, state], capture_output=True, text=True, check=True
        )
        printed[state] = int(probe.stdout)
    return printed


@pytest.mark.skipif(not _glibc_with_mallinfo2(), reason="glibc's mallinfo2 tells where a buffer came from")
def test_a_chunk_sized_buffer_comes_from_the_heap_once_tuned() -> None:
    assert _probe(PROBE) == {"default": 1, "tuned": 0}


ARENAS_PROBE = """
import ctypes, sys, tempfile, threading
from proxy.store.allocator import tune_allocator

if sys.argv[1] == "tuned":
    assert tune_allocator()

def allocate(done):
    kept = [bytearray(4096) for _ in range(64)]  # small: served by this thread's arena
    done.wait()

done = threading.Event()
threads = [threading.Thread(target=allocate, args=(done,)) for _ in range(8)]
for thread in threads:
    thread.start()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
libc.malloc_info.argtypes = (ctypes.c_int, ctypes.c_void_p)
libc.fclose.argtypes = (ctypes.c_void_p,)
with tempfile.NamedTemporaryFile() as report:
    stream = libc.fopen(report.name.encode(), b"w")
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    print(open(report.name).read().count("<heap nr="))
done.set()
for thread in threads:
    thread.join()
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc_info lists its arenas")
def test_worker_threads_share_two_arenas_once_tuned() -> None:
    arenas = _probe(ARENAS_PROBE)
    assert arenas["default"] > 2  # a thread that allocates gets an arena of its own
    assert arenas["tuned"] == 2
