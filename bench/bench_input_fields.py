"""Cost of keeping input fields: the same build with every field kept vs ``keep_fields: []``.

Writes a copy of a JSONL corpus with typical metadata added to every record (url, date,
section, a float score, a tag list and a nested ``meta`` object, besides the corpus's own
fields), then runs ``datamill build`` on it alternately with fields kept (A) and
``keep_fields: []`` (B), A B A B..., with the ``core`` stages (normalize, length_filter,
exact_dedup) or the full demo list. Reports wall, docs/s and peak RSS summed over the process
tree (bench_scale_build.RssSampler), and the A/B wall ratio per pair.

    python bench/bench_input_fields.py --corpus /work/corpora/20k.jsonl --rounds 2
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_scale_build import STAGE_SETS, RssSampler, build_config  # noqa: E402


def add_fields(src: str, dst: Path) -> int:
    n = 0
    with open(src, encoding="utf-8") as fin, open(dst, "w", encoding="utf-8") as fout:
        for line in fin:
            if not line.strip():
                continue
            r = json.loads(line)
            r.update({
                "url": f"https://example.org/docs/{n % 997}/{r.get('id', n)}",
                "date": f"2024-{1 + n % 12:02d}-{1 + n % 28:02d}",
                "section": n % 9,
                "score": (n % 101) / 7,
                "tags": ["man", f"s{n % 9}"],
                "meta": {"crawl": "CC-MAIN-2024-10", "n": n, "ok": n % 3 == 0},
            })
            fout.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
    return n


def run(corpus: str, stages: str, work: Path, keep_none: bool, tag: str) -> dict:
    import yaml

    out = work / f"out-{tag}"
    cfg = build_config(corpus, stages, str(out), 4, 1)
    if keep_none:
        cfg["sources"][0]["keep_fields"] = []
    cfg_path = work / f"cfg-{tag}.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", "from pipelines.cli.main import main; main()",
                             "build", str(cfg_path), "--force"], env=env, cwd=str(ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = RssSampler(proc.pid)
    sampler.start()
    log, _ = proc.communicate()
    sampler.stop()
    wall = time.perf_counter() - t0
    res = {"run": tag, "wall_s": round(wall, 1), "rc": proc.returncode,
           "peak_rss_gb": round(sampler.peak / 2**30, 2)}
    stats = out / "stats.json"
    if proc.returncode == 0 and stats.exists():
        st = json.loads(stats.read_text())
        res.update(input=st["counts"]["input"], kept=st["counts"]["kept"],
                   docs_s=round(st["counts"]["input"] / wall, 1),
                   columns=len(st["columns"]))
        res["data_mb"] = round(sum(p.stat().st_size for p in (out / "data").rglob("*.parquet"))
                               / 2**20, 1)
    else:
        res["log_tail"] = log[-2000:]
    shutil.rmtree(out, ignore_errors=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--stages", default="core", choices=sorted(STAGE_SETS))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--work", default=None)
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-fields-"))
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "with_fields.jsonl"
    n = add_fields(args.corpus, corpus)
    print(json.dumps({"corpus": args.corpus, "records": n, "copy": str(corpus)}), flush=True)
    ratios = []
    for i in range(args.rounds):
        a = run(str(corpus), args.stages, work, False, f"A{i}-kept")
        print(json.dumps(a), flush=True)
        b = run(str(corpus), args.stages, work, True, f"B{i}-none")
        print(json.dumps(b), flush=True)
        ratios.append(a["wall_s"] / b["wall_s"])
    print(json.dumps({"wall_ratio_kept_over_none": [round(r, 3) for r in ratios],
                      "median": round(statistics.median(ratios), 3)}), flush=True)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
