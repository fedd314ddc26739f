"""Near-duplicate removal at scale: datamill ``minhash_dedup`` vs datasketch ``MinHashLSH``.

Corpora: ``bench/make_corpus.py`` (real man-page / HTML / docstring text, planted duplicates).

    # wall, docs/s, peak RSS summed over the process tree; A B A B in one run
    python bench/bench_scale.py neardup --corpus /work/corpora/100k.jsonl --repeats 2
    # also today's code from another checkout (only <= 50k docs: it needs ~0.24 MB/doc)
    python bench/bench_scale.py neardup --corpus /work/corpora/20k.jsonl --old-code /work/main
    # pair recall / precision vs exact Jaccard, brute force over all pairs of a 10k sample
    python bench/bench_scale.py quality --corpus /work/corpora/100k.jsonl --sample 10000

datamill runs ``datamill build`` with one stage (``minhash_dedup``, defaults: threshold 0.8,
128 permutations, exact verification), 1 worker, 4 Parquet shards, no report. datasketch runs
in one process, no verification: word 5-shingles of the same tokens (NFKC, casefold, ``\\w+``),
``MinHash(num_perm=128).update_batch``, ``MinHashLSH(threshold=0.8)``; each document queries
the index and is inserted only if it matched nothing (the usual streaming dedup).

Quality: the sample takes whole planted groups (so duplicate pairs survive sampling) until
``--sample`` documents. Truth: exact Jaccard of the word 5-shingle sets (the stage's own
shingling) for *all* pairs of the sample, computed as a sparse product ``X X^T`` of the
document-shingle incidence matrix (every pair with a common shingle gets its exact
intersection; the others have Jaccard 0). True clusters = connected components of the pairs
with J >= threshold; a method's clusters come from its output. Pair recall / precision are over
the within-cluster pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


# --------------------------------------------------------------------------- measuring


def measured(cmd: list[str], env: dict | None = None, interval: float = 0.2,
             cwd: str | None = None) -> dict:
    """Run ``cmd``; wall seconds, CPU seconds (user + sys of the process and its waited-for
    children, from ``getrusage``: robust on a loaded machine) and peak RSS summed over the whole
    process tree (psutil, sampled every ``interval`` s)."""
    import resource

    import psutil

    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    root = psutil.Process(proc.pid)
    peak = 0
    out_chunks: list[bytes] = []
    import threading

    reader = threading.Thread(target=lambda: out_chunks.append(proc.stdout.read()), daemon=True)
    reader.start()
    while proc.poll() is None:
        try:
            procs = [root, *root.children(recursive=True)]
            rss = 0
            for p in procs:
                try:
                    rss += p.memory_info().rss
                except psutil.Error:
                    pass
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(interval)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    reader.join()
    out = b"".join(out_chunks).decode("utf-8", "replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed ({proc.returncode}):\n{out[-3000:]}")
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "peak_rss_gb": round(peak / 1e9, 3),
            "output": out}


def count_lines(path: Path) -> int:
    n = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            n += chunk.count(b"\n")
    return n


# --------------------------------------------------------------------------- runners


def datamill_config(corpus: Path, out: Path, workers: int = 1, extra: dict | None = None) -> str:
    import yaml

    stage = {"stage": "minhash_dedup", "threshold": 0.8, **(extra or {})}
    cfg = {
        "name": "scale-neardup",
        "sources": [{"name": "scale", "type": "jsonl", "path": str(corpus), "id_field": "id"}],
        "stages": [stage],
        "output": {"dir": str(out), "shards": 4, "write_removed": True, "report": False},
        "runner": {"name": "DirectRunner", "direct_num_workers": workers},
    }
    return yaml.safe_dump(cfg, sort_keys=False)


def run_datamill(corpus: Path, work: Path, code: Path, tag: str, workers: int = 1,
                 extra: dict | None = None) -> dict:
    out = work / f"out-{tag}"
    cfg = work / f"cfg-{tag}.yaml"
    cfg.write_text(datamill_config(corpus, out, workers, extra))
    env = {**os.environ, "PYTHONPATH": str(code)}
    r = measured([PY, "-c", "from pipelines.cli.main import main; main()", "build", str(cfg),
                  "--force"], env=env, cwd=str(code))  # cwd: ``python -c`` puts it first
    r["out"] = str(out)
    stats = json.loads((out / "stats.json").read_text())
    r["removed"] = _removed_count(stats)
    return r


def _removed_count(stats: dict):
    try:
        return stats["counts"]["removed"]
    except (KeyError, TypeError):
        return None


def run_datasketch(corpus: Path, work: Path, tag: str) -> dict:
    out = work / f"ds-{tag}.json"
    r = measured([PY, __file__, "_datasketch", str(corpus), str(out)],
                 env={**os.environ, "PYTHONPATH": str(ROOT)})
    res = json.loads(out.read_text())
    r["removed"] = res["removed"]
    r["links"] = str(out)
    return r


def _datasketch_main(corpus: str, out: str) -> None:
    from datasketch import MinHash, MinHashLSH

    from filters.minhash import normalize_words

    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    links, removed = [], 0
    with open(corpus, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            toks = normalize_words(rec["text"])
            n = 5
            sh = {" ".join(toks[i : i + n]).encode() for i in range(max(1, len(toks) - n + 1))}
            if not toks:
                continue
            m = MinHash(num_perm=128)
            m.update_batch(list(sh))
            hits = lsh.query(m)
            if hits:
                removed += 1
                links.append([rec["id"], min(hits)])
            else:
                lsh.insert(rec["id"], m)
    Path(out).write_text(json.dumps({"removed": removed, "links": links}))


# --------------------------------------------------------------------------- neardup


def cmd_neardup(args) -> None:
    corpus = args.corpus
    docs = count_lines(corpus)
    work = Path(tempfile.mkdtemp(prefix="bench-scale-", dir=args.work))
    rows = []
    for rep in range(args.repeats):
        order = [(m, None) for m in args.methods.split(",") if m]
        if args.old_code:
            if docs > 50_000:
                raise SystemExit("--old-code needs ~0.24 MB/doc: refusing above 50k documents")
            order.append(("datamill-old", args.old_code))
        for name, code in order:
            if name == "datasketch":
                r = run_datasketch(corpus, work, f"{rep}")
            else:
                r = run_datamill(corpus, work, code or ROOT, f"{name}-{rep}", args.workers)
            r.pop("output", None)
            r.update(method=name, repeat=rep, docs=docs, docs_per_s=round(docs / r["wall_s"], 1))
            print(json.dumps(r), flush=True)
            rows.append(r)
    summary = {}
    for name in {r["method"] for r in rows}:
        rs = [r for r in rows if r["method"] == name]
        summary[name] = {
            "wall_s": [r["wall_s"] for r in rs],
            "cpu_s": [r["cpu_s"] for r in rs],
            "peak_rss_gb": [r["peak_rss_gb"] for r in rs],
            "removed": [r["removed"] for r in rs],
        }
    if "datamill" in summary and "datasketch" in summary:
        dm = sum(summary["datamill"]["wall_s"])
        ds = sum(summary["datasketch"]["wall_s"])
        summary["wall_ratio_datamill_over_datasketch"] = round(dm / ds, 3)
        summary["cpu_ratio_datamill_over_datasketch"] = round(
            sum(summary["datamill"]["cpu_s"]) / sum(summary["datasketch"]["cpu_s"]), 3)
    summary["load_avg"] = os.getloadavg()
    print(json.dumps({"corpus": str(corpus), "docs": docs, "summary": summary}, indent=1))


# --------------------------------------------------------------------------- quality


def sample_by_group(corpus: Path, truth: Path, size: int, seed: int, out: Path) -> int:
    groups: dict[str, list[str]] = defaultdict(list)
    with open(truth) as f:
        for line in f:
            t = json.loads(line)
            groups[t["group"]].append(t["id"])
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    chosen: set[str] = set()
    for g in keys:
        if len(chosen) + len(groups[g]) > size:
            continue
        chosen.update(groups[g])
        if len(chosen) >= size:
            break
    n = 0
    with open(corpus, encoding="utf-8") as f, open(out, "w", encoding="utf-8") as o:
        for line in f:
            rid = json.loads(line)["id"]
            if rid in chosen:
                o.write(line)
                n += 1
    return n


def exact_truth_pairs(path: Path, threshold: float) -> tuple[list[str], set[tuple[int, int]]]:
    """All pairs of the file with exact Jaccard >= threshold (sparse X X^T, all pairs)."""
    import numpy as np
    from scipy.sparse import csr_matrix

    from filters.minhash import MinHasher

    ids, texts = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            ids.append(r["id"])
            texts.append(r["text"])
    mh = MinHasher()
    sets = []
    for s in range(0, len(texts), 512):
        sets.extend(mh.shingle_sets(texts[s : s + 512]))
    vocab, inv = np.unique(np.concatenate(sets), return_inverse=True)
    sizes = np.array([s.size for s in sets])
    indptr = np.concatenate(([0], np.cumsum(sizes)))
    x = csr_matrix((np.ones(inv.size, np.float32), inv, indptr), shape=(len(sets), vocab.size))
    pairs = set()
    step = 1000
    for a in range(0, len(sets), step):
        inter = (x[a : a + step] @ x.T).tocoo()
        i, j, v = inter.row + a, inter.col, inter.data
        keep = i < j
        i, j, v = i[keep], j[keep], v[keep]
        jac = v / (sizes[i] + sizes[j] - v)
        for p, q in zip(i[jac >= threshold].tolist(), j[jac >= threshold].tolist()):
            pairs.add((p, q))
    return ids, pairs


def cluster_pairs(links: list[tuple[str, str]], index: dict[str, int]) -> set[tuple[int, int]]:
    from filters.components import union_find_labels

    lab = union_find_labels([(index[a], index[b]) for a, b in links])
    comps: dict[int, list[int]] = defaultdict(list)
    for node, root in lab.items():
        comps[root].append(node)
    out = set()
    for members in comps.values():
        members.sort()
        for x in range(len(members)):
            for y in range(x + 1, len(members)):
                out.add((members[x], members[y]))
    return out


def datamill_links(out: Path) -> list[tuple[str, str]]:
    import gzip

    links = []
    for f in sorted((out / "removed").glob("*")):
        opener = gzip.open if f.name.endswith(".gz") else open
        with opener(f, "rt", encoding="utf-8") as fh:
            for line in fh:
                r = json.loads(line)
                rec = r.get("record", r)
                if rec.get("near_dup_of"):
                    links.append((rec["id"], rec["near_dup_of"]))
    return links


def cmd_quality(args) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-quality-", dir=args.work))
    truth_file = args.corpus.with_name(args.corpus.name.replace(".jsonl", ".truth.jsonl"))
    sample = work / "sample.jsonl"
    n = sample_by_group(args.corpus, truth_file, args.sample, args.seed, sample)
    t0 = time.time()
    ids, true_edges = exact_truth_pairs(sample, args.threshold)
    index = {x: k for k, x in enumerate(ids)}
    true_pairs = cluster_pairs([(ids[a], ids[b]) for a, b in true_edges], index)
    t_truth = time.time() - t0
    res = {"sample_docs": n, "true_edges": len(true_edges), "true_cluster_pairs": len(true_pairs),
           "truth_s": round(t_truth, 1)}
    dm = run_datamill(sample, work, ROOT, "quality")
    ds = run_datasketch(sample, work, "quality")
    methods = {
        "datamill": datamill_links(Path(dm["out"])),
        "datasketch": [tuple(x) for x in json.loads(Path(ds["links"]).read_text())["links"]],
    }
    for name, links in methods.items():
        pred = cluster_pairs(links, index)
        tp = len(pred & true_pairs)
        res[name] = {
            "pred_cluster_pairs": len(pred),
            "recall": round(tp / max(1, len(true_pairs)), 4),
            "precision": round(tp / max(1, len(pred)), 4),
            "removed": len(links),
        }
    print(json.dumps(res, indent=1))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_datasketch":
        _datasketch_main(argv[1], argv[2])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("neardup")
    a.add_argument("--corpus", type=Path, required=True)
    a.add_argument("--repeats", type=int, default=2)
    a.add_argument("--workers", type=int, default=1)
    a.add_argument("--old-code", type=Path, default=None)
    a.add_argument("--methods", default="datamill,datasketch",
                   help="comma list of datamill, datasketch (run in this order each repeat)")
    a.add_argument("--work", default="/tmp")
    q = sub.add_parser("quality")
    q.add_argument("--corpus", type=Path, required=True)
    q.add_argument("--sample", type=int, default=10_000)
    q.add_argument("--threshold", type=float, default=0.8)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--work", default="/tmp")
    args = ap.parse_args(argv)
    {"neardup": cmd_neardup, "quality": cmd_quality}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
