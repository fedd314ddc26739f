"""Run small numerical fits with one BLAS thread.

scipy's L-BFGS-B calls BLAS/LAPACK on tiny arrays at every step; on a loaded machine the
multi-threaded OpenBLAS pool makes each call wait for busy cores (measured: 1.0 s vs 0.01 s
for one 3-parameter fit on 2 shared cores). Fits therefore run inside :func:`one_blas_thread`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def blas_single_threaded(fn):
    """Decorator: run ``fn`` inside :func:`one_blas_thread` (keeps its signature and doc)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with one_blas_thread():
            return fn(*args, **kwargs)

    return wrapper
