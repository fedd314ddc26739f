"""Side outputs and stage stats without a Flatten of records (issue 11, memory).

The local runner materializes every multi-input Flatten in memory until its last producer is
done. These tests check that (1) ``WriteSortedShards`` over several PCollections writes the
same bytes as over their Flatten, (2) ``combine_parts`` / ``count_parts`` equal a combine over
the Flatten, and (3) the build graph no longer flattens records for its side outputs or its
per-stage stats.
"""

from __future__ import annotations

import gzip
import hashlib
import inspect
import json
from pathlib import Path

import apache_beam as beam
import pytest

from pipelines.io import sinks
from pipelines.core.combine import combine_parts, count_parts
from pipelines.stages.score_stats import HistogramFn, HistSpec
from pipelines.stages.testing import collect, collected, local_pipeline


def _texts(n: int = 150) -> list[str]:
    import argparse
    import collections
    import email
    import functools

    out = set()
    for mod in (argparse, collections, email, functools, inspect):
        for _name, obj in sorted(vars(mod).items()):
            doc = inspect.getdoc(obj) if callable(obj) else None
            if doc and len(doc.split()) > 5:
                out.add(doc)
    return sorted(out)[:n]


def _removed_rows() -> list[list[dict]]:
    """Removed rows of three 'stages' (same ids across stages, ties, exact repeats)."""
    texts = _texts()
    parts = []
    for s, stage in enumerate(("length_filter", "exact_dedup", "language_id")):
        rows = [{"stage": stage, "reason": f"r{i % 3}",
                 "record": {"id": f"d{i:04d}", "text": t, "n": i}}
                for i, t in enumerate(texts) if i % 3 == s or i % 7 == 0]
        rows.append(dict(rows[0]))  # an exact repeat
        parts.append(rows)
    parts[1].append({"stage": "exact_dedup", "reason": "tie",
                     "record": {"id": "d0000", "text": "other text, same id and stage"}})
    return parts


def _shards(folder: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(folder.glob("*.jsonl.gz"))}


def _key(r):
    return f"{r['record']['id']}\x00{r['stage']}"


@pytest.mark.parametrize("spill_bytes", [1 << 30, 2_000])
def test_tuple_input_writes_the_same_bytes_as_its_flatten(tmp_path, spill_bytes):
    parts = _removed_rows()
    p = local_pipeline()
    pcs = tuple(p | f"Create{i}" >> beam.Create(rows) for i, rows in enumerate(parts))
    pcs | "Flat" >> beam.Flatten() | "One" >> sinks.WriteSortedShards(
        str(tmp_path / "flat"), 3, "jsonl", sort_key=_key, spill_bytes=spill_bytes)
    pcs | "Many" >> sinks.WriteSortedShards(
        str(tmp_path / "many"), 3, "jsonl", sort_key=_key, spill_bytes=spill_bytes)
    p.run().wait_until_finish()
    flat, many = _shards(tmp_path / "flat"), _shards(tmp_path / "many")
    assert len(flat) == 3 and flat == many
    rows = [json.loads(x) for f in sorted((tmp_path / "many").glob("*.jsonl.gz"))
            for x in gzip.decompress(f.read_bytes()).decode().splitlines()]
    assert len(rows) == sum(len(r) for r in parts)  # nothing lost, repeats kept
    assert not (tmp_path / "many-runs").exists() or not any((tmp_path / "many-runs").iterdir())


def test_tuple_input_with_empty_members_and_partitions(tmp_path):
    parts = _removed_rows()
    schema = None
    p = local_pipeline()
    empty = p | "Empty" >> beam.Create([])
    rows = [dict(r["record"], lang="en" if i % 2 else "de")
            for i, r in enumerate(parts[0])]
    pcs = (empty, p | "Rows" >> beam.Create(rows), p | "Empty2" >> beam.Create([]))
    pcs | "Many" >> sinks.WriteSortedShards(str(tmp_path / "many"), 2, "jsonl",
                                            schema=schema, partition_by="lang")
    (p | "RowsAgain" >> beam.Create(rows)) | "One" >> sinks.WriteSortedShards(
        str(tmp_path / "one"), 2, "jsonl", partition_by="lang")
    p.run().wait_until_finish()
    for lang in ("lang-de", "lang-en"):
        assert _shards(tmp_path / "many" / lang) == _shards(tmp_path / "one" / lang) != {}


def test_an_empty_tuple_is_refused():
    with pytest.raises(ValueError, match="at least one input|requires a pipeline"):
        () | "None" >> sinks.WriteSortedShards("/nonexistent/x", 2, "jsonl")


def _records() -> list[dict]:
    return [{"id": f"d{i}", "text": t, "words": len(t.split()),
             "score": (None if i % 11 == 0 else "nan" if i % 13 == 0 else i / 7.0)}
            for i, t in enumerate(_texts())]


def test_combine_parts_equals_combine_over_flatten():
    recs = _records()
    specs = [HistSpec("words", 0, 400, 20, (50.0,)), HistSpec("score", 0, 30, 10)]
    p = local_pipeline()
    a = p | "A" >> beam.Create(recs[:40])
    b = p | "B" >> beam.Create(recs[40:])
    c = p | "C" >> beam.Create([])
    whole = (a, b, c) | beam.Flatten() | "Whole" >> beam.CombineGlobally(HistogramFn(specs))
    parts = combine_parts([a, b, c], HistogramFn(specs), "Hist")
    none = combine_parts([c], HistogramFn(specs), "NoneHist")
    k1, k2, k3 = collect(whole, "whole"), collect(parts, "parts"), collect(none, "none")
    p.run().wait_until_finish()
    (w,), (q,), (n,) = collected(k1), collected(k2), collected(k3)
    assert q == w and w["words"]["n"] == len(recs)
    fn = HistogramFn(specs)
    assert n == fn.extract_output(fn.create_accumulator())


def test_count_parts_equals_count_over_flatten():
    words = [w.lower() for t in _texts(40) for w in t.split()[:5]]
    p = local_pipeline()
    a = p | "A" >> beam.Create(words[::2])
    b = p | "B" >> beam.Create(words[1::2])
    got = collect(count_parts([a, b], "Words"), "counts")
    empty = collect(count_parts([p | "E" >> beam.Create([])], "Empty"), "empty")
    p.run().wait_until_finish()
    from collections import Counter

    assert collected(got) == [dict(Counter(words))]
    assert collected(empty) == [{}]


def test_build_graph_flattens_no_records(tmp_path):
    """The side outputs spill each stage's rows separately, and the stats that used to
    flatten kept + removed records (score histograms, languages, stop lists) combine per side;
    several sources are read in one step and near-dup routes its records from spill files:
    no multi-input Flatten of the graph is fed by records or rows."""
    from pipelines.build.config import build_config_from_dict
    from pipelines.build.graph import construct
    from pipelines.build.plan import plan_build

    texts = _texts(30)
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n"
                           for i, t in enumerate(texts[:15])))
    src2 = tmp_path / "in2.jsonl"
    src2.write_text("".join(json.dumps({"id": f"e{i}", "text": t}) + "\n"
                            for i, t in enumerate(texts[15:])))
    stages = [{"stage": "normalize"}, {"stage": "length_filter", "min_words": 5},
              {"stage": "exact_dedup", "checkpoint": True},
              {"stage": "gopher_quality"}, {"stage": "gopher_repetition"},
              {"stage": "minhash_dedup"}, {"stage": "length_filter", "label": "after",
                                           "min_words": 6}]
    cfg = build_config_from_dict({
        "name": "t", "sources": [{"name": "s", "type": "jsonl", "path": str(src)},
                                 {"name": "s2", "type": "jsonl", "path": str(src2)}],
        "stages": stages, "output": {"dir": str(tmp_path / "out"), "shards": 2}})
    plan = plan_build(cfg)
    p = beam.Pipeline(runner="DirectRunner")
    construct(plan, p)

    flattens: list[tuple[str, list[str]]] = []

    class V(beam.pipeline.PipelineVisitor):
        def visit_transform(self, node):
            if isinstance(node.transform, beam.Flatten) and len(node.inputs) > 1:
                flattens.append((node.full_label,
                                 [pc.producer.full_label for pc in node.inputs]))

    p.visit(V())
    # what a Flatten may carry: run paths, partial combines, event keys, stats, file lists
    allowed = ("/Runs", "Parts", "Counts", "AllEvents", "AllFiles", "Events", "AllConsumed",
               "PairPicked",  # the near-dup pair sample: <= 16 compact picked records
               "/Scratch",  # near-dup's entries/pairs file paths
               "StatsAll",  # the stats (small JSON values) gathered for their files
               "CoGroupByKeyImpl/Flatten")  # a sink's runs + shard slots; spill paths
    for label, producers in flattens:
        assert label.endswith(allowed) or any(a in label for a in allowed), (label, producers)
        for prod in producers:
            assert "RemovedRow" not in prod and not prod.endswith(("/Kept", "/Removed")), (
                label, prod)
    spills = [lab for lab, _ in flattens if lab.endswith("/Runs")]
    assert any(lab.startswith("FinalWriteRemoved") for lab in spills)
    assert any(lab.startswith("FinalWriteDead") for lab in spills)
