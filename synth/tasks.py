"""Per-batch synthesis logic (no Beam): sample solutions, verify them, decide what to keep.

The Beam pipeline (``pipelines/jobs/synth.py``) calls these functions once per prompt
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
from synth.code import (assert_statements, code_blocks, codet_select, entry_points,
                        extract_code, first_function, last_code_block, pass_row, run_tests,
                        split_solution_and_tests)
from synth.math import (answer_markers, answers_equivalent, extract_answer_with_source,
                        is_placeholder, majority_vote, parse_number)
from synth.prompts import get_template
from synth.sandbox import SandboxLimits, run_python


@dataclass
class MathSampling:
    n: int = 4
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 512  # SmolLM2/Qwen2.5 GSM8K chains: 128 truncated 38 of 48 samples
    seed: int = 0
    template: str = "math_cot_v1"
    pot_n: int = 0  # program-of-thought samples per problem (executed in the sandbox)
    pot_template: str = "math_pot_v1"
    # DART-Math difficulty-aware rejection sampling (Tong et al. 2024):
    #   until_correct ("Uniform" in DART): extra rounds of n samples while a problem has fewer
    #     than `min_correct` correct samples, up to `max_rounds` rounds;
    #   prop2diff: after a first round of n, `extra_per_problem * #problems` extra samples
    #     are split in proportion to difficulty (1 - pass rate), at most `max_extra` each.
    adaptive: bool = False  # legacy switch: True means allocation="until_correct"
    allocation: str = "uniform"  # uniform | until_correct | prop2diff
    min_correct: int = 2
    max_rounds: int = 3
    extra_per_problem: float = 4.0
    max_extra: int = 16
    # acceptance of an answer without a reference (generated problems): the winning cluster
    # must hold >= vote_threshold of all samples and >= min_votes samples, beat the runner-up
    # by >= min_margin samples, and hold >= pot_min_agree executed program-of-thought answers
    # (a differently prompted solver). These dataclass defaults are the permissive library
    # ones; the shipped defaults (config `math:`) come from bench/bench_synth_acceptance.py.
    vote_threshold: float = 0.5
    min_votes: int = 2
    min_margin: int = 1  # 1: a tie between the two largest clusters is no majority
    pot_min_agree: int = 0
    fallback_last_number: bool = True  # last number of a finished sample as its answer
    integer_answers: str = "off"  # off | counting (how many / number of ...) | always
    drop_all_correct: bool = False  # drop problems every sample solves (no learning signal)

    @property
    def mode(self) -> str:
        return "until_correct" if self.adaptive and self.allocation == "uniform" \
            else self.allocation


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


_SELF_CORRECTION = re.compile(
    r"\b(?:wait|actually|correction|oops|i made an? (?:mistake|error)|on second thought|"
    r"let me (?:re-?check|re-?calculate|recompute|correct|fix)|re-?evaluat\w*|"
    r"that(?:'s| is| was) (?:wrong|incorrect))\b", re.IGNORECASE)


def screen_sample(text: str, finish_reason: str, *, fallback_last_number: bool = True,
                  equiv: Callable = answers_equivalent, instructions: str | None = None
                  ) -> tuple[str | None, str]:
    """Format/truncation filter + extraction for one chain-of-thought sample.

    Returns ``(answer, check)``; ``answer`` is None when the sample is rejected, with
    ``check`` one of: truncated (hit max_tokens), conflicting_boxed (several different boxed
    answers), conflicting_answers (different stated final answers in other forms),
    incomplete (answer cut off mid-expression), placeholder (the answer is a template
    placeholder such as "N" from ``instructions``), no_answer. A final answer restated after
    a self-correction ("Wait, actually it's 3. The answer is 3.") is not a conflict: the
    answers after the last cue must agree. Kept samples have check boxed | hashes |
    answer_is | last_number (how the answer was found).
    """
    if finish_reason == "length":
        return None, "truncated"
    if finish_reason == "error":
        return None, "error"
    ans, how = extract_answer_with_source(text, fallback_last_number=fallback_last_number,
                                          instructions=instructions)
    if ans is None:
        return None, how if how in ("incomplete", "placeholder") else "no_answer"
    # stated answers that look like answers (a boxed one, or one with a digit): "the answer
    # is to add them" is prose, not a competing answer
    marks = [(pos, a, h) for pos, a, h in answer_markers(text)
             if not is_placeholder(a, instructions) and (h == "boxed" or re.search(r"\d", a))]
    cue = None
    for m in _SELF_CORRECTION.finditer(text):
        cue = m.start()
    # only answers stated after the last self-correction cue count (if one follows it)
    after = [x for x in marks if cue is not None and x[0] > cue]
    considered = after or marks
    if len(considered) > 1 and any(not equiv(ans, a) for _, a, _ in considered):
        boxed_only = all(h == "boxed" for _, _, h in considered)
        return None, "conflicting_boxed" if boxed_only else "conflicting_answers"
    return ans, how


def _correct_count(samples: list[dict], reference: str | None, equiv: Callable) -> int:
    answers = [s.get("answer") for s in samples]
    if reference is not None:
        return sum(1 for a in answers if a is not None and equiv(reference, a))
    vote = majority_vote(answers, threshold=0.0, min_votes=1, equiv=equiv)
    return max((size for _, size in vote.clusters), default=0)


def dart_allocation(pass_rates: list[float], budget: int, cap: int) -> list[int]:
    """Prop2Diff (DART-Math): split ``budget`` extra samples in proportion to 1 - pass rate.

    Deterministic largest-remainder rounding (ties by index); no problem gets more than
    ``cap``; problems every sample solved get none.
    """
    w = [max(0.0, 1.0 - p) for p in pass_rates]
    total = sum(w)
    if budget <= 0 or total == 0:
        return [0] * len(w)
    raw = [budget * x / total for x in w]
    out = [min(cap, int(r)) for r in raw]
    left = budget - sum(out)
    order = sorted(range(len(w)), key=lambda i: (-(raw[i] - int(raw[i])), i))
    while left > 0:
        moved = False
        for i in order:
            if left and w[i] > 0 and out[i] < cap:
                out[i] += 1
                left -= 1
                moved = True
        if not moved:
            break
    return out


def sample_math(backend: Backend, problems: list[dict], s: MathSampling,
                equiv: Callable = answers_equivalent) -> dict[str, list[dict]]:
    """Raw samples per problem id: ``{text, answer, kind, round, num_tokens, finish_reason}``.

    ``problems`` are dicts with ``id``, ``problem`` and optional ``reference``.
    """
    cot = get_template(s.template)
    out: dict[str, list[dict]] = {p["id"]: [] for p in problems}

    def run(reqs: list[GenerationRequest], rnd: int) -> None:
        for res in backend.generate(reqs):
            pid, kind = (res.request_id[:-4], "pot") if res.request_id.endswith("#pot") \
                else (res.request_id, "cot")
            if res.error:
                out[pid].append({"text": "", "answer": None, "kind": kind, "round": rnd,
                                 "num_tokens": 0, "finish_reason": "error", "error": res.error,
                                 "check": "error"})
            for smp in res.samples:
                if kind == "pot":
                    ans, how = pot_answer(smp.text)
                else:
                    ans, how = screen_sample(smp.text, smp.finish_reason,
                                             fallback_last_number=s.fallback_last_number,
                                             equiv=equiv, instructions=cot.system)
                out[pid].append({"text": smp.text, "answer": ans, "kind": kind, "round": rnd,
                                 "num_tokens": smp.num_tokens, "finish_reason": smp.finish_reason,
                                 "check": how})

    def cot_reqs(todo: list[dict], rnd: int, n: dict[str, int] | None = None) -> list:
        return [GenerationRequest(id=p["id"], params=_params(s, derive_seed(s.seed, p["id"], rnd),
                                                             (n or {}).get(p["id"])),
                                  messages=cot.messages(problem=p["problem"])) for p in todo]

    first = cot_reqs(problems, 0)
    if s.pot_n:
        pot = get_template(s.pot_template)
        first += [GenerationRequest(id=p["id"] + "#pot",
                                    params=_params(s, derive_seed(s.seed, p["id"], "pot"),
                                                   s.pot_n),
                                    messages=pot.messages(problem=p["problem"]))
                  for p in problems]
    run(first, 0)
    mode = s.mode
    if mode == "until_correct":
        for rnd in range(1, s.max_rounds):
            todo = [p for p in problems
                    if _correct_count(out[p["id"]], p.get("reference"), equiv) < s.min_correct]
            if not todo:
                break
            run(cot_reqs(todo, rnd), rnd)
    elif mode == "prop2diff":
        rates = [_correct_count(out[p["id"]], p.get("reference"), equiv)
                 / max(1, len(out[p["id"]])) for p in problems]
        extra = dart_allocation(rates, int(round(s.extra_per_problem * len(problems))),
                                s.max_extra)
        todo = [p for p, e in zip(problems, extra) if e > 0]
        if todo:
            run(cot_reqs(todo, 1, {p["id"]: e for p, e in zip(problems, extra) if e > 0}), 1)
    elif mode != "uniform":
        raise ValueError(f"math allocation {mode!r}: use uniform, until_correct or prop2diff")
    return out


_COUNTING = re.compile(r"\bhow many\b|\bnumber of\b|\bhow much\b.*\b(?:people|items|"
                       r"apples|pieces|students|books|cars|eggs)\b", re.IGNORECASE)


def needs_integer(problem: str | None, mode: str) -> bool:
    """Whether the configured domain demands an integer answer for this problem."""
    if mode == "always":
        return True
    if mode == "counting":
        return bool(problem and _COUNTING.search(problem))
    return False


def is_integer_answer(ans: str | None) -> bool:
    v = parse_number(ans) if ans is not None else None
    return v is not None and v.denominator == 1


@dataclass
class MathVerdict:
    keep: bool
    reason: str  # "verified" or the removal reason
    answer: str | None
    agreement: float
    pass_rate: float  # verified-correct samples / samples (0 when nothing was verified)
    n_samples: int
    n_correct: int  # verified correct: match the reference, or in an *accepted* vote cluster
    verified: list[int] = field(default_factory=list)  # indices of verified samples
    correct: list[bool] = field(default_factory=list)
    wrong: list[int] = field(default_factory=list)  # verified wrong: an answer, not the answer
    checks: dict[str, int] = field(default_factory=dict)  # per-sample screening outcomes
    screened: list[tuple[str | None, str]] = field(default_factory=list)  # (answer, check)
    evidence: str = ""  # what the answer rests on, e.g. "5 of 8 samples agree (margin 3)"
    margin: int = 0  # winning cluster size minus the runner-up's
    pot_agree: int = 0  # executed program-of-thought answers in the winning cluster


def verify_math(samples: list[dict], reference: str | None, s: MathSampling,
                equiv: Callable = answers_equivalent, *, problem: str | None = None
                ) -> MathVerdict:
    """Screen samples, then majority vote; with a reference, samples must match it instead.

    Samples are re-screened from their text (truncated, conflicting boxed answers, incomplete
    answers and samples without a final answer carry no vote), so a rerun with new filters
    re-verifies saved generations. ``pass_rate`` counts only verified-correct samples: a
    rejected vote verifies nothing (coverage(k) must not count it).
    """
    answers: list[str | None] = []
    checks: dict[str, int] = {}
    screened: list[tuple[str | None, str]] = []
    instructions = get_template(s.template).system
    is_pot: list[bool] = []
    for x in samples:
        if x.get("kind") == "pot" or "text" not in x:
            a, how = x.get("answer"), x.get("check") or "pot"
            if a is not None and is_placeholder(a):
                a, how = None, "placeholder"
        else:
            a, how = screen_sample(x.get("text") or "", x.get("finish_reason") or "stop",
                                   fallback_last_number=s.fallback_last_number, equiv=equiv,
                                   instructions=instructions)
        is_pot.append(x.get("kind") == "pot")
        answers.append(a)
        screened.append((a, how))
        checks[how] = checks.get(how, 0) + 1
    n = len(answers)
    vote = majority_vote(answers, threshold=s.vote_threshold, min_votes=s.min_votes, equiv=equiv)

    def verdict(keep, reason, answer, correct, accepted=True, evidence="", margin=0, pot=0):
        k = sum(correct) if accepted else 0
        verified = [i for i, c in enumerate(correct) if c] if accepted else []
        # verified wrong by the same standard as the kept answer: an answer that is decidably
        # different (both sides plain numbers), never a placeholder or an unparsed expression
        wrong = [i for i, (c, a) in enumerate(zip(correct, answers))
                 if accepted and not c and a is not None and decidably_different(answer, a)]
        rate = k / n if n else 0.0
        if keep and needs_integer(problem, s.integer_answers) and not is_integer_answer(answer):
            keep, reason = False, "non_integer_answer"
        if keep and s.drop_all_correct and k == n:
            keep, reason = False, "all_samples_correct"
        return MathVerdict(keep, reason, answer, vote.agreement, rate, n, k,
                           verified if keep else [], correct, wrong if keep else [], checks,
                           screened, evidence, margin, pot)

    if n == 0 or vote.n_extracted == 0:
        trunc = checks.get("truncated", 0)
        reason = "all_truncated" if n and trunc == n else "no_answer"
        return verdict(False, reason, None, [False] * n, accepted=False)
    if reference is not None:
        correct = [a is not None and equiv(reference, a) for a in answers]
        keep = any(correct)
        return verdict(keep, "verified" if keep else "reference_mismatch", reference, correct,
                       evidence=f"{sum(correct)} of {n} samples agree with the reference answer")
    best = next((ci for ci, (rep, _) in enumerate(vote.clusters) if rep == vote.answer), -1)
    correct = [c == best for c in vote.cluster_of]
    sizes = sorted((size for _, size in vote.clusters), reverse=True)
    margin = sizes[0] - (sizes[1] if len(sizes) > 1 else 0)
    pot_agree = sum(1 for c, p in zip(correct, is_pot) if c and p)
    n_pot = sum(is_pot)
    accepted, reason = vote.accepted, "verified" if vote.accepted else "no_agreement"
    if accepted and margin < s.min_margin:
        accepted, reason = False, "low_margin"
    if accepted and pot_agree < s.pot_min_agree:
        accepted, reason = False, "no_pot_agreement"
    ev = (f"{sizes[0]} of {n} samples agree (agreement {vote.agreement:.2f}, margin {margin} "
          f"over the runner-up)" + (f"; {pot_agree} of {n_pot} executed program-of-thought "
                                    "answers agree" if n_pot else ""))
    return verdict(accepted, reason, vote.answer, correct, accepted=accepted, evidence=ev,
                   margin=margin, pot=pot_agree)


def decidably_different(answer: str | None, other: str | None) -> bool:
    """True when ``other`` is shown to differ from ``answer`` by exact arithmetic.

    Both must be plain numbers (or numeric solution sets); a placeholder, an unparsed
    expression or a missing answer is not verified wrong. Used to pick DPO ``rejected``
    samples: a rejected answer must be wrong by the same standard a kept one is right.
    """
    from synth.math import solution_set

    if answer is None or other is None or is_placeholder(other):
        return False
    if not all(parse_number(x) is not None or solution_set(x) is not None
               for x in (answer, other)):
        return False
    return not answers_equivalent(answer, other)


# --------------------------------------------------------------------------- LLM-as-judge

_JUDGE = re.compile(r"VERDICT\s*[:=]\s*\**\s*(SOUND|FLAWED)", re.IGNORECASE)


def parse_judge(text: str) -> str:
    """``sound`` | ``flawed`` | ``unparseable`` from a judge reply (the last verdict counts)."""
    found = _JUDGE.findall(text or "")
    return found[-1].lower() if found else "unparseable"


def judge_problems(backend: Backend, items: list[dict], *, template: str = "math_judge_v1",
                   n: int = 1, temperature: float = 0.0, max_tokens: int = 128, seed: int = 0
                   ) -> dict[str, dict]:
    """Ask the model (same backend) whether each problem is well-posed and its answer sound.

    ``items``: ``{id, problem, solution}``. With ``n > 1`` samples the majority verdict wins
    (a tie or no parseable verdict is ``unparseable``). Returns per id ``{verdict, texts}``.
    """
    tmpl = get_template(template)
    reqs = [GenerationRequest(
        id=x["id"], params=SamplingParams(n, temperature, 0.95 if temperature else 1.0,
                                          max_tokens, (), derive_seed(seed, x["id"], "judge")),
        messages=tmpl.messages(problem=x["problem"], solution=x["solution"])) for x in items]
    out: dict[str, dict] = {}
    for res in backend.generate(reqs):
        votes = [parse_judge(smp.text) for smp in res.samples]
        sound, flawed = votes.count("sound"), votes.count("flawed")
        v = "sound" if sound > flawed else "flawed" if flawed > sound else "unparseable"
        out[res.request_id] = {"verdict": v if not res.error else "error",
                               "texts": [smp.text for smp in res.samples], "error": res.error}
    return out


# --------------------------------------------------------------------------- problem generation

_PROBLEM_PREFIX = re.compile(r"^\s*(?:#+\s*)?(?:\*\*)?\s*(?:(?:new|generated|different)[\s,]+)*"
                             r"(?:math\s+)?(?:word\s+)?(?:problem|question)(?:\s*\d+)?\s*:?\s*"
                             r"(?:\*\*)?\s*:?\s*", re.IGNORECASE)
# chatty openers: "Sure! Here's a new, different word problem:", "Certainly, here is one:"
_PREAMBLE = re.compile(
    r"^\s*(?:(?:sure|certainly|okay|ok|of course|absolutely|great)\b[!.,]*\s*)?"
    r"(?:(?:here(?:'s|\u2019s| is| are)|below is|this is)\b[^:\n]{0,100}?:|"
    r"(?:sure|certainly|okay|of course|absolutely)\b[^:\n]{0,60}?:)\s*",
    re.IGNORECASE)
# where a solution or answer starts: a marker at a line start or after a sentence end,
# optionally bold / a heading ("**Solution:**", "### Answer", "Step 1:", "#### 72")
_SOLUTION_START = re.compile(
    r"(?:^|(?<=[.?!:)\]])[ \t]*|\n)[ \t]*(?:[#>*_-]+[ \t]*)?"
    r"(?:(?:\*\*|#+[ \t]*)?(?:solution|answer|final answer|explanation|reasoning|steps)"
    r"[ \t]*(?:\*\*)?[ \t]*(?::|\*\*|-[ \t]|$)|step[ \t]*1\b|let'?s solve\b|"
    r"to solve (?:this|the)\b|the (?:final )?answer is\b|the solution is\b|####|\\boxed)",
    re.IGNORECASE | re.MULTILINE)
# the problem states its own result: "...? She sold 72 clips." after the question, a boxed
# answer, an equation with a result
_ASKS = re.compile(r"\?|\b(?:how (?:many|much|long|far|old|fast|often)|what|which|find|"
                   r"calculate|compute|determine|work out|figure out|estimate)\b",
                   re.IGNORECASE)
_INSTRUCTION = re.compile(r"^\s*(?:\(?\s*)?(?:round|give|express|write|answer in|use|assume|"
                          r"note|hint|show)\b", re.IGNORECASE)
_NUMBER_WORDS = (r"zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
                 r"thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|"
                 r"thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|million|"
                 r"dozen|half|halves|third|quarter|twice|double|triple|percent")
_HAS_NUMBER = re.compile(r"\d|\b(?:" + _NUMBER_WORDS + r")\b", re.IGNORECASE)


@dataclass
class CleanedProblem:
    problem: str | None  # None: rejected
    reason: str | None = None  # why rejected: problem_empty | problem_too_short |
    # problem_no_question | problem_no_number | problem_contains_answer
    edits: list[str] = field(default_factory=list)  # stripped_preamble, stripped_solution


def clean_problem_details(text: str, *, numeric: bool = True) -> CleanedProblem:
    """Clean one problem-generation response and say what was done or why it was rejected.

    Strips chatty openers ("Here's a new, different word problem:"), a "Problem:" label (bold
    or not) and everything from the first solution/answer marker on ("**Solution:**",
    "Solution:", "Answer:", "####", "Step 1", "The answer is", ``\\boxed``). Then rejects,
    conservatively (cheap checks; the judge handles the rest): fewer than 6 words
    (``problem_too_short``), nothing asked -- no "?" and no how many / what / find / calculate
    (``problem_no_question``), no number at all, digits or number words, when ``numeric``
    (``problem_no_number``), and a problem that contains its own answer: a sentence with a
    number after the last question, "=" followed by a result at the end, or an answer marker
    left inside (``problem_contains_answer``).
    """
    edits: list[str] = []
    t = (text or "").strip().strip("`").strip()
    for _ in range(3):  # "Sure! Here is one:\n\n**Problem:** ..." has two layers
        before = t
        m = _PREAMBLE.match(t)
        if m and m.end() < len(t):
            t = t[m.end():].lstrip()
            edits.append("stripped_preamble")
        t = _PROBLEM_PREFIX.sub("", t, count=1).strip()
        if t == before:
            break
    m = _SOLUTION_START.search(t)
    if m is not None:
        t = t[:m.start()].rstrip()
        edits.append("stripped_solution")
    t = re.sub(r"[ \t]*\n[ \t]*\n[\s\S]*$", "", t) if "?" in t.split("\n\n")[0] else t
    t = t.strip().strip("*").strip().strip('"').strip()
    t = re.sub(r"[ \t]+", " ", t)
    edits = sorted(set(edits))
    if not t:
        return CleanedProblem(None, "problem_empty", edits)
    if len(t.split()) < 6:
        return CleanedProblem(None, "problem_too_short", edits)
    if not _ASKS.search(t):
        return CleanedProblem(None, "problem_no_question", edits)
    if numeric and not _HAS_NUMBER.search(t):
        return CleanedProblem(None, "problem_no_number", edits)
    if "?" in t:
        after = t[t.rindex("?") + 1:].strip()
        if after and re.search(r"\d", after) and not _INSTRUCTION.match(after):
            return CleanedProblem(None, "problem_contains_answer", edits)
    if re.search(r"=\s*\$?-?\d[\d,.]*\s*\w*\s*[.?]?\s*$", t) or re.search(
            r"\\boxed|####|\bthe answer is\b", t, re.IGNORECASE):
        return CleanedProblem(None, "problem_contains_answer", edits)
    return CleanedProblem(t, None, edits)


def clean_problem(text: str, *, numeric: bool = True) -> str | None:
    """The problem statement from a problem-generation response, or None when unusable
    (see :func:`clean_problem_details` for what is stripped and what is rejected)."""
    return clean_problem_details(text, numeric=numeric).problem


def generate_problems(backend: Backend, seeds: list[dict], *, mode: str, per_item: int,
                      temperature: float, top_p: float, max_tokens: int, seed: int,
                      concepts: list[str] | None = None, concepts_per_problem: int = 2
                      ) -> list[dict]:
    """New problems from seed problems (``mode='seed'``) or concept lists (``'concepts'``).

    Concept sampling follows MathScale (Tang et al. 2024) in spirit: each prompt combines
    ``concepts_per_problem`` concepts drawn with a seeded RNG keyed by the item id.
    Returns ``{id, problem, reject_reason, cleaning, parent, template, raw}`` (``problem``
    None when unusable, with ``reject_reason``; ``cleaning`` lists what was stripped).
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
            c = clean_problem_details(smp.text)
            out.append({"id": f"{res.request_id}-g{j}", "problem": c.problem,
                        "reject_reason": c.reason, "cleaning": c.edits,
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
    # generated tests: least CodeT evidence (see codet_evidence) to keep a task; below it
    # the task is dropped ("low_codet_evidence") or, with on_low_evidence="flag", kept with
    # LOW EVIDENCE in keep_reason (evidence key codet_consensus_low_evidence, no DPO pairs)
    min_evidence: float = 0.35
    on_low_evidence: str = "drop"  # drop | flag


def codet_evidence(agreeing: int, samples: int, tests_passed: int, tests: int) -> float:
    """CodeT evidence of a consensus, in [0, 1]: ``(agreeing / samples) * (passed / tests)``.

    The winning group's CodeT score (Chen et al. 2022: agreeing samples x tests they pass)
    over its largest possible value (every sample drawn passing every generated test): the
    share of the pass matrix that supports the consensus. It is low when few samples agree
    on tests few samples pass -- CodeT's known failure, where most generated tests are
    wrong and two wrong samples agree on them (2 of 4 samples x 3 of 5 tests = 0.30)."""
    if samples <= 0 or tests <= 0:
        return 0.0
    return (agreeing / samples) * (tests_passed / tests)


def task_from_generation(text: str, topic: str) -> dict | None:
    """A KodCode-style task (question, reference solution, tests) from one model response.

    The response must hold a code block defining a function and a block of asserts. The
    question is built from the topic and the function signature so that solvers know the name.
    """
    blocks = code_blocks(text)
    sol = next((b for b in blocks if first_function(b)), None)
    tests = next((b for b in blocks if "assert" in b and b is not sol), None)
    if sol is not None:  # tests in the solution's block: asserts, loops, test functions,
        split = split_solution_and_tests(sol)  # unittest classes, a __main__ block
        if split is not None and first_function(split[0]):
            sol = split[0]
            tests = tests if tests is not None else split[1]
    if tests is not None and split_solution_and_tests(tests) is not None:
        tests = split_solution_and_tests(tests)[1]  # type: ignore[index]
    if sol is None or tests is None:
        return None
    _, sig = first_function(sol)  # type: ignore[misc]
    question = f"Write a Python function `{sig}` that solves: {topic}"
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
    chosen: list[int] = field(default_factory=list)  # sample indices verified correct
    wrong: list[int] = field(default_factory=list)  # samples that ran and failed the kept tests
    # generated tests: the consensus' CodeT components and evidence (codet_evidence)
    codet: dict[str, Any] | None = None


def task_entry_point(task: dict) -> str | None:
    """The function a task's solution must define: from the reference or from the tests."""
    ref = task.get("reference_solution")
    if ref:
        first = first_function(ref)
        if first:
            return first[0]
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
      ``min_agreeing`` independent samples agree on at least ``min_tests`` tests and the
      consensus' :func:`codet_evidence` reaches ``min_evidence`` (below it: dropped as
      ``low_codet_evidence``, or kept flagged LOW EVIDENCE with ``on_low_evidence="flag"``).
      The reference is kept only if it passes the agreed tests (``reference_agrees``).
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
        wrong = [i for i in cand if results[i].status == "failed"]
        return CodeVerdict(True, "verified", len(ok) / max(1, n), [codes[i] for i in ok],
                           [tests], [], rows,
                           f"{len(ok)} of {n} independent samples pass all {n_stmt} "
                           "statements of the given tests", "given_tests", None, ok, wrong)
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
    ev = codet_evidence(len(kept_samples), n, len(kept_tests), len(cases))
    codet = {"agreeing": len(kept_samples), "samples": n, "tests_passed": len(kept_tests),
             "tests": len(cases), "evidence": round(ev, 4), "min_evidence": s.min_evidence,
             "runner_up_score": (len(agree.groups[1][1]) * len(agree.groups[1][0])
                                 if len(agree.groups) > 1 else 0)}
    if len(kept_samples) < s.min_agreeing or len(kept_tests) < s.min_tests:
        reason = "only_reference_passes" if any(ref_row) and not kept_samples else \
            "no_agreement"
        return CodeVerdict(False, reason, rate, [], kept_tests, rejected, rows,
                           reference_agrees=ref_agrees if ref else None, codet=codet)
    sols = [codes[i] for i in kept_samples]
    low = ev < s.min_evidence
    why = (("LOW EVIDENCE: " if low else "")
           + f"CodeT consensus: {len(kept_samples)} of {n} independent samples agree on "
           f"{len(kept_tests)} of {len(cases)} generated tests (evidence "
           f"{len(kept_samples)}/{n} x {len(kept_tests)}/{len(cases)} = {ev:.2f}, "
           f"min {s.min_evidence:g}); reference "
           + ("agrees" if ref_agrees else "disagrees (not kept)"))
    wrong = [cand[j] for j, row in enumerate(matrix)
             if cand[j] not in kept_samples and not all(row[t] for t in agree.kept_tests)]
    if low and s.on_low_evidence != "flag":
        return CodeVerdict(False, "low_codet_evidence", rate, [], kept_tests, rejected, rows,
                           why, reference_agrees=ref_agrees if ref else None, codet=codet)
    return CodeVerdict(True, "verified", rate, sols, kept_tests, rejected, rows, why,
                       "codet_consensus_low_evidence" if low else "codet_consensus",
                       ref_agrees if ref else None, kept_samples, wrong, codet)
