"""Verifier throughput (checks/s): answer extraction + equivalence.

    python bench/bench_verifier.py [--n 2000]

Measures, on real GSM8K solutions (../shared) and a fixed set of symbolic LaTeX pairs:
  1. extract_answer on GSM8K solutions (extractions/s);
  2. answers_equivalent on numeric pairs (fast exact path, no sympy);
  3. answers_equivalent on symbolic pairs through our math-verify helper process;
  4. baseline: math-verify's parse+verify called in-process with its own signal.alarm timeouts
     (main thread only), to show the cost of running it in a helper process instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

SYMBOLIC = [
    ("\\frac{\\sqrt{2}}{2}", "\\sqrt{2}/2"), ("\\sqrt{8}", "2\\sqrt{2}"), ("x+1", "1+x"),
    ("10^{3}", "1000"), ("(1,2)", "(1, 2)"), ("\\frac{1}{2}", "\\frac{2}{4}"),
    ("\\pi", "3.14"), ("x^2-1", "(x-1)(x+1)"), ("\\frac{3}{\\sqrt{3}}", "\\sqrt{3}"),
    ("2x", "x+x"),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000, help="GSM8K solutions to use")
    ap.add_argument("--sym-rounds", type=int, default=20, help="passes over the symbolic pairs")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    from synth.math import (
        MathVerifyWorker,
        answers_equivalent,
        extract_answer,
        gsm8k_reference,
    )

    path = Path(__file__).resolve().parents[2] / "shared/data/gsm8k/train.jsonl"
    rows = [json.loads(ln) for ln in path.open()][: args.n]
    texts = [r["answer"] for r in rows]
    refs = [gsm8k_reference(t) for t in texts]

    t0 = time.perf_counter()
    got = [extract_answer(t) for t in texts]
    t_ext = time.perf_counter() - t0

    t0 = time.perf_counter()
    ok = sum(answers_equivalent(g, r) for g, r in zip(got, refs))
    t_num = time.perf_counter() - t0

    w = MathVerifyWorker(timeout_s=5)
    t0 = time.perf_counter()
    w.check("1", "1")
    t_start = time.perf_counter() - t0
    pairs = SYMBOLIC * args.sym_rounds
    t0 = time.perf_counter()
    sym = [answers_equivalent(a, b, worker=w) for a, b in pairs]
    t_sym = time.perf_counter() - t0
    w.close()

    from math_verify import parse, verify

    parse("$1$")  # warm-up, like the helper's start-up check
    t0 = time.perf_counter()
    base = []
    for a, b in pairs:
        ga, gb = parse(f"${a}$"), parse(f"${b}$")
        base.append(bool(ga) and bool(gb) and verify(ga, gb))
    t_base = time.perf_counter() - t0

    print(f"extract_answer: {len(texts) / t_ext:,.0f} extractions/s ({len(texts)} GSM8K solutions)")
    print(f"numeric equivalence (fast path): {len(texts) / t_num:,.0f} checks/s, "
          f"{ok}/{len(texts)} matched the reference")
    print(f"symbolic equivalence via helper process: {len(pairs) / t_sym:,.1f} checks/s "
          f"(helper start-up {t_start:.2f}s, {sum(sym)}/{len(pairs)} equivalent)")
    print(f"baseline in-process math-verify (signal timeouts): {len(pairs) / t_base:,.1f} checks/s "
          f"({sum(base)}/{len(pairs)} equivalent)")
    print(f"time ratio helper / in-process baseline: {t_sym / t_base:.2f}")


if __name__ == "__main__":
    main()
