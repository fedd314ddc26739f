"""Give memory the process has freed back to the operating system.

Rows are Python objects whose text (a few KB each) is allocated by the C allocator, not by
Python's small-object arenas. When a large buffer of rows is freed (a sort buffer written as
a run, a Parquet row group written), glibc's ``malloc`` keeps the freed chunks for reuse; they
are only returned when the free space sits at the top of the heap, which interleaved
allocations rarely allow. The process's resident memory then stays at its high-water mark and
grows with every buffer that does not reuse exactly the same chunks: measured on the 100k
end-to-end build (one worker, ``bench/bench_e2e_peers.py``), the shard merge raised the
resident set from 0.57 to 0.64 GB with nothing more in flight.

:func:`release_free_memory` calls glibc's ``malloc_trim(0)``, which returns every free page
of every heap arena to the system (``madvise``), after a large buffer is released. It does not
free anything the program still uses and changes no output. Elsewhere (macOS, musl) it does
nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

_TRIM: Callable[[int], int] | None = None
_LOADED = False


def _malloc_trim() -> Callable[[int], int] | None:
    global _TRIM, _LOADED
    if not _LOADED:
        _LOADED = True
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name) if name else None
            fn = getattr(libc, "malloc_trim", None) if libc is not None else None
        except OSError:
            fn = None
        if fn is not None:
            fn.argtypes = [ctypes.c_size_t]
            fn.restype = ctypes.c_int
        _TRIM = fn
    return _TRIM


def release_free_memory() -> bool:
    """Return freed heap pages to the OS (glibc); ``True`` when the allocator supports it."""
    fn = _malloc_trim()
    if fn is None:
        return False
    fn(0)
    return True
