"""Chinchilla parametric scaling law ``L(N, D) = E + A / N**alpha + B / D**beta``.

Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models" (approach 3), fitted as in
Besiroglu et al. 2024, "Chinchilla Scaling: A replication attempt":

* parameterize ``A = exp(a)``, ``B = exp(b)``, ``E = exp(e)`` so the prediction of the *log* loss
  is ``LSE(a - alpha log N, b - beta log D, e)`` (log-sum-exp);
* minimize the Huber loss (delta = 1e-3) between that and the observed log loss;
* run L-BFGS from a grid of initializations and keep the best optimum.

The full Besiroglu grid has 4,500 starts. We evaluate the objective on the whole grid at once
(vectorized) and start L-BFGS from the ``n_starts`` best grid points (``n_starts=None`` runs all
of them, as the paper does). Compute-optimal allocation for ``C = 6 N D`` has a closed form.

Which runs are fitted (:func:`fit_chinchilla_runs`): Besiroglu et al. fit the runs they
extracted from Hoffmann et al.'s Figure 4 *except the five with the highest loss*, which they
treat as outliers (their published analysis, ``nr_of_models_excluded = 5``: a run is kept when
its loss is below the fifth-highest loss). On the 245 extracted runs that protocol leaves 240
and this code reproduces their estimates (E 1.817, A 478, B 2143, alpha 0.347, beta 0.367;
tested). ``protocol="all"`` fits every run instead; on the same CSV that gives E 1.89,
B ~1.3e4, beta 0.45 and only ~6 tokens per parameter at 1e24 FLOPs, because the five
high-loss runs (small models, little data) pull the data exponent up.

Plain numpy/scipy; no Beam.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import huber

from scaling._threads import blas_single_threaded

HUBER_DELTA = 1e-3

# Published fits (facts from the papers).
HOFFMANN = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
BESIROGLU = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}
# Besiroglu et al. leave out the five highest-loss runs (see the module docstring).
BESIROGLU_EXCLUDED_HIGHEST_LOSS = 5
PROTOCOLS = ("besiroglu", "all")

# Besiroglu et al. initialization grid: alpha, beta in {0, .5, ..., 2}, e in {-1, -.5, ..., 1},
# a, b in {0, 5, ..., 25}.
_GRID_ALPHA = np.arange(0.0, 2.5, 0.5)
_GRID_E = np.arange(-1.0, 1.5, 0.5)
_GRID_AB = np.arange(0.0, 30.0, 5.0)


@dataclass
class ChinchillaFit:
    """Fitted law. ``ci`` maps a parameter name to its (low, high) bootstrap interval."""

    A: float
    B: float
    E: float
    alpha: float
    beta: float
    objective: float = float("nan")
    n_points: int = 0
    protocol: str = "all"
    excluded: list[int] = field(default_factory=list)  # row indices left out by the protocol
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    ci_level: float = 0.0
    bootstrap: np.ndarray | None = None  # rows: (A, B, E, alpha, beta), one per resample

    def loss(self, N: Any, D: Any) -> np.ndarray:
        return chinchilla_loss(N, D, A=self.A, B=self.B, E=self.E, alpha=self.alpha,
                               beta=self.beta)

    def params(self) -> dict[str, float]:
        return {"E": self.E, "A": self.A, "B": self.B, "alpha": self.alpha, "beta": self.beta}

    def compute_optimal(self, C: Any) -> tuple[np.ndarray, np.ndarray]:
        return compute_optimal(C, A=self.A, B=self.B, alpha=self.alpha, beta=self.beta)

    def compute_optimal_ci(self, C: float, level: float | None = None
                           ) -> dict[str, tuple[float, float]]:
        """Bootstrap interval of N*(C) and D*(C); needs a fit made with ``n_bootstrap > 0``."""
        if self.bootstrap is None or len(self.bootstrap) == 0:
            raise ValueError("no bootstrap samples: fit with n_bootstrap > 0")
        level = level or self.ci_level or 0.95
        ns, ds = [], []
        for A, B, _E, al, be in self.bootstrap:
            n, d = compute_optimal(C, A=A, B=B, alpha=al, beta=be)
            ns.append(float(n))
            ds.append(float(d))
        q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
        return {"N": tuple(np.percentile(ns, q)), "D": tuple(np.percentile(ds, q))}


def chinchilla_loss(N: Any, D: Any, *, A: float, B: float, E: float, alpha: float,
                    beta: float) -> np.ndarray:
    N = np.asarray(N, dtype=float)
    D = np.asarray(D, dtype=float)
    return E + A / N**alpha + B / D**beta


def compute_optimal(C: Any, *, A: float, B: float, alpha: float, beta: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Minimize ``A/N^alpha + B/D^beta`` subject to ``6 N D = C``.

    ``N* = G (C/6)^(beta/(alpha+beta))``, ``D* = (C/6)^(alpha/(alpha+beta)) / G`` with
    ``G = (alpha A / (beta B))^(1/(alpha+beta))`` (Hoffmann et al. 2022, eq. 4).
    """
    C = np.asarray(C, dtype=float)
    s = alpha + beta
    G = (alpha * A / (beta * B)) ** (1.0 / s)
    return G * (C / 6.0) ** (beta / s), (C / 6.0) ** (alpha / s) / G


def compute_optimal_n_for_data(D: Any, *, A: float, B: float, alpha: float, beta: float
                               ) -> np.ndarray:
    """The model size that is compute-optimal when ``D`` tokens are trained on."""
    D = np.asarray(D, dtype=float)
    s = alpha + beta
    G = (alpha * A / (beta * B)) ** (1.0 / s)
    # From D* = (C/6)^(alpha/s)/G: C/6 = (G D)^(s/alpha); N* = G (C/6)^(beta/s).
    return G * (G * D) ** (beta / alpha)


# --------------------------------------------------------------------------- objective


def logsumexp(t: np.ndarray, axis: int = 0) -> np.ndarray:
    """log(sum(exp(t))) along ``axis``, stable (scipy's version is ~10x slower on small arrays)."""
    m = np.max(t, axis=axis, keepdims=True)
    return np.squeeze(m, axis=axis) + np.log(np.sum(np.exp(t - m), axis=axis))


def _theta(p: dict[str, float]) -> np.ndarray:
    return np.array([math.log(p["A"]), math.log(p["B"]), math.log(p["E"]), p["alpha"], p["beta"]])


def huber_objective(params: dict[str, float], N: Any, D: Any, loss: Any,
                    delta: float = HUBER_DELTA) -> float:
    """Sum of Huber losses between predicted and observed log loss (Besiroglu et al.)."""
    lN, lD, lL = np.log(N), np.log(D), np.log(loss)
    return float(_obj_grad(_theta(params), lN, lD, lL, delta)[0])


def _obj_grad(theta: np.ndarray, lN: np.ndarray, lD: np.ndarray, lL: np.ndarray, delta: float
              ) -> tuple[float, np.ndarray]:
    a, b, e, alpha, beta = theta
    t = np.stack([a - alpha * lN, b - beta * lD, np.full_like(lN, e)])
    lse = logsumexp(t, axis=0)
    r = lse - lL
    f = float(np.sum(huber(delta, r)))
    dr = np.clip(r, -delta, delta)  # derivative of the Huber loss
    w = np.exp(t - lse)  # softmax weights of the three terms
    g = np.array([
        np.sum(dr * w[0]),
        np.sum(dr * w[1]),
        np.sum(dr * w[2]),
        np.sum(dr * w[0] * -lN),
        np.sum(dr * w[1] * -lD),
    ])
    return f, g


def _grid() -> np.ndarray:
    mesh = np.meshgrid(_GRID_AB, _GRID_AB, _GRID_E, _GRID_ALPHA, _GRID_ALPHA, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)  # columns a, b, e, alpha, beta


def _grid_objective(grid: np.ndarray, lN, lD, lL, delta) -> np.ndarray:
    a, b, e, al, be = (grid[:, i:i + 1] for i in range(5))
    t = np.stack([a - al * lN[None, :], b - be * lD[None, :],
                  np.broadcast_to(e, (len(grid), len(lN)))])
    r = logsumexp(t, axis=0) - lL[None, :]
    return huber(delta, r).sum(axis=1)


def _fit_theta(lN, lD, lL, delta, starts: np.ndarray, ftol: float = 1e-15
               ) -> tuple[np.ndarray, float]:
    best_x, best_f = None, np.inf
    for x0 in starts:
        res = minimize(_obj_grad, x0, args=(lN, lD, lL, delta), jac=True, method="L-BFGS-B",
                       options={"maxiter": 1000, "ftol": ftol, "gtol": 1e-12})
        if np.all(np.isfinite(res.x)) and res.fun < best_f:
            best_x, best_f = res.x, float(res.fun)
    if best_x is None:
        raise RuntimeError("L-BFGS failed from every initialization")
    return best_x, best_f


def _select_starts(grid, lN, lD, lL, delta, n_starts: int | None) -> np.ndarray:
    if n_starts is None or n_starts >= len(grid):
        return grid
    vals = _grid_objective(grid, lN, lD, lL, delta)
    order = np.lexsort((np.arange(len(grid)), vals))  # stable tie-break by grid index
    return grid[order[:n_starts]]


def _check(N, D, loss) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    N, D, loss = (np.asarray(x, dtype=float).ravel() for x in (N, D, loss))
    if not (len(N) == len(D) == len(loss)):
        raise ValueError(f"N, D and loss must have the same length (got {len(N)}, {len(D)}, "
                         f"{len(loss)})")
    if len(N) < 5:
        raise ValueError(f"need at least 5 runs to fit 5 parameters (got {len(N)})")
    for name, x in (("N", N), ("D", D), ("loss", loss)):
        if not np.all(np.isfinite(x)) or np.any(x <= 0):
            raise ValueError(f"{name} must be finite and > 0 for every run")
    return N, D, loss


@blas_single_threaded
def fit_chinchilla(N: Any, D: Any, loss: Any, *, delta: float = HUBER_DELTA,
                   n_starts: int | None = 64, n_bootstrap: int = 0, ci_level: float = 0.95,
                   bootstrap_starts: int = 0, seed: int = 0) -> ChinchillaFit:
    """Fit ``L = E + A/N^alpha + B/D^beta`` to runs (Besiroglu et al. procedure).

    ``n_starts``: L-BFGS starts taken from the best points of the 4,500-point grid
    (``None``: all of them). ``n_bootstrap``: resamples of the runs (with replacement) for
    percentile confidence intervals at ``ci_level``; each resample is refit by L-BFGS from the
    full-data optimum plus the ``bootstrap_starts`` best grid points of the full data (a fresh
    grid start costs ~20 ms on 245 runs; a resample started at the optimum ~10 ms).
    """
    N, D, loss = _check(N, D, loss)
    lN, lD, lL = np.log(N), np.log(D), np.log(loss)
    grid = _grid()
    ranked = _select_starts(grid, lN, lD, lL, delta, n_starts)
    theta, f = _fit_theta(lN, lD, lL, delta, ranked)
    fit = _to_fit(theta, f, len(N))
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        rows = []
        starts = np.vstack([theta[None, :], ranked[:bootstrap_starts]])
        for _ in range(n_bootstrap):
            idx = rng.integers(0, len(N), len(N))
            bN, bD, bL = lN[idx], lD[idx], lL[idx]
            th, _ = _fit_theta(bN, bD, bL, delta, starts)
            rows.append([math.exp(th[0]), math.exp(th[1]), math.exp(th[2]), th[3], th[4]])
        boot = np.array(rows)
        q = [(1 - ci_level) / 2 * 100, (1 + ci_level) / 2 * 100]
        for i, name in enumerate(("A", "B", "E", "alpha", "beta")):
            lo, hi = np.percentile(boot[:, i], q)
            fit.ci[name] = (float(lo), float(hi))
        fit.bootstrap = boot
        fit.ci_level = ci_level
    return fit


def protocol_mask(loss: Any, protocol: str = "besiroglu") -> np.ndarray:
    """Boolean mask of the runs a protocol fits. ``besiroglu``: all but the
    ``BESIROGLU_EXCLUDED_HIGHEST_LOSS`` runs with the highest loss (a run is kept when its loss
    is strictly below the fifth-highest, as in their analysis); ``all``: every run."""
    loss = np.asarray(loss, dtype=float).ravel()
    if protocol == "all":
        return np.ones(len(loss), dtype=bool)
    if protocol != "besiroglu":
        raise ValueError(f"protocol must be one of {PROTOCOLS} (got {protocol!r})")
    k = BESIROGLU_EXCLUDED_HIGHEST_LOSS
    if len(loss) <= k + 5:
        raise ValueError(f"protocol 'besiroglu' leaves out {k} runs and needs at least "
                         f"{k + 5} (got {len(loss)}); use protocol 'all'")
    return loss < np.sort(loss)[-k]


def fit_chinchilla_runs(N: Any, D: Any, loss: Any, *, protocol: str = "besiroglu",
                        **kw: Any) -> ChinchillaFit:
    """:func:`fit_chinchilla` on the runs ``protocol`` selects (default: Besiroglu et al.'s,
    which leaves out the five highest-loss runs). ``fit.excluded`` lists the left-out rows."""
    N, D, loss = _check(N, D, loss)
    keep = protocol_mask(loss, protocol)
    fit = fit_chinchilla(N[keep], D[keep], loss[keep], **kw)
    fit.protocol = protocol
    fit.excluded = [int(i) for i in np.flatnonzero(~keep)]
    return fit


def _to_fit(theta: np.ndarray, f: float, n: int) -> ChinchillaFit:
    a, b, e, alpha, beta = (float(x) for x in theta)
    return ChinchillaFit(A=math.exp(a), B=math.exp(b), E=math.exp(e), alpha=alpha, beta=beta,
                         objective=f, n_points=n)


def load_chinchilla_csv(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read runs from a CSV with ``Model Size``, ``Training FLOP``, ``loss`` (Epoch AI format)
    or ``N``, ``D``, ``loss`` columns. Returns (N, D, loss) with D = FLOP / (6 N)."""
    import csv

    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{path}: no rows")
    cols = set(rows[0])
    N, D, L = [], [], []
    for i, row in enumerate(rows, start=2):
        try:
            if {"Model Size", "Training FLOP", "loss"} <= cols:
                n = float(row["Model Size"])
                d = float(row["Training FLOP"]) / (6.0 * n)
            elif {"N", "D", "loss"} <= cols:
                n, d = float(row["N"]), float(row["D"])
            else:
                raise ValueError(
                    f"{path}: needs columns 'Model Size', 'Training FLOP', 'loss' or 'N', 'D', "
                    f"'loss' (found {sorted(cols)})")
            L.append(float(row["loss"]))
        except (TypeError, ValueError) as err:
            if "needs columns" in str(err):
                raise
            raise ValueError(f"{path}: line {i}: not a number ({err})") from None
        N.append(n)
        D.append(d)
    return np.array(N), np.array(D), np.array(L)
