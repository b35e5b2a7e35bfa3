"""Keep freed memory in the process instead of handing it back to the kernel after every step (glibc only).

A NumPy training step allocates and frees the same large arrays every time (LSTM H=256 N=32 T=64: gate buffers of
8 MB, ~20 MB in all). glibc serves blocks that big with mmap, or trims them off the top of the heap when freed, so
every step faulted ~4,900 fresh pages back in (measured with getrusage): ~12-17% of the step on this machine.
Raising the mmap threshold to glibc's maximum (32 MB) and the trim threshold to 512 MB makes the next step reuse
the same memory. The price: the process keeps up to 512 MB of freed heap mapped instead of returning it, which
a training process that will allocate the same arrays again a moment later does not mind.

Example: Engine.__init__ calls `heap.keep_freed_memory()`, which returns True where glibc took both settings
and False where the C library has no mallopt (macOS) or refused them; either way training works the same.
"""
from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3      # glibc <malloc.h>
MMAP_THRESHOLD = 32 << 20                        # glibc's largest accepted value on 64-bit
TRIM_THRESHOLD = 512 << 20

_done = None


def keep_freed_memory() -> bool:
    """Set the two thresholds once per process; True if the C library took them."""
    global _done
    if _done is None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
            mallopt = libc.mallopt
        except (OSError, AttributeError):
            _done = False
        else:
            mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
            _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done
