"""A plain single-process near-dup loop with rensa, the peer of issue 22 (CPU seconds).

    python bench/bench_rensa_loop.py --corpus /work/corpora/100k.jsonl

For each document in file order: 5-word shingles of the lower-cased words, ``RMinHash(128,
seed)``, ``RMinHashLSH(threshold 0.8, 128 permutations, 16 bands)`` (rensa needs bands to divide
the permutations; datamill picks 14 x 9) query then insert; a document
with any candidate is a duplicate (no verification, no output written). Prints wall and CPU
seconds and the number of duplicates. Compare with ``/usr/bin/time -v datamill build`` of a
``minhash_dedup``-only config on the same file (user + sys seconds).
"""

from __future__ import annotations

import argparse
import json
import re
import time

WORD = re.compile(r"\w+")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--bands", type=int, default=16, help="rensa needs num_perm % bands == 0")
    ap.add_argument("--ngram", type=int, default=5)
    a = ap.parse_args()
    from rensa import RMinHash, RMinHashLSH

    lsh = RMinHashLSH(a.threshold, a.num_perm, a.bands)
    t0, c0 = time.perf_counter(), time.process_time()
    docs = dups = 0
    with open(a.corpus, encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            words = WORD.findall(rec["text"].lower())
            n = a.ngram
            shingles = [" ".join(words[i:i + n]) for i in range(max(1, len(words) - n + 1))]
            mh = RMinHash(a.num_perm, 1)
            mh.update(shingles)
            if lsh.query(mh):
                dups += 1
            else:
                lsh.insert(docs, mh)
            docs += 1
    print(json.dumps({"docs": docs, "duplicates": dups,
                      "wall_s": round(time.perf_counter() - t0, 1),
                      "cpu_s": round(time.process_time() - c0, 1)}))


if __name__ == "__main__":
    main()
