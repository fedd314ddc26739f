import math

import numpy as np
import pytest

from scaling.data_constrained import MUENNIGHOFF, effective_data
from scaling.quality_quantity import (
    Pool,
    calibrate_tau,
    fit_pool,
    lm_scale,
    mixture_error,
    mixture_reducible,
    pool_error,
)


def test_single_pool_recursion_hand_values():
    a, b, tau, U, d = 1e-3, -0.3, 2.0, 1e5, 0.1
    # First epoch: (a n)^b + d.
    assert float(pool_error(5e4, U, a=a, b=b, tau=tau, d=d)[0]) == pytest.approx(
        (a * 5e4) ** b + d, rel=1e-12)
    # 2.5 epochs: y0 = (a U)^b; y1 = y0 (2U/U)^(b 0.5^(1/2)); y2 = y1 (2.5U/2U)^(b 0.5^(2/2)).
    y0 = (a * U) ** b
    y1 = y0 * 2.0 ** (b * 0.5 ** 0.5)
    y2 = y1 * 1.25 ** (b * 0.5)
    assert float(pool_error(2.5e5, U, a=a, b=b, tau=tau, d=d)[0]) == pytest.approx(y2 + d,
                                                                                  rel=1e-12)
    # Vectorized over n, in any order.
    got = pool_error([2.5e5, 5e4, 2e5], U, a=a, b=b, tau=tau, d=d)
    assert got == pytest.approx([y2 + d, (a * 5e4) ** b + d, y1 + d], rel=1e-12)


def test_repetition_decays_utility():
    kw = dict(a=1e-3, b=-0.3, d=0.0)
    fresh = float(pool_error(4e5, 1e6, tau=2.0, **kw)[0])
    slow = float(pool_error(4e5, 1e5, tau=50.0, **kw)[0])
    fast = float(pool_error(4e5, 1e5, tau=0.5, **kw)[0])
    assert fresh < slow < fast


def test_uniform_mix_of_equal_pools_is_the_papers_mean_utility():
    a, U = 1e-4, 1e5
    p1, p2 = Pool(U, -0.4, 1.0, 1.0), Pool(U, -0.2, 4.0, 1.0)
    n = 3e5  # 1.5 passes over the union (each pool at 1.5 epochs)
    # Epoch 0: b = mean(-0.4, -0.2); epoch 1: mean of decayed utilities.
    b0 = -0.3
    b1 = (-0.4 * 0.5 ** 1 + -0.2 * 0.5 ** 0.25) / 2
    hand = (a * 2e5) ** b0 * (3e5 / 2e5) ** b1
    assert float(mixture_reducible(n, [p1, p2], a)[0]) == pytest.approx(hand, rel=1e-12)
    # Upweighting pool 1 (3:1) changes when each pool starts its second pass.
    w = [Pool(U, -0.4, 1.0, 0.75), Pool(U, -0.2, 4.0, 0.25)]
    # pool 1 finishes a pass at x = U/0.75; pool 2 at x = 4U (beyond n).
    x1 = U / 0.75
    seg0 = 0.75 * -0.4 + 0.25 * -0.2
    seg1 = 0.75 * -0.4 * 0.5 + 0.25 * -0.2
    seg2 = 0.75 * -0.4 * 0.25 + 0.25 * -0.2  # pool 1 third pass from x = 2U/0.75
    x2 = 2 * U / 0.75
    hand_w = (a * x1) ** seg0 * (x2 / x1) ** seg1 * (n / x2) ** seg2
    assert float(mixture_reducible(n, w, a)[0]) == pytest.approx(hand_w, rel=1e-12)


def test_lm_mapping_recovers_chinchilla_data_term():
    B, beta = MUENNIGHOFF["B"], MUENNIGHOFF["beta"]
    D = np.array([1e9, 1e10, 1e11])
    r = mixture_reducible(D, [Pool(1e13, -beta, 10.0)], lm_scale(B, beta))
    assert r == pytest.approx(B / D**beta, rel=1e-9)


def test_calibrated_half_life_matches_muennighoff_repetition():
    B, beta, rs = MUENNIGHOFF["B"], MUENNIGHOFF["beta"], MUENNIGHOFF["r_star_d"]
    tau = calibrate_tau(B=B, beta=beta, r_star_d=rs)
    assert 5 < tau < 60
    U = 1e10
    D = U * np.array([2.0, 4.0, 8.0, 16.0])
    qq = mixture_reducible(D, [Pool(U, -beta, tau)], lm_scale(B, beta))
    dc = B / effective_data(D, U, rs) ** beta
    assert np.max(np.abs(qq / dc - 1)) < 0.02


def test_fit_pool_recovers_parameters():
    rng = np.random.default_rng(0)
    a, b, tau, d = 1e-4, -0.25, 3.0, 0.5
    n = np.array([1e4, 3e4, 1e5, 3e5, 1e6] * 3)
    U = np.repeat([1e4, 1e5, 1e6], 5).astype(float)
    y = np.array([pool_error(x, u, a=a, b=b, tau=tau, d=d)[0] for x, u in zip(n, U)])
    y = y + rng.normal(0, 0.002, len(y))
    fit = fit_pool(n, U, y)
    assert fit.tau_identified
    assert fit.b == pytest.approx(b, abs=0.05)
    assert fit.tau == pytest.approx(tau, rel=0.3)
    assert fit.d == pytest.approx(d, abs=0.05)
    truth = np.array([pool_error(x, u, a=a, b=b, tau=tau, d=d)[0] for x, u in zip(n, U)])
    assert np.max(np.abs(fit.error(n[:5], 1e4) - truth[:5])) < 0.01


def test_fit_pool_with_shared_scale():
    rng = np.random.default_rng(2)
    a, b, tau, d = 1e-4, -0.35, 2.0, 1.9
    n = np.array([1e4, 3e4, 1e5, 3e5, 1e6] * 2)
    U = np.repeat([3e4, 1e6], 5).astype(float)
    y = np.array([pool_error(x, u, a=a, b=b, tau=tau, d=d)[0] for x, u in zip(n, U)])
    fit = fit_pool(n, U, y + rng.normal(0, 0.001, len(y)), a=a)
    assert fit.a == pytest.approx(a, rel=1e-12)
    assert fit.b == pytest.approx(b, abs=0.02)
    assert fit.tau == pytest.approx(tau, rel=0.3)


def test_fit_pool_without_repeats_fixes_tau():
    n = np.array([1e3, 1e4, 1e5, 1e6])
    y = mixture_error(n, [Pool(1e7, -0.3, 5.0)], 1e-3, 0.2)
    fit = fit_pool(n, [1e7] * 4, y, d=0.2, tau_default=7.0)
    assert not fit.tau_identified and fit.tau == 7.0 and fit.notes
    assert fit.b == pytest.approx(-0.3, abs=0.01)


def test_bad_inputs():
    with pytest.raises(ValueError, match="at least 3"):
        fit_pool([1, 2], [1, 1], [0.5, 0.4])
    with pytest.raises(ValueError, match="n must be > 0"):
        mixture_reducible([0.0], [Pool(10, -0.1, 1)], 1.0)
    with pytest.raises(ValueError, match="bad pool"):
        mixture_reducible([1.0], [Pool(10, -0.1, 0.0)], 1.0)
    with pytest.raises(ValueError, match="repeated"):
        mixture_reducible([1e9], [Pool(1.0, -0.1, 1.0)], 1.0)
    assert math.isfinite(float(mixture_reducible([5.0], [Pool(10, -0.1, 1)], 1.0)[0]))
