"""Timings of the Chinchilla fit (one BLAS thread vs default threads) and the recommender.

    python bench/bench_scaling.py [--csv ../shared/data/chinchilla/svg_extracted_data.csv]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import scaling.chinchilla as ch  # noqa: E402
from scaling.recommend import load_config, recommend  # noqa: E402


def timed(f, *a, **k):
    t0 = time.perf_counter()
    r = f(*a, **k)
    return time.perf_counter() - t0, r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv", default=str(ROOT.parent / "shared/data/chinchilla/svg_extracted_data.csv"))
    args = ap.parse_args()
    N, D, L = ch.load_chinchilla_csv(args.csv)
    raw = ch.fit_chinchilla.__wrapped__
    for name, fn in (("one BLAS thread (shipped)", ch.fit_chinchilla),
                     ("default BLAS threads (baseline)", raw)):
        dt, f = timed(fn, N, D, L, n_starts=64)
        print(f"fit_chinchilla n_starts=64 [{name}]: {dt:.2f} s, objective {f.objective:.7f}")
    dt, f = timed(ch.fit_chinchilla, N, D, L, n_starts=None)
    print(f"all 4500 starts: {dt:.1f} s, objective {f.objective:.7f}")
    dt, f = timed(ch.fit_chinchilla, N, D, L, n_bootstrap=100)
    print(f"64 starts + 100 bootstrap refits: {dt:.1f} s")
    dt, _ = timed(recommend, load_config(str(ROOT / "configs/mixture_example.yaml")))
    print(f"recommend(configs/mixture_example.yaml): {dt:.2f} s")


if __name__ == "__main__":
    main()
