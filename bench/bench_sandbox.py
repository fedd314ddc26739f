"""Sandbox overhead per run.

    python bench/bench_sandbox.py [--runs 30]

A trivial program (define a function, one assert) is run
  1. through synth.sandbox.run_python with full isolation (candidate + separate harness
     process, verdict pipe, netns, seccomp, read-only remount + hidden paths + tmpfs quota,
     two private uids, rlimits, scrubbed env, process-group + uid kill);
  2. the same with the network namespace and uid drop turned off;
  3. baseline: a bare `subprocess.run([python, -I, -c, program])`;
  4. in-process exec (no isolation at all), for scale.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

PROGRAM = "def add(a, b):\n    return a + b\n"
TESTS = "assert add(2, 3) == 5\n"


def timeit_interleaved(fns: dict, runs: int) -> dict[str, tuple[float, float]]:
    """Round-robin over the variants so that load changes on a shared machine hit all alike."""
    ts: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            ts[name].append(time.perf_counter() - t0)
    return {n: (statistics.median(v) * 1000, statistics.mean(v) * 1000) for n, v in ts.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    from synth.sandbox import SandboxLimits, run_python

    r = run_python(PROGRAM, TESTS)
    assert r.passed, r
    print(f"isolation in effect: network={r.network}, uid={r.uid}, details={r.details}")

    def full():
        assert run_python(PROGRAM, TESTS).passed

    def light():
        assert run_python(PROGRAM, TESTS, SandboxLimits(network=True, private_tmp=False),
                          drop_privileges=False).passed

    def bare():
        subprocess.run([sys.executable, "-I", "-c", PROGRAM + TESTS], check=True)

    def inproc():
        ns: dict = {}
        exec(PROGRAM + TESTS, ns)  # noqa: S102 - the no-isolation reference point

    rows = [("sandbox, full isolation", full), ("sandbox, no netns/uid/private tmp", light),
            ("baseline: bare subprocess python -I", bare), ("in-process exec", inproc)]
    res = timeit_interleaved(dict(rows), args.runs)
    base = res["baseline: bare subprocess python -I"][0]
    for name, (med, mean) in res.items():
        print(f"{name:40s} median {med:8.2f} ms  mean {mean:8.2f} ms  ({med / base:.2f}x baseline)")


if __name__ == "__main__":
    main()
