"""MinHash signature throughput: filters.minhash.MinHasher vs datasketch MinHash.update_batch.

Same documents (300-word documents of Python's own docs/docstrings), same shingles (word
5-grams after filters.minhash normalization), 128 permutations, one process, one thread
(docs/s per core), measured in the same run, interleaved. datasketch is timed twice: end to end
(normalize + build shingle strings + update_batch) and update_batch alone on pre-built shingles.
Per-core throughput is docs / CPU seconds of the process (robust on a shared machine); wall-clock
rates are reported too.

    python bench/bench_minhash.py [--docs 2000] [--batch 512] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from eval_near_dup import real_docs

from filters.minhash import MinHashConfig, MinHasher, normalize_words


def timed(fn):
    """(wall seconds, CPU seconds of this process) for one call."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from datasketch import MinHash

    base = real_docs(300)
    docs = [base[i % len(base)] + f" {i}" for i in range(args.docs)]  # distinct docs
    mh = MinHasher(MinHashConfig(num_perm=args.num_perm))

    def ours():
        for i in range(0, len(docs), args.batch):
            mh.signatures(docs[i : i + args.batch])

    def shingles(d):
        t = normalize_words(d)
        return [" ".join(t[i : i + 5]).encode() for i in range(len(t) - 4)]

    def ds_end_to_end():
        for d in docs:
            m = MinHash(num_perm=args.num_perm)
            m.update_batch(shingles(d))

    pre = [shingles(d) for d in docs]

    def ds_update_only():
        for s in pre:
            m = MinHash(num_perm=args.num_perm)
            m.update_batch(s)

    # interleave the contenders so that load from other processes hits them alike; keep the
    # best round of each, both in wall time and in CPU time (= per-core throughput)
    names = {"ours": ours, "ds_end_to_end": ds_end_to_end, "ds_update_only": ds_update_only}
    best = {k: [float("inf"), float("inf")] for k in names}
    for _ in range(args.repeats):
        for k, fn in names.items():
            w, c = timed(fn)
            best[k] = [min(best[k][0], w), min(best[k][1], c)]
    n = len(docs)

    def rate(k, i):
        return round(n / best[k][i])

    res = {
        "docs": n,
        "words_per_doc": 300,
        "num_perm": args.num_perm,
        "batch": args.batch,
        "cpu_docs_per_s": {k: rate(k, 1) for k in names},
        "wall_docs_per_s": {k: rate(k, 0) for k in names},
        "speedup_cpu_vs_end_to_end": round(best["ds_end_to_end"][1] / best["ours"][1], 2),
        "speedup_cpu_vs_update_batch_only": round(best["ds_update_only"][1] / best["ours"][1], 2),
        "speedup_wall_vs_end_to_end": round(best["ds_end_to_end"][0] / best["ours"][0], 2),
        "speedup_wall_vs_update_batch_only": round(best["ds_update_only"][0] / best["ours"][0], 2),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cpus": os.cpu_count(),
    }
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
