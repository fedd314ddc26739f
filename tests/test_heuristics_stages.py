"""The four heuristic stages in Beam: reasons, annotate-only, dead letters, stats and report."""

from __future__ import annotations

import importlib
import inspect

import pytest

from pipelines.stages.score_stats import sample_key

from pipelines.core.settings import ConfigError
from pipelines.stages.registry import parse_stages
from pipelines.stages.testing import run_stage

MODULES = ["json", "inspect", "argparse", "logging", "collections", "functools", "pathlib",
           "subprocess", "threading", "email.message"]


def stdlib_docs(limit: int = 60) -> list[str]:
    docs = set()
    for m in MODULES:
        mod = importlib.import_module(m)
        for _, obj in inspect.getmembers(mod):
            d = inspect.getdoc(obj)
            if d and len(d.split()) >= 60:
                docs.add(d)
    return sorted(docs)[:limit]


def _records():
    recs = [{"id": f"doc{i:03d}", "text": t, "source": "stdlib"}
            for i, t in enumerate(stdlib_docs())]
    recs += [
        {"id": "bad_empty", "text": "", "source": "junk"},
        {"id": "bad_garbage", "text": bytes(range(1, 256)).decode("latin-1") * 3, "source": "junk"},
        {"id": "bad_longline", "text": "spam " * 30_000, "source": "junk"},
        {"id": "bad_bytes", "text": b"\xff\xfe", "source": "junk"},
        {"id": "bad_missing", "source": "junk"},
    ]
    return recs


@pytest.fixture(scope="module")
def records():
    return _records()


@pytest.mark.parametrize("stage", ["gopher_quality", "gopher_repetition", "c4_filter",
                                   "fineweb_filter"])
def test_stage_routes_every_record(stage, records):
    out = run_stage({"stage": stage}, records)
    kept_ids = {r["id"] for r in out["kept"]}
    removed_ids = {r["id"] for _, r in out["removed"]}
    dead_ids = {d["id"] for d in out["dead"]}
    # every record lands in exactly one output; non-string text is dead-lettered with a reason
    assert len(kept_ids) + len(removed_ids) + len(dead_ids) == len(records)
    assert dead_ids == {"bad_bytes", "bad_missing"}
    assert all("must be a string" in d["reason"] for d in out["dead"])
    # reasons are rule names of this stage
    prefix = {"gopher_quality": "gopher_", "gopher_repetition": "gopher_",
              "c4_filter": "c4_", "fineweb_filter": "fineweb_"}[stage]
    assert all(reason.startswith(prefix) for reason, _ in out["removed"])
    cols = out["stage"].output_columns()
    for r in out["kept"] + [r for _, r in out["removed"]]:
        assert set(cols) <= set(r)
    # stats: histograms for declared score columns, per-reason counts with examples
    hists = out["stats"]["score_histograms"][0]
    n_scored = len(kept_ids) + len(removed_ids)
    for h in hists.values():
        assert h["n"] + h["missing"] == n_scored
        assert sum(h["counts"]) + h["underflow"] + h["overflow"] == h["n"]
    by_rule = out["stats"]["removed_by_rule"][0]
    assert sum(v["count"] for v in by_rule.values()) == len(removed_ids)
    for reason, v in by_rule.items():
        ids = sorted((r["id"] for rr, r in out["removed"] if rr == reason), key=sample_key)
        assert [e[0] for e in v["examples"]] == ids[:3]  # a seeded random sample
    html = out["stage"].report_section(out["entry"])
    assert "<img" in html and "data:image/png;base64" in html
    for reason in by_rule:
        assert reason in html


def test_junk_is_removed_and_prose_mostly_kept(records):
    out = run_stage({"stage": "gopher_quality"}, records)
    removed = {r["id"]: reason for reason, r in out["removed"]}
    assert removed["bad_empty"] == "gopher_too_few_words"
    assert removed["bad_garbage"] in {"gopher_too_few_words", "gopher_alpha_words",
                                      "gopher_long_mean_word_length"}
    prose = [r for r in records if r["id"].startswith("doc")]
    kept_prose = [r for r in out["kept"] if r["id"].startswith("doc")]
    assert len(kept_prose) >= 0.5 * len(prose)


def test_annotate_only_keeps_all_and_counts(records):
    ok = [r for r in records if isinstance(r.get("text"), str)]
    normal = run_stage({"stage": "fineweb_filter"}, ok)
    ann = run_stage({"stage": "fineweb_filter", "annotate_only": True}, ok)
    assert len(ann["kept"]) == len(ok) and not ann["removed"]
    expected = {}
    for reason, _ in normal["removed"]:
        expected[reason] = expected.get(reason, 0) + 1
    assert ann["stats"]["would_remove"][0] == expected
    assert "fineweb_line_punct_frac" in ann["kept"][0]


def test_c4_annotate_only_does_not_rewrite():
    text = "\n".join(f"This is sentence {w} of the page." for w in "abcdef") + "\nnav link"
    rec = [{"id": "a", "text": text, "source": "s"}]
    assert run_stage({"stage": "c4_filter"}, rec)["kept"][0]["text"] != text
    ann = run_stage({"stage": "c4_filter", "annotate_only": True}, rec)
    assert ann["kept"][0]["text"] == text


def test_disabling_a_rule_changes_the_outcome():
    rec = [{"id": "a", "text": "too short to pass", "source": "s"}]
    assert run_stage({"stage": "gopher_quality"}, rec)["removed"][0][0] == "gopher_too_few_words"
    out = run_stage({"stage": "gopher_quality", "min_words": None, "min_stop_words": None}, rec)
    assert [r["id"] for r in out["kept"]] == ["a"]


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match=r"stages\[0\]\.max_bullet_lines_frac"):
        parse_stages([{"stage": "gopher_quality", "max_bullet_lines_frac": 1.5}])
    with pytest.raises(ConfigError, match="max_words"):
        parse_stages([{"stage": "gopher_quality", "min_words": 10, "max_words": 5}])
    with pytest.raises(ConfigError, match="n-gram size"):
        parse_stages([{"stage": "gopher_repetition", "max_dup_ngram_char_frac": {50: 0.1}}])
    with pytest.raises(ConfigError, match="unknown field"):
        parse_stages([{"stage": "c4_filter", "min_sentence": 3}])


def test_repetition_custom_ngram_columns():
    (p,) = parse_stages([{"stage": "gopher_repetition",
                          "max_top_ngram_char_frac": {3: 0.5},
                          "max_dup_ngram_char_frac": {6: None}}])
    out = run_stage(p.model_dump(), [{"id": "a", "text": "a b c " * 30, "source": "s"}])
    cols = out["stage"].output_columns()
    assert "gopher_top_3gram_char_frac" in cols and "gopher_top_2gram_char_frac" not in cols
    assert "gopher_dup_6gram_char_frac" in cols
    # 6-gram rule disabled, top-3-gram fraction is ~1.0 > 0.5 -> removed by it
    assert out["removed"][0][0] == "gopher_top_3gram"
