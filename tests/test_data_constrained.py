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
