"""``datamill build`` with 1 and 2 local workers, alternated, on a CPU-heavy stage list
(issue 11: "a second worker should help on 2 cores for CPU-heavy stages").

Per run: wall time, CPU time (user + sys of the build and of every worker process it waited
for), peak RSS summed over the process tree, the 1-minute load average before and after, and
the SHA-256 of every output shard (the 1- and 2-worker outputs must be byte-identical).

    python bench/bench_workers.py --corpus /work/corpora/20k.jsonl --docs 5000 --rounds 2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_scale_build import RssSampler  # noqa: E402

STAGES = [{"stage": "normalize"},
          {"stage": "gopher_quality"},
          {"stage": "gopher_repetition"},
          {"stage": "language_id", "allowed_languages": ["en"], "min_score": 0.5}]


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _digest(out: Path) -> dict[str, str]:
    found = {}
    for sub in ("data", "removed", "dead_letter"):
        for f in sorted((out / sub).glob("*")):
            found[f"{sub}/{f.name}"] = hashlib.sha256(f.read_bytes()).hexdigest()[:16]
    return found


def run(corpus: Path, work: Path, workers: int) -> dict:
    import yaml

    out = work / f"out-w{workers}"
    runner = {"name": "DirectRunner", "direct_num_workers": workers}
    if workers > 1:
        runner["direct_running_mode"] = "multi_processing"
    cfg = {"name": "workers", "sources": [{"name": "bench", "type": "jsonl", "path": str(corpus),
                                           "id_field": "id"}],
           "stages": STAGES, "runner": runner,
           "output": {"dir": str(out), "shards": 4, "jsonl": False, "write_removed": True}}
    path = work / f"w{workers}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    load0, cpu0, t0 = os.getloadavg()[0], _cpu(), time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", "from pipelines.cli.main import main; main()",
                             "build", str(path), "--force", "--progress-every", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            cwd=str(ROOT))
    sampler = RssSampler(proc.pid)
    sampler.start()
    log, _ = proc.communicate()
    sampler.stop()
    wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    if proc.returncode:
        raise RuntimeError(log[-3000:])
    stats = json.loads((out / "stats.json").read_text())
    res = {"workers": workers, "wall": wall, "cpu": cpu, "peak": sampler.peak, "load0": load0,
           "load1": os.getloadavg()[0], "kept": stats["counts"]["kept"], "digest": _digest(out)}
    shutil.rmtree(out, ignore_errors=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default="/work/corpora/20k.jsonl")
    ap.add_argument("--docs", type=int, default=5000, help="first N documents of the corpus")
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="datamill-workers-"))
    try:
        corpus = work / "corpus.jsonl"
        with open(a.corpus, "rb") as src, open(corpus, "wb") as dst:
            for i, line in enumerate(src):
                if i >= a.docs:
                    break
                dst.write(line)
        print(f"{a.docs:,} docs of {a.corpus}; stages "
              f"{', '.join(s['stage'] for s in STAGES)}; alternated 1 / 2 workers", flush=True)
        results = []
        for r in range(a.rounds):
            for w in (1, 2):
                res = run(corpus, work, w)
                results.append(res)
                print(f"  round {r + 1} -w {w}: {res['wall']:6.1f} s wall {res['cpu']:6.1f} s CPU "
                      f"{a.docs / res['wall']:6.0f} docs/s peak RSS {res['peak'] / 2**30:.2f} GB "
                      f"kept {res['kept']:,} (load {res['load0']:.1f} -> {res['load1']:.1f})",
                      flush=True)
        same = all(x["digest"] == results[0]["digest"] for x in results)
        w1 = [x for x in results if x["workers"] == 1]
        w2 = [x for x in results if x["workers"] == 2]
        pairs = ", ".join(f"{x['wall'] / y['wall']:.2f}x" for x, y in zip(w1, w2))
        cpus = ", ".join(f"{y['cpu'] / x['cpu']:.2f}" for x, y in zip(w1, w2))
        print(f"speed-up of -w 2 per round (wall): {pairs}; CPU -w 2 / -w 1: {cpus}; "
              f"outputs byte-identical: {same}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
