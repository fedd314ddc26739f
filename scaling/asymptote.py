"""Asymptote mode: compare data recipes by the loss they reach with unlimited model size.

Seeded by "Pre-training under infinite compute" (Kim et al. 2025), which argues that when data,
not compute, is the constraint, recipes should be compared by the asymptote of their scaling
curve rather than by the loss at one size. For each recipe we fit ``L(N) = E + A / N^alpha``
(runs at several model sizes, each trained with that recipe's best settings) and rank recipes
by ``E``, with bootstrap intervals and the probability that each recipe has the lowest ``E``.

Fitting mirrors the Chinchilla procedure: Huber loss on log loss with the log-sum-exp
parameterization, L-BFGS from a grid of starts. Plain numpy/scipy; no Beam.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
from scipy.optimize import minimize
from scipy.special import huber

from scaling._threads import blas_single_threaded
from scaling.chinchilla import HUBER_DELTA, logsumexp


@dataclass
class AsymptoteFit:
    E: float
    A: float
    alpha: float
    objective: float
    E_ci: tuple[float, float] | None = None
    E_boot: np.ndarray | None = field(default=None, repr=False)

    def loss(self, N: Any) -> np.ndarray:
        return self.E + self.A / np.asarray(N, dtype=float) ** self.alpha


def _obj(theta, lN, lL, delta):
    a, e, alpha = theta
    t = np.stack([a - alpha * lN, np.full_like(lN, e)])
    lse = logsumexp(t, axis=0)
    r = lse - lL
    w = np.exp(t - lse)
    dr = np.clip(r, -delta, delta)
    g = np.array([np.sum(dr * w[0]), np.sum(dr * w[1]), np.sum(dr * w[0] * -lN)])
    return float(np.sum(huber(delta, r))), g


def _fit(lN, lL, delta, starts):
    best = None
    for x0 in starts:
        res = minimize(_obj, x0, args=(lN, lL, delta), jac=True, method="L-BFGS-B",
                       bounds=[(None, None), (None, None), (0.0, 3.0)],
                       options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-12})
        if best is None or res.fun < best.fun:
            best = res
    return best


@blas_single_threaded
def fit_asymptote(N: Any, loss: Any, *, delta: float = HUBER_DELTA, n_bootstrap: int = 0,
                  ci_level: float = 0.95, seed: int = 0) -> AsymptoteFit:
    N, L = (np.asarray(x, dtype=float).ravel() for x in (N, loss))
    if len(N) != len(L):
        raise ValueError("N and loss must have the same length")
    if len(np.unique(N)) < 3:
        raise ValueError("need runs at 3 or more model sizes to fit E + A/N^alpha")
    if np.any(N <= 0) or np.any(L <= 0) or not np.all(np.isfinite(L)):
        raise ValueError("N and loss must be > 0 and finite")
    lN, lL = np.log(N), np.log(L)
    grid = np.array([(a, e, al) for a in np.arange(0.0, 30.0, 2.5)
                     for e in np.linspace(-1.0, 2.0, 13) for al in np.arange(0.05, 1.55, 0.1)])
    t = np.stack([grid[:, 0:1] - grid[:, 2:3] * lN[None, :],
                  np.broadcast_to(grid[:, 1:2], (len(grid), len(lN)))])
    gvals = huber(delta, logsumexp(t, axis=0) - lL[None, :]).sum(axis=1)
    starts = list(grid[np.lexsort((np.arange(len(grid)), gvals))[:8]])
    res = _fit(lN, lL, delta, starts)
    a, e, alpha = res.x
    fit = AsymptoteFit(E=math.exp(e), A=math.exp(a), alpha=float(alpha), objective=float(res.fun))
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        Es = []
        for _ in range(n_bootstrap):
            idx = rng.integers(0, len(N), len(N))
            if len(np.unique(N[idx])) < 3:
                continue  # a resample with fewer than 3 sizes cannot identify the curve
            r = _fit(lN[idx], lL[idx], delta, [res.x, starts[0]])
            Es.append(math.exp(r.x[1]))
        if Es:
            boot = np.array(Es)
            q = [(1 - ci_level) / 2 * 100, (1 + ci_level) / 2 * 100]
            lo, hi = np.percentile(boot, q)
            fit.E_ci = (float(lo), float(hi))
            fit.E_boot = boot
    return fit


def compare_recipes(runs: Mapping[str, tuple[Any, Any]], *, n_bootstrap: int = 200,
                    seed: int = 0) -> list[dict[str, Any]]:
    """Rank recipes by fitted asymptote ``E`` (lowest first).

    ``runs``: recipe name -> (N values, loss values). Each result row has the fit, the ``E``
    interval and ``p_best``: the share of bootstrap draws in which the recipe's ``E`` is lowest
    (draws are paired by index across recipes).
    """
    if not runs:
        raise ValueError("no recipes given")
    fits = {name: fit_asymptote(N, L, n_bootstrap=n_bootstrap, seed=seed)
            for name, (N, L) in sorted(runs.items())}
    names = list(fits)
    p_best = {n: float("nan") for n in names}
    boots = [fits[n].E_boot for n in names]
    if n_bootstrap > 0 and all(b is not None for b in boots):
        m = min(len(b) for b in boots)
        mat = np.stack([b[:m] for b in boots])
        wins = np.argmin(mat, axis=0)
        p_best = {n: float(np.mean(wins == i)) for i, n in enumerate(names)}
    rows = [{"recipe": n, "E": fits[n].E, "E_ci": fits[n].E_ci, "A": fits[n].A,
             "alpha": fits[n].alpha, "p_best": p_best[n]} for n in names]
    return sorted(rows, key=lambda r: (r["E"], r["recipe"]))
