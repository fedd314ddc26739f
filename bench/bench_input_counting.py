"""Cost of independent input counting (issue 10): old vs new source code, alternating A B A B.

The corpus is the demo corpus copied ``--copies`` times (20 copies = 39,260 lines in 80 JSONL,
.jsonl.gz and .jsonl.zst files, as in bench_build.py). Each run is a fresh process with
``PYTHONPATH`` set to one of two source trees (the old tree exported with
``git archive <commit> | tar -x -C DIR``), building the ``core`` config (normalize,
length_filter, exact_dedup) on the DirectRunner with one in-memory worker; it reports the
build's wall time (planning + pipeline + stats + promotion), the process's CPU time and peak
RSS. ``--reader`` times only the source reader (the ``Read`` DoFn over every file, in one
process, best of 3), which is where the counting happens, without Beam's scheduling noise.

    git archive 630c7f2 | (mkdir -p /tmp/old && tar -x -C /tmp/old)
    python bench/bench_input_counting.py --old /tmp/old --new . --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

RUN = r"""
import json, sys, time
from pathlib import Path
from pipelines.build.config import build_config_from_dict, load_build_config
from pipelines.build.run import run_build
corpus, out = sys.argv[1], sys.argv[2]
demo = load_build_config(Path("configs/demo.yaml")).model_dump(mode="json")
demo["sources"] = [{"name": "pydocs", "type": "jsonl", "path": corpus + "/*.jsonl*"}]
demo["stages"] = [dict(s, checkpoint=False) for s in demo["stages"]
                  if s["stage"] in ("normalize", "length_filter", "exact_dedup")]
demo["output"]["dir"] = out
demo["runner"] = {"direct_num_workers": 1, "direct_running_mode": "in_memory"}
t0 = time.perf_counter()
res = run_build(build_config_from_dict(demo), force=True)
print(json.dumps({"wall": time.perf_counter() - t0, "counts": res.stats["counts"]}))
"""


READ = r"""
import json, sys, time
from pipelines.io.source_config import SourceConfig
from pipelines.io import sources
src = SourceConfig(name="s", type="jsonl", path=sys.argv[1] + "/*.jsonl*")
files = sources.expand_files(src, 0)
files = files[0] if isinstance(files, tuple) else files
dofn, best, n = sources._ReadJsonl(src), 1e9, 0
for _ in range(3):
    t0, n = time.perf_counter(), 0
    for f in files:
        for out in dofn.process(f):
            n += 1
    best = min(best, time.perf_counter() - t0)
print(json.dumps({"wall": best, "counts": {"input": 39260 if n >= 39260 else n}}))
"""


def run_once(tree: Path, corpus: Path, out: Path, script: str = RUN) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))
    proc = subprocess.Popen([sys.executable, "-c", script, str(corpus), str(out)], cwd=tree,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    stdout = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{tree}: build failed ({proc.returncode})")
    res = json.loads(stdout.decode().strip().splitlines()[-1])
    res["rss_mb"] = usage.ru_maxrss / 1024  # KiB on Linux
    res["cpu"] = usage.ru_utime + usage.ru_stime  # whole process, incl. Beam start-up
    shutil.rmtree(out, ignore_errors=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", type=Path, required=True, help="source tree before the change")
    ap.add_argument("--new", type=Path, default=Path("."), help="source tree after the change")
    ap.add_argument("--copies", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reader", action="store_true", help="time the source reader only")
    args = ap.parse_args()
    sys.path.insert(0, str(args.new.resolve()))
    from pipelines.io.demo_corpus import write_corpus

    work = Path(tempfile.mkdtemp(prefix="datamill-bench-count-"))
    try:
        one, corpus = work / "one", work / "corpus"
        write_corpus(one, 3000)
        corpus.mkdir()
        for c in range(args.copies):
            for f in sorted(one.glob("*.jsonl*")):
                shutil.copy(f, corpus / f"c{c:03d}-{f.name}")
        results: dict[str, list[dict]] = {"old": [], "new": []}
        for r in range(args.rounds):
            for name, tree in (("old", args.old), ("new", args.new)):
                res = run_once(tree.resolve(), corpus, work / f"out-{name}",
                               READ if args.reader else RUN)
                results[name].append(res)
                print(f"round {r + 1} {name}: {res['wall']:.2f} s build wall, "
                      f"{res['cpu']:.2f} s process CPU, "
                      f"{res['counts']['input'] / res['wall']:,.0f} docs/s, "
                      f"peak RSS {res['rss_mb']:.0f} MB, counts {res['counts']}", flush=True)
        for key in ("wall", "cpu"):
            med = {k: statistics.median(x[key] for x in v) for k, v in results.items()}
            ratios = [n[key] / o[key] for o, n in zip(results["old"], results["new"])]
            print(f"median {key}: old {med['old']:.2f} s, new {med['new']:.2f} s; "
                  f"new/old per round: {', '.join(f'{x:.3f}' for x in ratios)}; "
                  f"median ratio {statistics.median(ratios):.3f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
