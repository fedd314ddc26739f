"""Simulation behind code.min_codet_evidence's default (docs/synth.md, "Low evidence").

    python bench/bench_codet_evidence.py 4 5     # code.n = 4 samples, 5 generated tests
    python bench/bench_codet_evidence.py 8 8

Per task: a sample's and a test's chance of being right are uniform in 0.1-0.9; a wrong one
is the model's common mistake 60% of the time, else an idiosyncratic one; a sample passes a
test encoding its own behaviour, and one encoding another behaviour with probability 0.2 (the
inputs miss the difference). CodeT (synth.code.codet_select) picks the consensus; among the
tasks kept with >= 2 agreeing samples, the table shows what each evidence minimum keeps.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from synth.code import codet_select  # noqa: E402
from synth.tasks import codet_evidence  # noqa: E402


def simulate(n: int, n_tests: int, trials: int = 20000, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)

    def draw(p_ok: float) -> int:  # 0 = right, 1 = the common mistake, 2.. = others
        if rng.random() < p_ok:
            return 0
        return 1 if rng.random() < 0.6 else int(rng.integers(2, 50))

    ev, wrong = [], []
    for _ in range(trials):
        p, q = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9)
        sb = [draw(p) for _ in range(n)]
        tb = [draw(q) for _ in range(n_tests)]
        m = [[s == t or rng.random() < 0.2 for t in tb] for s in sb]
        a = codet_select(m)
        if len(a.kept_solutions) < 2 or not a.kept_tests:
            continue
        ev.append(codet_evidence(len(a.kept_solutions), n, len(a.kept_tests), n_tests))
        wrong.append(any(sb[i] != 0 for i in a.kept_solutions))
    e, w = np.array(ev), np.array(wrong)
    print(f"n={n} tests={n_tests}: {len(e)} tasks kept by min_agreeing 2, "
          f"{w.mean():.3f} on a wrong consensus")
    for thr in (0.0, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5):
        k = e >= thr
        print(f"min {thr:.2f}: kept {k.mean():.3f}  wrong among kept {w[k].mean():.3f}  "
              f"right lost {(~k & ~w).sum() / max(1, (~w).sum()):.3f}  "
              f"wrong dropped {(~k & w).sum() / max(1, w.sum()):.3f}")


if __name__ == "__main__":
    simulate(int(sys.argv[1]) if len(sys.argv) > 1 else 4,
             int(sys.argv[2]) if len(sys.argv) > 2 else 5)
