import json
import math

import numpy as np
import pytest

from scaling import fit_chinchilla
from scaling.chinchilla import (
    BESIROGLU,
    HOFFMANN,
    chinchilla_loss,
    compute_optimal,
    compute_optimal_n_for_data,
    fit_chinchilla_runs,
    huber_objective,
    load_chinchilla_csv,
    protocol_mask,
)


def test_formula_matches_hand_computation():
    # 1.69 + 406.4 / 1e9^0.34 + 410.7 / 2e10^0.28, by hand: 1.69 + 0.35396 + 0.53609
    got = float(chinchilla_loss(1e9, 2e10, **HOFFMANN))
    assert got == pytest.approx(2.58005, abs=1e-4)


def test_compute_optimal_is_on_budget_and_minimal():
    C = 1e23
    n, d = compute_optimal(C, **{k: HOFFMANN[k] for k in ("A", "B", "alpha", "beta")})
    assert 6 * n * d == pytest.approx(C, rel=1e-9)
    best = float(chinchilla_loss(n, d, **HOFFMANN))
    for f in (0.8, 1.25):
        assert float(chinchilla_loss(n * f, C / (6 * n * f), **HOFFMANN)) > best
    # alpha == beta: N* = sqrt(C/6) * (A/B)^(1/(2 alpha))
    n2, _ = compute_optimal(C, A=400.0, B=1600.0, alpha=0.3, beta=0.3)
    assert float(n2) == pytest.approx(math.sqrt(C / 6) * (0.25) ** (1 / 0.6), rel=1e-9)
    # The size that is optimal for D* tokens is N*.
    assert float(compute_optimal_n_for_data(d, A=HOFFMANN["A"], B=HOFFMANN["B"],
                                            alpha=HOFFMANN["alpha"], beta=HOFFMANN["beta"])
                 ) == pytest.approx(float(n), rel=1e-9)


def test_fit_recovers_parameters_from_noisy_law_data():
    rng = np.random.default_rng(1)
    N = np.repeat(np.geomspace(5e7, 1e10, 8), 6)
    D = np.tile(np.geomspace(1e9, 5e11, 6), 8)
    true = dict(E=1.8, A=480.0, B=2000.0, alpha=0.35, beta=0.37)
    loss = chinchilla_loss(N, D, **true) * np.exp(rng.normal(0, 0.002, len(N)))
    fit = fit_chinchilla(N, D, loss)
    assert fit.E == pytest.approx(true["E"], rel=0.03)
    assert fit.alpha == pytest.approx(true["alpha"], abs=0.03)
    assert fit.beta == pytest.approx(true["beta"], abs=0.03)
    # Predictions (what matters downstream) are tight even where A, B trade off.
    grid_n, grid_d = np.meshgrid(np.geomspace(1e8, 1e10, 5), np.geomspace(1e9, 1e12, 5))
    assert np.allclose(fit.loss(grid_n, grid_d), chinchilla_loss(grid_n, grid_d, **true),
                       rtol=0.005)


def test_besiroglu_protocol_reproduces_their_estimates(shared_dir):
    N, D, L = load_chinchilla_csv(str(shared_dir / "data/chinchilla/svg_extracted_data.csv"))
    assert len(N) == 245
    fit = fit_chinchilla_runs(N, D, L, n_bootstrap=8, seed=3)
    # The protocol leaves out exactly the five highest-loss runs.
    assert fit.n_points == 240 and len(fit.excluded) == 5
    assert sorted(L[fit.excluded]) == sorted(np.sort(L)[-5:])
    # Besiroglu et al. 2024: E 1.817, A 478 (482 in their table), B 2143 (2085), alpha 0.347
    # (0.348), beta 0.367 (0.366).
    assert fit.E == pytest.approx(1.817, abs=0.002)
    assert fit.A == pytest.approx(478, rel=0.01) and fit.A == pytest.approx(BESIROGLU["A"], rel=0.02)
    assert fit.B == pytest.approx(2143, rel=0.01) and fit.B == pytest.approx(BESIROGLU["B"], rel=0.04)
    assert fit.alpha == pytest.approx(0.347, abs=0.002)
    assert fit.beta == pytest.approx(0.367, abs=0.002)
    n, d = fit.compute_optimal(1e24)
    assert 15 < float(d / n) < 25  # ~20 tokens per parameter, as in the paper
    # Same runs, same objective: our optimum is at least as good as the published parameters.
    keep = protocol_mask(L)
    assert fit.objective <= huber_objective(BESIROGLU, N[keep], D[keep], L[keep]) + 1e-9
    for k, (lo, hi) in fit.ci.items():
        assert lo <= hi
    ci = fit.compute_optimal_ci(1e24)
    assert ci["N"][0] < ci["N"][1]


def test_all_runs_protocol_differs(shared_dir):
    N, D, L = load_chinchilla_csv(str(shared_dir / "data/chinchilla/svg_extracted_data.csv"))
    fit = fit_chinchilla_runs(N, D, L, protocol="all")
    assert fit.n_points == 245 and fit.excluded == []
    assert fit.beta > 0.4  # the five high-loss runs pull the data exponent up
    n, d = fit.compute_optimal(1e24)
    assert float(d / n) < 10
    with pytest.raises(ValueError, match="protocol must be one of"):
        fit_chinchilla_runs(N, D, L, protocol="mine")


def test_protocol_needs_enough_runs():
    with pytest.raises(ValueError, match="needs at least 10"):
        protocol_mask([3.0, 2.9, 2.8, 2.7, 2.6, 2.5, 2.4])
    # Ties at the fifth-highest loss are all left out (strictly-below rule).
    m = protocol_mask([5.0, 5.0, 4.0, 4.0, 4.0, 4.0, 3.0, 2.9, 2.8, 2.7, 2.6, 2.5])
    assert m.tolist() == [False] * 6 + [True] * 6


def test_bootstrap_interval_shrinks_with_less_noise():
    rng = np.random.default_rng(0)
    N = np.repeat(np.geomspace(5e7, 1e10, 6), 5)
    D = np.tile(np.geomspace(1e9, 5e11, 5), 6)
    base = chinchilla_loss(N, D, **BESIROGLU)
    widths = []
    for sd in (0.001, 0.02):
        loss = base * np.exp(rng.normal(0, sd, len(N)))
        fit = fit_chinchilla(N, D, loss, n_bootstrap=15, n_starts=16, seed=0)
        widths.append(fit.ci["E"][1] - fit.ci["E"][0])
    assert widths[0] < widths[1]


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="at least 5"):
        fit_chinchilla([1e9, 2e9], [1e10, 1e10], [2.5, 2.4])
    with pytest.raises(ValueError, match="> 0"):
        fit_chinchilla([1e9] * 5, [1e10] * 5, [2.5, 2.4, -1, 2.2, 2.1])
    with pytest.raises(ValueError, match="same length"):
        fit_chinchilla([1e9] * 5, [1e10] * 4, [2.5] * 5)
    with pytest.raises(ValueError, match="bootstrap"):
        fit_chinchilla(np.geomspace(1e8, 1e10, 6), np.geomspace(1e9, 1e11, 6),
                       [3.0, 2.9, 2.7, 2.6, 2.5, 2.45]).compute_optimal_ci(1e22)


def test_csv_loader_errors(tmp_path):
    p = tmp_path / "runs.csv"
    p.write_text("params,tokens,loss\n1,2,3\n")
    with pytest.raises(ValueError, match="needs columns"):
        load_chinchilla_csv(str(p))
    p.write_text("N,D,loss\n1e9,2e10,abc\n")
    with pytest.raises(ValueError, match="line 2"):
        load_chinchilla_csv(str(p))


def test_cli_fit_chinchilla(shared_dir):
    import typer
    from typer.testing import CliRunner

    from pipelines.cli.scaling import register

    app = typer.Typer()
    register(app)
    csv = str(shared_dir / "data/chinchilla/svg_extracted_data.csv")
    res = CliRunner().invoke(app, ["fit-chinchilla", csv, "--bootstrap", "0", "--json",
                                   "--starts", "16"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["n_runs"] == 245 and out["n_fitted"] == 240 and out["protocol"] == "besiroglu"
    assert len(out["excluded_runs"]) == 5
    assert out["params"]["E"] == pytest.approx(1.817, abs=0.003)
    assert out["huber_objective"] <= out["huber_objective_besiroglu"] + 1e-9
    res = CliRunner().invoke(app, ["fit-chinchilla", csv, "--bootstrap", "0", "--starts", "16",
                                   "--all-runs"])
    assert res.exit_code == 0, res.output
    assert "fitting all 245 runs" in res.output
    res = CliRunner().invoke(app, ["fit-chinchilla", "/nonexistent.csv"])
    assert res.exit_code == 2
