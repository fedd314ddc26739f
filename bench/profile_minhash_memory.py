"""Where near-dup memory goes: the minhash_dedup steps run in one process, outside Beam, on a
real corpus, with the Python heap peak of each step (tracemalloc also sees numpy buffers) and
the process RSS after it. Beam adds its own copies on top (the encoded sketch list, side
inputs); this shows what the steps themselves need.

    python bench/profile_minhash_memory.py --corpus /work/corpora/100k.jsonl [--docs N]
"""

from __future__ import annotations

import argparse
import json
import pickle
import resource
import shutil
import tempfile
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
    from pipelines.stages.dedup import minhash_lshbloom as lb
    from pipelines.stages.dedup import minhash_passes as mb

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
        with open(args.corpus, encoding="utf-8") as f:
            for n, line in enumerate(f):
                if args.docs and n >= args.docs:
                    break
                yield json.loads(line)

    folder = tempfile.mkdtemp(prefix="dm-profile-")
    sk = mb.SketchSpill("minhash_dedup", cfg, b, r, with_sig=False, score_column=None,
                        spill_dir=folder, batch_size=args.batch)
    sk.setup()
    sk.start_bundle()

    def sketches():
        outs = [o for rec in read() for o in sk.process(rec)]
        for o in sk.finish_bundle() or ():  # windowed values, tagged or not
            outs.append(type(o)(o.tag, o.value.value) if hasattr(o, "tag") else o.value)
        paths = [o.value for o in outs if getattr(o, "tag", None) == mb.SPILL]
        return [o for o in outs if isinstance(o, dict)], paths

    sketch_list, paths = step("read + SketchSpill (records to spill files)", sketches)
    step("sketch list pickled (the runner's encoded copy)", lambda: len(pickle.dumps(sketch_list)))
    cands = step("Candidates (build_table + find_candidates)",
                 lambda: lb.find_candidates(lb.build_table(sketch_list, b, 128), 1000, False))
    needed = step("needed places", cands.needed)
    cs = lb.CandidateShingles(cfg, folder)
    cs.setup()
    shingles = step("CandidateShingles (all spill files)",
                    lambda: [o for p in paths for o in cs.process(p, needed)])
    dec = step("Decide", lambda: lb.decide(cands, "exact", 0.8, "lowest_id", "lsh",
                                           shingles=shingles))
    step("decisions pickled (the side input of Apply)", lambda: len(pickle.dumps(dec)))
    shutil.rmtree(folder)
    print(json.dumps({"docs": cands.table.n, "candidate_pairs": int(cands.i.size),
                      "max_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
                      "steps": steps}))


if __name__ == "__main__":
    main()
