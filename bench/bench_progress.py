"""Cost of live progress: the same build with progress off and on, alternating A B A B.

    python bench/bench_progress.py --config CONFIG [--rounds 2]

Runs ``datamill build CONFIG --force --progress-every 0`` (off) and ``--progress-every 1`` (on,
plain lines: stderr is a pipe here) as child processes and prints wall seconds per run and the
median on/off ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(config: str, every: str) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from pipelines.cli.main import main; main()", "build",
                    config, "--force", "--progress-every", every], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    ratios = []
    for r in range(args.rounds):
        off = run(args.config, "0")
        on = run(args.config, "1")
        ratios.append(on / off)
        print(f"round {r + 1}: off {off:.1f} s, on {on:.1f} s, on/off {on / off:.3f}", flush=True)
    print(f"median on/off {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
