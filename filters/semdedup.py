"""SemDeDup: drop semantic near-duplicates inside embedding clusters (plain Python, no Beam).

Abbas et al., "SemDeDup: Data-efficient learning at web-scale through semantic
deduplication" (2023): cluster the embeddings, then inside each cluster treat two examples as
duplicates when their cosine similarity is at least ``1 - eps``.

Rule used here (greedy, deterministic): the records of a block are put in *survivor order*
(by id, or by distance to the centroid with id as tie-break); walking that order, a record is
**dropped if an earlier record that was kept has cosine >= 1 - eps** with it, otherwise kept.
So the first record of every group of duplicates survives, and a record is never dropped
because of a neighbour that was itself dropped. A tolerance of 1e-6 is subtracted from the
threshold so that identical texts (cosine 1 up to float rounding) are duplicates at ``eps = 0``.

The SemDeDup curve (records removed for several eps values) is computed from the same
similarity chunks in one pass, without rerunning: the greedy walk is repeated per eps on the
similarities already in memory.

Pairwise work is bounded: similarities are computed ``chunk`` rows at a time against the
earlier rows of the block (memory ``chunk x block`` floats). The Beam stage bounds the block
size by splitting oversized clusters (see ``pipelines/stages/embed/semdedup.py`` and
:func:`split_starts`).

Embeddings must be unit vectors (the ``embed`` stage normalizes them). All-zero vectors (empty
texts under the ``zero`` policy) have cosine 0 with everything and are never duplicates.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

SIM_TOLERANCE = 1e-6
DEFAULT_CURVE = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3)

PROJ_LO, PROJ_HI = -1.0, 1.0
PROJ_BINS = 1 << 16


@dataclass
class BlockResult:
    """Outcome for one block, in survivor order (the order of the rows passed in)."""

    kept: np.ndarray  # bool, at the configured eps
    duplicate_of: np.ndarray  # int64 row index of the kept neighbour a dropped row duplicates; -1
    duplicate_sim: np.ndarray  # float32 cosine to that neighbour (nan for kept rows)
    max_sim_earlier: np.ndarray  # float32 max cosine to any earlier row (-1 for the first)
    removed_by_eps: dict[float, int] = field(default_factory=dict)


def _threshold(eps: float) -> float:
    return 1.0 - float(eps) - SIM_TOLERANCE


def semdedup_block(emb: np.ndarray, eps: float, curve_eps: Sequence[float] = DEFAULT_CURVE,
                   chunk: int = 512) -> BlockResult:
    """Greedy SemDeDup on one block whose rows are already in survivor order."""
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"eps must be in [0, 1), got {eps}")
    x = np.ascontiguousarray(emb, dtype=np.float32)
    n = len(x)
    eps_all = sorted({float(eps), *(float(e) for e in curve_eps)})
    kept = {e: np.zeros(n, dtype=bool) for e in eps_all}
    dup_of = np.full(n, -1, dtype=np.int64)
    dup_sim = np.full(n, np.nan, dtype=np.float32)
    max_prev = np.full(n, -1.0, dtype=np.float32)
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        sims = x[a:b] @ x[:b].T  # (b-a, b): rows of this chunk vs every row up to its end
        # max cosine to any earlier row (strictly lower triangle)
        tri = np.where(np.arange(b)[None, :] < np.arange(a, b)[:, None], sims, -np.inf)
        if b > 1:
            mp = tri.max(axis=1)
            max_prev[a:b] = np.where(np.isfinite(mp), mp, -1.0)
        for e in eps_all:
            thr = _threshold(e)
            k = kept[e]
            hits = tri >= thr  # (b-a, b), only earlier rows can hit
            # duplicates of rows kept in earlier chunks are known already
            prior = hits[:, :a] & k[None, :a] if a else np.zeros((b - a, 0), dtype=bool)
            prior_dup = prior.any(axis=1)
            for r in range(b - a):
                i = a + r
                if prior_dup[r]:
                    continue
                row = hits[r, a:i] & k[a:i]
                if not row.any():
                    k[i] = True
            if e == float(eps):
                for r in np.nonzero(~k[a:b])[0]:
                    i = a + int(r)
                    cand = hits[r, :i] & k[:i]
                    cs = np.where(cand, sims[r, :i], -np.inf)
                    j = int(np.argmax(cs))  # highest cosine, earliest on ties
                    dup_of[i] = j
                    dup_sim[i] = sims[r, j]
    return BlockResult(
        kept=kept[float(eps)],
        duplicate_of=dup_of,
        duplicate_sim=dup_sim,
        max_sim_earlier=max_prev,
        removed_by_eps={e: int(n - kept[e].sum()) for e in eps_all},
    )


def survivor_order(ids: Sequence[str], distances: Sequence[float] | None,
                   order: str = "id") -> list[int]:
    """Row indices in survivor order: ``id`` (ascending), ``closest`` (nearest the centroid
    first) or ``farthest`` (farthest first); ids break ties."""
    if order == "id":
        return sorted(range(len(ids)), key=lambda i: ids[i])
    if distances is None:
        raise ValueError(f"survivor order {order!r} needs cluster distances")
    sign = 1.0 if order == "closest" else -1.0
    if order not in ("closest", "farthest"):
        raise ValueError(f"order must be id, closest or farthest, got {order!r}")
    return sorted(range(len(ids)), key=lambda i: (sign * float(distances[i]), ids[i]))


def semdedup_records(ids: Sequence[str], emb: np.ndarray, clusters: Sequence[int], eps: float,
                     *, distances: Sequence[float] | None = None, order: str = "id",
                     curve_eps: Sequence[float] = DEFAULT_CURVE,
                     chunk: int = 512) -> tuple[set[str], dict[float, int]]:
    """In-memory SemDeDup over whole clusters: ``(kept ids, removed count per eps)``."""
    groups: dict[int, list[int]] = {}
    for i, c in enumerate(clusters):
        groups.setdefault(int(c), []).append(i)
    kept: set[str] = set()
    curve: dict[float, int] = {}
    emb = np.asarray(emb, dtype=np.float32)
    for c in sorted(groups):
        rows = groups[c]
        sub_ids = [ids[i] for i in rows]
        sub_d = None if distances is None else [distances[i] for i in rows]
        perm = survivor_order(sub_ids, sub_d, order)
        res = semdedup_block(emb[[rows[p] for p in perm]], eps, curve_eps, chunk)
        kept.update(sub_ids[p] for p, k in zip(perm, res.kept) if k)
        for e, r in res.removed_by_eps.items():
            curve[e] = curve.get(e, 0) + r
    return kept, curve


# --------------------------------------------------------------------------- oversized clusters


def projection_direction(dim: int, seed: int) -> np.ndarray:
    """A seeded random unit direction used to cut oversized clusters into slabs."""
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def projection_bin(value: float) -> int:
    b = int((value - PROJ_LO) / (PROJ_HI - PROJ_LO) * PROJ_BINS)
    return min(PROJ_BINS - 1, max(0, b))


def split_starts(hist: Mapping[int, int], max_block: int) -> list[int]:
    """Cut a cluster's projection histogram into consecutive slabs of at most ``max_block``
    records (a single bin larger than that becomes its own slab). Returns the first bin of
    each slab; a cluster that fits returns ``[]`` (one block)."""
    total = sum(hist.values())
    if total <= max_block:
        return []
    starts: list[int] = []
    size = 0
    for b in sorted(hist):
        c = hist[b]
        if not starts or (size + c > max_block and size > 0):
            starts.append(b)
            size = 0
        size += c
    return starts


def sub_block(starts: Sequence[int], b: int) -> int:
    """Slab index of projection bin ``b`` given :func:`split_starts`."""
    if not starts:
        return 0
    return max(0, bisect.bisect_right(starts, b) - 1)
