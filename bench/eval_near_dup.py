"""Labelled near-duplicate evaluation of the ``minhash_dedup`` stage (precision / recall at 0.8).

Real text: Python's own documentation on this machine (``pydoc_data.topics``, the language
reference) and the docstrings of the standard library, cut into 300-word documents. Each base
document gets 0-4 variants made by realistic edits (word substitutions, deletions, insertions,
a sentence moved, a header/footer line added, case/whitespace changes) at random edit rates, so
some variants are above the 0.8 threshold and some below. Ground truth: exact Jaccard of the
word 5-shingle sets (the stage's own shingling). True clusters are the connected components of
the graph of pairs with exact Jaccard >= 0.8 (every within-family pair, plus every pair the
stage put together, so cross-family duplicates are counted too).

    python bench/eval_near_dup.py [--docs 600] [--verify estimated|exact|none] [--num-perm 128]
        [--fn-weight 0.5 0.8 0.9]
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import itertools
import json
import random
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from filters.components import union_find_labels
from filters.minhash import MinHasher, exact_jaccard

SKIP = {"antigravity", "this", "idlelib", "tkinter", "turtledemo", "turtle"}


def real_words() -> list[str]:
    """Words of Python's reference docs and stdlib docstrings (deterministic order)."""
    warnings.simplefilter("ignore")
    from pydoc_data.topics import topics

    out: list[str] = []
    for k in sorted(topics):
        out.extend(topics[k].split())
    for m in sorted(sys.stdlib_module_names):
        if m.startswith("_") or m in SKIP:
            continue
        try:
            mod = importlib.import_module(m)
        except Exception:  # noqa: BLE001, S112 - platform-specific modules
            continue
        for _, obj in sorted(inspect.getmembers(mod), key=lambda x: x[0]):
            if inspect.isclass(obj) or inspect.isfunction(obj):
                d = inspect.getdoc(obj)
                if d:
                    out.extend(d.split())
    return out


def real_docs(words_per_doc: int = 300, limit: int | None = None) -> list[str]:
    w = real_words()
    docs, seen = [], set()
    for i in range(0, len(w) - words_per_doc, words_per_doc):
        t = " ".join(w[i : i + words_per_doc])
        if t not in seen:
            seen.add(t)
            docs.append(t)
    return docs[:limit] if limit else docs


def realistic_edit(text: str, rate: float, rng: random.Random, vocab: list[str]) -> str:
    toks = text.split()
    n = max(1, int(rate * len(toks)))
    for _ in range(n):
        i = rng.randrange(len(toks))
        op = rng.random()
        if op < 0.45:
            toks[i] = rng.choice(vocab)
        elif op < 0.75 and len(toks) > 10:
            del toks[i]
        else:
            toks.insert(i, rng.choice(vocab))
    out = " ".join(toks)
    if rng.random() < 0.3:  # move a sentence
        sents = out.split(". ")
        if len(sents) > 2:
            s = sents.pop(rng.randrange(len(sents)))
            sents.insert(rng.randrange(len(sents)), s)
            out = ". ".join(sents)
    if rng.random() < 0.3:
        out = rng.choice(["Copyright notice.", "Posted by admin"]) + "\n" + out
    if rng.random() < 0.3:
        out = out.upper() if rng.random() < 0.2 else out.replace(" ", "  ")
    return out


def build_dataset(n_docs: int, seed: int = 0):
    rng = random.Random(seed)
    docs = real_docs(limit=n_docs)
    vocab = " ".join(docs).split()
    records, family = [], {}
    for i, d in enumerate(docs):
        rid = f"d{i:05d}"
        records.append({"id": rid, "text": d, "source": "eval"})
        family[rid] = i
        for v in range(rng.choice([0, 0, 1, 2, 3, 4])):
            rate = rng.choice([0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.15])
            vid = f"d{i:05d}v{v}"
            records.append(
                {"id": vid, "text": realistic_edit(d, rate, rng, vocab), "source": "eval"}
            )
            family[vid] = i
    rng.shuffle(records)
    return records, family


def pairs_of(clusters):
    out = set()
    for members in clusters.values():
        for a, b in itertools.combinations(sorted(members), 2):
            out.add((a, b))
    return out


def evaluate(records, family, params, threshold=0.8):
    from pipelines.stages.testing import run_stage

    t0 = time.perf_counter()
    out = run_stage(params, records)
    secs = time.perf_counter() - t0
    stage = out["stage"]
    # predicted clusters
    pred = defaultdict(set)
    for r in out["kept"]:
        pred[r["id"]].add(r["id"])
    for _, r in out["removed"]:
        pred[r["near_dup_of"]].add(r["id"])
    pred_pairs = pairs_of({k: v for k, v in pred.items() if len(v) > 1})
    # exact Jaccard for within-family pairs and for every predicted pair
    mh = MinHasher(stage.mh_config)
    ids = sorted(r["id"] for r in records)
    text = {r["id"]: r["text"] for r in records}
    sets = dict(zip(ids, mh.shingle_sets([text[i] for i in ids])))
    fams = defaultdict(list)
    for i in ids:
        fams[family[i]].append(i)
    check = set(pred_pairs)
    for members in fams.values():
        check |= set(itertools.combinations(sorted(members), 2))
    true_edges = [p for p in check if exact_jaccard(sets[p[0]], sets[p[1]]) >= threshold]
    labels = union_find_labels(true_edges)
    true_clusters = defaultdict(set)
    for node, lab in labels.items():
        true_clusters[lab].add(node)
    true_pairs = pairs_of(true_clusters)
    tp = len(pred_pairs & true_pairs)
    precision = tp / len(pred_pairs) if pred_pairs else 1.0
    recall = tp / len(true_pairs) if true_pairs else 1.0
    # document level: a doc should go iff it is not the lowest id of its true cluster
    should_go = {n for n, lab in labels.items() if n != lab}
    removed = {r["id"] for _, r in out["removed"]}
    doc_p = len(removed & should_go) / len(removed) if removed else 1.0
    doc_r = len(removed & should_go) / len(should_go) if should_go else 1.0
    return {
        "params": {k: v for k, v in params.items() if k != "stage"},
        "bands_rows": [stage.b, stage.r],
        "docs": len(records),
        "true_pairs": len(true_pairs),
        "predicted_pairs": len(pred_pairs),
        "pair_precision": round(precision, 4),
        "pair_recall": round(recall, 4),
        "docs_should_remove": len(should_go),
        "docs_removed": len(removed),
        "doc_precision": round(doc_p, 4),
        "doc_recall": round(doc_r, 4),
        "stage_seconds": round(secs, 1),
        "stats": {k: v for k, v in out["stats"].items() if k in ("clusters", "edges")},
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--docs", type=int, default=600, help="base documents (variants are added)")
    ap.add_argument("--verify", default="exact", choices=["estimated", "exact", "none"])
    ap.add_argument(
        "--fn-weight",
        type=float,
        nargs="+",
        default=[0.9],
        help="one evaluation per value; fp_weight = 1 - fn_weight",
    )
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    records, family = build_dataset(args.docs, args.seed)
    for w in args.fn_weight:
        params = {
            "stage": "minhash_dedup",
            "threshold": 0.8,
            "verify": args.verify,
            "num_perm": args.num_perm,
            "fp_weight": round(1 - w, 4),
            "fn_weight": w,
        }
        print(json.dumps(evaluate(records, family, params)))


if __name__ == "__main__":
    main()
