"""Extraction throughput: the ``warc`` source in a Beam build vs the extractor in a plain loop.

Corpus: a .warc.gz written here (warcio) from the real HTML pages installed on this machine
(``tests/webutil.py`` globs: /usr/share/doc, the venv's packages, Python's docs; 2 kB to
1 MiB each), cycled with distinct URLs up to ``--pages`` responses. Nothing is downloaded.

For each extractor (resiliparse, trafilatura), alternating runs A B A B in fresh processes:

* ``loop``: the same pages, already decoded to ``str`` and in memory, given to the extractor
  called directly in a Python loop (``filters.extract.make_extractor``) -- the extractor's own
  cost, no I/O, no WARC parsing, no Beam;
* ``build``: ``datamill build`` of one ``type: warc`` source with no stages (DirectRunner, one
  worker, in-process): reading + gunzip + FastWARC framing (twice: once for the C1 count),
  HTTP parsing, decoding, extraction, accounting, sorted Parquet output, stats and report.

Wall time, docs/s and peak RSS (``/usr/bin/time -v``, the process tree's largest resident set)
per run; the ratio build/loop of docs/s is the overhead of doing it as a pipeline.

Usage:  python bench/bench_extract.py [--pages 2000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_warc(path: Path, n_pages: int) -> int:
    from tests.webutil import real_html_files, write_warc

    # pages over 1 MiB are left out: Common Crawl truncates payloads at 1 MiB, and one 8 MB
    # page (node's all.html) would dominate the timing
    files = [f for f in real_html_files(10_000, min_bytes=2000) if f.stat().st_size <= 1 << 20]
    pages = [{"url": f"https://bench.example/{i}/{files[i % len(files)].name}",
              "body": files[i % len(files)].read_bytes()} for i in range(n_pages)]
    write_warc(path, pages, gz=True)
    return len(files)


def run_loop(warc: str, extractor: str) -> dict:
    """Decode every response (outside the timing), then time the extractor alone."""
    import gzip

    from fastwarc.warc import ArchiveIterator, WarcRecordType

    from filters.extract import Undecodable, decode_html, make_extractor

    htmls = []
    with gzip.open(warc, "rb") as fh:
        for rec in ArchiveIterator(fh, record_types=WarcRecordType.response, parse_http=True):
            try:  # the build dead-letters undecodable pages; so does this loop
                htmls.append(decode_html(rec.reader.read(), rec.http_charset)[0])
            except Undecodable:
                pass
    fn = make_extractor(extractor)
    t0 = time.perf_counter()
    chars = sum(len(fn(h)) for h in htmls)
    wall = time.perf_counter() - t0
    return {"docs": len(htmls), "wall_s": wall, "chars": chars,
            "html_mb": sum(len(h) for h in htmls) / 1e6}


def run_build(warc: str, extractor: str, out: str) -> dict:
    from pipelines.build.config import build_config_from_dict
    from pipelines.build.run import run_build as build

    cfg = build_config_from_dict({
        "name": "bench-extract",
        "sources": [{"name": "warc", "type": "warc", "path": warc, "extractor": extractor}],
        "stages": [],
        "output": {"dir": out, "shards": 2},
        "runner": {"direct_num_workers": 1, "direct_running_mode": "in_memory"},
    })
    t0 = time.perf_counter()
    res = build(cfg, force=True)
    wall = time.perf_counter() - t0
    c = res.stats["counts"]
    return {"docs": c["input"], "kept": c["kept"], "dead": c["dead_letter"], "wall_s": wall}


def _timed(args: list[str]) -> dict:
    proc = subprocess.run(["/usr/bin/time", "-v", sys.executable, __file__, *args],
                          capture_output=True, text=True, env={**os.environ,
                                                               "PYTHONPATH": str(ROOT)})
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    result["peak_rss_mb"] = int(rss.group(1)) / 1024 if rss else None
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--extractors", default="resiliparse,trafilatura")
    ap.add_argument("--child", nargs=3, metavar=("MODE", "WARC", "EXTRACTOR"))
    args = ap.parse_args()
    if args.child:
        mode, warc, extractor = args.child
        if mode == "loop":
            out = run_loop(warc, extractor)
        else:
            with tempfile.TemporaryDirectory() as d:
                out = run_build(warc, extractor, f"{d}/out")
        print(json.dumps(out))
        return

    with tempfile.TemporaryDirectory() as d:
        warc = Path(d) / "bench.warc.gz"
        n_files = make_warc(warc, args.pages)
        print(f"corpus: {args.pages} responses cycled from {n_files} installed HTML pages, "
              f"{warc.stat().st_size / 1e6:.1f} MB gzipped; load average "
              f"{os.getloadavg()[0]:.1f}; cores {os.cpu_count()}")
        for extractor in args.extractors.split(","):
            ratios = []
            for r in range(args.rounds):
                row = {}
                for mode in ("loop", "build"):
                    res = _timed(["--child", mode, str(warc), extractor])
                    row[mode] = res
                    print(f"[{extractor}] round {r + 1} {mode:5s}: {res['docs']} docs in "
                          f"{res['wall_s']:.2f} s = {res['docs'] / res['wall_s']:.0f} docs/s"
                          + (f" ({res['html_mb'] / res['wall_s']:.2f} MB HTML/s)"
                             if "html_mb" in res else "") + ", "
                          f"peak RSS {res['peak_rss_mb']:.0f} MB"
                          + (f", kept {res['kept']}, dead {res['dead']}" if mode == "build"
                             else ""))
                ratios.append((row["build"]["docs"] / row["build"]["wall_s"])
                              / (row["loop"]["docs"] / row["loop"]["wall_s"]))
            print(f"[{extractor}] build/loop docs/s ratio per round: "
                  + ", ".join(f"{x:.2f}" for x in ratios) + f"; load average "
                  f"{os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
