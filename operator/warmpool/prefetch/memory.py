"""Keep the download's freed buffers in the process instead of handing them back to the kernel.

Every piece obstore hands over is a fresh ~1 MiB allocation, freed a moment later. With glibc's
defaults a free at the top of a heap is trimmed (``madvise``/``brk``) and a large block may be
``mmap``-ed anew, so the next piece touches fresh pages: a minor fault per 4 KiB, a zeroed
page, and on a VM often a host-side fault too. Measured on the 2-core benchmark VM, 1 GiB from
the local S3 server: about 110k page faults per GiB with the defaults, 22k with the settings
below (most of them the interpreter's start), and 0.1-0.3 s less system CPU per GiB. The memory
kept is the peak the download used (tens of MiB), never more.
"""

from __future__ import annotations

import ctypes

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

_NEVER_TRIM = 1 << 30
_MMAP_ONLY_ABOVE = 32 * 1024 * 1024
"""Far above any piece (1-2 MiB), so pieces always come from the reused heap."""
_ARENAS = 1
"""obstore's runtime threads allocate the pieces and Python's threads free them: with one
arena a freed block is reused by the next allocation, whereas per-thread arenas are unmapped
when they empty (measured on one version of the downloader: 37k faults per GiB with per-thread
arenas, 22k with two, and fewer again with one)."""


def keep_freed_memory() -> bool:
    """Tune glibc's allocator for this process (call before any thread starts).

    Returns False where the C library has no ``mallopt`` (e.g. musl); the defaults then stay.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    for parameter, value in (
        (_M_TRIM_THRESHOLD, _NEVER_TRIM),
        (_M_MMAP_THRESHOLD, _MMAP_ONLY_ABOVE),
        (_M_ARENA_MAX, _ARENAS),
    ):
        mallopt(parameter, value)  # glibc answers 1 even for what it ignores: nothing to check
    return True
