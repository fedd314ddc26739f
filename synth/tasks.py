"""Per-batch synthesis logic (no Beam): sample solutions, verify them, decide what to keep.

The Beam pipeline (``pipelines/synth_pipeline.py``) calls these functions once per prompt
batch. Generation and verification are split so that raw generations can be saved per batch
and re-verified on a rerun without regenerating:

* :func:`sample_math` — n chain-of-thought samples per problem (plus optional
  program-of-thought samples), with DART-Math style difficulty-aware extra rounds;
* :func:`verify_math` — answer extraction, majority vote / reference check, pass rate;
* :func:`generate_problems` — new problems from seed problems or concept lists;
* :func:`sample_code` / :func:`verify_code` — candidate programs, sandboxed tests, CodeT
  agreement when the tests were generated too.
"""

from __future__ import annotations

import ast
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from synth.backends import Backend, GenerationRequest, SamplingParams, derive_seed
from synth.code import (assert_statements, codet_select, entry_points, extract_code,
                        last_code_block, pass_row, run_tests)
from synth.math import answers_equivalent, extract_answer, majority_vote
from synth.prompts import get_template
from synth.sandbox import SandboxLimits, run_python


@dataclass
class MathSampling:
    n: int = 4
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 256
    seed: int = 0
    template: str = "math_cot_v1"
    pot_n: int = 0  # program-of-thought samples per problem (executed in the sandbox)
    pot_template: str = "math_pot_v1"
    # DART-Math difficulty-aware rejection sampling (Tong et al. 2024): problems with fewer
    # than `min_correct` correct samples get extra rounds of n samples, up to `max_rounds`.
    adaptive: bool = False
    min_correct: int = 2
    max_rounds: int = 3
    vote_threshold: float = 0.5
    min_votes: int = 2


def _params(s: MathSampling, seed: int, n: int | None = None) -> SamplingParams:
    return SamplingParams(n=n or s.n, temperature=s.temperature, top_p=s.top_p,
                          max_tokens=s.max_tokens, seed=seed)


def pot_answer(program_text: str, timeout_s: float = 5.0) -> tuple[str | None, str]:
    """Run a program-of-thought response; its answer is the last line it prints."""
    code = last_code_block(program_text)
    if code is None:
        return None, "no_code"
    res = run_python(code, "", SandboxLimits(timeout_s=timeout_s, cpu_s=int(timeout_s) + 1,
                                             memory_mb=512))
    if not res.passed:
        return None, res.status
    lines = [ln.strip() for ln in res.stdout.strip().splitlines() if ln.strip()]
    return (lines[-1][:200] if lines else None), "ok"


def _correct_count(samples: list[dict], reference: str | None, equiv: Callable) -> int:
    answers = [s.get("answer") for s in samples]
    if reference is not None:
        return sum(1 for a in answers if a is not None and equiv(reference, a))
    vote = majority_vote(answers, threshold=0.0, min_votes=1, equiv=equiv)
    return max((size for _, size in vote.clusters), default=0)


def sample_math(backend: Backend, problems: list[dict], s: MathSampling,
                equiv: Callable = answers_equivalent) -> dict[str, list[dict]]:
    """Raw samples per problem id: ``{text, answer, kind, round, num_tokens, finish_reason}``.

    ``problems`` are dicts with ``id``, ``problem`` and optional ``reference``.
    """
    cot = get_template(s.template)
    out: dict[str, list[dict]] = {p["id"]: [] for p in problems}
    todo = list(problems)
    rounds = s.max_rounds if s.adaptive else 1
    for rnd in range(rounds):
        if not todo:
            break
        reqs = [GenerationRequest(id=p["id"], params=_params(s, derive_seed(s.seed, p["id"], rnd)),
                                  messages=cot.messages(problem=p["problem"])) for p in todo]
        if s.pot_n and rnd == 0:
            pot = get_template(s.pot_template)
            reqs += [GenerationRequest(id=p["id"] + "#pot",
                                       params=_params(s, derive_seed(s.seed, p["id"], "pot"),
                                                      s.pot_n),
                                       messages=pot.messages(problem=p["problem"])) for p in todo]
        for res in backend.generate(reqs):
            pid, kind = (res.request_id[:-4], "pot") if res.request_id.endswith("#pot") \
                else (res.request_id, "cot")
            if res.error:
                out[pid].append({"text": "", "answer": None, "kind": kind, "round": rnd,
                                 "num_tokens": 0, "finish_reason": "error", "error": res.error})
            for smp in res.samples:
                if kind == "pot":
                    ans, how = pot_answer(smp.text)
                else:
                    ans, how = extract_answer(smp.text), "extracted"
                out[pid].append({"text": smp.text, "answer": ans, "kind": kind, "round": rnd,
                                 "num_tokens": smp.num_tokens, "finish_reason": smp.finish_reason,
                                 "check": how})
        todo = [p for p in todo
                if _correct_count(out[p["id"]], p.get("reference"), equiv) < s.min_correct]
    return out


@dataclass
class MathVerdict:
    keep: bool
    reason: str  # "verified" or the removal reason
    answer: str | None
    agreement: float
    pass_rate: float
    n_samples: int
    n_correct: int
    verified: list[int] = field(default_factory=list)  # indices of verified samples
    correct: list[bool] = field(default_factory=list)


def verify_math(samples: list[dict], reference: str | None, s: MathSampling,
                equiv: Callable = answers_equivalent) -> MathVerdict:
    """Majority vote over all samples; with a reference, samples must match it instead.

    ``pass_rate`` = samples matching the reference (or the agreed answer) / samples.
    """
    answers = [x.get("answer") for x in samples]
    n = len(answers)
    vote = majority_vote(answers, threshold=s.vote_threshold, min_votes=s.min_votes, equiv=equiv)
    if n == 0 or vote.n_extracted == 0:
        return MathVerdict(False, "no_answer", None, 0.0, 0.0, n, 0, [], [False] * n)
    if reference is not None:
        correct = [a is not None and equiv(reference, a) for a in answers]
        k = sum(correct)
        verified = [i for i, c in enumerate(correct) if c]
        keep = k > 0
        return MathVerdict(keep, "verified" if keep else "reference_mismatch", reference,
                           vote.agreement, k / n, n, k, verified, correct)
    best = -1
    for ci, (rep, _) in enumerate(vote.clusters):
        if rep == vote.answer:
            best = ci
    correct = [c == best for c in vote.cluster_of]
    k = sum(correct)
    verified = [i for i, c in enumerate(correct) if c]
    keep = vote.accepted
    return MathVerdict(keep, "verified" if keep else "no_agreement", vote.answer,
                       vote.agreement, k / n, n, k, verified if keep else [], correct)


# --------------------------------------------------------------------------- problem generation

_PROBLEM_PREFIX = re.compile(r"^\s*(?:\*\*)?(?:new\s+)?(?:word\s+)?problem\s*:?\s*(?:\*\*)?\s*",
                             re.IGNORECASE)


def clean_problem(text: str) -> str | None:
    """The problem statement from a problem-generation response, or None when unusable."""
    t = _PROBLEM_PREFIX.sub("", text.strip())
    t = re.split(r"\n\s*(?:solution|answer|step 1)\b", t, flags=re.IGNORECASE)[0].strip()
    if len(t.split()) < 6 or "?" not in t and not t.endswith("."):
        return None
    return t


def generate_problems(backend: Backend, seeds: list[dict], *, mode: str, per_item: int,
                      temperature: float, top_p: float, max_tokens: int, seed: int,
                      concepts: list[str] | None = None, concepts_per_problem: int = 2
                      ) -> list[dict]:
    """New problems from seed problems (``mode='seed'``) or concept lists (``'concepts'``).

    Concept sampling follows MathScale (Tang et al. 2024) in spirit: each prompt combines
    ``concepts_per_problem`` concepts drawn with a seeded RNG keyed by the item id.
    Returns ``{id, problem, parent, template, raw}`` (``problem`` None when unusable).
    """
    if mode == "seed":
        tmpl = get_template("math_problem_from_seed_v1")
        reqs = [GenerationRequest(
            id=x["id"], params=SamplingParams(per_item, temperature, top_p, max_tokens, (),
                                              derive_seed(seed, x["id"], "problem")),
            messages=tmpl.messages(seed=x["problem"])) for x in seeds]
    elif mode == "concepts":
        if not concepts:
            raise ValueError("concept mode needs a non-empty concepts list")
        tmpl = get_template("math_problem_from_concept_v1")
        reqs = []
        for x in seeds:
            rng = random.Random(derive_seed(seed, x["id"], "concepts"))
            pick = rng.sample(concepts, min(concepts_per_problem, len(concepts)))
            reqs.append(GenerationRequest(
                id=x["id"], params=SamplingParams(per_item, temperature, top_p, max_tokens, (),
                                                  derive_seed(seed, x["id"], "problem")),
                messages=tmpl.messages(concepts=", ".join(pick))))
    else:
        raise ValueError(f"unknown problem generation mode {mode!r}")
    out = []
    for res in backend.generate(reqs):
        for j, smp in enumerate(res.samples):
            out.append({"id": f"{res.request_id}-g{j}", "problem": clean_problem(smp.text),
                        "parent": res.request_id, "template": tmpl.id, "raw": smp.text,
                        "error": res.error})
        if res.error:
            out.append({"id": f"{res.request_id}-g0", "problem": None, "parent": res.request_id,
                        "template": tmpl.id, "raw": "", "error": res.error})
    return out


# --------------------------------------------------------------------------- code


@dataclass
class CodeSampling:
    n: int = 4
    temperature: float = 0.8
    top_p: float = 0.95
    max_tokens: int = 384
    seed: int = 0
    template: str = "code_solve_v1"
    timeout_s: float = 10.0
    min_tests: int = 1
    min_agreeing: int = 2  # generated tests: independent samples that must agree (CodeT)


_DEF = re.compile(r"^def\s+\w+\s*\([^)]*\)\s*(?:->\s*[^:]+)?:", re.MULTILINE)


def task_from_generation(text: str, topic: str) -> dict | None:
    """A KodCode-style task (question, reference solution, tests) from one model response.

    The response must hold a code block defining a function and a block of asserts. The
    question is built from the topic and the function signature so that solvers know the name.
    """
    blocks = re.findall(r"```(?:python|py)?\s*\n(.*?)```", text or "", re.DOTALL)
    sol = next((b for b in blocks if _DEF.search(b)), None)
    tests = next((b for b in blocks if "assert " in b and b is not sol), None)
    if sol is None or tests is None:
        return None
    sig = _DEF.search(sol).group(0)  # type: ignore[union-attr]
    question = f"Write a Python function `{sig[4:].rstrip(':')}` that solves: {topic}"
    return {"question": question, "reference_solution": sol.strip() + "\n",
            "tests": tests.strip() + "\n"}


def sample_code(backend: Backend, tasks: list[dict], s: CodeSampling) -> dict[str, list[dict]]:
    tmpl = get_template(s.template)
    entry = {t["id"]: task_entry_point(t) for t in tasks}
    reqs = [GenerationRequest(
        id=t["id"], params=SamplingParams(s.n, s.temperature, s.top_p, s.max_tokens, (),
                                          derive_seed(s.seed, t["id"], "solve")),
        messages=tmpl.messages(problem=t["question"])) for t in tasks]
    out: dict[str, list[dict]] = {t["id"]: [] for t in tasks}
    for res in backend.generate(reqs):
        for smp in res.samples:
            out[res.request_id].append({"text": smp.text,
                                        "code": extract_code(smp.text, entry.get(res.request_id)),
                                        "num_tokens": smp.num_tokens,
                                        "finish_reason": smp.finish_reason})
        if res.error:
            out[res.request_id].append({"text": "", "code": None, "num_tokens": 0,
                                        "finish_reason": "error", "error": res.error})
    return out


@dataclass
class CodeVerdict:
    keep: bool
    reason: str  # "verified" or the removal reason
    pass_rate: float  # independent samples passing the kept tests / samples drawn
    kept_solutions: list[str]
    kept_tests: list[str]
    rejected_tests: list[str]
    results: list[dict[str, Any]]
    keep_reason: str = ""  # the evidence a kept task rests on (stats count these)
    evidence: str = ""  # short key: given_tests | codet_consensus
    reference_agrees: bool | None = None


def task_entry_point(task: dict) -> str | None:
    """The function a task's solution must define: from the reference or from the tests."""
    ref = task.get("reference_solution")
    if ref:
        m = _DEF.search(ref)
        if m:
            return m.group(0)[4:].split("(")[0].strip()
    names = entry_points(task.get("tests") or "")
    return names[0] if names else None


def verify_code(task: dict, samples: list[dict], s: CodeSampling, *, tests_generated: bool
                ) -> CodeVerdict:
    """Execute candidates; keep a task only on evidence from independent samples.

    * given tests (seed tasks): a sample must pass every test statement; the task is kept
      when at least one sampled solution does (the tests are independent of the model);
    * generated tests (the model wrote question, reference and tests together): the model's
      reference is *not* evidence -- a wrong reference with matching wrong tests agrees with
      itself. CodeT runs over the sampled solutions only; the task is kept when at least
      ``min_agreeing`` independent samples agree on at least ``min_tests`` tests. The
      reference is kept only if it passes the agreed tests (``reference_agrees``).
    """
    entry = task_entry_point(task)
    codes = [extract_code(x.get("text") or "", entry) if x.get("text") else x.get("code")
             for x in samples]
    n = len(samples)
    rows: list[dict[str, Any]] = [{"sample": i, "code_found": c is not None}
                                  for i, c in enumerate(codes)]
    cand = [i for i, c in enumerate(codes) if c]
    if not cand:
        return CodeVerdict(False, "no_code", 0.0, [], [], [], rows)
    tests = task.get("tests") or ""
    if not tests.strip():
        return CodeVerdict(False, "no_tests", 0.0, [], [], [], rows)
    if not tests_generated:
        results = {i: run_tests(codes[i], tests, s.timeout_s) for i in cand}
        for i, r in results.items():
            rows[i].update(passed=r.passed, status=r.status, error=r.error)
        ok = [i for i in cand if results[i].passed]
        n_stmt = next(iter(results.values())).details.get("statements")
        if not ok:
            return CodeVerdict(False, "no_passing_solution", 0.0, [], [tests], [], rows)
        return CodeVerdict(True, "verified", len(ok) / max(1, n), [codes[i] for i in ok],
                           [tests], [], rows,
                           f"{len(ok)} of {n} independent samples pass all {n_stmt} "
                           "statements of the given tests", "given_tests")
    parsed = assert_statements(tests)
    if not parsed or not parsed[0]:
        return CodeVerdict(False, "no_tests", 0.0, [], [], [], rows)
    idx, asserts = parsed
    tree = ast.parse(tests)
    prelude = "\n".join(ast.get_source_segment(tests, node) or "" for k, node in
                        enumerate(tree.body) if k not in set(idx))
    cases = [(prelude + "\n" if prelude else "") + a + "\n" for a in asserts]
    matrix = []
    for i in cand:
        row, r = pass_row(codes[i], tests, timeout_s=s.timeout_s)
        rows[i].update(passes=row, status=r.status, error=r.error)
        matrix.append(row)
    agree = codet_select(matrix)
    kept_samples = [cand[j] for j in agree.kept_solutions]
    kept_tests = [cases[t] for t in agree.kept_tests]
    rejected = [cases[t] for t in agree.rejected_tests]
    ref = task.get("reference_solution")
    ref_row = pass_row(ref, tests, timeout_s=s.timeout_s)[0] if ref else []
    ref_agrees = bool(ref_row) and bool(agree.kept_tests) and all(ref_row[t]
                                                                 for t in agree.kept_tests)
    rate = len(kept_samples) / max(1, n)
    if len(kept_samples) < s.min_agreeing or len(kept_tests) < s.min_tests:
        reason = "only_reference_passes" if any(ref_row) and not kept_samples else \
            "no_agreement"
        return CodeVerdict(False, reason, rate, [], kept_tests, rejected, rows,
                           reference_agrees=ref_agrees if ref else None)
    sols = [codes[i] for i in kept_samples]
    why = (f"CodeT consensus: {len(kept_samples)} of {n} independent samples agree on "
           f"{len(kept_tests)} of {len(cases)} generated tests; reference "
           + ("agrees" if ref_agrees else "disagrees (not kept)"))
    return CodeVerdict(True, "verified", rate, sols, kept_tests, rejected, rows, why,
                       "codet_consensus", ref_agrees if ref else None)
