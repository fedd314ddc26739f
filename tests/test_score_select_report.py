"""stages/score_stats.py: fixed-bin histogram combiner, per-reason samples and HTML rendering."""

from __future__ import annotations

import math

from pipelines.stages.score_stats import (
    HistogramFn,
    HistSpec,
    ReasonSampleFn,
    render_section,
)


def _run(fn, items, splits=3):
    """Combine in several partial accumulators, then merge (as a runner would)."""
    accs = []
    for k in range(splits):
        acc = fn.create_accumulator()
        for it in items[k::splits]:
            acc = fn.add_input(acc, it)
        accs.append(acc)
    return fn.extract_output(fn.merge_accumulators(accs))


def test_histogram_bins_edges_and_missing():
    fn = HistogramFn([HistSpec("s", 0.0, 1.0, 4, (0.5,)), HistSpec("n", 0, 999, 3, log=True)])
    recs = [{"s": v, "n": n} for v, n in [(0.0, 0), (0.24, 9), (0.25, 99), (0.99, 999),
                                          (1.0, 5000), (-0.1, 1), (1.5, 1)]]
    recs += [{"s": None}, {"s": float("nan")}, {"s": "0.3"}, {"s": True}, {}]
    out = _run(fn, recs)
    s = out["s"]
    assert s["counts"] == [2, 1, 0, 3]  # 0.0,0.24 | 0.25 | - | 0.99, 1.0 (closed top), True
    assert (s["underflow"], s["overflow"], s["missing"]) == (1, 1, 4)
    assert s["n"] == 8 and s["min"] == -0.1 and s["max"] == 1.5
    assert s["thresholds"] == [0.5]
    n = out["n"]
    # log10(1+x) bins over [0, 3]: [0,1) {0, 1, 1} | [1,2) {9} | [2,3] {99, 999}; 5000 above
    assert n["counts"] == [3, 1, 2] and n["overflow"] == 1 and n["missing"] == 5
    assert math.isclose(n["mean"], (0 + 9 + 99 + 999 + 5000 + 1 + 1) / 7)


def test_empty_histogram():
    out = _run(HistogramFn([HistSpec("s", 0, 1, 5)]), [])
    assert out["s"]["n"] == 0 and out["s"]["mean"] is None and sum(out["s"]["counts"]) == 0


def test_reason_sample_is_a_seeded_random_sample_independent_of_splits():
    from pipelines.stages.score_stats import sample_key

    fn = ReasonSampleFn(k=2)
    ids = [f"id{i:02d}" for i in range(40)]
    items = [(sample_key(i), i, f"text {i}") for i in ids]
    out = _run(fn, items, splits=2)
    expect = sorted(ids, key=sample_key)[:2]
    assert out == {"count": 40, "examples": [[i, f"text {i}"] for i in expect]}
    assert _run(fn, list(reversed(items)), splits=3) == out
    assert expect != ids[:2]  # not simply the smallest ids


def test_snippets_keep_line_breaks_and_fold_spaces():
    from pipelines.stages.score_stats import snippet

    assert snippet("a   b\n\n\nc\td") == "a b\nc d"
    assert snippet("x" * 500, limit=10) == "x" * 9 + "…"


def test_render_section_takes_the_stats_json_entry():
    hist = _run(HistogramFn([HistSpec("s", 0, 1, 4, (0.5,))]), [{"s": 0.1}, {"s": 0.9}])
    stats = {"score_histograms": hist,
             "removed_by_rule": {"too_low": {"count": 1, "examples": [["a", "<b>x</b>"]]}}}
    html = render_section("t", {"removed": {"too_low": 1}, "stats": stats})
    assert "<img" in html and "too_low" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html  # snippets are escaped
    assert render_section("t", {}) is None
    assert render_section("t", {"stats": {}}) is None


def test_histogram_mean_is_the_same_bits_in_any_merge_order():
    # float sums depend on the order of additions; the histogram keeps an exact sum so the
    # stats of 1 and 2 workers (different bundle splits and merge orders) are identical
    import random

    rng = random.Random(7)
    recs = [{"s": rng.uniform(0, 1) * rng.choice([1e-9, 1.0, 1e9])} for _ in range(3000)]
    fn = HistogramFn([HistSpec("s", 0.0, 1.0, 4)])

    def split_merge(order, cut):
        accs = []
        for chunk in (order[:cut], order[cut:]):
            acc = fn.create_accumulator()
            for r in chunk:
                acc = fn.add_input(acc, r)
            accs.append(acc)
        return fn.extract_output(fn.merge_accumulators(accs[::-1] if cut % 2 else accs))

    means = set()
    for k in range(6):
        order = recs[:]
        rng.shuffle(order)
        means.add(split_merge(order, 100 + 500 * k)["s"]["mean"])
    assert len(means) == 1
