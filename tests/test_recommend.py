from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from scaling.recommend import (
    RecommendConfigError,
    count_tokens,
    load_config,
    parse_config,
    recommend,
)
from tests.buildutil import stdlib_doc_rows

REPO = Path(__file__).resolve().parents[1]
POOLS = [{"name": "top", "unique_tokens": 2e10, "quality_tier": 0},
         {"name": "mid", "unique_tokens": 6e10, "quality_tier": 1},
         {"name": "low", "unique_tokens": 2e11, "quality_tier": 2}]


def _cfg(**over):
    base = {"budget": {"flops": 3e21}, "pools": POOLS, "uncertainty": {"draws": 4},
            "search": {"n_points": 31, "sweep_points": 5}}
    base.update(over)
    return parse_config(base)


def test_example_config_recommends():
    cfg = load_config(str(REPO / "configs/mixture_example.yaml"))
    cfg.uncertainty.draws = 8
    rec = recommend(cfg)
    r = rec.data["recommendation"]
    assert 6 * r["model_params"] * r["train_tokens"] == pytest.approx(3e21, rel=1e-9)
    assert sum(p["sampling_weight"] for p in r["pools"]) == pytest.approx(1.0)
    assert sum(p["tokens"] for p in r["pools"]) == pytest.approx(r["train_tokens"], rel=1e-9)
    pl = r["predicted_loss"]
    assert pl["low"] < pl["high"]
    assert pl["low"] - 0.05 < pl["point"] < pl["high"] + 0.05
    assert 0 <= r["decision_stability"] <= 1
    assert rec.data["frontier"][0]["delta_vs_best"] == 0.0
    assert "FLOPs" in rec.explanation and "placeholder" in rec.explanation
    assert "materialize" not in rec.data  # hand-given pools have no files


def test_more_compute_includes_more_pools_and_epochs():
    included, epochs = [], []
    for c in (1e19, 1e21, 3e22, 1e24):
        r = recommend(_cfg(budget={"flops": c})).data["recommendation"]
        included.append(len(r["filter"]["include_tiers"]))
        epochs.append(sum(p["tokens"] for p in r["pools"]) /
                      sum(p["unique_tokens"] for p in r["pools"]))
    assert included == sorted(included) and included[-1] > included[0]
    assert included[0] == 1 and included[-1] == 3
    # At the largest budget every pool is repeated (mean epochs over included data > 1).
    assert epochs[-1] > 1


def test_without_quality_differences_all_data_is_used():
    # Equal utilities: once the top pool alone would be repeated, fresh data always wins.
    cfg = _cfg(budget={"flops": 1e23}, law={"quality_step": 0.0})
    r = recommend(cfg).data["recommendation"]
    assert r["filter"]["include_tiers"] == [0, 1, 2]
    assert r["upsample_per_tier"] == 1.0


def test_fixed_model_size_and_gpu_budget():
    r = recommend(_cfg(budget={"flops": 1e21, "model_size": 1e9})).data["recommendation"]
    assert r["model_params"] == 1e9 and r["train_tokens"] == pytest.approx(1e21 / 6e9)
    cfg = _cfg(budget={"gpu_hours": 1000, "gpu_flops_per_s": 1e15, "mfu": 0.5})
    assert cfg.budget.compute() == pytest.approx(1000 * 3600 * 1e15 * 0.5)


@pytest.mark.parametrize("bad, match", [
    ({"budget": {}}, "exactly one of"),
    ({"budget": {"flops": 1e20, "gpu_hours": 5, "gpu_flops_per_s": 1e15}}, "exactly one of"),
    ({"budget": {"flops": -1}}, "budget.flops"),
    ({"budget": {"flops": 1e20}, "pools": POOLS + [POOLS[0]]}, "unique"),
    ({"budget": {"flops": 1e20}, "pools": POOLS, "bogus": 1}, "bogus: unknown field"),
    ({"budget": {"flops": 1e20}, "pools": [{"name": "x", "unique_tokens": 1e9,
                                            "quality_tier": 0, "utility": 0.3}]}, "utility"),
    ({"budget": {"flops": 1e20}}, "pools"),
])
def test_config_errors_name_the_field(bad, match):
    with pytest.raises(RecommendConfigError, match=match):
        parse_config(bad)


def test_base_law_refit_from_csv_feeds_uncertainty(shared_dir):
    csv = str(shared_dir / "data/chinchilla/svg_extracted_data.csv")
    cfg = _cfg(law={"chinchilla_csv": csv}, uncertainty={"draws": 6, "chinchilla_bootstrap": 6})
    rec = recommend(cfg).data
    assert rec["law"]["fitted"] and "245 runs" in rec["law"]["source"]
    assert rec["law"]["E"] == pytest.approx(1.89, abs=0.05)
    pl = rec["recommendation"]["predicted_loss"]
    assert pl["high"] > pl["low"]
    assert "placeholder" not in rec["recommendation"]["explanation"]


def test_infeasible_budget_is_explained():
    with pytest.raises(RecommendConfigError, match="max_epochs"):
        recommend(_cfg(budget={"flops": 1e26}, search={"max_epochs": 1.0, "n_max": 1e10}))


def _write_build(out: Path) -> list[dict]:
    rows = stdlib_doc_rows(("json", "pathlib", "collections", "functools", "argparse", "textwrap"))
    (out / "data").mkdir(parents=True)
    for s in range(2):
        pq.write_table(pa.Table.from_pylist(rows[s::2]),
                       out / "data" / f"part-{s:05d}-of-00002.parquet")
    return rows


def test_pools_from_build_quantile_buckets_and_sources(tmp_path):
    rows = _write_build(tmp_path / "build")
    cfg = parse_config({
        "budget": {"flops": 1e20}, "uncertainty": {"draws": 2},
        "search": {"sweep_points": 3},
        "pools_from_build": {"dir": str(tmp_path / "build"), "unique_token_multiplier": 1e5,
                             "bucket_by": {"column": "quality", "quantiles": [0.5]}}})
    rec = recommend(cfg).data
    q = np.array([r["quality"] for r in rows])
    edge = float(np.quantile(q, 0.5))
    high = sum(count_tokens(r["text"], 1.3) for r in rows if r["quality"] >= edge)
    pools = {p["name"]: p for p in rec["materialize"]["pools"]}
    assert set(pools) <= {"quality_q0", "quality_q1"}
    if "quality_q1" in pools:
        assert pools["quality_q1"]["unique_tokens"] == pytest.approx(high)
        assert pools["quality_q1"]["select"] == {"column": "quality", "min": edge, "max": None}
    top = [p for p in rec["recommendation"]["pools"] if p["name"] == "quality_q1"]
    assert top and top[0]["quality_tier"] == 0  # higher score = better tier
    by_src = parse_config({
        "budget": {"flops": 1e20}, "uncertainty": {"draws": 0}, "search": {"sweep_points": 3},
        "pools_from_build": {"dir": str(tmp_path / "build"), "unique_token_multiplier": 1e5,
                             "bucket_by": {"source": True, "source_tiers": {"json": 0}}}})
    rec2 = recommend(by_src).data
    names = {p["name"] for p in rec2["recommendation"]["pools"]}
    assert "json" in names


def test_pools_from_build_errors(tmp_path):
    cfg = parse_config({"budget": {"flops": 1e20},
                        "pools_from_build": {"dir": str(tmp_path),
                                             "bucket_by": {"column": "q", "edges": [0.5]}}})
    with pytest.raises(RecommendConfigError, match="no Parquet shards"):
        recommend(cfg)
    _write_build(tmp_path / "b")
    cfg = parse_config({"budget": {"flops": 1e20},
                        "pools_from_build": {"dir": str(tmp_path / "b"),
                                             "bucket_by": {"column": "nope", "edges": [0.5]}}})
    with pytest.raises(RecommendConfigError, match="nope"):
        recommend(cfg)
    with pytest.raises(RecommendConfigError, match="increasing"):
        parse_config({"budget": {"flops": 1e20},
                      "pools_from_build": {"dir": "x", "bucket_by": {"column": "q",
                                                                     "edges": [0.5, 0.2]}}})


def test_cli_recommend_writes_yaml_and_plot(tmp_path):
    import typer
    from typer.testing import CliRunner

    from pipelines.commands.scaling import register

    app = typer.Typer()
    register(app)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"budget": {"flops": 1e21}, "pools": POOLS,
                                   "uncertainty": {"draws": 2}, "search": {"sweep_points": 5}}))
    out = tmp_path / "rec.yaml"
    res = CliRunner().invoke(app, ["recommend", str(cfg), "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = yaml.safe_load(out.read_text())
    assert data["recommendation"]["model_params"] > 0
    assert (tmp_path / "rec.png").stat().st_size > 1000
    assert "tokens per parameter" in res.output
    cfg.write_text("budget: {flops: 1e21}\npools: []\n")
    res = CliRunner().invoke(app, ["recommend", str(cfg)])
    assert res.exit_code == 2
