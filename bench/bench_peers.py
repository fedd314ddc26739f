"""datamill against datatrove on the same documents, alternating A B A B in one run.

Peers run from a separate bench-only virtualenv (``--peer-python``, e.g.
``/work/bench-venv-perf/bin/python`` with ``datatrove==0.10.1``, spaCy and pyarrow), never from
the project's own environment. Every contender runs as a child process; wall time and peak RSS
(summed over the process tree, sampled from /proc) are recorded per run.

``exact``: exact deduplication of one JSONL corpus, end to end (read JSONL, deduplicate, write
the kept documents and the removed ones), the same keys on both sides (``--canonical``:
whitespace-canonical text by default, datamill's default; ``none``: the raw text):

* datamill: ``datamill build`` with only the ``exact_dedup`` stage, Parquet (zstd) output +
  removed JSONL.gz + stats, report and dataset card (``--no-report``: without report.html);
* datatrove: its local 3-step exact dedup (``ExactDedupSignature`` -> ``ExactFindDedups`` ->
  ``ExactDedupFilter`` with an exclusion writer), ``LocalPipelineExecutor``, writing the
  removed documents as JSONL.gz and the kept ones either as Parquet (zstd: the format datamill
  writes) or as JSONL.gz (its default writer, gzip level 9; what the issue's first figure used).

Both with ``--workers`` workers (datamill ``direct_num_workers`` in multi-processing mode;
datatrove ``tasks`` = ``workers``); ``--files N`` splits the corpus into N files first (both
tools parallelize reading by file). Wall time, CPU time (user + sys of every waited-for process)
and peak RSS (summed over the process tree) per run.

``heuristics``: the four quality suites (Gopher quality + repetition, C4, FineWeb) in one
process on the same documents: datamill's ``filters`` scorers (``process_batch``) against
datatrove's filters (``filter(doc)`` on every document), 1 process each, timed in process CPU
seconds (robust to a shared machine; both are single-threaded).

    python bench/bench_peers.py exact --corpus /work/corpora/20k.jsonl --rounds 2
    python bench/bench_peers.py exact --corpus /work/corpora/20k.jsonl --rounds 2 \
        --workers 2 --files 2
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
from datatrove.pipeline.writers import JsonlWriter, ParquetWriter

corpus_dir, pattern, work, writer, canon, tasks = sys.argv[1:7]
tasks = int(tasks)
if canon == "whitespace":  # the same keys as datamill's default canonicalization
    getter = lambda d: " ".join(d.text.split()).encode("utf-8")
else:
    getter = lambda d: d.text.encode("utf-8")
cfg = ExactDedupConfig(content_getter=getter)
kept_writer = (ParquetWriter(f"{work}/kept", compression="zstd") if writer == "parquet"
               else JsonlWriter(f"{work}/kept"))
t0 = time.perf_counter()
s1 = LocalPipelineExecutor(pipeline=[JsonlReader(corpus_dir, glob_pattern=pattern),
                                     ExactDedupSignature(f"{work}/sigs", cfg, finder_workers=1)],
                           tasks=tasks, workers=tasks, logging_dir=f"{work}/logs1")
s1.run()
s2 = LocalPipelineExecutor(pipeline=[ExactFindDedups(f"{work}/sigs", f"{work}/dups", cfg)],
                           tasks=1, workers=1, logging_dir=f"{work}/logs2")
s2.run()
s3 = LocalPipelineExecutor(pipeline=[JsonlReader(corpus_dir, glob_pattern=pattern),
                                     ExactDedupFilter(f"{work}/dups", cfg,
                                                      exclusion_writer=JsonlWriter(f"{work}/removed")),
                                     kept_writer],
                           tasks=tasks, workers=tasks, logging_dir=f"{work}/logs3")
s3.run()
import glob, gzip
if writer == "parquet":
    import pyarrow.parquet as pq
    kept = sum(pq.ParquetFile(f).metadata.num_rows for f in glob.glob(f"{work}/kept/*"))
else:
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


def _children_cpu() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


LAST_CPU = [0.0]  # CPU seconds (user + sys) of the last _run, over every waited-for process


def run_sampled(cmd: list[str], sampler_cls, env: dict | None = None,
                cwd: str | None = None) -> tuple[float, float, object, str]:
    """Run ``cmd`` with ``sampler_cls(pid)`` watching its process tree: wall seconds, CPU
    seconds of the waited-for processes, the stopped sampler, the output (raises on failure)."""
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=cwd)
    sampler = sampler_cls(proc.pid)
    sampler.start()
    out, _ = proc.communicate()
    sampler.stop()
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed:\n{out[-3000:]}")
    return wall, cpu, sampler, out


def _run(cmd: list[str], env: dict | None = None, cwd: str | None = None) -> tuple[float, int, str]:
    wall, LAST_CPU[0], sampler, out = run_sampled(cmd, RssSampler, env, cwd)
    return wall, sampler.peak, out


def datamill_build(run, name: str, corpus: str, stages: list[dict], work: Path, workers: int,
                   report: bool) -> tuple[tuple, dict]:
    """Write a datamill config (``stages`` on the JSONL ``corpus``, Parquet + removed/, 4
    shards, ``workers`` local workers) and build it with ``run(cmd, env=, cwd=)``; returns
    what ``run`` returned and the build's stats.json (the output is deleted)."""
    import yaml

    out = work / "dm-out"
    runner = {"name": "DirectRunner", "direct_num_workers": workers}
    if workers > 1:
        runner["direct_running_mode"] = "multi_processing"
    cfg = {"name": name,
           "sources": [{"name": "bench", "type": "jsonl", "path": corpus, "id_field": "id"}],
           "stages": stages,
           "output": {"dir": str(out), "shards": 4, "jsonl": False, "write_removed": True,
                      "report": report},
           "runner": runner}
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    got = run([sys.executable, "-c", "from pipelines.cli.main import main; main()", "build",
               str(path), "--force", "--progress-every", "0"],
              env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=str(ROOT))
    stats = json.loads((out / "stats.json").read_text())
    shutil.rmtree(out, ignore_errors=True)
    return got, stats


def _datamill_exact(corpus: str, work: Path, workers: int = 1, canon: str = "whitespace",
                    report: bool = True) -> tuple[float, int, str]:
    (wall, peak, _log), stats = datamill_build(
        _run, "exact", corpus, [{"stage": "exact_dedup", "canonicalize": canon}], work, workers,
        report)
    c = stats["counts"]
    return wall, peak, f"kept {c['kept']}, removed {c['removed']}"


def peer_script(work: Path, name: str, text: str, corpus: str) -> tuple[Path, Path, Path, str]:
    """A fresh ``work/dt`` folder, the peer's script written as ``work/name``, and the corpus
    as datatrove's reader takes it (folder + glob pattern)."""
    dt_work = work / "dt"
    shutil.rmtree(dt_work, ignore_errors=True)
    script = work / name
    script.write_text(text)
    p = Path(corpus)
    return dt_work, script, (p.parent if p.is_file() else p), (p.name if p.is_file() else "*.jsonl")


def _datatrove_exact(peer: str, corpus: str, work: Path, writer: str = "parquet",
                     workers: int = 1, canon: str = "whitespace") -> tuple[float, int, str]:
    dt_work, script, folder, pattern = peer_script(work, "dt_exact.py", DATATROVE_EXACT, corpus)
    wall, peak, log = _run([peer, str(script), str(folder), pattern, str(dt_work), writer, canon,
                            str(workers)], cwd=str(work))
    line = [x for x in log.splitlines() if x.startswith("RESULT")][-1].split()
    shutil.rmtree(dt_work, ignore_errors=True)
    return wall, peak, f"kept {line[1]}, removed {line[2]}"


def _split_corpus(corpus: str, n: int, folder: Path) -> str:
    """``n`` JSONL files of consecutive lines (both tools read a folder of files)."""
    lines = open(corpus, "rb").read().splitlines(keepends=True)
    folder.mkdir(parents=True, exist_ok=True)
    per = -(-len(lines) // n)
    for i in range(n):
        (folder / f"part-{i:03d}.jsonl").write_bytes(b"".join(lines[i * per:(i + 1) * per]))
    return str(folder)


def exact(a) -> None:
    work = Path(tempfile.mkdtemp(prefix="datamill-peers-"))
    corpus = a.corpus
    if not corpus:
        corpus = str(work / "corpus" / "interim.jsonl")
        Path(corpus).parent.mkdir()
        make_interim_corpus(Path(corpus), a.make)
    n = sum(1 for _ in open(corpus, "rb"))
    size = Path(corpus).stat().st_size
    if a.files > 1:
        corpus = _split_corpus(corpus, a.files, work / "split")
    writers = [w for w in a.datatrove_writers.split(",") if w]
    names = ["datamill", *(f"datatrove-{w}" for w in writers)]
    print(f"exact dedup: {a.corpus or corpus} ({n:,} docs, {size / 2**20:,.0f} MiB, "
          f"{a.files} file(s)); {a.workers} worker(s) each; canonicalize {a.canonical}; "
          f"datamill report {'on' if a.report else 'off'}; load {os.getloadavg()[0]:.1f}",
          flush=True)
    res: dict[str, list[tuple[float, int]]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}
    try:
        for r in range(a.rounds):
            for name in names:
                load = os.getloadavg()[0]
                if name == "datamill":
                    wall, peak, what = _datamill_exact(corpus, work, a.workers, a.canonical,
                                                       a.report)
                else:
                    wall, peak, what = _datatrove_exact(a.peer_python, corpus, work,
                                                        name.split("-", 1)[1], a.workers,
                                                        a.canonical)
                res[name].append((wall, peak))
                cpu[name].append(LAST_CPU[0])
                print(f"  round {r + 1} {name:17s}: {wall:7.1f} s wall {LAST_CPU[0]:6.1f} s CPU "
                      f"{n / wall:7.0f} docs/s  peak RSS {peak / 2**30:.2f} GB  ({what}; load "
                      f"{load:.1f} -> {os.getloadavg()[0]:.1f})", flush=True)
        for other in names[1:]:
            dm = [w for w, _ in res["datamill"]]
            dt = [w for w, _ in res[other]]
            pairs = [b / x for x, b in zip(dm, dt)]
            cpairs = [b / x for x, b in zip(cpu["datamill"], cpu[other])]
            print(f"datamill vs {other}: wall speed ratio per round {', '.join(f'{x:.2f}x' for x in pairs)}"
                  f" (best vs best {min(dt) / min(dm):.2f}x); CPU ratio per round "
                  f"{', '.join(f'{x:.2f}x' for x in cpairs)} (best vs best "
                  f"{min(cpu[other]) / min(cpu['datamill']):.2f}x)")
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
    e.add_argument("--workers", type=int, default=1, help="datamill workers / datatrove tasks")
    e.add_argument("--files", type=int, default=1, help="split the corpus into this many files")
    e.add_argument("--canonical", choices=("whitespace", "none"), default="whitespace",
                   help="keys of both tools: whitespace-canonical text (datamill's default) "
                        "or the raw text (datatrove's default)")
    e.add_argument("--datatrove-writers", default="parquet,jsonl",
                   help="datatrove kept-document writers to run: parquet (zstd, the format "
                        "datamill writes) and/or jsonl (gzip JSONL, datatrove's default)")
    e.add_argument("--no-report", dest="report", action="store_false",
                   help="datamill without report.html (datatrove writes none)")
    h = sub.add_parser("heuristics")
    h.add_argument("--docs", type=int, default=3000)
    h.add_argument("--rounds", type=int, default=2)
    h.add_argument("--inner", type=int, default=2, help="passes per run (best is kept)")
    for p in (e, h):
        p.add_argument("--peer-python", default="/work/bench-venv-perf/bin/python",
                       help="bench-only venv with datatrove==0.10.1, spaCy and pyarrow")
    a = ap.parse_args()
    exact(a) if a.what == "exact" else heuristics(a)


if __name__ == "__main__":
    main()
