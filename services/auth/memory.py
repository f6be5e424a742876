"""Give argon2id's 19 MiB working buffers back to the system after each hash.

glibc raises its mmap threshold the first time a large mmapped block is freed, so from
the second hash on, argon2's buffers come from the thread's malloc arena and stay there
when freed: one 19 MiB buffer per hashing thread, forever (measured: 6 threads left
auth ~114 MB larger than at start). A fixed threshold of 1 MiB keeps every large block
mmapped, so a free returns it; small allocations are untouched.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's <malloc.h>
LARGE_BLOCK_BYTES = 1 << 20


def return_large_buffers() -> bool:
    """True if the C library took the setting (glibc); False elsewhere, changing nothing."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    taken = bool(mallopt(M_MMAP_THRESHOLD, LARGE_BLOCK_BYTES))
    if not taken:
        log.warning("mallopt(M_MMAP_THRESHOLD) refused: argon2 buffers stay in the arenas")
    return taken
