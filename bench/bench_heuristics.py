"""Throughput of the heuristic quality suite (Gopher quality + repetition, C4, FineWeb).

Corpus: the demo corpus generator (``pipelines/io/demo_corpus.py``: stdlib docstrings plus
duplicates, boilerplate, short/long, code and non-English documents); only well-formed
records are used. Measures, on one process (= one core):

1. each plain-Python scorer alone and the full suite (all four in sequence), in docs/s,
   against a trivial baseline scorer (``LengthFilter``: ``len`` + ``str.split``) measured in
   the same run;
2. the four stages chained in Beam's in-process runner (one worker), end to end, including
   the per-stage score histograms and removed-by-rule samples.

Usage:  python bench/bench_heuristics.py [--docs 3000] [--repeat 3] [--beam]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from filters.heuristics_c4 import C4Filter
from filters.heuristics_fineweb import FineWebFilter
from filters.heuristics_gopher import GopherQuality, GopherRepetition
from filters.length import LengthFilter


def corpus(n_docs: int) -> list[dict]:
    from pipelines.io.demo_corpus import generate

    lines, _ = generate(n_docs, seed=0)
    recs = []
    for i, raw in enumerate(lines):
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("text"), str):
            recs.append({"id": f"d{i:06d}", "text": obj["text"], "source": "demo"})
    return recs


def time_scorers(scorers, recs, repeat: int) -> tuple[float, float]:
    """Best-of-``repeat`` docs/s for running ``scorers`` in sequence over ``recs``."""
    best = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for s in scorers:
            s.process_batch(recs)
        best.append(time.perf_counter() - t0)
    return len(recs) / min(best), statistics.median(best)


_CORPUS: list[dict] = []  # read by _expand_copy inside the in-process runner


def _expand_copy(c: int):
    return [{**r, "id": f"{r['id']}-{c}"} for r in _CORPUS]


def time_beam(recs, copies: int) -> tuple[float, int, list[int]]:
    """The 4 stages chained, on ``copies`` x ``recs``. Records are produced inside the
    pipeline from a module global (the in-process runner shares this process), so the
    timing is not dominated by ``beam.Create`` pickling megabytes of input."""
    import apache_beam as beam

    from pipelines.stages.registry import parse_stages
    from pipelines.stages.base import StageContext
    from pipelines.stages.registry import load_stages
    from pipelines.stages.testing import collect, collected, local_pipeline

    params = parse_stages([{"stage": s} for s in ("gopher_quality", "gopher_repetition",
                                                  "c4_filter", "fineweb_filter")])
    registry = load_stages()
    p = local_pipeline()
    _CORPUS[:] = recs
    pc = (p | "Copies" >> beam.Create(list(range(copies)))
          | "Reshuffle" >> beam.Reshuffle()
          | "Expand" >> beam.FlatMap(_expand_copy))
    n_total = len(recs) * copies
    keys = []
    for i, sp in enumerate(params):
        stage = registry[sp.stage](sp, StageContext(sp.stage, i, "/tmp/bench", {}))
        res = pc | sp.stage >> _stage_transform(stage)
        pc = res["kept"]
        keys.append(collect(res["removed"] | f"{sp.stage}Count" >> beam.combiners.Count.Globally(),
                            f"rm{i}"))
    kept_key = collect(pc | "KeptCount" >> beam.combiners.Count.Globally(), "kept")
    t0 = time.perf_counter()
    p.run().wait_until_finish()
    dt = time.perf_counter() - t0
    removed = [collected(k)[0] for k in keys]
    kept = collected(kept_key)[0]
    assert kept + sum(removed) == n_total, (kept, removed)
    return n_total / dt, kept, removed


def _stage_transform(stage):
    import apache_beam as beam

    class StageT(beam.PTransform):
        def expand(self, pc):
            r = stage.expand(pc)
            return {"kept": r.kept, "removed": r.removed, "dead": r.dead,
                    **{f"stat:{k}": v for k, v in r.stats.items()}}

    return StageT()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--beam", action="store_true", help="also time the 4 stages in Beam")
    ap.add_argument("--beam-copies", type=int, default=4,
                    help="Beam input = this many copies of the corpus (new ids), to amortise "
                    "pipeline start-up")
    a = ap.parse_args()
    recs = corpus(a.docs)
    n_chars = sum(len(r["text"]) for r in recs)
    print(f"corpus: {len(recs)} docs, {n_chars / len(recs):.0f} chars/doc mean; "
          f"python {platform.python_version()}, {os.cpu_count()} cpus visible")
    rows = []
    base, _ = time_scorers([LengthFilter()], recs, a.repeat)
    rows.append(("baseline LengthFilter", base))
    suite = [GopherQuality(), GopherRepetition(), C4Filter(), FineWebFilter()]
    for s in suite:
        rows.append((type(s).__name__, time_scorers([s], recs, a.repeat)[0]))
    full, _ = time_scorers(suite, recs, a.repeat)
    rows.append(("full suite (4 scorers)", full))
    print(f"{'scorer':28s} {'docs/s/core':>12s} {'x baseline cost':>16s}")
    for name, dps in rows:
        print(f"{name:28s} {dps:12,.0f} {base / dps:16.1f}")
    if a.beam:
        dps, kept, removed = time_beam(recs, a.beam_copies)
        n_beam = len(recs) * a.beam_copies
        print(f"Beam in-process runner, 1 worker, 4 stages chained, {n_beam} docs: "
              f"{dps:,.0f} docs/s "
              f"(kept {kept}, removed per stage {removed}; {full / dps:.1f}x slower than the "
              "plain-Python suite)")


if __name__ == "__main__":
    main()
