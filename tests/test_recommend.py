from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from filters.tokens import load_token_counter
from scaling.recommend import (
    RecommendConfigError,
    load_config,
    parse_config,
    recommend,
)
from tests.buildutil import stdlib_doc_rows


def count_tokens(text: str) -> int:
    return load_token_counter().count(text)

REPO = Path(__file__).resolve().parents[1]
POOLS = [{"name": "top", "unique_tokens": 2e10, "quality_tier": 0},
         {"name": "mid", "unique_tokens": 6e10, "quality_tier": 1},
         {"name": "low", "unique_tokens": 2e11, "quality_tier": 2}]
# Utilities given by hand (better pools more useful), for tests of the trade-off.
GIVEN = [{**p, "utility": b, "utility_source": "test values"}
         for p, b in zip(POOLS, (-0.3927, -0.3727, -0.3527))]


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
    assert "FLOPs" in rec.explanation
    assert "materialize" not in rec.data  # hand-given pools have no files
    # Every pool says where its utility comes from; nothing is silently a placeholder.
    for p in r["pools"]:
        assert p["utility_kind"] in ("given", "fitted", "base_law", "placeholder")
        assert p["utility_source"]
    if "placeholder" in r["utilities"]:
        assert any("PLACEHOLDER" in w for w in r["warnings"])
        assert "PLACEHOLDERS" in rec.explanation


def test_more_compute_includes_more_pools_and_epochs():
    included, epochs = [], []
    for c in (1e19, 1e21, 3e22, 1e24):
        r = recommend(_cfg(budget={"flops": c}, pools=GIVEN)).data["recommendation"]
        included.append(len(r["filter"]["include_tiers"]))
        epochs.append(sum(p["tokens"] for p in r["pools"]) /
                      sum(p["unique_tokens"] for p in r["pools"]))
    assert included == sorted(included) and included[-1] > included[0]
    assert included[0] == 1 and included[-1] == 3
    # At the largest budget every pool is repeated (mean epochs over included data > 1).
    assert epochs[-1] > 1


def test_without_quality_differences_all_data_is_used():
    # Default: no fitted utilities -> the base law's b for every pool (said so, and warned);
    # once the top pool alone would be repeated, fresh data always wins.
    rec = recommend(_cfg(budget={"flops": 1e23})).data
    r = rec["recommendation"]
    assert r["filter"]["include_tiers"] == [0, 1, 2]
    assert r["upsample_per_tier"] == 1.0
    assert r["utilities"] == ["base_law"]
    assert {p["utility"] for p in r["pools"]} == {-rec["law"]["beta"]}
    assert any("no pool has a fitted or published utility" in w for w in r["warnings"])


def test_placeholder_utilities_are_flagged():
    rec = recommend(_cfg(budget={"flops": 1e21}, law={"quality_step": 0.02})).data
    r = rec["recommendation"]
    kinds = {p["name"]: p["utility_kind"] for p in r["pools"]}
    assert kinds.get("low", "base_law") == "base_law"  # the worst tier is the base law
    assert "placeholder" in kinds.values()
    assert any("PLACEHOLDER" in w for w in r["warnings"])


def test_tiny_pool_plan_stops_where_data_runs_out():
    # Issue 16: 2.8B unique tokens at 1e24 used to plan ~930B params on 179B tokens (64 epochs)
    # with the same loss as at 1e22. Now the plan stops at the data-limited compute.
    tiny = [{"name": "web", "unique_tokens": 2.8e9, "quality_tier": 0}]
    r22 = recommend(_cfg(budget={"flops": 1e22}, pools=tiny)).data["recommendation"]
    r24 = recommend(_cfg(budget={"flops": 1e24}, pools=tiny)).data["recommendation"]
    dl = r24["data_limit"]
    assert dl["budget_beyond_saturation"] and dl["saturation_compute"] < 1e23
    assert r24["compute_flops"] == pytest.approx(dl["saturation_compute"])
    assert r24["compute_budget"] == 1e24
    assert r24["model_params"] < 2e10  # not 930B
    assert 6 * r24["model_params"] * r24["train_tokens"] == pytest.approx(r24["compute_flops"])
    # Same plan whatever the budget beyond saturation.
    assert r22["model_params"] == pytest.approx(r24["model_params"], rel=1e-6)
    assert any(w.startswith("data-limited") for w in r24["warnings"])
    # Held at the default max_epochs (16), so no "near worthless" warning contradicts it.
    assert r24["pools"][0]["epochs"] <= 16 + 1e-6
    assert not any("past ~16" in w for w in r24["warnings"])
    # Below saturation the whole budget is used.
    r21 = recommend(_cfg(budget={"flops": 1e20}, pools=tiny)).data["recommendation"]
    assert r21["compute_flops"] == 1e20 and not r21["data_limit"]["budget_beyond_saturation"]


def test_epoch_warnings_follow_muennighoff_thresholds():
    one = lambda U: [{"name": "web", "unique_tokens": U, "quality_tier": 0}]  # noqa: E731
    for U, want in ((1e12, None), (1.5e11, "past ~4"), (2e10, "past ~16")):
        # A raised cap lets the law's optimum through, so the 16-epoch warning can show.
        r = recommend(_cfg(budget={"flops": 1e23}, pools=one(U),
                           search={"n_points": 31, "sweep_points": 5, "max_epochs": 1000})
                      ).data["recommendation"]
        ep = r["pools"][0]["epochs"]
        got = [w for w in r["warnings"] if "epochs, past" in w]
        if want is None:
            assert ep <= 4 and not got
        else:
            assert got and want in got[0], (U, ep, got)
        if want == "past ~4":
            assert 4 < ep <= 16
        if want == "past ~16":
            assert ep > 16


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
    ({"budget": {"flops": 1e20}, "pools": POOLS, "tokens_per_word": 1.3}, "real tokenizer"),
    ({"budget": {"flops": 1e20}, "pools": POOLS, "tokenizer": "/nope/tokenizer.json"},
     "tokenizer"),
    ({"budget": {"flops": 1e20}, "pools": POOLS, "law": {"chinchilla_protocol": "x"}},
     "chinchilla_protocol"),
])
def test_config_errors_name_the_field(bad, match):
    with pytest.raises(RecommendConfigError, match=match):
        parse_config(bad)


def test_base_law_refit_from_csv_feeds_uncertainty(shared_dir):
    csv = str(shared_dir / "data/chinchilla/svg_extracted_data.csv")
    cfg = _cfg(law={"chinchilla_csv": csv}, uncertainty={"draws": 6, "chinchilla_bootstrap": 6})
    rec = recommend(cfg).data
    assert rec["law"]["fitted"] and "240 of 245 runs" in rec["law"]["source"]
    assert rec["law"]["E"] == pytest.approx(1.817, abs=0.01)  # Besiroglu et al. protocol
    pl = rec["recommendation"]["predicted_loss"]
    assert pl["high"] > pl["low"]
    assert "fitted to your runs" in rec["recommendation"]["explanation"]


def test_infeasible_budget_is_explained():
    # Free model size: a budget the data cannot use is planned at the data-limited compute.
    r = recommend(_cfg(budget={"flops": 1e26}, search={"max_epochs": 1.0, "n_max": 1e10})
                  ).data["recommendation"]
    assert r["compute_flops"] < 1e26 and any("data-limited" in w for w in r["warnings"])
    # Fixed model size: nothing to trade, so an infeasible budget is an error naming the fix.
    with pytest.raises(RecommendConfigError, match="max_epochs"):
        recommend(_cfg(budget={"flops": 1e26, "model_size": 1e9}, search={"max_epochs": 1.0}))


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
    high = sum(count_tokens(r["text"]) for r in rows if r["quality"] >= edge) * 1e5
    pools = {p["name"]: p for p in rec["materialize"]["pools"]}
    assert set(pools) <= {"quality_q0", "quality_q1"}
    if "quality_q1" in pools:
        assert pools["quality_q1"]["unique_tokens"] * 1e5 == pytest.approx(high)
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

    from pipelines.cli.scaling import register

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
    assert "data limit" in res.output
    cfg.write_text("budget: {flops: 1e21}\npools: []\n")
    res = CliRunner().invoke(app, ["recommend", str(cfg)])
    assert res.exit_code == 2
    res = CliRunner().invoke(app, ["recommend"])
    assert res.exit_code == 2 and "--from-build" in res.output
    res = CliRunner().invoke(app, ["recommend", "--from-build", str(tmp_path / "nope"),
                                   "--flops", "1e20"])
    assert res.exit_code == 2 and "no Parquet shards" in res.output


def test_plans_stay_within_max_epochs_and_agree_with_their_warnings():
    # Issue 25 item 8: 1B unique tokens at 1e23 used to be planned at ~121 epochs next to a
    # warning that epochs past ~16 are close to worthless.
    one = [{"name": "web", "unique_tokens": 1e9, "quality_tier": 0}]
    free = recommend(_cfg(budget={"flops": 1e23}, pools=one,
                          search={"n_points": 31, "sweep_points": 5, "max_epochs": 1000})
                     ).data["recommendation"]
    assert free["pools"][0]["epochs"] > 50  # the law's own optimum
    r = recommend(_cfg(budget={"flops": 1e23}, pools=one)).data["recommendation"]
    p = r["pools"][0]
    assert p["max_epochs"] == 16.0 and "Muennighoff" in p["max_epochs_source"]
    assert p["epochs"] == pytest.approx(16.0, rel=1e-3)
    assert not any("close to worthless" in w for w in r["warnings"])
    assert any(w.startswith("held at max_epochs") and "web" in w for w in r["warnings"])
    assert r["data_limit"]["saturation_limited_by"] in ("max_epochs", "data")
    assert 6 * r["model_params"] * r["train_tokens"] == pytest.approx(r["compute_flops"])
    # Within the cap the plan is the law's best: a smaller model (more epochs) is infeasible,
    # a larger one is predicted worse.
    from scaling.recommend import _resolve, _strategies, predict_loss

    cfg = _cfg(budget={"flops": 1e23}, pools=one)
    law, pools, _, _ = _resolve(cfg)
    (strat,) = _strategies(pools, [1.0])
    C, N = r["compute_flops"], r["model_params"]
    bigger = float(predict_loss(law, strat, 1.5 * N, C / (9 * N))[0])
    assert r["predicted_loss"]["point"] <= bigger + 1e-9


def test_max_epochs_per_pool_and_search_wide():
    pools = [{**GIVEN[0], "max_epochs": 2.0}, *GIVEN[1:]]
    r = recommend(_cfg(budget={"flops": 1e24}, pools=pools)).data["recommendation"]
    by = {p["name"]: p for p in r["pools"]}
    assert by["top"]["max_epochs"] == 2.0 and by["top"]["epochs"] <= 2.0 + 1e-6
    assert by["top"]["max_epochs_source"] == "pool max_epochs (config)"
    wide = recommend(_cfg(budget={"flops": 1e24}, pools=GIVEN,
                          search={"n_points": 31, "sweep_points": 5, "max_epochs": 3.0})
                     ).data["recommendation"]
    assert all(p["epochs"] <= 3.0 + 1e-6 and p["max_epochs"] == 3.0 for p in wide["pools"])
    with pytest.raises(RecommendConfigError, match="max_epochs"):
        parse_config({"budget": {"flops": 1e20},
                      "pools": [{**POOLS[0], "max_epochs": 0}]})


def test_epoch_warnings_and_cap_use_a_pools_own_half_life():
    from scaling.recommend import _resolve

    base = _resolve(_cfg(budget={"flops": 1e23}))[2]["default_half_life"]
    # Half the default half-life: utility decays twice as fast, so the cap and the
    # thresholds halve (8 and 2 epochs instead of 16 and 4).
    fast = [{"name": "web", "unique_tokens": 1.5e11, "quality_tier": 0,
             "half_life": base / 2}]
    r = recommend(_cfg(budget={"flops": 1e23}, pools=fast)).data["recommendation"]
    p = r["pools"][0]
    assert p["max_epochs"] == pytest.approx(8.0) and "half-life" in p["max_epochs_source"]
    assert 2 < p["epochs"] <= 8 + 1e-6
    got = [w for w in r["warnings"] if "epochs, past" in w]
    assert got and "past ~2:" in got[0] and "half-life" in got[0], got
    # A raised cap: 'near worthless' past 8 for this pool, not past 16.
    tiny = [{**fast[0], "unique_tokens": 2e10}]
    r = recommend(_cfg(budget={"flops": 1e23}, pools=tiny,
                       search={"n_points": 31, "sweep_points": 5, "max_epochs": 1000})
                  ).data["recommendation"]
    got = [w for w in r["warnings"] if "epochs, past" in w]
    assert got and "past ~8:" in got[0] and "close to worthless" in got[0], got


def test_from_build_relative_path_and_partitioned_build_materialize_elsewhere(tmp_path,
                                                                               monkeypatch):
    # Issue 25 item 10: `recommend --from-build out` stored 'out/data/*.parquet' (relative to
    # where recommend ran) and refused data/language-xx/ partitions.
    import typer
    from typer.testing import CliRunner

    from pipelines.cli.scaling import register

    rows = stdlib_doc_rows(("json", "pathlib", "collections", "functools"))
    build = tmp_path / "work" / "out"
    for i, lang in enumerate(("en", "fr")):
        (build / "data" / f"language-{lang}").mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows[i::2]),
                       build / "data" / f"language-{lang}" / "part-00000-of-00001.parquet")
    app = typer.Typer()
    register(app)
    monkeypatch.chdir(tmp_path / "work")
    res = CliRunner().invoke(app, ["recommend", "--from-build", "out", "--flops", "1e14",
                                   "--out", str(tmp_path / "rec.yaml")])
    assert res.exit_code == 0, res.output
    rec = yaml.safe_load((tmp_path / "rec.yaml").read_text())
    files = {f for p in rec["materialize"]["pools"] for f in p["files"]}
    assert files == {str(build / "data" / "*" / "*.parquet")}
    assert rec["law"]["tokens"]["build"] == str(build)
    monkeypatch.chdir(tmp_path)  # materialize from another directory
    res = CliRunner().invoke(app, ["materialize", "rec.yaml", "--out", "mix"])
    assert res.exit_code == 0, res.output
    shards = sorted((tmp_path / "mix" / "data").glob("*.parquet"))
    got = pa.concat_tables([pq.read_table(f) for f in shards])
    assert got.num_rows > 0
    assert set(got.column("source").to_pylist()) <= {r["source"] for r in rows}
