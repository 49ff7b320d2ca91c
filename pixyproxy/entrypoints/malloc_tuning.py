"""Large allocations straight from and back to the operating system (glibc only; elsewhere a no-op).

glibc serves blocks above its mmap threshold with mmap and returns them on free, but it raises that
threshold to the largest block freed (up to 32 MB): after the first decoded image is freed, later image
buffers come from per-thread arenas that keep the memory. Each of the thread pool's threads then holds
its own peak, and RSS stays near its worst long after the load. A fixed threshold keeps image-sized
blocks (megabytes) out of the arenas; small objects are served as before.
"""

import ctypes
import sys

M_MMAP_THRESHOLD = -3  # mallopt's parameter number in glibc's malloc.h
DEFAULT_THRESHOLD_BYTES = 4 * 1024 * 1024


def return_large_blocks(threshold: int = DEFAULT_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold at `threshold` bytes; False where there is no glibc mallopt."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))
