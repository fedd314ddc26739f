"""How often does a kept ("verified") math answer turn out wrong? Acceptance rules measured.

GSM8K test items with known answers are solved AS IF they were generated problems: the
pipeline's verifier (``synth.tasks.verify_math``) never sees the reference; it is used only to
score what was kept. Reported per acceptance rule: problems, kept, kept-and-wrong, the
false-accept rate (kept-and-wrong / kept) and yield (kept / problems; kept-and-right /
problems).

Three modes, each one command:

    # 1. record real samples of a model (slow on CPU: SmolLM2-135M, 2 cores, ~10 min);
    #    --easy: seeded one- and two-step word problems instead of GSM8K test items
    python bench/bench_synth_acceptance.py record --items 24 --n 8 --pot-n 2 \\
        --out out/bench_acceptance/smollm2.jsonl --budget-s 600
    # 2. replay recorded samples through every rule (seconds; subsamples n' <= n)
    python bench/bench_synth_acceptance.py replay out/bench_acceptance/smollm2.jsonl
    # 3. synthetic sample distributions with known correctness (no model; seconds)
    python bench/bench_synth_acceptance.py simulate --problems 4000

``simulate`` draws per-problem accuracy p from a mixture calibrated on small models (most
problems hard, p ~ 0..0.2; some easy) and wrong answers from a concentrated distribution (a
model's favourite wrong answer repeats: the failure that lets two agreeing wrong samples pass).
The rules compared are the shipped defaults of ``MathSampling`` and the previous ones
(n = 4, threshold 0.5, 2 votes). Skips cleanly when GSM8K is absent.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GSM8K = ROOT.parent / "shared/data/gsm8k/test.jsonl"


def rules() -> dict[str, dict]:
    """Acceptance rules to compare: name -> MathSampling overrides (n is the CoT sample count)."""
    from pipelines.jobs.synth import MathSection

    d = MathSection()  # the shipped defaults (a config's `math:` block without overrides)
    return {
        "old (n4, 0.5, 2 votes)": dict(n=4, vote_threshold=0.5, min_votes=2, min_margin=0,
                                       pot_min_agree=0),
        "n4, 0.6, 3 votes, margin 2": dict(n=4, vote_threshold=0.6, min_votes=3, min_margin=2,
                                           pot_min_agree=0),
        "n8, 0.5, 3 votes, margin 1": dict(n=8, vote_threshold=0.5, min_votes=3, min_margin=1,
                                           pot_min_agree=0),
        "n8, 0.6, 3 votes, margin 2": dict(n=8, vote_threshold=0.6, min_votes=3, min_margin=2,
                                           pot_min_agree=0),
        "n16, 0.6, 10 votes, margin 6": dict(n=16, vote_threshold=0.6, min_votes=10,
                                             min_margin=6, pot_min_agree=0),
        "n16, 0.75, 12 votes, margin 8": dict(n=16, vote_threshold=0.75, min_votes=12,
                                              min_margin=8, pot_min_agree=0),
        "n8, 0.75, 3 votes, margin 2 + 1 PoT agreeing": dict(
            n=8, vote_threshold=0.75, min_votes=3, min_margin=2, pot_min_agree=1),
        f"shipped default (n{d.n}, {d.vote_threshold}, {d.min_votes} votes, margin "
        f"{d.min_margin}, pot {d.pot_min_agree})": dict(
            n=d.n, vote_threshold=d.vote_threshold, min_votes=d.min_votes,
            min_margin=d.min_margin, pot_min_agree=d.pot_min_agree),
    }


def _score(items: list[dict], overrides: dict, seed: int = 0) -> dict:
    """Run ``verify_math`` (no reference) on each item's samples; score against the reference."""
    from synth.math import answers_equivalent
    from synth.tasks import MathSampling, verify_math

    s = replace(MathSampling(), **overrides)
    kept = wrong = 0
    rng = random.Random(seed)
    for it in items:
        cot = [x for x in it["samples"] if x.get("kind", "cot") == "cot"]
        pot = [x for x in it["samples"] if x.get("kind") == "pot"]
        if len(cot) > s.n:
            cot = rng.sample(cot, s.n)
        v = verify_math(cot + pot, None, s, problem=it.get("question"))
        if v.keep:
            kept += 1
            if not answers_equivalent(v.answer, it["reference"]):
                wrong += 1
    n = len(items)
    return {"problems": n, "kept": kept, "kept_wrong": wrong,
            "false_accept": wrong / kept if kept else None,
            "yield": kept / n if n else 0.0, "right_yield": (kept - wrong) / n if n else 0.0}


def _table(results: dict[str, dict]) -> str:
    out = ["| rule | problems | kept | kept & wrong | wrong / kept | yield (kept right / problems) |",
           "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in results.items():
        fa = "n/a" if r["false_accept"] is None else f"{100 * r['false_accept']:.1f}%"
        out.append(f"| {name} | {r['problems']} | {r['kept']} | {r['kept_wrong']} | {fa} | "
                   f"{100 * r['right_yield']:.1f}% |")
    return "\n".join(out)


# --------------------------------------------------------------------------- simulate


def _fake_text(answer: str) -> str:
    return f"Some steps.\nThe answer is {answer}."


def simulate_items(problems: int, n: int, pot_n: int, seed: int = 0,
                   pot_accuracy_ratio: float = 0.5, fav: float = 0.45,
                   hard: float = 0.6) -> list[dict]:
    """Synthetic problems: CoT samples with per-problem accuracy p, concentrated wrong answers.

    * p: a share ``hard`` of problems hard (p ~ U(0, 0.15)), the rest split 5:3 into medium
      (U(0.15, 0.5)) and easy (U(0.5, 0.95)) -- roughly a 0.1-0.5B model on GSM8K;
    * a wrong sample repeats the problem's favourite wrong answer with probability ``fav``,
      a second one with ``fav / 2``, else a fresh one;
    * PoT samples are right with ``pot_accuracy_ratio * p`` and fail (no answer) half of the
      time; a wrong PoT answer is a fresh wrong value most of the time (a different solver
      does not share the CoT's favourite mistake) and the favourite one 25% of the time.
    """
    rng = random.Random(seed)
    out = []
    for i in range(problems):
        u = rng.random()
        p = rng.uniform(0, 0.15) if u < hard else rng.uniform(0.15, 0.5) \
            if u < hard + (1 - hard) * 5 / 8 else rng.uniform(0.5, 0.95)
        ref = rng.randint(2, 500)
        fav_ans = [ref + rng.choice([-1, 1]) * rng.randint(1, 50) for _ in range(2)]
        samples = []
        for _ in range(n):
            if rng.random() < p:
                a = ref
            else:
                r = rng.random()
                a = fav_ans[0] if r < fav else fav_ans[1] if r < 1.5 * fav \
                    else ref + rng.randint(51, 999)
            samples.append({"text": _fake_text(str(a)), "finish_reason": "stop", "kind": "cot"})
        for _ in range(pot_n):
            if rng.random() < 0.5:
                samples.append({"kind": "pot", "answer": None, "check": "failed"})
                continue
            a = ref if rng.random() < pot_accuracy_ratio * p else \
                (fav_ans[0] if rng.random() < 0.25 else ref + rng.randint(1000, 9999))
            samples.append({"kind": "pot", "answer": str(a), "check": "ok"})
        out.append({"id": f"sim-{i}", "question": "", "reference": str(ref), "samples": samples})
    return out


def cmd_simulate(args: argparse.Namespace) -> dict:
    out = {}
    for fav in args.fav:
        items = simulate_items(args.problems, 16, args.pot_n, seed=args.seed, fav=fav,
                               hard=args.hard)
        res = {name: _score(items, o, args.seed) for name, o in rules().items()}
        print(f"\nsimulated: {args.problems} problems, 16 CoT + {args.pot_n} PoT samples each "
              f"(rules subsample n); hard share {args.hard}, favourite wrong answer share {fav}")
        print(_table(res))
        out[fav] = res
    return out


# --------------------------------------------------------------------------- record / replay


_NAMES = ["Tom", "Sara", "Ben", "Mia", "Leo", "Ana", "Sam", "Eva"]
_THINGS = ["apples", "pencils", "stickers", "marbles", "books", "cookies", "stamps", "cards"]


def easy_items(count: int, seed: int) -> list[tuple[str, dict]]:
    """One- and two-step arithmetic word problems with their answers (GSM8K's format: the
    answer ends in ``#### N``), seeded: the easiest end of grade-school math, where a 135M
    model is right on some samples and wrong answers still agree (the case the vote rules are
    for). Generated here, so the references are right by construction."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        name, things = rng.choice(_NAMES), rng.choice(_THINGS)
        a, b, c = rng.randint(3, 20), rng.randint(2, 12), rng.randint(1, 5)
        kind = i % 5
        if kind == 0:
            q, ans = (f"{name} has {a} {things}. {name} buys {b} more {things}. How many "
                      f"{things} does {name} have now?", a + b)
        elif kind == 1:
            a = a + b
            q, ans = (f"{name} has {a} {things}. {name} gives {b} {things} to a friend. How "
                      f"many {things} does {name} have left?", a - b)
        elif kind == 2:
            q, ans = (f"There are {c + 1} boxes with {b} {things} in each box. How many "
                      f"{things} are there in all?", (c + 1) * b)
        elif kind == 3:
            q, ans = (f"{name} reads {b} pages every day. How many pages does {name} read in "
                      f"{c + 1} days?", b * (c + 1))
        else:
            q, ans = (f"{name} has {a} {things}. {name} buys {b} more and then gives away "
                      f"{c}. How many {things} does {name} have now?", a + b - c)
        out.append((f"easy-{i}", {"question": q, "answer": f"{ans}\n#### {ans}"}))
    return out


def cmd_record(args: argparse.Namespace) -> None:
    logging.disable(logging.WARNING)
    from synth.backends import BackendConfig, make_backend
    from synth.math import extract_answer
    from synth.tasks import MathSampling, sample_math

    if args.easy:
        picked = easy_items(args.items, args.seed)
    else:
        if not GSM8K.is_file():
            print(f"skip: {GSM8K} not found")
            return
        rows = [json.loads(ln) for ln in GSM8K.open()]
        step = max(1, len(rows) // args.items)
        picked = [(f"test-{i}", rows[i]) for i in range(0, len(rows), step)][: args.items]
    opts = {"batch_size": args.batch_size, "threads": args.threads}
    t0 = time.perf_counter()
    backend = make_backend(BackendConfig("transformers", args.model, opts))
    print(f"model loaded in {time.perf_counter() - t0:.1f}s", flush=True)
    s = MathSampling(n=args.n, pot_n=args.pot_n, max_tokens=args.max_tokens,
                     temperature=args.temperature, seed=args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {json.loads(ln)["id"] for ln in out.read_text().splitlines() if ln.strip()} \
        if out.exists() else set()
    t0 = time.perf_counter()
    with out.open("a") as f:
        for k in range(0, len(picked), args.per_call):
            if time.perf_counter() - t0 > args.budget_s:
                print("budget reached", flush=True)
                break
            chunk = [(i, r) for i, r in picked[k:k + args.per_call] if i not in done]
            if not chunk:
                continue
            probs = [{"id": i, "problem": r["question"]} for i, r in chunk]  # no reference
            samples = sample_math(backend, probs, s)
            for i, r in chunk:
                f.write(json.dumps({"id": i, "question": r["question"],
                                    "reference": extract_answer(r["answer"]),
                                    "model": args.model, "samples": [
                                        {k2: x.get(k2) for k2 in ("text", "kind", "answer",
                                                                  "check", "finish_reason",
                                                                  "num_tokens")}
                                        for x in samples[i]]}) + "\n")
            f.flush()
            print(f"{k + len(chunk)}/{len(picked)} items, "
                  f"{time.perf_counter() - t0:.0f}s", flush=True)
    backend.close()


def cmd_replay(args: argparse.Namespace) -> dict:
    items = [json.loads(ln) for ln in Path(args.path).open() if ln.strip()]
    n_max = min(sum(1 for x in it["samples"] if x.get("kind") == "cot") for it in items)
    print(f"replay: {len(items)} problems from {args.path}, {n_max} CoT samples each; "
          "rules needing more samples use all of them")
    res = {}
    for name, o in rules().items():
        o = dict(o, n=min(o["n"], n_max))
        res[name] = _score(items, o, args.seed)
    print(_table(res))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("--items", type=int, default=24)
    r.add_argument("--n", type=int, default=8)
    r.add_argument("--pot-n", type=int, default=2)
    r.add_argument("--max-tokens", type=int, default=256)
    r.add_argument("--temperature", type=float, default=0.7)
    r.add_argument("--model", default="smollm2")
    r.add_argument("--batch-size", type=int, default=16)
    r.add_argument("--threads", type=int, default=1)  # much faster on a busy CPU
    r.add_argument("--per-call", type=int, default=2)
    r.add_argument("--budget-s", type=float, default=600)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", default="out/bench_acceptance/smollm2.jsonl")
    r.add_argument("--easy", action="store_true",
                   help="seeded one- and two-step arithmetic word problems instead of GSM8K")
    p = sub.add_parser("replay")
    p.add_argument("path")
    p.add_argument("--seed", type=int, default=0)
    m = sub.add_parser("simulate")
    m.add_argument("--problems", type=int, default=4000)
    m.add_argument("--pot-n", type=int, default=2)
    m.add_argument("--fav", type=float, nargs="+", default=[0.15, 0.3, 0.45])
    m.add_argument("--hard", type=float, default=0.6)
    m.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    {"record": cmd_record, "replay": cmd_replay, "simulate": cmd_simulate}[args.cmd](args)


if __name__ == "__main__":
    main()
