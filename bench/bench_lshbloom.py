"""LSHBloom (filters.lsh.BloomIndex) vs datasketch MinHashLSH: memory, time, recall.

Data: 300-word documents of Python's docs/docstrings plus edited copies (bench/eval_near_dup.py
edits), shuffled. Protocol for both indexes, in the same order: for each document, ask "is
any earlier document a candidate?" (MinHashLSH.query non-empty / BloomIndex.query), then
insert it. Both use the same (b, r) = optimal for threshold 0.8, 128 permutations and the
stage's default weights (fp 0.1, fn 0.9: b = 14, r = 9).

* run A, same signatures: MinHashLSH gets datasketch MinHash objects carrying our signatures,
  so the only difference is hash tables vs Bloom filters (recall must be 1: no false negatives).
* run B, independent hashing: MinHashLSH with datasketch's own MinHash (SHA-1, its
  permutations), LSHBloom with ours; recall of the duplicates MinHashLSH finds. Control:
  MinHashLSH with datasketch seed 2 against seed 1 -- independent hash functions alone already
  disagree on pairs near the threshold, whatever the index.

Memory: tracemalloc peak while building each index (Python allocations, incl. numpy buffers),
in a second run; times come from an untraced run.

    python bench/bench_lshbloom.py [--base 2000] [--copies 4] [--fp 1e-6] [--fn-weight 0.9]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_near_dup import real_docs, realistic_edit

from filters.lsh import BloomIndex, band_hashes, optimal_params
from filters.minhash import MinHashConfig, MinHasher, normalize_words


def measure(fn):
    """(result, seconds without tracing, tracemalloc peak bytes of a second, traced run)."""
    t0 = time.perf_counter()
    out = fn()
    secs = time.perf_counter() - t0
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, secs, peak


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--base", type=int, default=2000, help="base documents (words 300, stride 150)")
    ap.add_argument("--copies", type=int, default=4, help="edited copies per base doc")
    ap.add_argument("--fp", type=float, default=1e-6, help="per-band Bloom false-positive rate")
    ap.add_argument(
        "--fn-weight", type=float, default=0.9, help="(b, r) choice (stage default 0.9)"
    )
    args = ap.parse_args()
    from datasketch import MinHash, MinHashLSH

    rng = random.Random(0)
    base = real_docs(300)
    vocab = " ".join(base[:200]).split()
    docs = []
    for i in range(args.base):
        d = base[i % len(base)] + f" doc{i}"
        docs.append(d)
        for _ in range(args.copies):
            docs.append(realistic_edit(d, rng.choice([0.01, 0.03, 0.05, 0.1, 0.3]), rng, vocab))
    rng.shuffle(docs)
    n = len(docs)
    cfg = MinHashConfig()
    b, r = optimal_params(0.8, cfg.num_perm, 1 - args.fn_weight, args.fn_weight)
    sigs = MinHasher(cfg).signatures(docs)
    keys = band_hashes(sigs, b, r)

    def run_lsh(minhashes):
        lsh = MinHashLSH(num_perm=cfg.num_perm, params=(b, r))
        dup = np.zeros(n, dtype=bool)
        for i, m in enumerate(minhashes):
            dup[i] = bool(lsh.query(m))
            lsh.insert(i, m, check_duplication=False)
        return dup, lsh

    def run_bloom(chunk=1):
        idx = BloomIndex.create(cfg, b, r, n, args.fp)
        dup = np.zeros(n, dtype=bool)
        for i in range(n):  # strictly sequential, like the hash-table run
            dup[i] = idx.query(keys[i : i + 1])[0]
            idx.insert(keys[i : i + 1])
        return dup, idx

    ours_mh = [
        MinHash(num_perm=cfg.num_perm, hashvalues=s.astype(np.uint64), scheme="legacy")
        for s in sigs
    ]
    (dup_a, _), t_lsh_a, mem_lsh_a = measure(lambda: run_lsh(ours_mh))
    (dup_bloom, idx), t_bloom, mem_bloom = measure(run_bloom)

    def ds_minhash(d, seed=1):
        t = normalize_words(d)
        m = MinHash(num_perm=cfg.num_perm, seed=seed)
        m.update_batch([" ".join(t[i : i + 5]).encode() for i in range(len(t) - 4)])
        return m

    ds_mh = [ds_minhash(d) for d in docs]
    (dup_b, _), t_lsh_b, mem_lsh_b = measure(lambda: run_lsh(ds_mh))
    # control: MinHashLSH against itself with another datasketch seed = the hashing noise floor
    (dup_c, _), _, _ = measure(lambda: run_lsh([ds_minhash(d, seed=2) for d in docs]))

    def batched():
        idx = BloomIndex.create(cfg, b, r, n, args.fp)
        t0 = time.perf_counter()
        for i in range(0, n, 1000):
            idx.insert(keys[i : i + 1000])
        t1 = time.perf_counter()
        idx.query(keys)
        return t1 - t0, time.perf_counter() - t1

    t_ins, t_q = batched()

    def recall(ref, got):
        return float((ref & got).sum() / max(1, ref.sum()))

    res = {
        "docs": n,
        "bands_rows": [b, r],
        "bloom_fp_per_band": args.fp,
        "minhashlsh_seconds": round(t_lsh_a, 3),
        "lshbloom_seconds": round(t_bloom, 3),
        "minhashlsh_peak_bytes": mem_lsh_a,
        "lshbloom_peak_bytes": mem_bloom,
        "lshbloom_index_bytes": idx.nbytes,
        "memory_ratio_peak": round(mem_bloom / mem_lsh_a, 4),
        "memory_ratio_index": round(idx.nbytes / mem_lsh_a, 4),
        "A_same_signatures": {
            "minhashlsh_dups": int(dup_a.sum()),
            "lshbloom_dups": int(dup_bloom.sum()),
            "recall": recall(dup_a, dup_bloom),
            "extra_from_bloom_fp": int((dup_bloom & ~dup_a).sum()),
        },
        "lshbloom_batched_insert_docs_per_s": round(n / t_ins),
        "lshbloom_batched_query_docs_per_s": round(n / t_q),
        "B_datasketch_hashing": {
            "minhashlsh_dups": int(dup_b.sum()),
            "recall": round(recall(dup_b, dup_bloom), 4),
            "control_minhashlsh_seed2_recall": round(recall(dup_b, dup_c), 4),
            "minhashlsh_seconds": round(t_lsh_b, 3),
            "minhashlsh_peak_bytes": mem_lsh_b,
        },
    }
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
