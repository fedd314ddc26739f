"""Data-constrained scaling law (Muennighoff et al. 2023, "Scaling Data-Constrained Language
Models", eq. 5 and appendix).

Repeated tokens are worth less than fresh ones. With ``U_D`` unique tokens and ``D`` tokens
trained on, the repetitions are ``R_D = max(D / U_D - 1, 0)`` and the *effective* data is

    D' = U_D + U_D * R*_D * (1 - exp(-R_D / R*_D))

(``R*_D``: the number of repetitions after which extra epochs are worth ~nothing). Likewise
parameters beyond what the unique data can feed lose value: ``U_N = min(N, N_opt(U_D))`` where
``N_opt(U_D)`` is the compute-optimal model size for ``U_D`` tokens under the same law,
``R_N = max(N / U_N - 1, 0)`` and ``N' = U_N + U_N R*_N (1 - exp(-R_N / R*_N))``. Then

    L = E + A / N'^alpha + B / D'^beta.

Defaults are the paper's published fit. Plain numpy/scipy; no Beam.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import huber

from scaling._threads import blas_single_threaded
from scaling.chinchilla import HUBER_DELTA, compute_optimal_n_for_data, fit_chinchilla

# Muennighoff et al. 2023, published fit (section 5 / appendix).
MUENNIGHOFF = {
    "A": 520.82, "B": 1487.72, "E": 1.8691, "alpha": 0.3526596, "beta": 0.3526596,
    "r_star_d": 15.387756, "r_star_n": 5.309743,
}


def effective_data(D: Any, U: Any, r_star_d: float = MUENNIGHOFF["r_star_d"]) -> np.ndarray:
    D = np.asarray(D, dtype=float)
    U = np.asarray(U, dtype=float)
    R = np.maximum(D / U - 1.0, 0.0)
    # Fewer tokens than unique data: no repetition, D' = D.
    return np.where(D <= U, D, U + U * r_star_d * (1.0 - np.exp(-R / r_star_d)))


def effective_params(N: Any, U: Any, *, A: float = MUENNIGHOFF["A"], B: float = MUENNIGHOFF["B"],
                     alpha: float = MUENNIGHOFF["alpha"], beta: float = MUENNIGHOFF["beta"],
                     r_star_n: float = MUENNIGHOFF["r_star_n"]) -> np.ndarray:
    N = np.asarray(N, dtype=float)
    n_opt = compute_optimal_n_for_data(U, A=A, B=B, alpha=alpha, beta=beta)
    UN = np.minimum(N, n_opt)
    R = np.maximum(N / UN - 1.0, 0.0)
    return UN + UN * r_star_n * (1.0 - np.exp(-R / r_star_n))


def data_constrained_loss(N: Any, D: Any, U: Any, *, A: float = MUENNIGHOFF["A"],
                          B: float = MUENNIGHOFF["B"], E: float = MUENNIGHOFF["E"],
                          alpha: float = MUENNIGHOFF["alpha"], beta: float = MUENNIGHOFF["beta"],
                          r_star_d: float = MUENNIGHOFF["r_star_d"],
                          r_star_n: float = MUENNIGHOFF["r_star_n"]) -> np.ndarray:
    """Loss for ``N`` parameters trained on ``D`` tokens drawn from ``U`` unique tokens."""
    Dp = effective_data(D, U, r_star_d)
    Np = effective_params(N, U, A=A, B=B, alpha=alpha, beta=beta, r_star_n=r_star_n)
    return E + A / Np**alpha + B / Dp**beta


@dataclass
class DataConstrainedFit:
    A: float
    B: float
    E: float
    alpha: float
    beta: float
    r_star_d: float
    r_star_n: float
    objective: float

    def params(self) -> dict[str, float]:
        return {"A": self.A, "B": self.B, "E": self.E, "alpha": self.alpha, "beta": self.beta,
                "r_star_d": self.r_star_d, "r_star_n": self.r_star_n}

    def loss(self, N: Any, D: Any, U: Any) -> np.ndarray:
        return data_constrained_loss(N, D, U, **self.params())


_NAMES = ("A", "B", "E", "alpha", "beta", "r_star_d", "r_star_n")
_LOGGED = {"A", "B", "E", "r_star_d", "r_star_n"}


def _to_vec(p: dict[str, float], names) -> np.ndarray:
    return np.array([math.log(p[k]) if k in _LOGGED else p[k] for k in names])


def _from_vec(x: np.ndarray, names) -> dict[str, float]:
    return {k: (math.exp(v) if k in _LOGGED else float(v)) for k, v in zip(names, x)}


@blas_single_threaded
def fit_data_constrained(N: Any, D: Any, U: Any, loss: Any, *,
                         base: dict[str, float] | None = None,
                         delta: float = HUBER_DELTA) -> DataConstrainedFit:
    """Fit the law to runs (Huber loss on log loss, as for the Chinchilla fit).

    ``base`` given (``A, B, E, alpha, beta``): only ``R*_D`` and ``R*_N`` are fitted, which is how
    the paper proceeds (base law from single-epoch runs, decay constants from repeated runs).
    ``base=None``: the base law is first fitted on the single-epoch runs (``D <= U``, at least 5
    needed), then all seven parameters are refined jointly.
    """
    N, D, U, L = (np.asarray(x, dtype=float).ravel() for x in (N, D, U, loss))
    if not (len(N) == len(D) == len(U) == len(L)):
        raise ValueError("N, D, U and loss must have the same length")
    for name, x in (("N", N), ("D", D), ("U", U), ("loss", L)):
        if not np.all(np.isfinite(x)) or np.any(x <= 0):
            raise ValueError(f"{name} must be finite and > 0 for every run")
    if not np.any(D > U):
        raise ValueError("no run repeats data (D > U): R*_D cannot be identified")
    lL = np.log(L)

    def objective(x, names, fixed):
        p = {**fixed, **_from_vec(x, names)}
        pred = data_constrained_loss(N, D, U, **p)
        if not np.all(np.isfinite(pred)) or np.any(pred <= 0):
            return 1e9
        return float(np.sum(huber(delta, np.log(pred) - lL)))

    joint = base is None
    if base is None:
        single = D <= U
        if single.sum() < 5:
            raise ValueError("base=None needs at least 5 single-epoch runs (D <= U) to fit "
                             "E, A, B, alpha, beta; pass base= instead")
        cf = fit_chinchilla(N[single], D[single], L[single])
        base = cf.params()
    base = {k: float(base[k]) for k in ("A", "B", "E", "alpha", "beta")}
    names2 = ("r_star_d", "r_star_n")
    best = None
    for rd in (1.0, 5.0, 15.0, 50.0):
        for rn in (1.0, 5.0, 20.0):
            x0 = _to_vec({"r_star_d": rd, "r_star_n": rn}, names2)
            res = minimize(objective, x0, args=(names2, base), method="Nelder-Mead",
                           options={"xatol": 1e-8, "fatol": 1e-14, "maxiter": 4000})
            if best is None or res.fun < best.fun:
                best = res
    p = {**base, **_from_vec(best.x, names2)}
    f = float(best.fun)
    if joint:
        res = minimize(objective, _to_vec(p, _NAMES), args=(_NAMES, {}), method="Nelder-Mead",
                       options={"xatol": 1e-9, "fatol": 1e-15, "maxiter": 20000})
        if res.fun < f:
            p, f = _from_vec(res.x, _NAMES), float(res.fun)
    return DataConstrainedFit(**p, objective=f)
