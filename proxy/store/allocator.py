"""The C allocator's thresholds, for a process that moves assets in sealed chunks.

Every chunk of a blob read or written (``sealed.CHUNK_SIZE``, 256 KiB) is a new buffer of that size.
glibc's malloc serves an allocation past its mmap threshold (128 KiB at first) with a fresh mmap,
hands it back with munmap, and trims the heap's top past 128 KiB of free memory: each chunk then costs
system calls and a page fault per 4 KiB of it, more CPU than decrypting it. Raising both thresholds
past a chunk lets freed chunks be reused from the heap. Where ``mallopt`` is not glibc's (musl,
macOS), nothing changes.

glibc also gives each thread that allocates its own arena (up to eight per core), and each keeps its
own free memory: the worker threads that parse, merge and render large documents then leave tens of
MB behind in arenas the next document may not reuse. Two arenas keep the loop's thread and the workers
mostly apart (the interpreter lock serialises most of their allocations anyway) while the free memory
of one is what the next document reuses.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable

from proxy.store.sealed import CHUNK_SIZE

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
ARENA_MAX = 2
MMAP_THRESHOLD = 4 * CHUNK_SIZE  # allocations up to this come from the heap, freed ones reused
# Free bytes at a heap's top kept before giving them back: past the pieces of MMAP_THRESHOLD reused
# from the heap. 4 MiB rather than 16: after 50 downloads of a large asset the heaps kept 7-9 MiB
# free instead of 23 (RSS at rest 8-15 MiB lower), with the same peak and throughput (bench/memory.py,
# wrk on a cached tarball and on a 4 MiB asset); 1 MiB made those downloads slower.
TRIM_THRESHOLD = 4 * 1024 * 1024


def tune_allocator() -> bool:
    """Set the thresholds for this process (call once, early); False where they cannot be set."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    settings = (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (M_ARENA_MAX, ARENA_MAX),
    )
    tuned = all([mallopt(option, value) for option, value in settings])  # each set, whatever the others do
    if not tuned:
        log.debug("the C allocator's thresholds were left as they are")
    return tuned


def _malloc_trim() -> Callable[[], None] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = (ctypes.c_size_t,)
    return lambda: trim(0)


_TRIM = _malloc_trim()


def give_back_free_memory() -> bool:
    """Return the C heap's free pages to the system (glibc's ``malloc_trim``); False where there is no
    such call. It walks the heap's free blocks with no interpreter lock held: call it in a worker thread,
    after a burst of large documents, so that the memory they took does not stay counted in the RSS
    the next burst adds to."""
    if _TRIM is None:
        return False
    _TRIM()
    return True
