"""Per-worker memory and shuffle bytes of the dedup steps, from the formulas in docs/scale.md.

    python bench/scale_model.py                       # the docs/scale.md table
    python bench/scale_model.py --docs 1e9 --workers 1000 --pairs-per-doc 25
    python bench/scale_model.py --sizing              # the docs/cluster.md sizing table
    python bench/scale_model.py --lshbloom            # + mode: lshbloom's index steps

Evaluates each step's formula (no data is read) for documents N, workers W, bands b,
text per document T, candidate pairs per document pi, clustered fraction c. The local-runner
column of minhash_dedup is ``minhash_passes.estimate_memory`` (checked against measured peaks
in tests/test_minhash_dedup_stage.py).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.core.spill import INLINE_BYTES  # noqa: E402
from pipelines.stages.dedup.minhash_passes import (  # noqa: E402
    ENTRY_BYTES, NODE_BYTES, PAIR_BYTES, SPILL_BYTES, candidate_shards)

GB = 1e9


def steps(n: float, w: int, b: int, t: float, pi: float, c: float,
          index_fp_rate: float | None = None) -> list[tuple]:
    """(step, per-worker memory bytes, shuffle bytes in total, workers that run it).
    ``index_fp_rate``: add ``mode: lshbloom``'s index steps, the index sized for ``n``
    documents (``expected_docs`` = the corpus) at that false-positive rate per band."""
    s = candidate_shards(int(n), b)
    files = max(1.0, n * t / SPILL_BYTES)
    pairs = pi * n
    per_file_docs = SPILL_BYTES / t
    fp = (8 / 6) * SPILL_BYTES  # one candidate file at most (exact verification)
    exact_buckets = min(65536, max(64, math.ceil(n / 200_000)))
    ref = 60  # one (path, start, stop) slice reference through a shuffle

    def moved(total: float, slices: float) -> float:
        """Shuffle bytes of ``total`` bytes cut into ``slices`` slices: a slice under
        INLINE_BYTES travels itself, a larger one as a reference to its file."""
        return total if total / max(1.0, slices) < INLINE_BYTES else ref * slices

    return [
        ("exact_dedup: keys per bucket", 500 * n / exact_buckets, 60 * n, min(w, exact_buckets)),
        # band entries (22*b*N): per (spill file, shard) slice, inline or a file reference
        ("minhash 1 SketchSpill (per spill file)",
         SPILL_BYTES + 2 * ENTRY_BYTES * b * per_file_docs + 512 * 4 * 128,
         moved(ENTRY_BYTES * b * n, files * s), w),
        # bucket pairs (pi per document) are oriented and made distinct per shard; the
        # distinct pairs (24 B) and needed positions (16 B) per (shard, spill file) slice
        ("minhash 2 ShardCandidates (per shard)",
         4 * ENTRY_BYTES * b * n / s + PAIR_BYTES * pairs / s,
         moved(40 * pairs, min(files * s, pairs)), min(w, s)),
        ("minhash 3 CandidateSets (per spill file)", SPILL_BYTES + fp, 0, w),
        # out: spanning-forest edges (32 B) and member positions (16 B) per document mention
        ("minhash 4 VerifyPairs (per file group)", 2 * fp + 24 * pairs / files,
         48 * min(pairs, 10 * c * n), w),
        ("minhash 4b MemberAttrs (per spill file)", fp + NODE_BYTES * c * per_file_docs,
         100 * c * n, w),
        ("minhash 5 Components (one worker)", NODE_BYTES * c * n, 50 * c * n, 1),
        ("minhash 6 ApplyFile (per spill file)", SPILL_BYTES + 50 * c * per_file_docs, 0, w),
        ("spill-file deletion (one worker)", 200 * files, 200 * files, 1),
    ] + ([] if index_fp_rate is None else _index_steps(n, w, b, files, index_fp_rate))


def _index_steps(n: float, w: int, b: int, files: float, p: float) -> list[tuple]:
    """``mode: lshbloom``: the index (``b`` Bloom filters for ``n`` documents) handled one band
    per worker: ``BandIndex`` holds one band (of ``index_in``, then of the new index) and reads
    the band's keys (8 bytes, + 4 for the position, per document); ``SaveIndex`` writes band
    after band (one band and ``index_in``'s)."""
    from filters.lsh import bloom_size

    band = bloom_size(int(n), p)[0] / 8
    return [
        ("lshbloom BandIndex (per band)", band + 12 * n / files, 12 * b * n, min(w, b)),
        ("lshbloom SaveIndex (one worker)", 2 * band, 0, 1),
    ]


def _size(x: float) -> str:
    if x < 0.1 * GB:
        return f"{x / 1e6:.2g} MB"
    if x >= 1000 * GB:
        return f"{x / 1e12:.2g} TB"
    return f"{x / GB:.2g} GB" if x < 10 * GB else f"{x / GB:,.0f} GB"


def _count(n: float) -> str:
    for unit, v in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= v:
            return f"{n / v:g}{unit}"
    return f"{n:g}"


def sizing_table(docs: list[float], b: int, t: float, pi: float, c: float) -> str:
    """docs/cluster.md's sizing table: per corpus size, the shard counts, the largest
    per-worker working set of the parallel steps, the one-worker Components state and the total
    shuffle of each dedup stage (shuffle per worker: divide by the workers)."""
    rows = ["| documents | spill files | `exact_dedup` buckets | `exact_dedup` memory per "
            "worker | `exact_dedup` shuffle | `minhash_dedup` shards | `minhash_dedup` memory "
            "per worker (steps 1-4, 6) | `Components` (one worker) | `minhash_dedup` shuffle |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n in docs:
        found = steps(n, 1, b, t, pi, c)
        exact = found[0]
        minhash = [s for s in found[1:] if s[0].startswith("minhash")]
        parallel = max(m for name, m, _, _ in minhash if "Components" not in name)
        components = next(m for name, m, _, _ in minhash if "Components" in name)
        files = max(1, math.ceil(n * t / SPILL_BYTES))
        buckets = min(65536, max(64, math.ceil(n / 200_000)))
        rows.append(f"| {_count(n)} | {files:,} | {buckets:,} | {_size(exact[1])} | "
                    f"{_size(exact[2])} | {candidate_shards(int(n), b):,} | {_size(parallel)} | "
                    f"{_size(components)} | {_size(sum(s[2] for s in found[1:]))} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=float, nargs="+", default=[1e6, 1e8, 1e9])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 100, 1000])
    ap.add_argument("--bands", type=int, default=14)
    ap.add_argument("--text-bytes", type=float, default=2750, help="text per document")
    ap.add_argument("--pairs-per-doc", type=float, default=25.0)
    ap.add_argument("--clustered", type=float, default=0.2, help="fraction of docs in clusters")
    ap.add_argument("--lshbloom", action="store_true",
                    help="add mode: lshbloom's index steps (expected_docs = documents)")
    ap.add_argument("--index-fp-rate", type=float, default=1e-6)
    ap.add_argument("--sizing", action="store_true",
                    help="one row per corpus size: shards, memory per worker and shuffle per "
                    "dedup stage (docs/cluster.md)")
    a = ap.parse_args()
    if a.sizing:
        print(sizing_table(a.docs, a.bands, a.text_bytes, a.pairs_per_doc, a.clustered))
        return
    print("| documents | workers | step | memory per worker | shuffle total | shuffle per worker |")
    print("|---|---:|---|---:|---:|---:|")
    for n in a.docs:
        for w in a.workers:
            for name, mem, shuf, active in steps(n, w, a.bands, a.text_bytes, a.pairs_per_doc,
                                                  a.clustered,
                                                  a.index_fp_rate if a.lshbloom else None):
                print(f"| {n:.0e} | {w} | {name} | {mem / GB:.3g} GB | {shuf / GB:.3g} GB | "
                      f"{shuf / max(1, active) / GB:.3g} GB |")


if __name__ == "__main__":
    main()
