"""Build throughput (docs/s) on the DirectRunner.

The corpus is the demo corpus replicated ``--copies`` times (each copy a separate set of files,
so the dedup stages have real work). Two configs:

* ``core`` (normalize, length_filter, exact_dedup) against a no-Beam baseline that does the same
  per-record work (JSON parse, normalize, length filter, content hash, in-memory dedup) in one
  plain Python process: the ratio is what the local Beam runner, the accounting and the
  deterministic sinks cost;
* ``demo`` (configs/demo.yaml: + language ID, MinHash dedup, Gopher suites): docs/s and the
  per-stage runtime from the runner's per-transform timings.

    python bench/bench_build.py --copies 20
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from filters.length import LengthFilter  # noqa: E402
from filters.normalize import Normalizer  # noqa: E402
from filters.text_hash import content_key  # noqa: E402
from pipelines.build.config import build_config_from_dict, load_build_config  # noqa: E402
from pipelines.io.demo_corpus import write_corpus  # noqa: E402
from pipelines.build.run import run_build  # noqa: E402
from pipelines.io.framing import iter_lines  # noqa: E402


def baseline(files: list[Path]) -> tuple[int, float]:
    t0 = time.perf_counter()
    norm, length = Normalizer(), LengthFilter(min_words=5, max_chars=100_000)
    seen: set[str] = set()
    n = 0
    for f in files:
        for line in iter_lines(str(f)):
            if not line.strip():
                continue
            n += 1
            try:
                obj = json.loads(line.decode("utf-8"))
                text = obj["text"]
                if not isinstance(text, str):
                    continue
            except (ValueError, KeyError, TypeError):
                continue
            d = norm.process({"text": text})
            if d.drop:
                continue
            r = {"text": d.columns["text"]}
            if length.process(r).drop:
                continue
            seen.add(content_key(r["text"]))
    return n, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=10)
    ap.add_argument("--docs", type=int, default=3000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="datamill-bench-"))
    try:
        corpus = work / "corpus"
        one = work / "one"
        write_corpus(one, args.docs)
        corpus.mkdir()
        for c in range(args.copies):
            for f in sorted(one.glob("*.jsonl*")):
                shutil.copy(f, corpus / f"c{c:03d}-{f.name}")
        files = sorted(corpus.glob("*.jsonl*"))
        base_cfg = load_build_config(Path(__file__).resolve().parents[1] / "configs/demo.yaml")
        demo = base_cfg.model_dump(mode="json")
        demo["sources"] = [{"name": "pydocs", "type": "jsonl", "path": str(corpus / "*.jsonl*")}]
        for s in demo["stages"]:
            s["checkpoint"] = False
        core = dict(demo, stages=[s for s in demo["stages"]
                                  if s["stage"] in ("normalize", "length_filter", "exact_dedup")])
        n, t_base = baseline(files)
        print(f"input lines: {n:,} in {len(files)} files; cores: {os.cpu_count()}")
        print(f"baseline (plain Python, 1 process, core work): {n / t_base:,.0f} docs/s "
              f"({t_base:.2f} s)")
        for name, data in (("core", core), ("demo", demo)):
            for workers, mode in ((1, "in_memory"), (2, "multi_processing")):
                data["output"]["dir"] = str(work / f"out-{name}-{workers}")
                data["runner"] = {"direct_num_workers": workers, "direct_running_mode": mode}
                t0 = time.perf_counter()
                res = run_build(build_config_from_dict(data), force=True)
                wall = time.perf_counter() - t0
                c = res.stats["counts"]
                ratio = f" = {t_base / wall:.2f}x baseline" if name == "core" else ""
                print(f"[{name}] DirectRunner {workers} worker(s) {mode}: "
                      f"{c['input'] / wall:,.0f} docs/s ({wall:.2f} s incl. planning, stats, "
                      f"report; pipeline {res.stats['wall_seconds']:.2f} s){ratio}; "
                      f"kept {c['kept']:,}")
                rt = res.stats.get("runtime_ms") or {}
                print("    runtime per stage (s, summed over workers): " + ", ".join(
                    f"{k} {v / 1000:.1f}" for k, v in sorted(rt.items(), key=lambda kv: -kv[1])))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
