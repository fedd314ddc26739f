"""Quality-quantity law with repetition decay (Goyal et al. 2024, "Scaling Laws for Data
Filtering -- Data Curation cannot be Compute Agnostic", CVPR).

A data pool ``i`` has a *utility* exponent ``b_i < 0`` (more negative = more useful data) and a
*half-life* ``tau_i`` in epochs: during its ``k``-th repetition (``k = 0`` for the first pass)
its utility is ``b_i * 0.5 ** (k / tau_i)``. Error/loss after ``n`` samples follows

    y = (a n)^b + d                          during the first epoch,
    y_k = y_(k-1) * (n_k / n_(k-1))^(b_k)    at the end of each later epoch k,

where ``n_k`` is the number of samples seen at the end of epoch ``k``. We apply the recursion to
the *reducible* part ``r = y - d`` so that ``d`` stays the asymptote.

Mixing pools (the paper's "effective utility" aggregation): while the mixture is trained, the
utility in force is the average of the pools' decayed utilities, weighted by the share of the
samples each pool contributes. The paper mixes equal-sized pools uniformly, so every pool is in
the same epoch and the weights are equal; here each pool ``i`` has a sampling weight ``w_i`` and
``U_i`` unique samples, so it is in repetition ``k_i = floor(w_i x / U_i)`` after ``x`` samples
in total, and training splits into segments at the points where any pool starts a new pass. On
uniform mixes of equal pools this reduces exactly to the paper's formula.

IMPORTANT: the published constants (``a``, ``b``, ``tau``, ``d``) were fitted on CLIP
(DataComp) *error*, in units of samples. They do not transfer to language-model loss over
tokens. Fit them on your own small LM runs with :func:`fit_pool` / :func:`fit_pools`.

Plain numpy/scipy; no Beam.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from scipy.optimize import minimize

from scaling._threads import blas_single_threaded


@dataclass(frozen=True)
class Pool:
    """One data pool in a mixture: ``unique`` samples/tokens, utility ``b`` (< 0), half-life
    ``tau`` (epochs) and sampling ``weight`` (share of all samples drawn from it)."""

    unique: float
    b: float
    tau: float
    weight: float = 1.0


def _segments(pools: Sequence[Pool], n_max: float, max_segments: int = 100_000
              ) -> tuple[np.ndarray, np.ndarray]:
    """Segment end points (in total samples) and the mixture utility in force on each."""
    w = np.array([p.weight for p in pools], dtype=float)
    w = w / w.sum()
    U = np.array([p.unique for p in pools], dtype=float)
    active = w > 0
    per_pass = np.where(active, U / np.where(active, w, 1.0), np.inf)  # total samples per pass
    # Boundaries: x = k * per_pass_i for k >= 1, below n_max.
    bounds = []
    for pp in per_pass[active]:
        k = int(math.floor(n_max / pp))
        if k > max_segments:
            raise ValueError(f"a pool would be repeated {k} times; more than {max_segments} "
                             "passes is outside what this law was fitted for")
        bounds.append(pp * np.arange(1, k + 1))
    ends = np.unique(np.concatenate(bounds + [np.array([n_max])]))
    ends = ends[ends <= n_max]
    starts = np.concatenate([[0.0], ends[:-1]])
    mid = (starts + ends) / 2.0
    b = np.array([p.b for p in pools])
    tau = np.array([p.tau for p in pools])
    k = np.floor(mid[:, None] / per_pass[None, :])  # pass index of each pool in each segment
    decayed = b[None, :] * np.power(0.5, np.where(np.isfinite(k), k, 0.0) / tau[None, :])
    b_eff = (decayed * w[None, :]).sum(axis=1)
    return ends, b_eff


def mixture_reducible(n: Any, pools: Sequence[Pool], a: float) -> np.ndarray:
    """Reducible term ``r(n)`` (error minus ``d``) after ``n`` total samples of the mixture."""
    n = np.atleast_1d(np.asarray(n, dtype=float))
    if np.any(n <= 0):
        raise ValueError("n must be > 0")
    if not pools:
        raise ValueError("need at least one pool")
    for p in pools:
        if p.unique <= 0 or p.tau <= 0 or p.weight < 0:
            raise ValueError(f"bad pool {p}: unique and tau must be > 0, weight >= 0")
    ends, b_eff = _segments(pools, float(n.max()))
    log_ends = np.log(ends)
    # log r at each segment end: first segment (a x)^b0, then y_k = y_(k-1) (x_k/x_(k-1))^b_k.
    log_r_end = np.empty_like(log_ends)
    log_r_end[0] = b_eff[0] * (math.log(a) + log_ends[0])
    if len(ends) > 1:
        log_r_end[1:] = log_r_end[0] + np.cumsum(b_eff[1:] * np.diff(log_ends))
    seg = np.searchsorted(ends, n, side="left")  # segment containing n
    log_n = np.log(n)
    out = np.where(
        seg == 0,
        b_eff[0] * (math.log(a) + log_n),
        log_r_end[np.maximum(seg - 1, 0)] + b_eff[seg] * (log_n - log_ends[np.maximum(seg - 1, 0)]),
    )
    return np.exp(out)


def mixture_error(n: Any, pools: Sequence[Pool], a: float, d: float) -> np.ndarray:
    return mixture_reducible(n, pools, a) + d


def pool_error(n: Any, unique: float, *, a: float, b: float, tau: float, d: float) -> np.ndarray:
    """Error of a single pool of ``unique`` samples after ``n`` samples seen."""
    return mixture_error(n, [Pool(unique, b, tau)], a, d)


# --------------------------------------------------------------------------- fitting


@dataclass
class PoolFit:
    a: float
    b: float
    tau: float
    d: float
    sse: float
    tau_identified: bool = True
    notes: list[str] = field(default_factory=list)

    def error(self, n: Any, unique: float) -> np.ndarray:
        return pool_error(n, unique, a=self.a, b=self.b, tau=self.tau, d=self.d)


def _s_parts(n: np.ndarray, U: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per run: log of the first segment end, and (padded) epoch indices and log-increments of
    the later epochs; they do not depend on tau, so fits compute them once."""
    L0, ks, dls = [], [], []
    for nj, uj in zip(n, U):
        K = int(math.floor(nj / uj))
        ends = np.minimum(uj * np.arange(1, K + 2), nj)
        ends = ends[np.concatenate([[True], np.diff(ends) > 0])]
        L0.append(math.log(ends[0]))
        dls.append(np.diff(np.log(ends)))  # log-increments of epochs 1..m
        ks.append(np.arange(1, len(ends), dtype=float))
    m = max((len(x) for x in dls), default=0)
    K = np.zeros((len(n), m))
    DL = np.zeros((len(n), m))
    for j, (k, dl) in enumerate(zip(ks, dls)):
        K[j, :len(k)] = k
        DL[j, :len(dl)] = dl
    return np.array(L0), K, DL


def _s_matrix(n: np.ndarray, U: np.ndarray, taus: np.ndarray, parts=None) -> np.ndarray:
    """For a single pool, log r = b (log a + S(tau)); returns S for each (tau, run)."""
    L0, K, DL = parts if parts is not None else _s_parts(n, U)
    taus = np.asarray(taus, dtype=float)
    w = np.power(0.5, K[None, :, :] / taus[:, None, None])  # (tau, run, epoch)
    return L0[None, :] + (w * DL[None, :, :]).sum(axis=2)


@blas_single_threaded
def fit_pool(n: Any, unique: Any, error: Any, *, d: float | None = None, a: float | None = None,
             tau_default: float = 10.0, grid_size: int = 40,
             start: PoolFit | None = None) -> PoolFit:
    """Fit ``b, tau`` (and ``a``, ``d`` unless given) for one pool from its small runs.

    ``n``: samples (tokens) seen per run; ``unique``: the pool size each run drew from (runs
    on subsamples of the pool may use smaller values); ``error``: loss or error. Grid search on
    squared error as the authors do, then Nelder-Mead refinement from the best grid point.
    ``tau`` is only identifiable from runs that repeat data (``n > unique``); without any, it is
    fixed to ``tau_default`` and ``tau_identified`` is False. Pools that will be mixed share
    one scale ``a``: fit the first pool freely and pass its ``a`` to the others, or (for LM
    loss with the recommender) pass ``a = lm_scale(B, beta)`` and let ``d`` absorb
    ``E + A / N^alpha`` of the fixed model size the runs used. ``start``: skip the grid and
    refine from this fit (bootstrap resamples start from the full-data fit).
    """
    n, U, y = (np.asarray(x, dtype=float).ravel() for x in (n, unique, error))
    if not (len(n) == len(U) == len(y)):
        raise ValueError("n, unique and error must have the same length")
    if len(n) < 3:
        raise ValueError(f"need at least 3 runs (got {len(n)})")
    if np.any(n <= 0) or np.any(U <= 0) or not np.all(np.isfinite(y)):
        raise ValueError("n and unique must be > 0 and error finite")
    notes = []
    repeats = bool(np.any(n > U))
    if not repeats:
        notes.append(f"no run repeats data; tau fixed to {tau_default}")
    taus = np.geomspace(0.25, 200, grid_size) if repeats else np.array([tau_default])
    bs = -np.geomspace(0.005, 2.0, grid_size)
    # log a such that a*n spans ~[1e-3, 1e6] over the runs.
    ln_min, ln_max = math.log(n.min()), math.log(n.max())
    log_as = (np.array([math.log(a)]) if a is not None
              else np.linspace(-ln_max - 7, -ln_min + 14, grid_size))
    ds = (np.array([d]) if d is not None
          else np.linspace(0.0, float(y.min()) * 0.999, max(grid_size // 2, 2)))
    parts = _s_parts(n, U)
    S = _s_matrix(n, U, taus, parts) if start is None else np.empty((0, len(n)))  # (tau, run)
    best = (np.inf, None)
    if start is not None:
        t_start = start.tau if repeats else tau_default
        best = (np.inf, (math.log(start.a) if a is None else math.log(a), start.b, t_start,
                         start.d if d is None else d))
        taus = np.array([])
    for ti, _t in enumerate(taus):
        z = log_as[:, None] + S[ti][None, :]  # (a, run)
        logr = bs[:, None, None] * z[None, :, :]  # (b, a, run)
        r = np.exp(np.clip(logr, -700, 50))
        for dv in ds:
            sse = ((r + dv - y) ** 2).sum(axis=2)
            i = np.unravel_index(np.argmin(sse), sse.shape)
            if sse[i] < best[0]:
                best = (float(sse[i]), (log_as[i[1]], bs[i[0]], taus[ti], dv))
    la, b0, t0, d0 = best[1]

    fit_d, fit_a = d is None, a is None

    def unpack(x):
        b_, lt_ = x[0], x[1]
        t_ = math.exp(lt_) if repeats else tau_default
        la_ = x[2] if fit_a else math.log(a)
        d_ = x[2 + fit_a] if fit_d else d
        return la_, b_, t_, d_

    def sse_of(x):
        la_, b_, t_, d_ = unpack(x)
        if b_ >= 0 or t_ > 1e4:
            return 1e30
        Sx = _s_matrix(n, U, np.array([t_]), parts)[0]
        r = np.exp(np.clip(b_ * (la_ + Sx), -700, 50))
        return float(((r + d_ - y) ** 2).sum())

    x0 = [b0, math.log(t0)] + ([la] if fit_a else []) + ([d0] if fit_d else [])
    res = minimize(sse_of, x0, method="Nelder-Mead",
                   options={"xatol": 1e-10, "fatol": 1e-16,
                            "maxiter": 20000 if start is None else 2000})
    x = res.x if res.fun <= best[0] else np.array(x0)
    la_, b_, t_, d_ = unpack(x)
    return PoolFit(a=a if a is not None else math.exp(la_), b=float(b_), tau=float(t_), d=float(d_),
                   sse=float(min(res.fun, best[0])), tau_identified=repeats, notes=notes)


# LM defaults: the data term of a Chinchilla-type law, B / D^beta, is exactly (a D)^b with
# b = -beta and a = B^(-1/beta); a pool with that utility and no decay *is* the base law.
def lm_scale(B: float, beta: float) -> float:
    return B ** (-1.0 / beta)


def calibrate_tau(*, B: float, beta: float, r_star_d: float, unique: float = 1e10,
                  epochs: Sequence[float] = (2, 4, 8, 16)) -> float:
    """Half-life that makes a single repeated pool (``b = -beta``) match the Muennighoff et al.
    data term ``B / D'^beta`` over the given epoch counts (least squares in log space)."""
    from scaling.data_constrained import effective_data

    a = lm_scale(B, beta)
    D = unique * np.asarray(epochs, dtype=float)
    target = np.log(B / effective_data(D, unique, r_star_d) ** beta)

    def err(lt):
        tau = math.exp(float(np.ravel(lt)[0]))
        pred = np.log(mixture_reducible(D, [Pool(unique, -beta, tau)], a))
        return float(((pred - target) ** 2).sum())

    res = minimize(err, [math.log(5.0)], method="Nelder-Mead", options={"xatol": 1e-8})
    return math.exp(float(res.x[0]))
