"""Small-scale decisions: rank candidate data mixtures from small runs, with a stability check.

Seeded by DataDecide (Magnusson et al. 2025, "DataDecide: How to Predict Best Pretraining Data
with Small Experiments"), which found that ranking recipes by their results at a single small
scale predicts the winner at a larger target scale about as well as extrapolating scaling
laws, and that how *separable* two recipes are at small scale tells you whether to trust the
ranking. Two methods:

* ``single_scale``: score each mixture by its mean result at the largest compute (6 N D)
  every mixture was run at;
* ``extrapolate``: fit ``L(C) = E + A C^(-alpha)`` per mixture over its runs and predict at
  ``target_compute`` (needs runs at 3 or more compute scales per mixture).

Stability is measured by bootstrap: runs are resampled with replacement within each mixture
(and within each scale for ``single_scale``, so seeds of the same configuration are what gets
resampled); we report each mixture's probability of ranking first and, for every pair, the
share of draws that agree with the point-estimate ordering (DataDecide's "decision accuracy"
computed against our own estimate).
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from typing import Any, Iterable

import numpy as np
from scipy.optimize import curve_fit

from scaling._threads import blas_single_threaded


def load_runs_csv(path: str, *, metric: str = "loss") -> list[dict[str, Any]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        need = {"mixture", "N", "D", metric}
        missing = need - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}; need mixture, N, D "
                             f"and {metric!r}")
        rows = []
        for i, row in enumerate(reader, start=2):
            try:
                rows.append({"mixture": row["mixture"], "N": float(row["N"]),
                             "D": float(row["D"]), metric: float(row[metric])})
            except ValueError as err:
                raise ValueError(f"{path}: line {i}: {err}") from None
    return rows


def _power_fit(C: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Fit y = E + A (C/C0)^-alpha; returns (E, A, alpha) with C0 = geometric mean of C."""
    c0 = math.exp(float(np.mean(np.log(C))))
    x = C / c0

    def f(x, E, A, alpha):
        return E + A * np.power(x, -alpha)

    span = float(y.max() - y.min()) or 1e-3
    p0 = (float(y.min()) - span, span, 0.3)
    try:
        p, _ = curve_fit(f, x, y, p0=p0, maxfev=20000)
    except RuntimeError:
        p = np.array(p0)
    return float(p[0]), float(p[1]) * c0 ** float(p[2]), float(p[2])


def _scores(rows: list[dict[str, Any]], metric: str, method: str,
            target_compute: float | None) -> dict[str, float]:
    by_mix: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_mix[r["mixture"]].append(r)
    if method == "single_scale":
        common = set.intersection(*[{6 * r["N"] * r["D"] for r in rs} for rs in by_mix.values()])
        if not common:
            raise ValueError("no compute scale (6 N D) is shared by every mixture; use "
                             "method='extrapolate' or add runs")
        c = max(common)
        return {m: float(np.mean([r[metric] for r in rs if 6 * r["N"] * r["D"] == c]))
                for m, rs in by_mix.items()}
    if method == "extrapolate":
        if target_compute is None:
            raise ValueError("method='extrapolate' needs target_compute")
        out = {}
        for m, rs in by_mix.items():
            C = np.array([6 * r["N"] * r["D"] for r in rs])
            if len(np.unique(C)) < 3:
                raise ValueError(f"mixture {m!r}: extrapolation needs runs at 3 or more compute "
                                 f"scales (has {len(np.unique(C))})")
            E, A, alpha = _power_fit(C, np.array([r[metric] for r in rs]))
            out[m] = E + A * target_compute ** (-alpha)
        return out
    raise ValueError(f"method must be 'single_scale' or 'extrapolate' (got {method!r})")


@blas_single_threaded
def rank_mixtures(rows: Iterable[dict[str, Any]], *, metric: str = "loss",
                  higher_is_better: bool = False, method: str = "single_scale",
                  target_compute: float | None = None, n_bootstrap: int = 500,
                  seed: int = 0) -> dict[str, Any]:
    """Rank mixtures (best first) and report how stable the ranking is under resampling."""
    rows = [dict(r) for r in rows]
    mixes = sorted({r["mixture"] for r in rows})
    if len(mixes) < 2:
        raise ValueError("need runs of at least 2 mixtures to rank")
    sign = -1.0 if higher_is_better else 1.0
    point = _scores(rows, metric, method, target_compute)
    order = sorted(mixes, key=lambda m: (sign * point[m], m))

    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        key = (r["mixture"], 6 * r["N"] * r["D"]) if method == "single_scale" else (r["mixture"],)
        groups[key].append(r)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_bootstrap):
        sample = []
        for key in sorted(groups, key=str):
            g = groups[key]
            sample.extend(g[i] for i in rng.integers(0, len(g), len(g)))
        try:
            s = _scores(sample, metric, method, target_compute)
        except ValueError:
            continue
        draws.append([sign * s[m] for m in mixes])
    result: dict[str, Any] = {"method": method, "metric": metric, "ranking": []}
    mat = np.array(draws) if draws else np.empty((0, len(mixes)))
    wins = np.argmin(mat, axis=1) if len(mat) else np.array([])
    for rank, m in enumerate(order, start=1):
        i = mixes.index(m)
        entry = {"rank": rank, "mixture": m, "score": point[m]}
        if len(mat):
            lo, hi = np.percentile(sign * mat[:, i], [2.5, 97.5])
            entry["score_ci"] = (float(min(lo, hi)), float(max(lo, hi)))
            entry["p_first"] = float(np.mean(wins == i))
        result["ranking"].append(entry)
    pairs = []
    for x in range(len(order)):
        for y in range(x + 1, len(order)):
            i, j = mixes.index(order[x]), mixes.index(order[y])
            agree = float(np.mean(mat[:, i] < mat[:, j])) if len(mat) else float("nan")
            pairs.append({"better": order[x], "worse": order[y], "agreement": agree})
    result["pairs"] = pairs
    result["stability"] = float(np.mean([p["agreement"] for p in pairs])) if pairs else float("nan")
    result["n_bootstrap"] = len(mat)
    return result
