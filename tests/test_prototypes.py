"""Prototype pruning rules (filters/prototypes.py) and the ``prototype_prune`` stage."""

from __future__ import annotations

import random

import pytest

from filters.prototypes import (
    boundary_from_histogram,
    histogram_bin,
    is_kept,
    keep_count,
    resolve_keep_fraction,
    resolve_policy,
    select_prototypes,
    sparse_histogram,
    threshold_key,
)
from pipelines.core.settings import ConfigError
from pipelines.stages.registry import parse_stages
from pipelines.stages.testing import run_stage


def scored(n: int, clusters: int, seed: int, decimals: int | None = 2):
    """Records with cluster ids and distances; rounding creates many exact ties."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        d = rng.uniform(0.05, 0.9)
        out.append({"id": f"r{rng.randrange(10**6):06d}-{i}", "text": f"doc {i}", "source": "s",
                    "cluster_id": rng.randrange(clusters),
                    "cluster_distance": round(d, decimals) if decimals else d})
    return out


def reference(recs, q, policy, balanced=False, min_per_cluster=1):
    return select_prototypes([r["id"] for r in recs], [r["cluster_distance"] for r in recs],
                             [r["cluster_id"] for r in recs], q, policy, balanced,
                             min_per_cluster)


def test_keep_count_and_fraction_rules():
    assert keep_count(10, 0.25) == 3 and keep_count(10, 0.3) == 3 and keep_count(0, 0.5) == 0
    assert keep_count(3, 0.01, min_keep=1) == 1 and keep_count(2, 1.0, min_keep=5) == 2
    assert resolve_keep_fraction(0.4, 100, None) == 0.4
    assert resolve_keep_fraction(None, 1000, 250) == 0.25  # shrinks as data grows
    assert resolve_keep_fraction(None, 100, 250) == 1.0
    with pytest.raises(ValueError):
        resolve_keep_fraction(None, 100, None)


def test_auto_policy_follows_the_data_regime():
    assert resolve_policy("auto", 10_000, 1_000) == "hard"  # abundant: 10 epochs' worth
    assert resolve_policy("auto", 500, 1_000) == "easy"  # scarce: data would repeat
    assert resolve_policy("auto", 1_000, 1_000) == "hard"
    assert resolve_policy("auto", 1_500, 1_000, abundance_ratio=2.0) == "easy"
    assert resolve_policy("easy", 10**9, 1) == "easy"
    with pytest.raises(ValueError, match="budget_records"):
        resolve_policy("auto", 10, None)


@pytest.mark.parametrize("policy", ["hard", "easy"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_histogram_selection_equals_sorting(policy, seed):
    recs = scored(300, 7, seed, decimals=2 if seed else None)
    keys = [(r["cluster_distance"], r["id"]) for r in recs]
    for q in (0.01, 0.1, 0.5, 0.99, 1.0):
        m = keep_count(len(keys), q)
        hist = sparse_histogram(d for d, _ in keys)
        b, need = boundary_from_histogram(hist, m, policy)
        t = threshold_key([k for k in keys if histogram_bin(k[0]) == b], need, policy)
        got = {k[1] for k in keys if is_kept(k, histogram_bin(k[0]), b, t, policy)}
        assert got == reference(recs, q, policy), q


def test_stage_easy_and_hard_select_opposite_ends():
    recs = scored(200, 5, 3)
    hard = run_stage({"stage": "prototype_prune", "policy": "hard", "keep_fraction": 0.3}, recs)
    easy = run_stage({"stage": "prototype_prune", "policy": "easy", "keep_fraction": 0.3}, recs)
    hk = {r["id"] for r in hard["kept"]}
    ek = {r["id"] for r in easy["kept"]}
    assert len(hk) == len(ek) == 60 and not hk & ek
    assert max(r["cluster_distance"] for r in easy["kept"]) <= min(
        r["cluster_distance"] for r in hard["kept"])
    assert hk == reference(recs, 0.3, "hard") and ek == reference(recs, 0.3, "easy")
    assert {reason for reason, _ in hard["removed"]} == {"prototype_pruned"}
    assert len(hard["removed"]) == 140
    s = hard["stats"]["prototype"][0]
    assert s["policy"] == "hard" and s["kept"] == 60 and s["n_records"] == 200


def test_stage_balanced_keeps_every_cluster_including_singletons():
    recs = scored(150, 3, 4)
    # cluster 7 and 8 hold one record each; cluster 9 two records, all very "easy"
    recs += [{"id": i, "text": "x", "source": "s", "cluster_id": c, "cluster_distance": d}
             for i, c, d in [("solo-7", 7, 0.0), ("solo-8", 8, 0.01), ("pair-9a", 9, 0.0),
                             ("pair-9b", 9, 0.0)]]
    p = {"stage": "prototype_prune", "policy": "hard", "keep_fraction": 0.1}
    unbalanced = run_stage(p, recs)
    assert not {"solo-7", "solo-8", "pair-9a", "pair-9b"} & {r["id"] for r in unbalanced["kept"]}
    out = run_stage({**p, "balanced": True}, recs)
    kept = {r["id"] for r in out["kept"]}
    assert {r["cluster_id"] for r in out["kept"]} == {0, 1, 2, 7, 8, 9}
    assert {"solo-7", "solo-8", "pair-9b"} <= kept and "pair-9a" not in kept  # tie -> larger id
    assert kept == reference(recs, 0.1, "hard", balanced=True)
    per = {c: (k, t) for c, k, t in out["stats"]["prototype_per_cluster"][0]}
    assert per[7] == (1, 1) and per[9] == (1, 2)
    assert out["stats"]["prototype"][0]["clusters_emptied"] == 0
    assert unbalanced["stats"]["prototype"][0]["clusters_emptied"] == 3


def test_stage_auto_budget_and_edge_cases():
    recs = scored(100, 4, 5)
    out = run_stage({"stage": "prototype_prune", "policy": "auto", "budget_records": 20}, recs)
    s = out["stats"]["prototype"][0]
    got = (s["policy"], s["regime"], s["keep_fraction"], s["kept"])
    assert got == ("hard", "abundant", 0.2, 20)
    assert {r["id"] for r in out["kept"]} == reference(recs, 0.2, "hard")
    scarce = run_stage({"stage": "prototype_prune", "policy": "auto", "budget_records": 400,
                        "keep_fraction": 0.5}, recs)
    assert scarce["stats"]["prototype"][0]["policy"] == "easy"
    assert {r["id"] for r in scarce["kept"]} == reference(recs, 0.5, "easy")
    empty = run_stage({"stage": "prototype_prune", "policy": "hard", "keep_fraction": 0.5}, [])
    assert empty["kept"] == [] and empty["removed"] == []
    one = run_stage({"stage": "prototype_prune", "policy": "easy", "keep_fraction": 0.01},
                    recs[:1])
    assert [r["id"] for r in one["kept"]] == [recs[0]["id"]]
    bad = [{"id": "nocluster", "text": "t", "source": "s"},
           {"id": "nan", "text": "t", "source": "s", "cluster_id": 1,
            "cluster_distance": float("nan")}]
    dead = run_stage({"stage": "prototype_prune", "policy": "hard", "keep_fraction": 0.5},
                     recs[:10] + bad)
    assert sorted(d["id"] for d in dead["dead"]) == ["nan", "nocluster"]
    assert dead["dead"][0]["reason"].startswith("missing_cluster")
    assert len(dead["kept"]) == 5


def test_stage_is_deterministic_under_input_order():
    recs = scored(120, 4, 6)
    shuffled = recs[::-1]
    p = {"stage": "prototype_prune", "policy": "easy", "keep_fraction": 0.37, "balanced": True}
    assert run_stage(p, recs)["kept"] == run_stage(p, shuffled)["kept"]


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="keep_fraction"):
        parse_stages([{"stage": "prototype_prune", "policy": "hard", "keep_fraction": 1.5}])
    with pytest.raises(ConfigError, match="budget_records"):
        parse_stages([{"stage": "prototype_prune", "policy": "auto", "keep_fraction": 0.5}])
    with pytest.raises(ConfigError, match="policy"):
        parse_stages([{"stage": "prototype_prune", "policy": "medium", "keep_fraction": 0.5}])


def test_threshold_key_handles_ties_by_id():
    keys = [(0.5, "b"), (0.5, "a"), (0.5, "c")]
    assert threshold_key(keys, 2, "hard") == (0.5, "b")  # keeps c, b
    assert threshold_key(keys, 2, "easy") == (0.5, "b")  # keeps a, b
    assert threshold_key([], 1, "hard") is None
