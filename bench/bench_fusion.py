"""Per-record stages one by one vs fused into one batched ParDo (``pipelines.stages.record_stage.FusedRecordStages``).

Records (the demo corpus' well-formed documents, ``--copies`` times with new ids) are produced
inside the pipeline; both variants run the same RecordStages (default: normalize,
length_filter) on the in-process runner with 1 worker and count what survives; runs alternate
A B A B and the best of each is compared. Outputs are checked equal.

    python bench/bench_fusion.py --copies 8 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

_CORPUS: list[dict] = []


def _expand_copy(c: int):
    return [{**r, "id": f"{r['id']}-{c}"} for r in _CORPUS]


def run(stage_specs: list[dict], copies: int, fused: bool) -> tuple[float, list]:
    import apache_beam as beam

    from pipelines.stages.registry import parse_stages
    from pipelines.stages.record_stage import FusedRecordStages
    from pipelines.stages.base import StageContext
    from pipelines.stages.registry import load_stages
    from pipelines.stages.testing import collect, collected, local_pipeline

    registry = load_stages()
    stages = [registry[sp.stage](sp, StageContext(sp.stage, i, "/tmp/bench", {}))
              for i, sp in enumerate(parse_stages(stage_specs))]
    p = local_pipeline()
    pc = (p | "Copies" >> beam.Create(list(range(copies))) | "Reshuffle" >> beam.Reshuffle()
          | "Expand" >> beam.FlatMap(_expand_copy))
    removed = []
    if fused:
        outs = pc | "Fused" >> FusedRecordStages(stages)
        kept = outs[-1]["kept"]
        removed = [o["removed"] for o in outs]
    else:
        from bench_heuristics import _stage_transform

        for st in stages:
            res = pc | st.label >> _stage_transform(st)
            pc = res["kept"]
            removed.append(res["removed"])
        kept = pc
    keys = [collect(kept | "CountKept" >> beam.combiners.Count.Globally(), "kept")]
    keys += [collect(r | f"CountRemoved{i}" >> beam.combiners.Count.Globally(), f"rm{i}")
             for i, r in enumerate(removed)]
    t0 = time.perf_counter()
    p.run().wait_until_finish()
    return time.perf_counter() - t0, [collected(k) for k in keys]


def main() -> None:
    from bench_heuristics import corpus

    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=3000)
    ap.add_argument("--copies", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--stages", nargs="+", default=["normalize", "length_filter"])
    a = ap.parse_args()
    _CORPUS[:] = corpus(a.docs)
    specs = [{"stage": s, **({"min_words": 5} if s == "length_filter" else {})} for s in a.stages]
    n = len(_CORPUS) * a.copies
    print(f"{n} records, stages {a.stages}; load {os.getloadavg()[0]:.1f}", flush=True)
    times = {False: [], True: []}
    outputs = {}
    for r in range(a.rounds):
        for fused in (False, True):
            dt, out = run(specs, a.copies, fused)
            times[fused].append(dt)
            outputs.setdefault(fused, out)
            assert out == outputs[fused]
            print(f"  round {r + 1} {'fused   ' if fused else 'separate'}: {dt:6.2f} s "
                  f"{n / dt:8.0f} docs/s (kept/removed counts {out}; load "
                  f"{os.getloadavg()[0]:.1f})", flush=True)
    assert outputs[True] == outputs[False], outputs
    s, f = min(times[False]), min(times[True])
    print(f"fused / separate throughput: {s / f:.2f}x (best of {a.rounds}); pairs "
          + ", ".join(f"{x / y:.2f}x" for x, y in zip(times[False], times[True])))


if __name__ == "__main__":
    main()
