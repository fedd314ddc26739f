"""faiss spherical k-means (filters/kmeans.py) and the ``cluster`` stage."""

from __future__ import annotations

import random

import numpy as np
import pytest

from filters.kmeans import assign, default_k, normalize_rows
from pipelines.stages.testing import run_stage

pytestmark = pytest.mark.embed
pytest.importorskip("faiss")


def blobs(n_per: int = 30, centers: int = 5, dim: int = 24, noise: float = 0.08, seed: int = 0):
    rng = np.random.default_rng(seed)
    c = normalize_rows(rng.standard_normal((centers, dim)))
    x = np.concatenate([c[i] + noise * rng.standard_normal((n_per, dim)) for i in range(centers)])
    return normalize_rows(x), np.repeat(np.arange(centers), n_per)


def records_from(x):
    return [{"id": f"r{i:04d}", "text": f"doc {i}", "source": "s", "embedding": v.tolist()}
            for i, v in enumerate(x)]


def test_default_k_rule():
    assert [default_k(n) for n in (0, 1, 2, 100, 10_000, 10**12)] == [1, 1, 1, 10, 100, 65536]


def test_fit_recovers_separated_groups_and_is_deterministic():
    from filters.kmeans import fit_kmeans

    x, truth = blobs()
    c1 = fit_kmeans(x, 5, seed=7, nredo=5)
    c2 = fit_kmeans(x, 5, seed=7, nredo=5)
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_allclose(np.linalg.norm(c1, axis=1), 1.0, atol=1e-5)
    ids, dist = assign(x, c1)
    for g in range(5):  # every true group maps to exactly one cluster
        assert len(set(ids[truth == g].tolist())) == 1
    assert len(set(ids.tolist())) == 5
    sims = x @ c1.T
    np.testing.assert_allclose(dist, 1 - sims.max(axis=1), atol=1e-6)


def test_small_inputs_and_zero_rows():
    from filters.kmeans import fit_kmeans

    x, _ = blobs(n_per=1, centers=3)
    c = fit_kmeans(np.vstack([x, np.zeros((2, x.shape[1]))]), 10)
    assert c.shape == (3, x.shape[1])  # k capped at the distinct non-zero points
    ids, dist = assign(np.zeros((1, x.shape[1]), dtype=np.float32), c)
    assert ids[0] == 0 and dist[0] == pytest.approx(1.0)  # zero vector: tie -> lowest index
    with pytest.raises(ValueError):
        fit_kmeans(np.zeros((4, 8)), 2)


def test_cluster_stage_deterministic_order_independent_and_dead_letters():
    x, truth = blobs()
    recs = records_from(x)
    shuffled = recs[:]
    random.Random(3).shuffle(shuffled)
    bad = [{"id": "noemb", "text": "t", "source": "s"},
           {"id": "nan", "text": "t", "source": "s", "embedding": [float("nan")] * 24},
           {"id": "short", "text": "t", "source": "s", "embedding": [0.5] * 7}]
    params = {"stage": "cluster", "k": 5, "max_fit_points": 100, "nredo": 5}
    a = run_stage(params, recs + bad)
    b = run_stage(params, shuffled + bad)
    key = [(r["id"], r["cluster_id"], r["cluster_distance"]) for r in a["kept"]]
    assert key == [(r["id"], r["cluster_id"], r["cluster_distance"]) for r in b["kept"]]
    assert {d["id"]: d["reason"].split(":")[0] for d in a["dead"]} == {
        "noemb": "missing_embedding", "nan": "bad_embedding", "short": "bad_embedding"}
    km = a["stats"]["kmeans"][0]
    # the 7-dim record passes the check (dims are only known after the fit) and may take a
    # sample slot; the fit uses the dominant size only
    assert km["k"] == 5 and 99 <= km["fit_points"] <= 100 and km["n_records"] == 151
    sizes = a["stats"]["cluster_sizes"][0]
    assert sorted(n for _, n in sizes) == [30] * 5
    hist = a["stats"]["distance_histogram"][0]
    assert sum(hist["counts"]) == 150


def test_cluster_stage_default_k_and_edge_cases():
    x, _ = blobs(n_per=20, centers=5)
    out = run_stage({"stage": "cluster"}, records_from(x))
    assert out["stats"]["kmeans"][0]["k"] == default_k(100) == 10
    assert len(out["kept"]) == 100
    empty = run_stage({"stage": "cluster"}, [])
    assert empty["kept"] == [] and empty["stats"]["kmeans"][0]["k"] == 0
    one = run_stage({"stage": "cluster"}, records_from(x[:1]))
    assert one["kept"][0]["cluster_id"] == 0
    assert one["kept"][0]["cluster_distance"] == pytest.approx(0.0, abs=1e-6)


def test_cluster_stage_on_real_text_groups_paraphrases():
    from tests.test_embedding_corpus import embedded_records

    recs = embedded_records()
    out = run_stage({"stage": "cluster", "seed": 3}, recs)
    again = run_stage({"stage": "cluster", "seed": 3}, recs)
    assert out["kept"] == again["kept"]
    by_id = {r["id"]: r["cluster_id"] for r in out["kept"]}
    assert by_id["para-0-a"] == by_id["para-0-b"]
    assert by_id["para-1-a"] == by_id["para-1-b"]
