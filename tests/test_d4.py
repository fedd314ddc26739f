"""The ``d4`` recipe (SemDeDup then prototype pruning), in-process and as a full build."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from filters.prototypes import select_prototypes
from pipelines.build.config import load_build_config
from pipelines.stages.testing import run_stage
from tests.test_embedding_corpus import corpus, embedded_records

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.embed


def test_d4_equals_semdedup_then_prototype_prune():
    pytest.importorskip("faiss")
    _, _, distinct, dups = corpus()
    clustered = run_stage({"stage": "cluster", "k": 6, "seed": 1}, embedded_records())["kept"]
    common = {"eps": 0.1, "policy": "easy", "keep_fraction": 0.5, "balanced": True}
    d4 = run_stage({"stage": "d4", **common}, clustered)
    reasons: dict[str, list[str]] = {}
    for reason, r in d4["removed"]:
        reasons.setdefault(reason, []).append(r["id"])
    assert sorted(reasons["semantic_duplicate"]) == sorted(dups)
    survivors = [r for r in clustered if r["id"] in set(distinct)]
    expected = select_prototypes([r["id"] for r in survivors],
                                 [r["cluster_distance"] for r in survivors],
                                 [r["cluster_id"] for r in survivors], 0.5, "easy", True)
    assert {r["id"] for r in d4["kept"]} == expected
    assert len(reasons["prototype_pruned"]) == len(survivors) - len(expected)
    # balanced: every cluster that survived SemDeDup keeps records
    assert {r["cluster_id"] for r in d4["kept"]} == {r["cluster_id"] for r in survivors}
    st = {k: v[0] for k, v in d4["stats"].items()}
    assert st["semdedup"]["removed"] == len(dups)
    assert st["prototype"]["n_records"] == len(survivors)
    html = d4["stage"].report_section({"stats": st})
    assert html.count("<img") == 2 and "SemDeDup" in html


def test_prune_example_config_validates():
    cfg = load_build_config(REPO / "configs" / "prune_example.yaml")
    names = [s.stage for s in cfg.stages]
    assert names[-3:] == ["embed", "cluster", "d4"]


@pytest.mark.slow
def test_full_build_embed_cluster_d4_with_report(tmp_path):
    pytest.importorskip("faiss")
    from tests.buildutil import build, config, read_output, write_jsonl

    records, _, distinct, dups = corpus()
    rows = [{"id": r["id"], "text": r["text"]} for r in records]
    rows.append({"id": "blank", "text": "   "})
    src = write_jsonl(tmp_path / "docs.jsonl", rows)
    out = tmp_path / "out"
    stages = [
        {"stage": "embed", "persist": "parquet"},
        {"stage": "cluster", "k": 6, "seed": 1},
        {"stage": "d4", "eps": 0.1, "policy": "hard", "keep_fraction": 0.5},
    ]
    res = build(config([{"name": "doc", "type": "jsonl", "path": str(src), "id_field": "id"}],
                       stages, out))
    kept = read_output(out)
    assert len(kept) == math.ceil(len(distinct) * 0.5)
    assert not {r["id"] for r in kept} & set(dups)
    assert all(len(r["embedding"]) == 384 and r["cluster_id"] >= 0 for r in kept)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["conservation_ok"] and res.stats["counts"]["dead_letter"] == 1
    d4 = stats["stages"]["d4"]
    assert d4["removed"] == {"semantic_duplicate": len(dups),
                             "prototype_pruned": len(distinct) - len(kept)}
    assert d4["stats"]["semdedup"]["curve"]
    report = (out / "report.html").read_text()
    assert "Stage cluster (cluster)" in report and "Stage d4 (d4)" in report
    assert report.count("data:image/png;base64") >= 4
    assert list((out / "embeddings" / "embed").glob("*.parquet"))
