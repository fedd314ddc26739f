"""MinHash signature throughput and estimate quality: ours vs datasketch vs rensa.

Contenders, same documents, same shingles (word 5-grams after ``filters.minhash``
normalization), 128 permutations, one process, one thread, interleaved A B C A B C in one run:

* ``ours``: ``filters.minhash.MinHasher.signatures`` with the default ``permutations: rensa``
  (numpy tokens and shingle hashes, rensa's ``RMinHash`` permutations over them);
* ``ours_numpy_perms``: the same with ``permutations: numpy`` (the signatures before rensa);
* ``ours_shingles``: the shingle-hash part alone (where the time goes);
* ``rensa_strings``: rensa ``RMinHash.digest_matrix_from_token_sets`` on shingle strings;
* ``ds_end_to_end``: datasketch ``MinHash.update_batch`` on shingle strings built from text;
* ``ds_update_only``: datasketch ``update_batch`` on pre-built shingle strings.

rensa is optional (a bench-only venv: ``pip install rensa datasketch numpy scipy``); its
contenders are skipped when it is not importable. Per-core throughput = docs / CPU seconds of
this process (robust on a shared machine); best of ``--repeats`` rounds; wall rates too.

Quality (``--quality-pairs``): pairs of planted near/exact duplicates from a
``bench/make_corpus.py`` corpus (``--corpus``, its ``.truth.jsonl``) plus random pairs; error of
each method's Jaccard estimate against the exact Jaccard of the shingle-hash sets.

    python bench/bench_minhash.py --corpus /work/corpora/20k.jsonl --docs 4096 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("RAYON_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np

from filters.minhash import MinHashConfig, MinHasher, exact_jaccard, normalize_words

try:
    import rensa
except ImportError:  # pragma: no cover - optional peer
    rensa = None


def timed(fn):
    """(wall seconds, CPU seconds of this process) for one call."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def load_docs(args) -> list[str]:
    if args.corpus:
        out = []
        with open(args.corpus, encoding="utf-8") as f:
            for line in f:
                out.append(json.loads(line)["text"])
                if len(out) >= args.docs:
                    break
        return out
    from eval_near_dup import real_docs

    base = real_docs(300)
    return [base[i % len(base)] + f" {i}" for i in range(args.docs)]


def shingle_strings(d: str) -> list[bytes]:
    t = normalize_words(d)
    return [" ".join(t[i : i + 5]).encode() for i in range(max(1, len(t) - 4))]


def rensa_sigs(mh: MinHasher, texts: list[str], num_perm: int, seed: int) -> np.ndarray:
    h, counts = mh._shingles_concat(texts)
    offs = np.concatenate(([0], np.cumsum(counts))).astype(np.uint64)
    m = rensa.RMinHash.digest_matrix_from_flat_token_hashes(h, offs, num_perm, seed)
    return np.asarray(m.to_rows(), dtype=np.uint32)


def throughput(args, docs) -> dict:
    from datasketch import MinHash

    mh = MinHasher(MinHashConfig(num_perm=args.num_perm))
    mh_np = MinHasher(MinHashConfig(num_perm=args.num_perm, permutations="numpy"))
    B, P = args.batch, args.num_perm

    def ours():
        for i in range(0, len(docs), B):
            mh.signatures(docs[i : i + B])

    def ours_numpy():
        for i in range(0, len(docs), B):
            mh_np.signatures(docs[i : i + B])

    def ours_shingles():
        for i in range(0, len(docs), B):
            mh._shingles_concat(docs[i : i + B])

    def rensa_strings():
        for i in range(0, len(docs), B):
            rensa.RMinHash.digest_matrix_from_token_sets(
                [[s.decode() for s in shingle_strings(d)] for d in docs[i : i + B]], P, 1)

    def ds_end_to_end():
        for d in docs:
            m = MinHash(num_perm=P)
            m.update_batch(shingle_strings(d))

    pre = [shingle_strings(d) for d in docs]

    def ds_update_only():
        for s in pre:
            m = MinHash(num_perm=P)
            m.update_batch(s)

    names = {"ours": ours, "ours_numpy_perms": ours_numpy, "ours_shingles": ours_shingles}
    if rensa is not None:
        names.update(rensa_strings=rensa_strings)
    names.update(ds_end_to_end=ds_end_to_end, ds_update_only=ds_update_only)
    best = {k: [float("inf"), float("inf")] for k in names}
    for _ in range(args.repeats):
        for k, fn in names.items():
            w, c = timed(fn)
            best[k] = [min(best[k][0], w), min(best[k][1], c)]
    n = len(docs)
    res = {
        "docs": n,
        "words_per_doc": round(sum(len(d.split()) for d in docs) / n),
        "cpu_docs_per_s": {k: round(n / best[k][1]) for k in names},
        "wall_docs_per_s": {k: round(n / best[k][0]) for k in names},
    }
    base = best["ds_end_to_end"][1]
    res["speedup_cpu_vs_datasketch_end_to_end"] = {
        k: round(base / best[k][1], 2) for k in names if not k.startswith("ds_")}
    res["speedup_cpu_vs_datasketch_update_only"] = {
        k: round(best["ds_update_only"][1] / best[k][1], 2)
        for k in names if not k.startswith("ds_")}
    return res


def quality(args, n_pairs: int) -> dict:
    """Estimate error vs exact Jaccard on planted duplicate pairs and random pairs."""
    from datasketch import MinHash

    truth = Path(str(args.corpus).replace(".jsonl", ".truth.jsonl"))
    texts, parent = {}, {}
    with open(args.corpus, encoding="utf-8") as f, open(truth) as t:
        for line, tl in zip(f, t):
            r, tr = json.loads(line), json.loads(tl)
            texts[r["id"]] = r["text"]
            if tr["parent"]:
                parent[r["id"]] = tr["parent"]
    rng = random.Random(0)
    kids = sorted(parent)
    rng.shuffle(kids)
    ids = sorted(texts)
    pairs = [(k, parent[k]) for k in kids[: n_pairs // 2]]
    pairs += [tuple(rng.sample(ids, 2)) for _ in range(n_pairs - len(pairs))]
    need = sorted({x for p in pairs for x in p})
    P = args.num_perm
    mh = MinHasher(MinHashConfig(num_perm=P, permutations="numpy"))
    sets, ours, ren = {}, {}, {}
    for s in range(0, len(need), 512):
        chunk = need[s : s + 512]
        tx = [texts[x] for x in chunk]
        for x, sh, sig in zip(chunk, mh.shingle_sets(tx), mh.signatures(tx)):
            sets[x], ours[x] = sh, sig
        if rensa is not None:
            for x, sig in zip(chunk, rensa_sigs(mh, tx, P, 1)):
                ren[x] = sig
    ds = {}
    for x in need:
        m = MinHash(num_perm=P)
        m.update_batch(shingle_strings(texts[x]))
        ds[x] = m
    exact = np.array([exact_jaccard(sets[a], sets[b]) for a, b in pairs])
    est = {
        "ours_numpy_perms": np.array([np.mean(ours[a] == ours[b]) for a, b in pairs]),
        "datasketch": np.array([ds[a].jaccard(ds[b]) for a, b in pairs]),
    }
    if rensa is not None:
        est["ours_rensa_perms"] = np.array([np.mean(ren[a] == ren[b]) for a, b in pairs])
    out = {"pairs": len(pairs), "pairs_with_exact_j_ge_0.5": int((exact >= 0.5).sum()),
           "mean_exact_j": round(float(exact.mean()), 4)}
    near = exact >= 0.5
    for k, e in est.items():
        err = e - exact
        out[k] = {
            "rmse": round(float(np.sqrt(np.mean(err**2))), 4),
            "bias": round(float(err.mean()), 4),
            "rmse_j_ge_0.5": round(float(np.sqrt(np.mean(err[near] ** 2))), 4),
            "decisions_differing_at_0.8_vs_exact": int(((e >= 0.8) != (exact >= 0.8)).sum()),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--corpus", type=Path, default=None, help="JSONL from bench/make_corpus.py")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quality-pairs", type=int, default=0)
    args = ap.parse_args()
    docs = load_docs(args)
    res = throughput(args, docs)
    if args.quality_pairs and args.corpus:
        res["quality"] = quality(args, args.quality_pairs)
    import datasketch

    res.update(python=platform.python_version(), numpy=np.__version__,
               datasketch=datasketch.__version__,
               rensa=getattr(rensa, "__version__", "installed" if rensa else None),
               load_avg=os.getloadavg(), cpus=os.cpu_count())
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
