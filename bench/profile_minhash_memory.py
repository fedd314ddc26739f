"""Where near-dup memory goes: the minhash_dedup steps run in one process, outside Beam, on a
real corpus, with the Python heap peak of each step (tracemalloc also sees numpy buffers) and
the process RSS after it. Beam adds its own copies on top (encoded side inputs, held
Flattens); this shows what the steps themselves need.

    python bench/profile_minhash_memory.py --corpus /work/corpora/100k.jsonl [--docs N]
"""

from __future__ import annotations

import argparse
import json
import pickle
import resource
import time
import tracemalloc


def rss_gb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1e6
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--docs", type=int, default=0, help="first N documents (0: all)")
    ap.add_argument("--batch", type=int, default=512)
    args = ap.parse_args()

    from filters.lsh import optimal_params
    from filters.minhash import MinHashConfig
    from pipelines import minhash_beam as mb

    cfg = MinHashConfig(128, 5, False, 1, "rensa")
    b, r = optimal_params(0.8, 128, 0.1, 0.9)
    steps = []

    def step(name, fn):
        tracemalloc.start()
        t0 = time.perf_counter()
        out = fn()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        steps.append({"step": name, "s": round(time.perf_counter() - t0, 1),
                      "heap_peak_gb": round(peak / 1e9, 3), "rss_after_gb": round(rss_gb(), 3)})
        print(json.dumps(steps[-1]), flush=True)
        return out

    def read():
        held, batch = [], []
        with open(args.corpus, encoding="utf-8") as f:
            for n, line in enumerate(f):
                if args.docs and n >= args.docs:
                    break
                batch.append(json.loads(line))
                if len(batch) == args.batch:
                    held.append(mb.pack(batch))
                    batch = []
        if batch:
            held.append(mb.pack(batch))
        return held

    held = step("read + pack (held batches)", read)
    sk = mb.Sketch("minhash_dedup", cfg, b, r, with_sig=False, score_column=None)
    sk.setup()

    def sketches():
        return [o for h in held for o in sk.process(mb.unpack(h)) if isinstance(o, dict)]

    sketch_list = step("Sketch (all batches)", sketches)
    step("sketch list pickled (the runner's encoded copy)", lambda: len(pickle.dumps(sketch_list)))
    cands = step("Candidates (build_table + find_candidates)",
                 lambda: mb.find_candidates(mb.build_table(sketch_list, b, 128), 1000, False))
    needed = step("needed ids", cands.needed)
    cs = mb.CandidateShingles(cfg)
    cs.setup()
    shingles = step("CandidateShingles (all batches)",
                    lambda: [o for h in held for o in cs.process(h, needed)])
    step("shingle list pickled", lambda: len(pickle.dumps(shingles)))
    dec = step("Decide", lambda: mb.decide(cands, "exact", 0.8, "lowest_id", "lsh",
                                           shingles=shingles))
    step("decisions pickled (the side input of Apply)", lambda: len(pickle.dumps(dec)))
    print(json.dumps({"docs": cands.table.n, "candidate_pairs": int(cands.i.size),
                      "max_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
                      "steps": steps}))


if __name__ == "__main__":
    main()
