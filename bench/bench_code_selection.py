"""Code answers: first passing sample vs behavioural agreement, scored on held-out tests.

Issue 27, item 1. A task with weak given tests keeps a sample that passes them; the question is
which passing sample becomes the record's answer. OLD rule: the first passing sample in sample
order. NEW rule (what ``pipelines/jobs/synth.py``'s ``SolveCode`` does): the passing samples run
on extra inputs derived from the given tests (``synth.code.behaviour_vote``), the sample that
agrees with the others on the most inputs (MBR-exec) and its group give the answer (the previous
rule, the largest group of identical result vectors, is printed as GROUP for comparison), and a
task whose passing samples disagree is marked
(evidence ``given_tests_disputed``; with ``code.on_disagreement: drop`` it is removed). Each
kept answer is then scored on an INDEPENDENT held-out test set that the pipeline never sees
(``bench/data/code_selection_tasks.py``: 34 small tasks, weak given tests of 1-3 asserts,
held-out sets of 6-7 asserts with edge cases).

    python bench/bench_code_selection.py check                 # labels of the pool, in the sandbox
    python bench/bench_code_selection.py pool --n 4 8 --trials 40
    python bench/bench_code_selection.py record --backend server --n 8 --budget-s 1500  # once
    python bench/bench_code_selection.py model                 # the recorded samples

Candidates come from two sources, reported separately:

* ``pool``: a MUTATION-STYLE POOL written by hand (not model output): per task 2 correct
  solutions written differently and 1-3 plausible wrong ones that mostly pass the given tests
  (a missed branch, off-by-one, a wrong empty-input case). A trial draws n samples per task
  with a fixed seed: each is broken (fails the given tests; ``--p-broken``, default 0.25) or
  else correct with probability p (drawn per task and trial, uniform in 0.1-0.9, or fixed with
  ``--p``), else wrong -- the task's first listed wrong variant (its "common mistake") 60% of
  the time, another 40%.
* ``model``: samples recorded once from SmolLM2-135M-Instruct through
  ``synth.tasks.sample_code`` and the project's transformers backend, or (``--backend server``,
  what made bench/data/code_selection_smollm2.jsonl: transformers was too slow on the busy
  2-core machine) the same GGUF behind ``synth.local_server.LlamaCppServer`` and the
  ``openai`` backend. ``record`` appends JSONL per task and resumes; ``--budget-s`` stops it.
  ``model`` replays the file with the first 4 and all 8 samples per task.

Everything runs through the project's functions and the real sandbox: ``synth.tasks.verify_code``
(given tests), ``synth.code.behaviour_vote`` (extra inputs, groups), ``synth.code.run_tests``
(held-out). Sandbox results are cached per (program, tests) and (program, inputs), so repeated
trials reuse them (``run_tests`` in ``synth.tasks`` and ``probe_outputs`` in ``synth.code`` are
wrapped with a cache; the grouping and the vote are the project's own).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synth import code, tasks
from synth.tasks import CodeSampling, task_entry_point, verify_code

DATA = ROOT / "bench" / "data"
DEFAULT_SAMPLES = DATA / "code_selection_smollm2.jsonl"
PROBE_INPUTS = 24  # code.probe_inputs' default
TIMEOUT_S = 10.0


def load_tasks() -> list[dict]:
    spec = importlib.util.spec_from_file_location("code_selection_tasks",
                                                  DATA / "code_selection_tasks.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod.TASKS


# --------------------------------------------------------------------------- cached sandbox

_RUN_ORIG = code.run_tests
_PROBE_ORIG = code.probe_outputs
_runs: dict[tuple[str, str], object] = {}
_probes: dict[tuple[str, str, tuple[str, ...]], list[str]] = {}
_lock = threading.Lock()
STATS = Counter()


def cached_run_tests(program: str, tests: str, timeout_s: float = TIMEOUT_S, limits=None):
    key = (program, tests)
    with _lock:
        if key in _runs:
            STATS["run_hits"] += 1
            return _runs[key]
    res = _RUN_ORIG(program, tests, timeout_s, limits)
    with _lock:
        STATS["run_sandbox"] += 1
        _runs[key] = res
    return res


def cached_probe_outputs(program: str, entry_point: str, inputs: list[str], **kw) -> list[str]:
    key = (program, entry_point, tuple(inputs))
    with _lock:
        if key in _probes:
            STATS["probe_hits"] += 1
            return _probes[key]
    out = _PROBE_ORIG(program, entry_point, inputs, **kw)
    with _lock:
        STATS["probe_sandbox"] += 1
        _probes[key] = out
    return out


def install_cache() -> None:
    tasks.run_tests = cached_run_tests  # what verify_code calls for given tests
    code.probe_outputs = cached_probe_outputs  # what behaviour_groups calls


def heldout_ok(program: str, task: dict) -> bool:
    return bool(cached_run_tests(program, task["heldout"]).passed)


def warm(jobs: list[tuple], workers: int) -> None:
    """Fill the caches in parallel: ('run', program, tests) / ('probe', program, entry, inputs)."""
    def one(j: tuple) -> None:
        if j[0] == "run":
            cached_run_tests(j[1], j[2])
        else:
            cached_probe_outputs(j[1], j[2], j[3], timeout_s=TIMEOUT_S)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(one, jobs))


# --------------------------------------------------------------------------- selection

def select(task: dict, samples: list[dict]) -> dict:
    """OLD and NEW answer for one task's samples, as the pipeline would choose them."""
    t = {"question": task["prompt"], "tests": task["given"], "reference_solution": None}
    v = verify_code(t, samples, CodeSampling(n=len(samples), timeout_s=TIMEOUT_S),
                    tests_generated=False)
    if not v.keep:
        return {"kept": False}
    old = v.kept_solutions[0]
    new, disputed, tied, groups = old, False, False, [len(v.kept_solutions)]
    grp = old
    if len(v.kept_solutions) > 1:
        order, beh, _note = code.behaviour_vote(v.kept_solutions, task_entry_point(t),
                                                task["given"], max_inputs=PROBE_INPUTS,
                                                timeout_s=TIMEOUT_S)
        new = v.kept_solutions[order[0]]
        disputed, tied = not beh.agree, beh.tied
        groups = [len(g) for g in beh.groups]
        if beh.groups:  # the previous rule: the largest group of identical result vectors
            grp = v.kept_solutions[beh.groups[0][0]]
    passers_ok = [heldout_ok(s, task) for s in v.kept_solutions]
    return {"kept": True, "old_wrong": not heldout_ok(old, task),
            "new_wrong": not heldout_ok(new, task), "group_wrong": not heldout_ok(grp, task),
            "disputed": disputed, "tied": tied,
            "groups": groups, "passers": len(v.kept_solutions),
            "passers_correct": sum(passers_ok),
            "evidence": v.evidence + ("_disputed" if disputed else "")}


def summarize(rows: list[dict]) -> dict:
    kept = [r for r in rows if r["kept"]]
    disp = [r for r in kept if r["disputed"]]
    agree = [r for r in kept if not r["disputed"]]
    multi = [r for r in kept if r["passers"] > 1]

    def rate(xs: list[dict], k: str) -> str:
        w = sum(r[k] for r in xs)
        return f"{w}/{len(xs)} = {w / len(xs):.3f}" if xs else "0/0"

    return {
        "trials": len(rows), "kept": len(kept),
        "old_wrong": rate(kept, "old_wrong"), "new_wrong": rate(kept, "new_wrong"),
        "multi_passer": len(multi),
        "old_wrong_multi": rate(multi, "old_wrong"), "new_wrong_multi": rate(multi, "new_wrong"),
        "disputed": len(disp), "new_wrong_disputed": rate(disp, "new_wrong"),
        "new_wrong_agreeing": rate(agree, "new_wrong"),
        "drop_policy_kept_wrong": rate(agree, "new_wrong"),
        "disputed_all_passers_correct": sum(r["passers_correct"] == r["passers"] for r in disp),
        "fixed": sum(r["old_wrong"] and not r["new_wrong"] for r in kept),
        "broken": sum(not r["old_wrong"] and r["new_wrong"] for r in kept),
        "ties": sum(r["tied"] for r in kept),
        "group_wrong": rate(kept, "group_wrong"),
    }


def print_summary(label: str, s: dict) -> None:
    print(f"\n== {label}")
    print(f"  task-trials {s['trials']}, kept {s['kept']} (some sample passes the given tests)")
    print(f"  wrong/kept  OLD (first passing)      {s['old_wrong']}")
    print(f"  wrong/kept  NEW (behaviour vote)     {s['new_wrong']}")
    print(f"    among {s['multi_passer']} with 2+ passing samples: OLD {s['old_wrong_multi']}, "
          f"NEW {s['new_wrong_multi']}")
    print(f"    answers fixed by the vote {s['fixed']}, made wrong by it {s['broken']}, "
          f"ties broken by order {s['ties']}")
    print(f"  marked disputed {s['disputed']}: wrong among them {s['new_wrong_disputed']}; "
          f"wrong among the rest {s['new_wrong_agreeing']}")
    print(f"    disputed although every passing sample is correct: "
          f"{s['disputed_all_passers_correct']}")
    print(f"  on_disagreement: drop -> wrong/kept {s['drop_policy_kept_wrong']}")
    print(f"  (previous rule) largest group of identical result vectors: wrong/kept "
          f"{s['group_wrong']}")


# --------------------------------------------------------------------------- pool

def broken_variant(task: dict) -> str:
    return f"def {task['entry']}(*args, **kwargs):\n    return None\n"


def pool_jobs(all_tasks: list[dict]) -> list[tuple]:
    jobs: list[tuple] = []
    for t in all_tasks:
        inputs = code.derive_inputs(t["given"], t["entry"], max_inputs=PROBE_INPUTS)
        for prog in t["correct"] + list(t["wrong"].values()) + [broken_variant(t)]:
            jobs += [("run", prog, t["given"]), ("run", prog, t["heldout"])]
            if inputs:
                jobs.append(("probe", prog, t["entry"], inputs))
    return jobs


def check(all_tasks: list[dict], workers: int) -> int:
    """Sandbox-check the pool's labels; print what each wrong variant does to the given tests."""
    t0 = time.perf_counter()
    warm(pool_jobs(all_tasks), workers)
    bad = 0
    n_wrong = n_wrong_pass = 0
    for t in all_tasks:
        n_given = len(code.assert_statements(t["given"])[0])
        n_held = len(code.assert_statements(t["heldout"])[0])
        if n_given > 3 or n_held < 6:
            print(f"  {t['id']}: {n_given} given / {n_held} held-out asserts (want <=3 / >=6)")
            bad += 1
        for i, prog in enumerate(t["correct"]):
            g, h = cached_run_tests(prog, t["given"]), cached_run_tests(prog, t["heldout"])
            if not (g.passed and h.passed):
                print(f"  {t['id']}: correct variant {i} given={g.status} held-out={h.status} "
                      f"{h.error}")
                bad += 1
        for name, prog in t["wrong"].items():
            n_wrong += 1
            g, h = cached_run_tests(prog, t["given"]), cached_run_tests(prog, t["heldout"])
            n_wrong_pass += bool(g.passed)
            if h.passed:
                print(f"  {t['id']}: wrong variant {name!r} passes the held-out tests")
                bad += 1
            elif not g.passed:
                print(f"  {t['id']}: wrong variant {name!r} fails the given tests too")
        if cached_run_tests(broken_variant(t), t["given"]).passed:
            print(f"  {t['id']}: the broken stub passes the given tests")
            bad += 1
    slow = sum(o == "missing" or o == "raise TimeoutError" for v in _probes.values() for o in v)
    n_correct = sum(len(t["correct"]) for t in all_tasks)
    print(f"{len(all_tasks)} tasks, {n_correct} correct variants, {n_wrong} wrong variants "
          f"({n_wrong_pass} of them pass the weak given tests); label problems: {bad}; "
          f"{time.perf_counter() - t0:.1f} s, {STATS['run_sandbox']} test runs + "
          f"{STATS['probe_sandbox']} probe runs in the sandbox; probe results lost to a "
          f"timeout or a killed run: {slow}")
    return bad


def correct_variants_split(all_tasks: list[dict]) -> set[str]:
    """Tasks whose correct variants return different results on some input derived from the
    given tests (inputs outside the spec: lo > hi, k = 0, an empty list for median...)."""
    out = set()
    for t in all_tasks:
        inputs = code.derive_inputs(t["given"], t["entry"], max_inputs=PROBE_INPUTS)
        if inputs and len({tuple(cached_probe_outputs(c, t["entry"], inputs,
                                                      timeout_s=TIMEOUT_S))
                           for c in t["correct"]}) > 1:
            out.add(t["id"])
    return out


def draw(t: dict, n: int, p: float, p_broken: float, rng: random.Random) -> list[dict]:
    wrong = list(t["wrong"].values())
    out = []
    for _ in range(n):
        if rng.random() < p_broken:
            prog = broken_variant(t)
        elif rng.random() < p:
            prog = rng.choice(t["correct"])
        elif len(wrong) == 1 or rng.random() < 0.6:
            prog = wrong[0]
        else:
            prog = rng.choice(wrong[1:])
        out.append({"code": prog})
    return out


def run_pool(args: argparse.Namespace) -> None:
    all_tasks = load_tasks()
    if check(all_tasks, args.workers):
        raise SystemExit("fix the pool's labels first")
    split = correct_variants_split(all_tasks)
    print(f"correct variants give different results on some derived input in {len(split)} "
          f"tasks: {', '.join(sorted(split))}")
    ps = args.p or [None]
    for n in args.n:
        for p_fixed in ps:
            rng = random.Random(f"{args.seed}-{n}-{p_fixed}")
            rows, per_task = [], {t["id"]: [] for t in all_tasks}
            t0 = time.perf_counter()
            for _ in range(args.trials):
                for t in all_tasks:
                    p = p_fixed if p_fixed is not None else rng.uniform(0.1, 0.9)
                    r = select(t, draw(t, n, p, args.p_broken, rng))
                    rows.append(r)
                    per_task[t["id"]].append(r)
            same = [r for t in all_tasks if t["id"] not in split for r in per_task[t["id"]]]
            diff = [r for t in all_tasks if t["id"] in split for r in per_task[t["id"]]]
            label = (f"POOL (hand-written mutation pool), n={n}, p_correct="
                     f"{'U(0.1,0.9)' if p_fixed is None else p_fixed}, p_broken={args.p_broken}, "
                     f"{args.trials} trials x {len(all_tasks)} tasks, seed {args.seed} "
                     f"({time.perf_counter() - t0:.1f} s)")
            print_summary(label, summarize(rows))
            agree_name = (f"the {len(all_tasks) - len(split)} tasks whose correct variants "
                          "agree on the derived inputs")
            split_name = (f"the {len(split)} tasks whose correct variants differ on some "
                          "derived (out-of-spec) input")
            for name, part in ((agree_name, same), (split_name, diff)):
                su = summarize(part)
                print(f"    {name}: wrong/kept OLD {su['old_wrong']}, NEW {su['new_wrong']}, "
                      f"disputed {su['disputed']} (wrong {su['new_wrong_disputed']}, rest "
                      f"{su['new_wrong_agreeing']}), GROUP {su['group_wrong']}")
            if args.per_task:
                print("    per task (kept, OLD wrong, NEW wrong, disputed):")
                for tid, rs in per_task.items():
                    k = [r for r in rs if r["kept"]]
                    print(f"      {tid:22s} {len(k):4d} {sum(r['old_wrong'] for r in k):4d} "
                          f"{sum(r['new_wrong'] for r in k):4d} "
                          f"{sum(r['disputed'] for r in k):4d}")
    print(f"\nsandbox: {STATS['run_sandbox']} test runs + {STATS['probe_sandbox']} probe runs; "
          f"cache hits {STATS['run_hits']} + {STATS['probe_hits']}")


# --------------------------------------------------------------------------- model samples

def record(args: argparse.Namespace) -> None:
    from synth.backends import TransformersBackend, resolve_model
    from synth.tasks import sample_code

    out = Path(args.out)
    done = set()
    if out.exists():
        done = {json.loads(ln)["id"] for ln in out.read_text().splitlines() if ln.strip()}
    todo = [t for t in load_tasks() if t["id"] not in done]
    s = CodeSampling(n=args.n, temperature=args.temperature, top_p=0.95,
                     max_tokens=args.max_tokens, seed=args.seed)
    t0 = time.perf_counter()
    srv = None
    if args.backend == "server":  # the same GGUF through llama.cpp (faster on a busy CPU)
        from synth.backends import OpenAICompatibleBackend
        from synth.local_server import LlamaCppServer
        from synth.tiny_model import smollm2_gguf_path

        srv = LlamaCppServer(smollm2_gguf_path(), alias="smollm2", n_ctx=1024,
                             threads=args.threads,
                             log_path=Path(tempfile.gettempdir()) / "code_selection_server.log")
        backend = OpenAICompatibleBackend("smollm2", srv.base_url, max_concurrency=2)
    else:
        backend = TransformersBackend(resolve_model("smollm2"),
                                      batch_size=args.n * args.tasks_per_call,
                                      threads=args.threads, dtype=args.dtype)
    print(f"model loaded in {time.perf_counter() - t0:.1f} s; {len(todo)} tasks to sample "
          f"({len(done)} already in {out})", flush=True)
    with out.open("a") as f:
        for i in range(0, len(todo), args.tasks_per_call):
            if time.perf_counter() - t0 > args.budget_s:
                print(f"budget of {args.budget_s:.0f} s spent; rerun to continue", flush=True)
                break
            part = todo[i:i + args.tasks_per_call]
            t1 = time.perf_counter()
            got = sample_code(backend, [{"id": t["id"], "question": t["prompt"],
                                         "tests": t["given"]} for t in part], s)
            dt = time.perf_counter() - t1
            for t in part:
                smp = [{"text": x["text"], "finish_reason": x["finish_reason"],
                        "num_tokens": x["num_tokens"]} for x in got[t["id"]]]
                f.write(json.dumps({"id": t["id"], "model": "SmolLM2-135M-Instruct",
                                    "backend": backend.name, "template": s.template,
                                    "n": s.n, "temperature": s.temperature,
                                    "max_tokens": s.max_tokens, "seed": s.seed,
                                    "seconds": round(dt / len(part), 2), "samples": smp}) + "\n")
            f.flush()
            toks = sum(x["num_tokens"] for t in part for x in got[t["id"]])
            print(f"  {', '.join(t['id'] for t in part)}: {toks} tokens in {dt:.1f} s", flush=True)
    backend.close()
    if srv is not None:
        srv.close()


def run_model(args: argparse.Namespace) -> None:
    by_id = {t["id"]: t for t in load_tasks()}
    recs = [json.loads(ln) for ln in Path(args.samples).read_text().splitlines() if ln.strip()]
    print(f"{len(recs)} tasks recorded in {args.samples}")
    for k in args.first:
        rows, lines = [], []
        for rec in recs:
            t = by_id[rec["id"]]
            smp = [{"text": x["text"]} for x in rec["samples"][:k]]
            r = select(t, smp)
            rows.append(r)
            if r["kept"]:
                lines.append(f"    {t['id']:22s} passers {r['passers']} (held-out correct "
                             f"{r['passers_correct']}), groups {r['groups']}, OLD "
                             f"{'wrong' if r['old_wrong'] else 'right'}, NEW "
                             f"{'wrong' if r['new_wrong'] else 'right'}, {r['evidence']}")
        print_summary(f"MODEL SAMPLES (SmolLM2-135M-Instruct, recorded), first {k} per task",
                      summarize(rows))
        print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="sandbox-check the pool's labels")
    c.add_argument("--workers", type=int, default=2)
    p = sub.add_parser("pool", help="trials over the hand-written mutation pool")
    p.add_argument("--n", type=int, nargs="+", default=[4, 8])
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--p", type=float, nargs="*", help="fixed chance of a correct sample "
                   "(default: uniform 0.1-0.9 per task and trial)")
    p.add_argument("--p-broken", type=float, default=0.25)
    p.add_argument("--per-task", action="store_true")
    p.add_argument("--workers", type=int, default=2)
    r = sub.add_parser("record", help="sample SmolLM2-135M once, write JSONL (resumable)")
    r.add_argument("--out", default=str(DEFAULT_SAMPLES))
    r.add_argument("--n", type=int, default=8)
    r.add_argument("--temperature", type=float, default=0.8)
    r.add_argument("--max-tokens", type=int, default=192)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--backend", choices=["transformers", "server"], default="transformers",
                   help="transformers: the project's TransformersBackend; server: the same "
                   "GGUF behind synth.local_server.LlamaCppServer + OpenAICompatibleBackend")
    r.add_argument("--tasks-per-call", type=int, default=1)
    r.add_argument("--dtype", default="float32", help="float32: the GGUF-packed weights "
                   "compute in float32 (bfloat16 casts every matmul here)")
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--budget-s", type=float, default=1200)
    m = sub.add_parser("model", help="OLD vs NEW on the recorded model samples")
    m.add_argument("--samples", default=str(DEFAULT_SAMPLES))
    m.add_argument("--first", type=int, nargs="+", default=[4, 8])
    args = ap.parse_args()
    install_cache()
    if args.cmd == "check":
        raise SystemExit(1 if check(load_tasks(), args.workers) else 0)
    {"pool": run_pool, "record": record, "model": run_model}[args.cmd](args)


if __name__ == "__main__":
    main()
