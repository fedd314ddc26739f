"""Coverage (pass@k) curves and their exponentiated power-law fit.

Large Language Monkeys (Brown et al. 2024) model coverage as a function of the number of
samples k with an exponentiated power law, ``log c(k) = a * k**b`` i.e. ``c(k) = exp(a * k**b)``
(a < 0, b < 0: coverage rises towards 1 as k grows). We estimate per-problem pass@k with the
unbiased estimator of Chen et al. 2021 (``1 - C(n-c, k) / C(n, k)``), average over problems
and fit ``a, b`` by least squares on ``log c(k)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for a problem with c correct out of n samples (k <= n)."""
    if k > n:
        raise ValueError(f"k={k} exceeds the number of samples n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


def coverage_curve(counts: list[tuple[int, int]], ks: list[int] | None = None,
                   weights: list[float] | None = None) -> tuple[list[int], list[float]]:
    """Mean pass@k over problems given (n_samples, n_correct) per problem; ``weights``: how
    many problems each ``counts`` entry stands for (a histogram of the pairs)."""
    if not counts:
        return [], []
    n_min = min(n for n, _ in counts)
    ks = ks or list(range(1, n_min + 1))
    cov = [float(np.average([pass_at_k(n, c, k) for n, c in counts], weights=weights))
           for k in ks]
    return ks, cov


@dataclass
class CoverageFit:
    a: float
    b: float
    ks: list[int]
    coverage: list[float]
    rmse: float

    def predict(self, k: float) -> float:
        return float(math.exp(self.a * k**self.b))

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "ks": self.ks, "coverage": self.coverage,
                "rmse": self.rmse}


def fit_coverage(ks: list[int], coverage: list[float]) -> CoverageFit | None:
    """Fit ``c(k) = exp(a k^b)``; None when there are fewer than 2 usable points."""
    from scipy.optimize import curve_fit

    pts = [(k, c) for k, c in zip(ks, coverage) if 0 < c < 1]
    if len(pts) < 2:
        return None
    x = np.array([p[0] for p in pts], dtype=float)
    y = np.log(np.array([p[1] for p in pts], dtype=float))
    try:
        (a, b), _ = curve_fit(lambda k, a, b: a * np.power(k, b), x, y, p0=(y[0], -0.5),
                              maxfev=10_000)
    except (RuntimeError, ValueError):
        return None
    pred = np.exp(a * np.power(np.array(ks, dtype=float), b))
    rmse = float(np.sqrt(np.mean((pred - np.array(coverage)) ** 2)))
    return CoverageFit(float(a), float(b), list(ks), list(coverage), rmse)
