"""Curation -> plan -> materialize on the demo corpus: a real build with the token_count stage,
`datamill recommend --from-build` reading its token totals, then `datamill materialize`."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
import typer
import yaml
from typer.testing import CliRunner

from filters.tokens import load_token_counter
from pipelines.cli.scaling import register
from tests.buildutil import build


@pytest.fixture(scope="module")
def demo_build(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    cfg = {
        "name": "e2e",
        "sources": [{"name": "pydocs", "type": "demo_corpus", "path": str(tmp / "corpus"),
                     "demo_docs": 60}],
        "stages": [{"stage": "normalize"},
                   {"stage": "length_filter", "min_words": 5},
                   {"stage": "language_id", "min_score": 0.3},
                   {"stage": "token_count"}],
        "output": {"dir": str(tmp / "out"), "shards": 2},
        "runner": {"name": "DirectRunner", "direct_num_workers": 1},
    }
    res = build(cfg)
    return tmp, res


def _app():
    app = typer.Typer()
    register(app)
    return app


def test_build_stats_have_real_token_totals(demo_build):
    tmp, res = demo_build
    st = res.stats["stages"]["token_count"]
    s = st["stats"]
    rows = []
    for f in sorted((tmp / "out" / "data").glob("*.parquet")):
        rows.extend(pq.read_table(f, columns=["text", "source", "language", "tokens"]).to_pylist())
    counter = load_token_counter()
    assert s["tokens_total"] == sum(r["tokens"] for r in rows) > 0
    assert s["documents"] == len(rows) == res.stats["counts"]["kept"]
    assert all(r["tokens"] == counter.count(r["text"]) for r in rows[:50])
    assert sum(s["tokens_by_source"].values()) == s["tokens_total"]
    assert sum(s["tokens_by_language"].values()) == s["tokens_total"]
    assert st["static"]["tokenizer"] == "tiktoken:cl100k_base"
    saved = json.loads((tmp / "out" / "stats.json").read_text())
    assert saved["stages"]["token_count"]["stats"]["tokens_total"] == s["tokens_total"]
    html = (tmp / "out" / "report.html").read_text()
    assert "tokens in" in html


def test_curation_plan_materialize(demo_build, tmp_path):
    tmp, res = demo_build
    totals = res.stats["stages"]["token_count"]["stats"]["tokens_by_source"]
    # 1) --from-build with a budget only: pools = sources, tokens from stats.json.
    out = tmp_path / "plan.yaml"
    r = CliRunner().invoke(_app(), ["recommend", "--from-build", str(tmp / "out"),
                                    "--flops", "1e13", "--out", str(out)])
    assert r.exit_code == 0, r.output
    plan = yaml.safe_load(out.read_text())
    assert plan["law"]["tokens"]["counted_by"].startswith("stats.json: token_count stage")
    pools = {p["name"]: p["unique_tokens"] for p in plan["recommendation"]["pools"]}
    assert pools == {k: float(v) for k, v in totals.items() if v > 0}
    assert plan["materialize"]["token_column"] == "tokens"
    assert (tmp_path / "plan.png").stat().st_size > 1000
    # 2) A config scaling the sample up (a 1e5x larger corpus) with a bigger budget.
    cfg = tmp_path / "mix.yaml"
    cfg.write_text(yaml.safe_dump({
        "name": "e2e-mix", "budget": {"flops": 1e19}, "uncertainty": {"draws": 4},
        "search": {"sweep_points": 5},
        "pools_from_build": {"dir": "IGNORED", "unique_token_multiplier": 1e5}}))
    out2 = tmp_path / "mix.rec.yaml"
    r = CliRunner().invoke(_app(), ["recommend", str(cfg), "--from-build", str(tmp / "out"),
                                    "--out", str(out2)])
    assert r.exit_code == 0, r.output
    rec = yaml.safe_load(out2.read_text())
    m = rec["materialize"]
    assert m["tokenizer"] == "tiktoken:cl100k_base"
    # 3) materialize the plan from the build's shards.
    r = CliRunner().invoke(_app(), ["materialize", str(out2), "--out", str(tmp_path / "mix")])
    assert r.exit_code == 0, r.output
    man = json.loads((tmp_path / "mix" / "manifest.json").read_text())
    longest = max(int(x) for f in (tmp / "out" / "data").glob("*.parquet")
                  for x in pq.read_table(f, columns=["tokens"]).column("tokens").to_pylist())
    for p in man["pools"]:
        assert abs(p["achieved_tokens"] - p["target_tokens"]) <= longest * (
            len(p["epochs_detail"]))
    assert man["tokenizer"] == "tiktoken:cl100k_base" and man["token_column"] == "tokens"
    assert sum(f["rows"] for f in man["files"]) == sum(p["documents"] for p in man["pools"])
