"""fit-pools (Goyal et al. 2024 quality-quantity law) -> pools YAML -> recommend."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import typer
import yaml
from typer.testing import CliRunner

from pipelines.cli.scaling import register
from scaling.data_constrained import MUENNIGHOFF
from scaling.pools_fit import fit_pools, load_pool_runs_csv
from scaling.quality_quantity import lm_scale, pool_error
from scaling.recommend import RecommendConfigError, parse_config, recommend

A_LM = lm_scale(MUENNIGHOFF["B"], MUENNIGHOFF["beta"])
TRUE = {"hq": (-0.40, 6.0), "web": (-0.3527, 15.0)}
# Proxy-run protocol (docs/scaling.md): one model size; 4 single-epoch token counts on the
# full pool plus subsample runs repeating 2-16 epochs.
PLAN = [(2.5e8, 2e9), (5e8, 2e9), (1e9, 2e9), (2e9, 2e9), (1e9, 5e8), (2e9, 5e8), (4e9, 5e8),
        (8e9, 5e8), (4e9, 2.5e8), (8e9, 2.5e8)]


def _runs(seed=0, noise=0.002, d=2.6):
    rng = np.random.default_rng(seed)
    rows = []
    for name, (b, tau) in TRUE.items():
        for n, u in PLAN:
            y = float(pool_error(n, u, a=A_LM, b=b, tau=tau, d=d)[0]) * float(
                np.exp(rng.normal(0, noise)))
            rows.append({"pool": name, "N": 1.5e8, "tokens": n, "unique": u, "loss": y})
    return rows


def _write_csv(path: Path, rows) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["pool", "model_size", "tokens", "unique_tokens", "loss"])
        for r in rows:
            w.writerow([r["pool"], r["N"], r["tokens"], r["unique"], r["loss"]])
    return path


def test_fit_pools_recovers_known_utilities_and_half_lives():
    res = fit_pools(_runs(), n_bootstrap=30, level=0.95)
    got = {p["name"]: p for p in res["pools"]}
    for name, (b, tau) in TRUE.items():
        p = got[name]
        assert p["utility"] == pytest.approx(b, abs=0.01)
        assert p["half_life"] == pytest.approx(tau, rel=0.15)
        assert p["half_life_identified"]
        lo, hi = p["utility_ci"]
        assert lo - 0.005 <= b <= hi + 0.005 and lo < hi
        assert p["half_life_ci"][0] < p["half_life_ci"][1]
    # The better pool is recovered as the better one, beyond the interval widths.
    assert got["hq"]["utility_ci"][1] < got["web"]["utility_ci"][0]


def test_tau_not_identified_without_repeated_runs():
    rows = [r for r in _runs() if r["pool"] == "hq" and r["tokens"] <= r["unique"]]
    (p,) = fit_pools(rows, n_bootstrap=5)["pools"]
    assert not p["half_life_identified"] and "half_life_ci" not in p


def test_fit_pools_input_errors(tmp_path):
    rows = _runs()
    rows[0] = {**rows[0], "N": 4e8}
    with pytest.raises(ValueError, match="one proxy size"):
        fit_pools(rows, n_bootstrap=0)
    with pytest.raises(ValueError, match="at least 4"):
        fit_pools(_runs()[:3], n_bootstrap=0)
    bad = tmp_path / "r.csv"
    bad.write_text("pool,tokens,unique_tokens,loss\nx,1,2,3\n")
    with pytest.raises(ValueError, match="model_size"):
        load_pool_runs_csv(str(bad))
    bad.write_text("pool,N,D,U,loss\nx,1e8,abc,2,3\n")
    with pytest.raises(ValueError, match="line 2"):
        load_pool_runs_csv(str(bad))
    bad.write_text("pool,N,D,U,loss\nx,1e8,-5,2,3\n")
    with pytest.raises(ValueError, match="> 0"):
        load_pool_runs_csv(str(bad))


def _app():
    app = typer.Typer()
    register(app)
    return app


def _plan_cfg(pools_file: Path, flops: float) -> dict:
    return {"budget": {"flops": flops}, "pools_file": str(pools_file),
            "uncertainty": {"draws": 8}, "search": {"sweep_points": 5},
            "pools": [{"name": "hq", "unique_tokens": 5e9, "quality_tier": 0},
                      {"name": "web", "unique_tokens": 2e11, "quality_tier": 1}]}


def test_cli_fit_pools_then_recommend_switches_from_aggressive_to_lenient(tmp_path):
    """Goyal et al. 2024: filtering should loosen as compute grows. With utilities *fitted* from
    proxy runs (not placeholders), small budgets keep only the better pool and large budgets
    add the bigger, worse one."""
    runs = _write_csv(tmp_path / "runs.csv", _runs())
    pools = tmp_path / "pools.yaml"
    res = CliRunner().invoke(_app(), ["fit-pools", str(runs), "--out", str(pools),
                                      "--bootstrap", "20"])
    assert res.exit_code == 0, res.output
    data = yaml.safe_load(pools.read_text())
    assert data["kind"] == "datamill.pools" and data["fitted_from"] == str(runs)
    assert {p["name"] for p in data["pools"]} == {"hq", "web"}
    tiers = []
    for flops in (1e19, 1e20, 1e23, 1e24):
        rec = recommend(parse_config(_plan_cfg(pools, flops))).data["recommendation"]
        assert rec["utilities"] == ["fitted"]
        assert all("fit-pools" in p["utility_source"] for p in rec["pools"])
        assert not any("PLACEHOLDER" in w for w in rec["warnings"])
        tiers.append(rec["filter"]["include_tiers"])
    assert tiers[0] == [0] and tiers[-1] == [0, 1]
    assert [len(t) for t in tiers] == sorted(len(t) for t in tiers)
    # The CLI reads the same file with --pools.
    cfg = tmp_path / "c.yaml"
    c = _plan_cfg(pools, 1e23)
    del c["pools_file"]
    cfg.write_text(yaml.safe_dump(c))
    res = CliRunner().invoke(_app(), ["recommend", str(cfg), "--pools", str(pools),
                                      "--out", str(tmp_path / "rec.yaml")])
    assert res.exit_code == 0, res.output
    assert "(fitted)" in res.output


def test_rank_mixtures_results_land_in_the_pools_file(tmp_path):
    pools = tmp_path / "pools.yaml"
    CliRunner().invoke(_app(), ["fit-pools", str(_write_csv(tmp_path / "r.csv", _runs())),
                                "--out", str(pools), "--bootstrap", "0"])
    small = tmp_path / "small.csv"
    rng = np.random.default_rng(0)
    with open(small, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["mixture", "N", "D", "loss"])
        for mix, base in (("hq", 3.00), ("hq+web", 3.05)):
            for _ in range(3):
                w.writerow([mix, 1.5e8, 3e9, base + rng.normal(0, 0.003)])
    res = CliRunner().invoke(_app(), ["rank-mixtures", str(small), "--pools-out", str(pools),
                                      "--bootstrap", "50"])
    assert res.exit_code == 0, res.output
    data = yaml.safe_load(pools.read_text())
    assert data["pools"] and data["mixture_ranking"]["ranking"][0]["mixture"] == "hq"
    # At a large budget the plan uses both pools, against the small-scale winner: said so.
    rec = recommend(parse_config(_plan_cfg(pools, 1e24))).data
    assert rec["small_scale_ranking"]["plan_pool_set"] == "hq+web"
    assert any("small-scale runs" in w and "Goyal" in w for w in rec["recommendation"]["warnings"])


def test_pools_file_errors(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("kind: other\n")
    with pytest.raises(RecommendConfigError, match="not a pools file"):
        recommend(parse_config(_plan_cfg(p, 1e20)))
    p.write_text(yaml.safe_dump({"kind": "datamill.pools",
                                 "pools": [{"name": "zzz", "utility": -0.4}]}))
    with pytest.raises(RecommendConfigError, match="must match"):
        recommend(parse_config(_plan_cfg(p, 1e20)))
    with pytest.raises(RecommendConfigError, match="does not exist"):
        recommend(parse_config(_plan_cfg(tmp_path / "none.yaml", 1e20)))
