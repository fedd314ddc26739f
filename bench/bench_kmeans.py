"""faiss spherical k-means time for 100k x 384 unit vectors (filters/kmeans.py).

Data: a seeded mixture of 1000 random directions plus noise, normalized (the shape of sentence
embeddings: many loose topical groups). Times ``fit_kmeans`` (k = default_k(n) unless --k) and
``assign`` for all points, then ``semdedup_block`` on one block of ``--block`` vectors
(the default ``max_block_size`` of the semdedup stage) with the default 9-value eps curve.

    python bench/bench_kmeans.py --n 100000 --dim 384
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--k", type=int, default=None)
    ap.add_argument("--niter", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--block", type=int, default=5000)
    args = ap.parse_args()

    import faiss

    from filters.kmeans import assign, default_k, fit_kmeans, normalize_rows
    from filters.semdedup import semdedup_block

    rng = np.random.default_rng(args.seed)
    centers = normalize_rows(rng.standard_normal((1000, args.dim)))
    x = centers[rng.integers(0, 1000, args.n)] + 0.06 * rng.standard_normal((args.n, args.dim))
    x = normalize_rows(x.astype(np.float32))
    k = args.k or default_k(args.n)
    t0 = time.perf_counter()
    c = fit_kmeans(x, k, niter=args.niter, seed=1234)
    fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    ids, dist = assign(x, c)
    asg = time.perf_counter() - t0
    print(f"n={args.n} dim={args.dim} k={len(c)} niter={args.niter} "
          f"faiss={faiss.__version__} omp_threads={faiss.omp_get_max_threads()}")
    print(f"fit_kmeans: {fit:.2f} s ({fit / args.niter * 1000:.0f} ms/iteration)")
    print(f"assign    : {asg:.2f} s ({args.n / asg:,.0f} vectors/s); mean distance "
          f"{float(dist.mean()):.3f}, clusters used {len(np.unique(ids))}")

    block = x[: args.block]
    t0 = time.perf_counter()
    res = semdedup_block(block, 0.05)
    sd = time.perf_counter() - t0
    print(f"semdedup_block: {sd:.2f} s for one block of {len(block)} (all pairs, "
          f"{len(res.removed_by_eps)} eps values); removed at eps=0.05: "
          f"{res.removed_by_eps[0.05]}")


if __name__ == "__main__":
    main()
