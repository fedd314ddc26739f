import numpy as np
import pytest

from scaling.asymptote import compare_recipes, fit_asymptote
from scaling.small_scale import load_runs_csv, rank_mixtures


def test_asymptote_fit_recovers_E():
    rng = np.random.default_rng(0)
    N = np.geomspace(1e7, 1e10, 8)
    L = (2.0 + 300 / N**0.3) * np.exp(rng.normal(0, 0.002, len(N)))
    fit = fit_asymptote(N, L, n_bootstrap=30)
    assert fit.E == pytest.approx(2.0, abs=0.08)
    assert fit.E_ci[0] <= fit.E <= fit.E_ci[1]


def test_compare_recipes_ranks_by_asymptote_not_by_small_scale_loss():
    N = np.geomspace(1e7, 1e9, 6)
    # Recipe "steep" is worse at small N but has the lower asymptote.
    runs = {"flat": (N, 2.3 + 40 / N**0.3), "steep": (N, 2.0 + 400 / N**0.3)}
    assert runs["steep"][1][0] > runs["flat"][1][0]
    rows = compare_recipes(runs, n_bootstrap=20)
    assert [r["recipe"] for r in rows] == ["steep", "flat"]
    assert rows[0]["p_best"] > 0.9


def test_asymptote_needs_three_sizes():
    with pytest.raises(ValueError, match="3 or more"):
        fit_asymptote([1e7, 1e7, 1e8], [3.0, 3.0, 2.9])


def _runs(offsets, noise, seeds=3, rng=None):
    rng = rng or np.random.default_rng(0)
    rows = []
    for m, off in offsets.items():
        for N in (1e7, 3e7, 1e8):
            for _ in range(seeds):
                rows.append({"mixture": m, "N": N, "D": 20 * N,
                             "loss": 3 + off + 50 / N**0.3 + rng.normal(0, noise)})
    return rows


def test_rank_mixtures_order_and_stability():
    res = rank_mixtures(_runs({"a": 0.0, "b": 0.05, "c": 0.1}, 0.005), n_bootstrap=200)
    assert [r["mixture"] for r in res["ranking"]] == ["a", "b", "c"]
    assert res["ranking"][0]["p_first"] > 0.95
    assert res["stability"] > 0.95
    close = rank_mixtures(_runs({"a": 0.0, "b": 0.002}, 0.01), n_bootstrap=200)
    assert close["stability"] < 0.95  # a near-tie is reported as unstable


def test_rank_mixtures_higher_is_better_and_extrapolate():
    rows = _runs({"a": 0.0, "b": 0.05}, 0.002)
    for r in rows:
        r["acc"] = -r["loss"]
    res = rank_mixtures(rows, metric="acc", higher_is_better=True, n_bootstrap=50)
    assert res["ranking"][0]["mixture"] == "a"
    ext = rank_mixtures(rows, method="extrapolate", target_compute=6e20, n_bootstrap=20)
    assert ext["ranking"][0]["mixture"] == "a"
    with pytest.raises(ValueError, match="target_compute"):
        rank_mixtures(rows, method="extrapolate")


def test_cli_rank_mixtures(tmp_path):
    import json

    import typer
    from typer.testing import CliRunner

    from pipelines.cli.scaling import register

    app = typer.Typer()
    register(app)
    p = tmp_path / "runs.csv"
    rows = _runs({"good": 0.0, "bad": 0.08}, 0.005)
    p.write_text("mixture,N,D,loss\n" + "".join(
        f"{r['mixture']},{r['N']},{r['D']},{r['loss']}\n" for r in rows))
    res = CliRunner().invoke(app, ["rank-mixtures", str(p), "--json", "-b", "50"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["ranking"][0]["mixture"] == "good" and out["stability"] > 0.9
    res = CliRunner().invoke(app, ["rank-mixtures", str(p), "--metric", "acc"])
    assert res.exit_code == 2 and "'acc'" in res.output


def test_rank_mixtures_errors_and_csv(tmp_path):
    with pytest.raises(ValueError, match="at least 2"):
        rank_mixtures([{"mixture": "a", "N": 1, "D": 1, "loss": 1.0}])
    rows = [{"mixture": "a", "N": 1e7, "D": 1e8, "loss": 3.0},
            {"mixture": "b", "N": 2e7, "D": 1e8, "loss": 3.1}]
    with pytest.raises(ValueError, match="shared by every mixture"):
        rank_mixtures(rows)
    p = tmp_path / "runs.csv"
    p.write_text("mixture,N,loss\na,1,2\n")
    with pytest.raises(ValueError, match="missing column"):
        load_runs_csv(str(p))
    p.write_text("mixture,N,D,loss\na,1e7,2e8,3.2\nb,1e7,2e8,3.3\n")
    rows = load_runs_csv(str(p))
    assert rank_mixtures(rows, n_bootstrap=5)["ranking"][0]["mixture"] == "a"
