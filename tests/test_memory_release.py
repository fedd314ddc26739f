"""pipelines/core/memory.py: freed buffers go back to the OS (glibc), nothing else changes."""

from __future__ import annotations

import os
import sys

import pytest

from pipelines.core.memory import release_free_memory


def _rss() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux") or not os.path.exists("/proc/self/status"),
                    reason="resident memory read from /proc (Linux)")
def test_freed_rows_are_returned_to_the_os():
    """~200 MB of 4 KB rows, every 50th kept (so the heap cannot simply shrink from its top,
    as with a sort buffer whose neighbours are still alive): after the buffer is freed the
    resident set stays high until ``release_free_memory`` returns the free pages."""
    if not release_free_memory():
        pytest.skip("this C library has no malloc_trim")
    rows = [os.urandom(1) * 4000 + str(i).encode() for i in range(50_000)]
    pinned = rows[::50]
    before = _rss()
    del rows
    freed = _rss()
    assert release_free_memory()
    after = _rss()
    assert freed > before - 50 * 2**20  # freeing alone gives little back
    assert after < freed - 100 * 2**20, (before, freed, after)
    assert len(pinned) == 1000 and all(len(r) >= 4001 for r in pinned)  # untouched
