"""score_select: threshold, exact global top fraction, ties, determinism, bad scores."""

from __future__ import annotations

import random

import pytest

from pipelines.core.settings import ConfigError
from pipelines.stages.registry import parse_stages
from pipelines.stages.filter.score_select import cutoff_index, sort_key
from pipelines.stages.testing import run_stage


def _recs(n: int, seed: int = 0, **extra):
    rng = random.Random(seed)
    return [{"id": f"r{i:05d}", "text": "t", "source": "s", "score": rng.random(), **extra}
            for i in range(n)]


def _expected_top(recs, q, higher=True):
    k = max(1, round(q * len(recs)))
    return {r["id"] for r in sorted(recs, key=lambda r: sort_key(r, "score", higher),
                                    reverse=True)[:k]}


@pytest.mark.parametrize("n,q", [(1, 0.5), (2, 0.5), (7, 0.3), (1000, 0.1), (999, 0.1),
                                 (3000, 0.999), (3000, 0.0001), (4000, 1.0)])
def test_top_fraction_is_exact_for_small_inputs(n, q):
    recs = _recs(n, seed=n)
    out = run_stage({"stage": "score_select", "column": "score", "top_fraction": q}, recs)
    assert {r["id"] for r in out["kept"]} == _expected_top(recs, q)
    assert len(out["kept"]) + len(out["removed"]) == n
    assert all(reason == "below_top_fraction" for reason, _ in out["removed"])
    cut = out["stats"]["cutoff"][0]
    assert cut["n"] == n and cut["score"] == min(r["score"] for r in out["kept"])


def test_lower_is_better():
    recs = _recs(500, seed=5)
    out = run_stage({"stage": "score_select", "column": "score", "top_fraction": 0.2,
                     "higher_is_better": False}, recs)
    assert {r["id"] for r in out["kept"]} == _expected_top(recs, 0.2, higher=False)
    assert max(r["score"] for r in out["kept"]) < 0.25


def test_ties_are_split_deterministically():
    recs = [{"id": f"t{i}", "text": "x", "source": "s", "score": 0.5} for i in range(1000)]
    a = run_stage({"stage": "score_select", "column": "score", "top_fraction": 0.25}, recs)
    shuffled = list(recs)
    random.Random(1).shuffle(shuffled)
    b = run_stage({"stage": "score_select", "column": "score", "top_fraction": 0.25}, shuffled)
    assert len(a["kept"]) == 250
    assert [r["id"] for r in a["kept"]] == [r["id"] for r in b["kept"]]


def test_threshold_and_bad_scores():
    recs = _recs(200)
    recs += [{"id": "none", "text": "t", "source": "s", "score": None},
             {"id": "nan", "text": "t", "source": "s", "score": float("nan")},
             {"id": "str", "text": "t", "source": "s", "score": "0.9"},
             {"id": "missing", "text": "t", "source": "s"}]
    out = run_stage({"stage": "score_select", "column": "score", "threshold": 0.7}, recs)
    assert {r["id"] for r in out["kept"]} == {r["id"] for r in recs[:200] if r["score"] >= 0.7}
    assert sorted(d["id"] for d in out["dead"]) == ["missing", "nan", "none", "str"]
    assert all(d["reason"].startswith("missing_score") for d in out["dead"])
    hist = out["stats"]["score_histograms"][0]["score"]
    assert hist["n"] == 200 and hist["thresholds"] == [0.7]
    assert "below_threshold" in out["stage"].report_section(out["entry"])


@pytest.mark.slow
def test_larger_input_is_close():
    # Beyond the exact range the quantile is approximate; the count stays within the bound.
    recs = _recs(20_000, seed=9)
    out = run_stage({"stage": "score_select", "column": "score", "top_fraction": 0.33}, recs)
    assert abs(len(out["kept"]) - 6600) <= 20_000 * 1e-4 + 2


def test_cutoff_index_edges():
    assert cutoff_index(0.5, 1) == 0
    assert cutoff_index(1.0, 100) == 0
    assert cutoff_index(0.01, 100, 101) == 100  # index M is the maximum (rank 99)


def test_config_needs_exactly_one_mode():
    with pytest.raises(ConfigError, match="exactly one"):
        parse_stages([{"stage": "score_select", "column": "s"}])
    with pytest.raises(ConfigError, match="exactly one"):
        parse_stages([{"stage": "score_select", "column": "s", "threshold": 1,
                       "top_fraction": 0.5}])
    with pytest.raises(ConfigError, match="top_fraction"):
        parse_stages([{"stage": "score_select", "column": "s", "top_fraction": 0}])


def test_annotate_only_marks_instead_of_dropping():
    recs = _recs(300, seed=4)
    out = run_stage({"stage": "score_select", "column": "score", "top_fraction": 0.1,
                     "annotate_only": True}, recs)
    assert len(out["kept"]) == 300 and not out["removed"]
    chosen = {r["id"] for r in out["kept"] if r["score_selected"]}
    assert chosen == _expected_top(recs, 0.1)
    assert out["stats"]["would_remove"][0] == {"below_top_fraction": 270}
    assert out["stage"].output_columns() == {"score_selected": "bool"}


def test_top_fraction_streams_its_input_from_spill_files(tmp_path, monkeypatch):
    """The split reads its input back from spill files (so the runner does not hold it until
    the quantiles are known): many small files give the same selection, and every file is
    deleted afterwards. Annotating needs no Flatten of kept and flagged records either."""
    from pipelines.core import spill

    recs = _recs(600, seed=3)
    monkeypatch.setattr(spill, "SPILL_BYTES", 2000)  # ~7 records per file
    params = {"stage": "score_select", "column": "score", "top_fraction": 0.3}
    out = run_stage(params, recs, output_dir=str(tmp_path))
    assert {r["id"] for r in out["kept"]} == _expected_top(recs, 0.3)
    assert len(out["removed"]) == 420
    ann = run_stage({**params, "annotate_only": True}, recs, output_dir=str(tmp_path))
    assert sorted(r["id"] for r in ann["kept"] if r["score_selected"]) == sorted(
        _expected_top(recs, 0.3))
    assert len(ann["kept"]) == 600 and not ann["removed"]
    assert ann["stats"]["would_remove"][0] == {"below_top_fraction": 420}
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_spill_rows_writes_several_files_at_a_small_budget(tmp_path, monkeypatch):
    from pipelines.core import spill

    monkeypatch.setattr(spill, "SPILL_BYTES", 2000)
    fn = spill.SpillRows(str(tmp_path))
    fn.start_bundle()
    rows = _recs(50)
    paths = [p for r in rows for p in fn.process(r)]
    paths += [w.value for w in fn.finish_bundle()]
    assert len(paths) > 5
    assert [r for p in paths for r in spill.read_spill(p)] == rows
