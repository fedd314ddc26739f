"""datamill against datatrove on the same documents, alternating A B A B in one run.

Peers run from a separate bench-only virtualenv (``--peer-python``, e.g.
``/work/bench-venv-scale-build/bin/python`` with ``datatrove==0.10.1`` and spaCy), never from
the project's own environment. Every contender runs as a child process; wall time and peak RSS
(summed over the process tree, sampled from /proc) are recorded per run.

``exact``: exact deduplication of one JSONL corpus, end to end (read JSONL, deduplicate, write
the kept documents and the removed ones):

* datamill: ``datamill build`` with only the ``exact_dedup`` stage (1 worker), Parquet output +
  removed JSONL + stats and report;
* datatrove: its local 3-step exact dedup (``ExactDedupSignature`` -> ``ExactFindDedups`` ->
  ``ExactDedupFilter`` with an exclusion writer), ``LocalPipelineExecutor`` with 1 task, on
  the text (datatrove's default ``content_getter``), writing kept and removed JSONL.gz.

``heuristics``: the four quality suites (Gopher quality + repetition, C4, FineWeb) in one
process on the same documents: datamill's ``filters`` scorers (``process_batch``) against
datatrove's filters (``filter(doc)`` on every document), 1 process each, timed in process CPU
seconds (robust to a shared machine; both are single-threaded).

    python bench/bench_peers.py exact --corpus /work/corpora/20k.jsonl --rounds 2
    python bench/bench_peers.py heuristics --docs 3000 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_scale_build import RssSampler, make_interim_corpus  # noqa: E402

DATATROVE_EXACT = r"""
import sys, time
from datatrove.executor.local import LocalPipelineExecutor
from datatrove.pipeline.dedup.exact_dedup import (ExactDedupConfig, ExactDedupFilter,
                                                  ExactDedupSignature, ExactFindDedups)
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

corpus_dir, pattern, work = sys.argv[1], sys.argv[2], sys.argv[3]
cfg = ExactDedupConfig(content_getter=lambda d: d.text.encode("utf-8"))
t0 = time.perf_counter()
s1 = LocalPipelineExecutor(pipeline=[JsonlReader(corpus_dir, glob_pattern=pattern),
                                     ExactDedupSignature(f"{work}/sigs", cfg, finder_workers=1)],
                           tasks=1, workers=1, logging_dir=f"{work}/logs1")
s1.run()
s2 = LocalPipelineExecutor(pipeline=[ExactFindDedups(f"{work}/sigs", f"{work}/dups", cfg)],
                           tasks=1, workers=1, logging_dir=f"{work}/logs2")
s2.run()
s3 = LocalPipelineExecutor(pipeline=[JsonlReader(corpus_dir, glob_pattern=pattern),
                                     ExactDedupFilter(f"{work}/dups", cfg,
                                                      exclusion_writer=JsonlWriter(f"{work}/removed")),
                                     JsonlWriter(f"{work}/kept")],
                           tasks=1, workers=1, logging_dir=f"{work}/logs3")
s3.run()
import glob, gzip
kept = sum(1 for f in glob.glob(f"{work}/kept/*") for _ in gzip.open(f))
removed = sum(1 for f in glob.glob(f"{work}/removed/*") for _ in gzip.open(f))
print("RESULT", kept, removed, time.perf_counter() - t0)
"""

DATATROVE_HEURISTICS = r"""
import json, sys, time
from datatrove.data import Document
from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter,
                                        GopherQualityFilter, GopherRepetitionFilter)

docs = [json.loads(x) for x in open(sys.argv[1])]
rounds = int(sys.argv[2])
filters = [GopherQualityFilter(), GopherRepetitionFilter(), C4QualityFilter(),
           FineWebQualityFilter()]
warm = [Document(text=d["text"], id=d["id"]) for d in docs[:50]]
for f in filters:
    for d in warm:
        f.filter(d)
best = None
for _ in range(rounds):
    batch = [Document(text=d["text"], id=d["id"]) for d in docs]
    t0 = time.process_time()
    for f in filters:
        for d in batch:
            f.filter(d)
    dt = time.process_time() - t0
    best = dt if best is None else min(best, dt)
print("RESULT", len(docs), best)
"""

DATAMILL_HEURISTICS = r"""
import json, sys, time
sys.path.insert(0, sys.argv[3])
from filters.heuristics_c4 import C4Filter
from filters.heuristics_fineweb import FineWebFilter
from filters.heuristics_gopher import GopherQuality, GopherRepetition

docs = [json.loads(x) for x in open(sys.argv[1])]
rounds = int(sys.argv[2])
suite = [GopherQuality(), GopherRepetition(), C4Filter(), FineWebFilter()]
for s in suite:
    s.setup()
    s.process_batch(docs[:50])
best = None
for _ in range(rounds):
    t0 = time.process_time()
    for s in suite:
        s.process_batch(docs)
    dt = time.process_time() - t0
    best = dt if best is None else min(best, dt)
print("RESULT", len(docs), best)
"""


def _run(cmd: list[str], env: dict | None = None, cwd: str | None = None) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=cwd)
    sampler = RssSampler(proc.pid)
    sampler.start()
    out, _ = proc.communicate()
    sampler.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed:\n{out[-3000:]}")
    return time.perf_counter() - t0, sampler.peak, out


def _datamill_exact(corpus: str, work: Path) -> tuple[float, int, str]:
    import yaml

    out = work / "dm-out"
    cfg = {"name": "exact", "sources": [{"name": "bench", "type": "jsonl", "path": corpus,
                                         "id_field": "id"}],
           "stages": [{"stage": "exact_dedup"}],
           "output": {"dir": str(out), "shards": 4, "jsonl": False, "write_removed": True},
           "runner": {"name": "DirectRunner", "direct_num_workers": 1}}
    path = work / "exact.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    wall, peak, log = _run([sys.executable, "-c", "from pipelines.cli import main; main()",
                            "build", str(path), "--force"], env=env, cwd=str(ROOT))
    stats = json.loads((out / "stats.json").read_text())
    shutil.rmtree(out, ignore_errors=True)
    c = stats["counts"]
    return wall, peak, f"kept {c['kept']}, removed {c['removed']}"


def _datatrove_exact(peer: str, corpus: str, work: Path) -> tuple[float, int, str]:
    dt_work = work / "dt"
    shutil.rmtree(dt_work, ignore_errors=True)
    script = work / "dt_exact.py"
    script.write_text(DATATROVE_EXACT)
    p = Path(corpus)
    wall, peak, log = _run([peer, str(script), str(p.parent), p.name, str(dt_work)],
                           cwd=str(work))
    line = [x for x in log.splitlines() if x.startswith("RESULT")][-1].split()
    shutil.rmtree(dt_work, ignore_errors=True)
    return wall, peak, f"kept {line[1]}, removed {line[2]}"


def exact(a) -> None:
    work = Path(tempfile.mkdtemp(prefix="datamill-peers-"))
    corpus = a.corpus
    if not corpus:
        corpus = str(work / "corpus" / "interim.jsonl")
        Path(corpus).parent.mkdir()
        make_interim_corpus(Path(corpus), a.make)
    n = sum(1 for _ in open(corpus, "rb"))
    print(f"exact dedup: {corpus} ({n:,} docs, {Path(corpus).stat().st_size / 2**20:,.0f} MiB); "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    res: dict[str, list[tuple[float, int]]] = {"datamill": [], "datatrove": []}
    try:
        for r in range(a.rounds):
            for name in ("datamill", "datatrove"):
                if name == "datamill":
                    wall, peak, what = _datamill_exact(corpus, work)
                else:
                    wall, peak, what = _datatrove_exact(a.peer_python, corpus, work)
                res[name].append((wall, peak))
                print(f"  round {r + 1} {name:9s}: {wall:7.1f} s  {n / wall:8.0f} docs/s  "
                      f"peak RSS {peak / 2**30:.2f} GB  ({what}; load "
                      f"{os.getloadavg()[0]:.1f})", flush=True)
        _ratios(res, n)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _ratios(res: dict, n: int) -> None:
    dm = [w for w, _ in res["datamill"]]
    dt = [w for w, _ in res[[k for k in res if k != "datamill"][0]]]
    pairs = [b / a for a, b in zip(dm, dt)]
    print(f"datamill speed / datatrove speed per round (A B pairs): "
          f"{', '.join(f'{x:.2f}x' for x in pairs)}; best vs best {min(dt) / min(dm):.2f}x")


def heuristics(a) -> None:
    from bench_heuristics import corpus as demo_corpus

    work = Path(tempfile.mkdtemp(prefix="datamill-peers-"))
    try:
        recs = demo_corpus(a.docs)
        path = work / "docs.jsonl"
        with open(path, "w") as fh:
            for r in recs:
                fh.write(json.dumps(r) + "\n")
        print(f"heuristic suites: {len(recs)} docs (demo corpus, well-formed); 1 process each; "
              f"best of {a.inner} passes per run; load {os.getloadavg()[0]:.1f}", flush=True)
        dm_script, dt_script = work / "dm.py", work / "dt.py"
        dm_script.write_text(DATAMILL_HEURISTICS)
        dt_script.write_text(DATATROVE_HEURISTICS)
        res: dict[str, list[tuple[float, int]]] = {"datamill": [], "datatrove": []}
        for r in range(a.rounds):
            for name in ("datamill", "datatrove"):
                cmd = ([sys.executable, str(dm_script), str(path), str(a.inner), str(ROOT)]
                       if name == "datamill" else
                       [a.peer_python, str(dt_script), str(path), str(a.inner)])
                env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
                _, peak, log = _run(cmd, env=env, cwd=str(work))
                line = [x for x in log.splitlines() if x.startswith("RESULT")][-1].split()
                best = float(line[2])
                res[name].append((best, peak))
                print(f"  round {r + 1} {name:9s}: {len(recs) / best:8.0f} docs/s/core "
                      f"(best pass {best:.2f} CPU s; load {os.getloadavg()[0]:.1f})", flush=True)
        _ratios(res, len(recs))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="what", required=True)
    e = sub.add_parser("exact")
    e.add_argument("--corpus", help="JSONL corpus ({'id','text'} per line)")
    e.add_argument("--make", type=int, default=20_000, help="interim corpus size without --corpus")
    e.add_argument("--rounds", type=int, default=2)
    h = sub.add_parser("heuristics")
    h.add_argument("--docs", type=int, default=3000)
    h.add_argument("--rounds", type=int, default=2)
    h.add_argument("--inner", type=int, default=2, help="passes per run (best is kept)")
    for p in (e, h):
        p.add_argument("--peer-python", default="/work/bench-venv-scale-build/bin/python")
    a = ap.parse_args()
    exact(a) if a.what == "exact" else heuristics(a)


if __name__ == "__main__":
    main()
