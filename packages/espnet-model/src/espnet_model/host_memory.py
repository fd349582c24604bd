"""Keep freed host memory for reuse instead of handing it back to the OS.

glibc serves large blocks (from 128 KB up to 32 MB, as its threshold adapts) with
a fresh ``mmap`` and returns them with ``munmap`` on free, and it trims the heap's
free top. A CPU training or decoding step allocates and frees such blocks all the
time (the conv2d subsampling output of one training batch is ~100 MB), so every
step pays for page faults that zero-fill new pages (about 100,000 per step for
issue 4's benchmark batch). :func:`keep_freed_host_memory` tells glibc to take
every block from its heap and never trim it, so that later steps reuse the pages:
the process keeps its peak memory (as the CUDA caching allocator does). The
training step ran ~1.1x faster on a 2-core CPU and batched greedy decoding ~1.2x
(``docs/benchmarks.md``). espnet-train (``trainer.keep_host_memory``) and
espnet-infer's workers (``keep_host_memory``) call it. This is what
``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=...`` would do, set from inside the
process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

log = logging.getLogger(__name__)

# mallopt parameters (glibc's <malloc.h>)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
_NEVER_TRIM = 2**31 - 1  # the largest value mallopt's int accepts: 2 GiB of free top


def keep_freed_host_memory() -> bool:
    """Turn off glibc's mmap for large blocks and heap trimming; True if applied.

    A no-op (False) where the C library is not glibc (macOS, musl, Windows).
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied = bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, _NEVER_TRIM))
    if applied:
        log.debug("glibc malloc: mmap off, trim threshold %d", _NEVER_TRIM)
    return applied
