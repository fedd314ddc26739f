"""Spherical k-means on unit embeddings with faiss (plain Python, no Beam).

Used by the ``cluster`` stage: fit on a bounded, deterministic sample, then assign every
record to its nearest centroid by cosine similarity and record the cosine distance
``1 - cos(x, c)`` (the self-supervised prototype metric of Sorscher et al., "Beyond neural
scaling laws", NeurIPS 2022).

Choosing k (:func:`default_k`): ``round(sqrt(n))`` clamped to ``[1, 65536]`` and to the
number of fitted points. With n records this gives clusters of about ``sqrt(n)`` records, which
keeps SemDeDup's within-cluster pairwise work near ``n * sqrt(n)`` in total and gives each
centroid enough points to be estimated. Override with the stage's ``k`` parameter (the SemDeDup
and D4 papers used tens of thousands of clusters for hundreds of millions of examples, which this
rule roughly matches).

faiss is imported lazily so that importing this module stays cheap.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

MAX_DEFAULT_K = 65536
_ASSIGN_CELLS = 1 << 24  # rows * k per matrix product chunk (64 MiB of float32)


def default_k(n: int) -> int:
    """Default number of clusters for ``n`` records (see module docstring)."""
    if n <= 0:
        return 1
    return int(max(1, min(MAX_DEFAULT_K, n, round(math.sqrt(n)))))


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; all-zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def fit_kmeans(x: np.ndarray, k: int, *, niter: int = 20, seed: int = 1234,
               nredo: int = 1) -> np.ndarray:
    """Fit spherical k-means on the rows of ``x`` (callers pass a deterministic sample in a
    deterministic order); returns ``(k_eff, d)`` unit centroids with ``k_eff = min(k, n)``.

    Zero rows (embeddings of empty texts under the ``zero`` policy) are ignored. With
    ``n <= k`` the distinct points themselves are the centroids.
    """
    x = normalize_rows(x)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D array of embeddings, got shape {x.shape}")
    x = x[np.linalg.norm(x, axis=1) > 0]
    if len(x) == 0:
        raise ValueError("cannot fit k-means on zero non-empty embeddings")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    uniq = np.unique(x, axis=0)
    if len(uniq) <= k:
        return np.ascontiguousarray(uniq, dtype=np.float32)
    import faiss

    km = faiss.Kmeans(
        x.shape[1], int(k), niter=int(niter), seed=int(seed), nredo=int(nredo),
        spherical=True, verbose=False,
        # The caller already bounded the sample; do not let faiss subsample it again, and do
        # not warn about small clusters (tiny test data).
        max_points_per_centroid=1 << 30, min_points_per_centroid=1,
    )
    km.train(np.ascontiguousarray(x, dtype=np.float32))
    return normalize_rows(np.asarray(km.centroids, dtype=np.float32))


def assign(x: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid by cosine: ``(cluster_ids int64, cosine_distance float32)``.

    Ties go to the lowest centroid index (``argmax`` returns the first maximum), so assignment
    is deterministic. Distances are clipped to ``[0, 2]``.
    """
    x = np.asarray(x, dtype=np.float32)
    c = np.asarray(centroids, dtype=np.float32)
    n = len(x)
    ids = np.zeros(n, dtype=np.int64)
    dist = np.ones(n, dtype=np.float32)
    if n == 0:
        return ids, dist
    step = max(1, _ASSIGN_CELLS // max(1, len(c)))
    for start in range(0, n, step):
        sims = x[start:start + step] @ c.T
        best = np.argmax(sims, axis=1)
        ids[start:start + step] = best
        dist[start:start + step] = 1.0 - sims[np.arange(len(best)), best]
    np.clip(dist, 0.0, 2.0, out=dist)
    return ids, dist


def kmeans_summary(centroids: np.ndarray, n_sample: int, k_requested: int,
                   seconds: float) -> dict[str, Any]:
    return {
        "k_requested": int(k_requested),
        "k": int(len(centroids)),
        "fit_points": int(n_sample),
        "fit_seconds": round(float(seconds), 3),
    }
