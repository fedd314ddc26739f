"""Self-supervised prototype pruning rules (plain Python, no Beam).

Sorscher et al., "Beyond neural scaling laws: beating power law scaling via data pruning"
(NeurIPS 2022): embed every example, run k-means, and score each example by the cosine
distance to its nearest centroid. Small distance = prototypical ("easy"), large distance =
atypical ("hard"). Their theory and experiments show the best examples to keep depend on how
much data there is: **with abundant data keep the hard examples, with scarce data keep the easy
ones**, and the fraction worth keeping shrinks as the data grows.

Policies:

* ``hard``: keep the ``q`` fraction with the largest distance;
* ``easy``: keep the ``q`` fraction with the smallest distance;
* ``auto``: compare the number of records ``n`` with a budget ``B`` (``budget_records``: how
  many examples the training run will consume, e.g. steps x batch size). If
  ``n / B >= abundance_ratio`` (default 1.0: there is at least one epoch's worth of data) the
  data is *abundant* and ``hard`` is used; otherwise it is *scarce* (data would be repeated)
  and ``easy`` is used. The paper gives the direction of the rule, not a universal crossover
  point, so ``abundance_ratio`` is a tunable heuristic, not a published constant. When
  ``keep_fraction`` is not set, ``q = min(1, B / n)``, so the kept fraction falls as data grows.

Ties in distance are broken by record id, so selection is deterministic. The sort key of a
record is ``(distance, id)``; ``hard`` keeps the largest keys, ``easy`` the smallest.

Balanced mode applies the fraction inside each cluster instead of globally and keeps at least
``min_per_cluster`` records of every cluster (the paper's class balancing, with clusters in
place of classes), so no cluster is wiped out.

The Beam stage selects exactly without collecting all keys on one worker: a sparse histogram
of distances (:func:`histogram_bin`) finds the bin holding the boundary, and only the keys in
that bin are sorted (:func:`boundary_from_histogram`, :func:`threshold_key`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

Policy = Literal["hard", "easy"]
POLICIES = ("hard", "easy", "auto")

DIST_LO, DIST_HI = 0.0, 2.0
DIST_BINS = 1 << 14


def histogram_bin(value: float, lo: float = DIST_LO, hi: float = DIST_HI,
                  bins: int = DIST_BINS) -> int:
    """Bin index of ``value`` in ``bins`` equal bins over ``[lo, hi]`` (clipped)."""
    if value != value:  # NaN
        return 0
    b = int((value - lo) / (hi - lo) * bins)
    return min(bins - 1, max(0, b))


def resolve_policy(policy: str, n_records: int, budget_records: int | None,
                   abundance_ratio: float = 1.0) -> Policy:
    """``hard``/``easy`` unchanged; ``auto`` by data regime (see module docstring)."""
    if policy in ("hard", "easy"):
        return policy  # type: ignore[return-value]
    if policy != "auto":
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    if not budget_records or budget_records <= 0:
        raise ValueError("policy 'auto' needs budget_records > 0")
    return "hard" if n_records / budget_records >= abundance_ratio else "easy"


def resolve_keep_fraction(keep_fraction: float | None, n_records: int,
                          budget_records: int | None) -> float:
    if keep_fraction is not None:
        if not 0.0 < keep_fraction <= 1.0:
            raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction}")
        return float(keep_fraction)
    if not budget_records or budget_records <= 0:
        raise ValueError("set keep_fraction, or budget_records to derive it")
    if n_records <= 0:
        return 1.0
    return min(1.0, budget_records / n_records)


def keep_count(n: int, fraction: float, min_keep: int = 0) -> int:
    """Records to keep out of ``n``: ``ceil(fraction * n)``, at least ``min_keep``, at most n."""
    if n <= 0:
        return 0
    return int(min(n, max(min_keep, math.ceil(fraction * n - 1e-9))))


def boundary_from_histogram(hist: Mapping[int, int], m: int, policy: Policy) -> tuple[int, int]:
    """Walk bins from the kept end; return ``(boundary_bin, needed_in_bin)``.

    Records in bins strictly on the kept side of ``boundary_bin`` are all kept; ``needed_in_bin``
    of the records in ``boundary_bin`` are kept too. ``m == 0`` returns ``(-1, 0)``.
    """
    if m <= 0:
        return -1, 0
    order = sorted(hist, reverse=(policy == "hard"))
    taken = 0
    for b in order:
        c = hist[b]
        if taken + c >= m:
            return b, m - taken
        taken += c
    # fewer records than m: keep everything
    return (order[-1], hist[order[-1]]) if order else (-1, 0)


def threshold_key(keys: Iterable[tuple[float, str]], needed: int,
                  policy: Policy) -> tuple[float, str] | None:
    """Among the boundary bin's ``(distance, id)`` keys, the last one kept."""
    if needed <= 0:
        return None
    ordered = sorted(keys, reverse=(policy == "hard"))
    if not ordered:
        return None
    return ordered[min(needed, len(ordered)) - 1]


def is_kept(key: tuple[float, str], b: int, boundary_bin: int,
            threshold: tuple[float, str] | None, policy: Policy) -> bool:
    """Decision for one record given its key, its bin and the scope's boundary."""
    if boundary_bin < 0:
        return False
    if policy == "hard":
        if b != boundary_bin:
            return b > boundary_bin
        return threshold is not None and key >= threshold
    if b != boundary_bin:
        return b < boundary_bin
    return threshold is not None and key <= threshold


def select_prototypes(ids: Sequence[str], distances: Sequence[float],
                      clusters: Sequence[int] | None, fraction: float, policy: Policy,
                      balanced: bool = False, min_per_cluster: int = 1) -> set[str]:
    """In-memory reference selection: the ids kept (same result as the Beam stage)."""
    if balanced:
        if clusters is None:
            raise ValueError("balanced selection needs cluster ids")
        groups: dict[int, list[tuple[float, str]]] = {}
        for i, d, c in zip(ids, distances, clusters):
            groups.setdefault(int(c), []).append((float(d), i))
        scopes = list(groups.values())
        counts = [keep_count(len(g), fraction, min_per_cluster) for g in scopes]
    else:
        scopes = [[(float(d), i) for i, d in zip(ids, distances)]]
        counts = [keep_count(len(ids), fraction)]
    kept: set[str] = set()
    for keys, m in zip(scopes, counts):
        ordered = sorted(keys, reverse=(policy == "hard"))
        kept.update(i for _, i in ordered[:m])
    return kept


def sparse_histogram(values: Iterable[float], lo: float = DIST_LO, hi: float = DIST_HI,
                     bins: int = DIST_BINS) -> dict[int, int]:
    return dict(Counter(histogram_bin(v, lo, hi, bins) for v in values))
