"""SemDeDup (filters/semdedup.py) and the ``semdedup`` stage."""

from __future__ import annotations

import numpy as np
import pytest

from filters.kmeans import normalize_rows
from filters.semdedup import (
    semdedup_block,
    semdedup_records,
    split_starts,
    sub_block,
    survivor_order,
)
from pipelines.stages.testing import run_stage


def unit(*rows):
    return normalize_rows(np.asarray(rows, dtype=np.float32))


def chain(cos_ab: float, cos_bc: float):
    """a, b, c in a plane with angle(a,b) and angle(b,c) on the same side."""
    t1, t2 = np.arccos(cos_ab), np.arccos(cos_bc)
    return unit([1, 0, 0], [np.cos(t1), np.sin(t1), 0], [np.cos(t1 + t2), np.sin(t1 + t2), 0])


def test_greedy_only_counts_kept_neighbours():
    x = chain(0.97, 0.97)  # a~b, b~c, but cos(a,c) ~ 0.88
    res = semdedup_block(x, eps=0.05, curve_eps=[])
    assert res.kept.tolist() == [True, False, True]  # c stays: its only duplicate b was dropped
    assert res.duplicate_of.tolist() == [-1, 0, -1]
    assert res.duplicate_sim[1] == pytest.approx(0.97, abs=1e-5)
    np.testing.assert_allclose(res.max_sim_earlier, [-1.0, 0.97, 0.97], atol=1e-5)


def test_identical_vectors_at_eps_zero_and_zero_vectors_never_duplicates():
    v = unit([0.3, 0.4, 0.5], [0.1, 0.9, 0.2])
    x = np.vstack([v[0], v[0], v[1], np.zeros(3), np.zeros(3), v[0]]).astype(np.float32)
    res = semdedup_block(x, eps=0.0, curve_eps=[0.5])
    assert res.kept.tolist() == [True, False, True, True, True, False]
    assert res.duplicate_of.tolist() == [-1, 0, -1, -1, -1, 0]


@pytest.mark.parametrize("chunk", [1, 3, 7, 512])
def test_chunking_does_not_change_results(chunk):
    rng = np.random.default_rng(0)
    base = normalize_rows(rng.standard_normal((15, 8)))
    x = normalize_rows(np.repeat(base, 3, axis=0) + 0.05 * rng.standard_normal((45, 8)))
    ref = semdedup_block(x, 0.02, [0.001, 0.01, 0.1], chunk=512)
    res = semdedup_block(x, 0.02, [0.001, 0.01, 0.1], chunk=chunk)
    assert res.kept.tolist() == ref.kept.tolist()
    assert res.duplicate_of.tolist() == ref.duplicate_of.tolist()
    assert res.removed_by_eps == ref.removed_by_eps
    np.testing.assert_allclose(res.max_sim_earlier, ref.max_sim_earlier, atol=1e-6)


def test_curve_matches_separate_runs_and_is_monotone():
    rng = np.random.default_rng(1)
    base = normalize_rows(rng.standard_normal((20, 6)))
    x = normalize_rows(np.repeat(base, 4, axis=0) + 0.1 * rng.standard_normal((80, 6)))
    eps_list = [0.0, 0.005, 0.02, 0.05, 0.1, 0.3]
    res = semdedup_block(x, 0.05, eps_list)
    for e in eps_list:
        assert res.removed_by_eps[e] == int((~semdedup_block(x, e, []).kept).sum())
    counts = [res.removed_by_eps[e] for e in eps_list]
    assert counts == sorted(counts) and counts[-1] > counts[0]


def test_survivor_order_and_block_splitting():
    assert survivor_order(["b", "a", "c"], None) == [1, 0, 2]
    assert survivor_order(["b", "a", "c"], [0.2, 0.2, 0.1], "closest") == [2, 1, 0]
    assert survivor_order(["b", "a", "c"], [0.2, 0.2, 0.1], "farthest") == [1, 0, 2]
    with pytest.raises(ValueError):
        survivor_order(["a"], None, "closest")
    hist = {5: 3, 9: 4, 10: 1, 40: 6, 41: 2}
    assert split_starts(hist, 100) == []
    starts = split_starts(hist, 5)
    sizes: dict[int, int] = {}
    for b, c in hist.items():
        sizes[sub_block(starts, b)] = sizes.get(sub_block(starts, b), 0) + c
    assert sum(sizes.values()) == 16
    assert max(sizes.values()) == 6  # bin 40 alone exceeds 5 and forms its own slab
    assert all(v <= 5 for k, v in sizes.items() if k != sub_block(starts, 40))


def vec_records(x, clusters, prefix="r"):
    return [{"id": f"{prefix}{i:03d}", "text": f"doc {i}", "source": "s",
             "embedding": v.tolist(), "cluster_id": int(c), "cluster_distance": 0.1}
            for i, (v, c) in enumerate(zip(x, clusters))]


def test_stage_splits_oversized_clusters_but_removes_exact_copies():
    rng = np.random.default_rng(2)
    x = normalize_rows(rng.standard_normal((60, 16)))
    x = np.vstack([x, x[:10]])  # 10 exact copies, ids r060..r069
    recs = vec_records(x, [0] * 70)
    out = run_stage({"stage": "semdedup", "eps": 0.0, "max_block_size": 12}, recs)
    s = out["stats"]["semdedup"][0]
    assert s["split_clusters"] == 1 and s["blocks"] >= 6
    assert s["largest_block"] <= 12 + 2  # a projection bin never holds distinct random vectors
    removed = {r["id"]: r["semdedup_duplicate_of"] for _, r in out["removed"]}
    assert removed == {f"r{60 + i:03d}": f"r{i:03d}" for i in range(10)}
    assert len(out["kept"]) == 60 and s["removed"] == 10 and s["records"] == 70


def test_stage_dead_letters_bad_input_and_handles_tiny_clusters():
    x = unit([1, 0, 0], [0, 1, 0], [1, 0, 0])
    recs = vec_records(x, [0, 1, 2])  # three single-record clusters, one copy in another cluster
    recs.append({"id": "noemb", "text": "t", "source": "s", "cluster_id": 0})
    recs.append({"id": "nocluster", "text": "t", "source": "s", "embedding": [1.0, 0, 0]})
    out = run_stage({"stage": "semdedup", "eps": 0.0}, recs)
    assert [r["id"] for r in out["kept"]] == ["r000", "r001", "r002"]  # different clusters
    assert sorted(d["id"] for d in out["dead"]) == ["nocluster", "noemb"]
    assert all(r["semdedup_max_sim"] == -1.0 for r in out["kept"])
    empty = run_stage({"stage": "semdedup"}, [])
    assert empty["kept"] == [] and empty["stats"]["semdedup"][0]["records"] == 0


@pytest.mark.embed
def test_stage_on_real_text_removes_paraphrases_keeps_distinct_docs():
    pytest.importorskip("faiss")
    from tests.test_embedding_corpus import corpus, embedded_records

    _, by_id, distinct, dups = corpus()
    clustered = run_stage({"stage": "cluster", "k": 6, "seed": 1}, embedded_records())["kept"]
    p = {"stage": "semdedup", "eps": 0.1}
    out = run_stage(p, clustered)
    removed = {r["id"]: r["semdedup_duplicate_of"] for reason, r in out["removed"]
               if reason == "semantic_duplicate"}
    assert removed == dups  # every constructed paraphrase, pointing at its original
    assert sorted(r["id"] for r in out["kept"]) == sorted(distinct)
    curve = dict((e, n) for e, n in out["stats"]["semdedup"][0]["curve"])
    assert curve[0.1] == len(dups) and curve[0.001] < len(dups)
    # same answer as the in-memory reference, and rerunning gives the same output
    ids = [r["id"] for r in clustered]
    ref_kept, ref_curve = semdedup_records(
        ids, np.stack([by_id[i] for i in ids]), [r["cluster_id"] for r in clustered], 0.1,
        curve_eps=sorted(curve))
    assert ref_kept == set(distinct) and ref_curve == curve
    assert run_stage(p, clustered[::-1])["kept"] == out["kept"]
