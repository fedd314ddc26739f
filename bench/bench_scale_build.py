"""The whole build at scale: wall, docs/s and peak RSS (summed over all processes).

Runs ``datamill build`` as a child process on one JSONL corpus with the ``configs/demo.yaml``
stage list (or a subset) and samples the resident memory of the child and every process it
starts (``/proc/<pid>/status`` VmRSS, summed over the process tree, every 0.25 s). Summed RSS
counts pages shared between forked workers once per process, so it is an upper bound.

Corpora: ``--corpus`` (e.g. ``/work/corpora/100k.jsonl`` from ``bench/make_corpus.py``). When
no corpus is given, ``--make N`` writes an interim one from this Python installation's
docstrings (150-600-word documents, 5% exact and 5% near duplicates), for quick profiling.

    python bench/bench_scale_build.py --corpus /work/corpora/20k.jsonl
    python bench/bench_scale_build.py --corpus /work/corpora/100k.jsonl --stages no-minhash -w 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAGE_SETS = {
    "demo": None,  # configs/demo.yaml as is
    "no-minhash": {"drop": ["minhash_dedup"]},
    "core": {"keep": ["normalize", "length_filter", "exact_dedup"]},
    "minhash": {"keep": ["minhash_dedup"]},
    # LSHBloom mode, a new index sized for 1M documents written under the output folder
    "lshbloom": {"keep": ["minhash_dedup"],
                 "set": {"minhash_dedup": {"mode": "lshbloom", "expected_docs": 1_000_000}}},
}


_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def proc_table() -> dict[int, tuple[int, float, int]]:
    """pid -> (parent pid, CPU seconds so far, RSS bytes) of every process, from /proc/*/stat."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                f = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # after "pid (comm)": state ppid ... utime (12th) stime (13th) ... rss (22nd, pages)
        out[int(d)] = (int(f[1]), (int(f[11]) + int(f[12])) / _TICK, int(f[21]) * _PAGE)
    return out


def descendants(table: dict[int, tuple[int, float, int]], root: int) -> list[int]:
    """``root`` and every process below it in ``table`` (whichever thread started it)."""
    kids: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def tree_rss(root: int) -> int:
    """Sum of the RSS (bytes) of ``root`` and all its descendants."""
    table = proc_table()
    return sum(table[p][2] for p in descendants(table, root))


class RssSampler(threading.Thread):
    def __init__(self, pid: int, interval: float = 0.25, live: str | None = None):
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak = pid, interval, 0
        self.live = live  # append "seconds GB load1" here every ~5 s (a long run's trace)
        self.samples: list[tuple[float, int]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        t0 = time.perf_counter()
        while not self._halt.is_set():
            r = tree_rss(self.pid)
            self.peak = max(self.peak, r)
            self.samples.append((time.perf_counter() - t0, r))
            if self.live and len(self.samples) % 20 == 1:
                with open(self.live, "a") as fh:
                    fh.write(f"{self.samples[-1][0]:.1f} {r / 2**30:.3f} "
                             f"{os.getloadavg()[0]:.1f}\n")
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def make_interim_corpus(path: Path, n: int, seed: int = 0) -> None:
    import importlib
    import inspect

    paras: list[str] = []
    for m in sorted(sys.stdlib_module_names):
        if m.startswith("_") or m in ("antigravity", "this", "idlelib", "turtledemo", "tkinter"):
            continue
        try:
            mod = importlib.import_module(m)
        except Exception:  # noqa: BLE001 - some stdlib modules need optional system parts
            continue
        for _name, obj in sorted(vars(mod).items()):
            doc = inspect.getdoc(obj) if callable(obj) else None
            for para in (doc or "").split("\n\n"):
                if len(para.split()) >= 12:
                    paras.append(para)
    paras = sorted(set(paras))
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        docs: list[str] = []
        for i in range(n):
            r = rng.random()
            if docs and r < 0.05:
                text = rng.choice(docs)
            elif docs and r < 0.10:
                words = rng.choice(docs).split(" ")
                for _ in range(max(1, len(words) // 50)):
                    words[rng.randrange(len(words))] = rng.choice(words)
                text = " ".join(words)
            else:
                target, out = rng.randint(150, 600), []
                while sum(len(p.split()) for p in out) < target:
                    out.append(rng.choice(paras))
                text = "\n\n".join(out)
            if len(docs) < 5000:
                docs.append(text)
            else:
                docs[rng.randrange(5000)] = text
            fh.write(json.dumps({"id": f"doc{i:08d}", "text": text}) + "\n")


def build_config(corpus: str, stages: str, out: str, shards: int, workers: int) -> dict:
    import yaml

    cfg = yaml.safe_load((ROOT / "configs/demo.yaml").read_text())
    cfg["sources"] = [{"name": "bench", "type": "jsonl", "path": corpus, "id_field": "id"}]
    sel = STAGE_SETS[stages]
    st = cfg["stages"]
    if sel and "drop" in sel:
        st = [s for s in st if s["stage"] not in sel["drop"]]
    if sel and "keep" in sel:
        st = [s for s in st if s["stage"] in sel["keep"]]
    for s in st:
        s["checkpoint"] = False
        s.update((sel or {}).get("set", {}).get(s["stage"], {}))
        if s.get("mode") == "lshbloom":
            s["index_out"] = f"{out}-lshbloom-index.npz"  # beside the output, not in it
    cfg["stages"] = st
    cfg["output"].update({"dir": out, "shards": shards})
    cfg["runner"] = {"name": "DirectRunner", "direct_num_workers": workers,
                     "direct_running_mode": "multi_processing" if workers > 1 else "in_memory"}
    return cfg


def run_one(corpus: str, stages: str, workers: int, shards: int, work: Path,
            keep_out: bool = False, repo: Path = ROOT, rss_log: str | None = None) -> dict:
    import yaml

    out = work / f"out-{stages}-w{workers}"
    cfg_path = work / f"cfg-{stages}-w{workers}.yaml"
    cfg_path.write_text(yaml.safe_dump(build_config(corpus, stages, str(out), shards, workers)))
    env = dict(os.environ, PYTHONPATH=str(repo))
    t0 = time.perf_counter()
    # the build's progress lines (records in / kept / removed per stage every 10 s) are the
    # stage markers of the RSS trace
    proc = subprocess.Popen([sys.executable, "-c", "from pipelines.cli.main import main; main()",
                             "build", str(cfg_path), "--force"], env=env,
                            cwd=str(repo), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    sampler = RssSampler(proc.pid, live=rss_log)
    sampler.start()
    lines = []
    live = open(rss_log + ".build.log", "w") if rss_log else None  # noqa: SIM115
    for line in proc.stdout:  # timestamped, written as it comes (long runs)
        lines.append(f"{time.perf_counter() - t0:8.2f} {line}")
        if live:
            live.write(lines[-1])
            live.flush()
    proc.wait()
    if live:
        live.close()
    log = "".join(lines)
    sampler.stop()
    wall = time.perf_counter() - t0
    res = {"repo": str(repo), "stages": stages, "workers": workers, "wall_s": round(wall, 1),
           "rc": proc.returncode, "loadavg_end": os.getloadavg(),
           "peak_rss_gb": round(sampler.peak / 2**30, 2)}
    stats_path = out / "stats.json"
    if proc.returncode == 0 and stats_path.exists():
        stats = json.loads(stats_path.read_text())
        res["input"] = stats["counts"]["input"]
        res["kept"] = stats["counts"]["kept"]
        res["docs_s"] = round(stats["counts"]["input"] / wall, 1)
        res["pipeline_s"] = stats["wall_seconds"]
        res["runtime_s"] = {k: round(v / 1000, 1) for k, v in sorted(
            (stats.get("runtime_ms") or {}).items(), key=lambda kv: -kv[1])}
    else:
        res["log_tail"] = log[-3000:]
    # memory over time (coarse), to see which phase peaks
    step = max(1, len(sampler.samples) // 20)
    res["rss_curve_gb"] = [(round(t), round(r / 2**30, 2)) for t, r in sampler.samples[::step]]
    if not keep_out:
        shutil.rmtree(out, ignore_errors=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", help="JSONL corpus (one {'id','text'} object per line)")
    ap.add_argument("--make", type=int, default=0, help="write an interim corpus of N documents")
    ap.add_argument("--stages", nargs="+", default=["demo"], choices=sorted(STAGE_SETS))
    ap.add_argument("-w", "--workers", type=int, nargs="+", default=[1])
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--work", default=None, help="scratch folder (default: a temp dir)")
    ap.add_argument("--keep-out", action="store_true")
    ap.add_argument("--repo", nargs="+", default=[str(ROOT)],
                    help="checkouts to run (e.g. the main branch and this one, alternated)")
    ap.add_argument("--rss-log", default=None,
                    help="append an RSS sample (seconds, GB, load) here every ~5 s while the build "
                    "runs; its timestamped log (progress lines per stage) goes to <path>.build.log")
    a = ap.parse_args()
    work = Path(a.work or tempfile.mkdtemp(prefix="datamill-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    corpus = a.corpus
    if not corpus:
        corpus = str(work / f"interim-{a.make}.jsonl")
        if not Path(corpus).exists():
            make_interim_corpus(Path(corpus), a.make or 20_000)
    size = Path(corpus).stat().st_size
    print(f"corpus {corpus}: {size / 2**20:,.0f} MiB; cores {os.cpu_count()}", flush=True)
    for stages in a.stages:
        for w in a.workers:
            for repo in a.repo:
                r = run_one(corpus, stages, w, a.shards, work, a.keep_out, Path(repo), a.rss_log)
                print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
