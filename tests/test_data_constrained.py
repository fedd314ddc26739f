import math

import numpy as np
import pytest

from scaling import data_constrained_loss
from scaling.chinchilla import chinchilla_loss, compute_optimal_n_for_data
from scaling.data_constrained import (
    MUENNIGHOFF,
    effective_data,
    effective_params,
    fit_data_constrained,
)

BASE = {k: MUENNIGHOFF[k] for k in ("A", "B", "E", "alpha", "beta")}


def test_effective_data_hand_values():
    # R_D = 1e11/1e10 - 1 = 9; D' = 1e10 + 1e10 * 15.387756 * (1 - exp(-9/15.387756))
    assert float(effective_data(1e11, 1e10)) == pytest.approx(7.8141233e10, rel=1e-7)
    assert float(effective_data(5e9, 1e10)) == 5e9  # no repetition
    assert float(effective_data(1e10, 1e10)) == 1e10
    # Infinite repetition saturates at U (1 + R*_D).
    assert float(effective_data(1e20, 1e10)) == pytest.approx(1e10 * (1 + 15.387756), rel=1e-6)
    # Small repetition is almost as good as fresh data.
    assert float(effective_data(1.1e10, 1e10)) == pytest.approx(1.1e10, rel=1e-3)


def test_effective_params_only_penalizes_excess_parameters():
    U = 1e10
    n_opt = float(compute_optimal_n_for_data(U, A=BASE["A"], B=BASE["B"], alpha=BASE["alpha"],
                                             beta=BASE["beta"]))
    assert float(effective_params(n_opt / 2, U)) == pytest.approx(n_opt / 2)
    big = 10 * n_opt
    R = big / n_opt - 1
    hand = n_opt + n_opt * 5.309743 * (1 - math.exp(-R / 5.309743))
    assert float(effective_params(big, U)) == pytest.approx(hand, rel=1e-9)


def test_loss_reduces_to_chinchilla_without_repetition():
    N, D, U = 1e8, 5e9, 1e11
    assert float(data_constrained_loss(N, D, U)) == pytest.approx(
        float(chinchilla_loss(N, D, **BASE)), rel=1e-12)
    # Repeating is worse than the same number of fresh tokens, better than stopping.
    rep = float(data_constrained_loss(N, 4e10, 1e10))
    assert float(data_constrained_loss(N, 4e10, 1e11)) < rep < float(
        data_constrained_loss(N, 1e10, 1e10))


def _runs(rng, noise=0.003):
    N = np.repeat([1e8, 3e8, 1e9, 3e9], 12)
    U = np.tile(np.repeat([2e9, 1e10, 5e10], 4), 4)
    D = np.tile([1e9, 1e10, 5e10, 2e11], 12)
    return N, D, U, data_constrained_loss(N, D, U) * np.exp(rng.normal(0, noise, len(N)))


def test_fit_recovers_decay_constants():
    N, D, U, L = _runs(np.random.default_rng(0))
    fit = fit_data_constrained(N, D, U, L, base=BASE)
    assert fit.r_star_d == pytest.approx(MUENNIGHOFF["r_star_d"], rel=0.15)
    assert fit.r_star_n == pytest.approx(MUENNIGHOFF["r_star_n"], rel=0.3)
    joint = fit_data_constrained(N, D, U, L)
    assert np.allclose(joint.loss(N, D, U), data_constrained_loss(N, D, U), rtol=0.01)


def test_fit_needs_repeated_runs():
    with pytest.raises(ValueError, match="repeats"):
        fit_data_constrained([1e8] * 3, [1e9] * 3, [1e10] * 3, [3.0, 3.0, 3.0], base=BASE)


# --------------------------------------------------------------------------- published numbers
# Muennighoff et al. 2023: R*_D = 15.4 (fitted), up to ~4 epochs repeated data is almost as
# good as unique data, and with more repetition the value of added compute decays to zero;
# under data constraints compute should go to more epochs rather than more parameters.


def test_effective_data_curve_r_star_15_4():
    r = MUENNIGHOFF["r_star_d"]
    assert round(r, 1) == 15.4
    U = 1e10
    # The marginal value of a repeated token after R repetitions is exp(-R / R*_D): 1/e of a
    # fresh token once R = R*_D (numerical derivative of D').
    for R in (0.5, 4.0, r, 30.0):
        D = U * (1 + R)
        h = U * 1e-4
        slope = float(effective_data(D + h, U) - effective_data(D - h, U)) / (2 * h)
        assert slope == pytest.approx(math.exp(-R / r), rel=1e-5)
    # 4 epochs are worth ~93% of 4 epochs of fresh data, 16 epochs ~66%, and the effective
    # data never exceeds U (1 + R*_D) ~ 16.4 U.
    assert float(effective_data(4 * U, U)) / (4 * U) == pytest.approx(0.9314, abs=1e-3)
    assert float(effective_data(16 * U, U)) / (16 * U) == pytest.approx(0.6614, abs=1e-3)
    assert float(effective_data(1e6 * U, U)) / U == pytest.approx(1 + r, rel=1e-9)


def _dc_optimum(C, U):
    from scipy.optimize import minimize_scalar

    f = lambda ln: float(data_constrained_loss(math.exp(ln), C / 6 / math.exp(ln), U))  # noqa
    res = minimize_scalar(f, bounds=(math.log(1e6), math.log(1e14)), method="bounded",
                          options={"xatol": 1e-7})
    n = math.exp(res.x)
    return n, C / (6 * n), float(res.fun)


def test_compute_optimal_allocation_under_data_constraints():
    from scaling.chinchilla import compute_optimal

    U = 1e10
    p = {k: MUENNIGHOFF[k] for k in ("A", "B", "alpha", "beta")}
    s = p["alpha"] + p["beta"]
    G = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / s)
    C1 = 6 * (G * U) ** (s / p["alpha"])  # compute whose Chinchilla optimum is one epoch of U
    n1, d1, _ = _dc_optimum(C1, U)
    assert d1 / U == pytest.approx(1.0, rel=1e-3)  # no constraint binds at one epoch
    rows = [_dc_optimum(C1 * 4 ** k, U) for k in range(1, 8)]
    ns = np.array([r[0] for r in rows])
    eps = np.array([r[1] / U for r in rows])
    losses = np.array([r[2] for r in rows])
    # Extra compute goes more into epochs than into parameters ...
    assert np.all(np.diff(np.log(eps)) > np.diff(np.log(ns)))
    # ... and the model stays smaller than the data-unconstrained Chinchilla optimum.
    for k, n in enumerate(ns, start=1):
        assert n < float(compute_optimal(C1 * 4 ** k, **p)[0])
    # Up to ~4 epochs, repeating costs little; the value of more compute then decays to zero.
    k4 = int(np.argmax(eps > 4))
    nc, dc = compute_optimal(C1 * 4 ** (k4 + 1), **p)
    base = {k: MUENNIGHOFF[k] for k in ("A", "B", "E", "alpha", "beta")}
    fresh = float(chinchilla_loss(nc, dc, **base))
    assert (losses[k4] - fresh) / fresh < 0.015
    gains = -np.diff(losses)
    assert np.all(gains > -1e-9) and np.all(np.diff(gains) < 0) and gains[-1] < 1e-3


def test_recommender_follows_the_data_constrained_optimum():
    # One pool with the base law's utility: the recommender's allocation (Goyal data term with
    # the half-life calibrated to R*_D) must match the Muennighoff law's own optimum.
    from scaling.recommend import parse_config, recommend

    U, C = 1e11, 1e24
    # max_epochs raised: the law's own optimum here is past the default 16-epoch cap
    r = recommend(parse_config({"budget": {"flops": C}, "uncertainty": {"draws": 0},
                                "search": {"sweep_points": 3, "max_epochs": 1000},
                                "pools": [{"name": "web", "unique_tokens": U,
                                           "quality_tier": 0}]})).data["recommendation"]
    n, d, loss = _dc_optimum(C, U)
    assert r["model_params"] == pytest.approx(n, rel=0.06)
    assert r["pools"][0]["epochs"] == pytest.approx(d / U, rel=0.06)
    assert r["predicted_loss"]["point"] == pytest.approx(loss, abs=0.005)
