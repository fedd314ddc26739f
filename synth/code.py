"""Execution-verified code synthesis: run candidate solutions against tests in the sandbox.

Public API: :func:`run_tests` (one program vs. one test script, in the sandbox of
:mod:`synth.sandbox`) and :func:`codet_select` / :func:`agreement_filter`, the CodeT-style
dual agreement (Chen et al. 2022, "CodeT: Code Generation with Generated Tests") used when the
tests are themselves generated: solutions are grouped by the exact set of tests they pass; a
group's score is ``#solutions x #tests passed``; the best group's solutions are kept and the
tests it fails are rejected as probably wrong.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from synth.sandbox import SandboxLimits, SandboxResult, run_python


def run_tests(program: str, tests: str, timeout_s: float = 10,
              limits: SandboxLimits | None = None) -> SandboxResult:
    """Run ``program`` and then ``tests`` (Python that raises on failure) in one sandbox.

    The result has ``.passed`` (exit 0 after the tests completed, within all limits),
    ``.status`` (passed/failed/timeout/cpu_limit/memory_limit/...), ``.error`` (last line of
    the traceback or the limit that was hit) and the captured ``.stdout`` / ``.stderr``.
    """
    lim = limits or SandboxLimits()
    lim = SandboxLimits(**{**lim.__dict__, "timeout_s": float(timeout_s),
                           "cpu_s": max(1, int(min(lim.cpu_s, timeout_s + 1)))})
    return run_python(program, tests, lim)


_FENCE = re.compile(r"```(?:python|py|Python)?\s*\n(.*?)```", re.DOTALL)


def extract_code(text: str) -> str | None:
    """The last fenced Python code block of a model response (or None)."""
    blocks = _FENCE.findall(text or "")
    if blocks:
        return blocks[-1].strip() + "\n"
    return None


def split_asserts(tests: str) -> list[str]:
    """Split a test script into independent test cases: one per top-level ``assert``.

    Lines before the first assert (imports, helpers) are a shared prelude prepended to each.
    """
    lines = tests.splitlines()
    prelude: list[str] = []
    cases: list[list[str]] = []
    for ln in lines:
        if ln.startswith("assert "):
            cases.append([ln])
        elif cases and ln[:1] in (" ", "\t", ")", "]", "}") and ln.strip():
            cases[-1].append(ln)  # continuation of a multi-line assert
        elif not cases or ln.strip():
            prelude.append(ln)
    head = "\n".join(prelude)
    return [(head + "\n" if head else "") + "\n".join(c) + "\n" for c in cases]


@dataclass
class Agreement:
    """Outcome of the CodeT-style selection over a solutions x tests pass matrix."""

    kept_solutions: list[int]
    kept_tests: list[int]
    rejected_tests: list[int]
    score: int
    groups: list[tuple[tuple[int, ...], list[int]]] = field(default_factory=list)


def codet_select(matrix: list[list[bool]]) -> Agreement:
    """Pick the consensus set from ``matrix[s][t]`` = solution s passes test t.

    Ties on the score are broken by more solutions, then by the lowest solution index
    (deterministic).
    """
    n_tests = len(matrix[0]) if matrix else 0
    groups: dict[tuple[int, ...], list[int]] = {}
    for s, row in enumerate(matrix):
        key = tuple(t for t, ok in enumerate(row) if ok)
        groups.setdefault(key, []).append(s)
    ranked = sorted(groups.items(), key=lambda kv: (-len(kv[1]) * len(kv[0]), -len(kv[1]),
                                                     kv[1][0]))
    if not ranked or len(ranked[0][0]) == 0:
        return Agreement([], [], list(range(n_tests)), 0, ranked)
    tests_ok, sols = ranked[0]
    rejected = [t for t in range(n_tests) if t not in tests_ok]
    return Agreement(sorted(sols), list(tests_ok), rejected, len(sols) * len(tests_ok), ranked)


def pass_matrix(solutions: list[str], tests: list[str], *, timeout_s: float = 10,
                limits: SandboxLimits | None = None, workers: int = 2) -> list[list[SandboxResult]]:
    """Run every solution against every test case (separate sandboxed process each)."""
    jobs = [(s, t) for s in range(len(solutions)) for t in range(len(tests))]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(
            lambda st: run_tests(solutions[st[0]], tests[st[1]], timeout_s, limits), jobs))
    out: list[list[SandboxResult]] = [[None] * len(tests) for _ in solutions]  # type: ignore[list-item]
    for (s, t), r in zip(jobs, results):
        out[s][t] = r
    return out


def agreement_filter(solutions: list[str], tests: list[str], *, timeout_s: float = 10,
                     limits: SandboxLimits | None = None, workers: int = 2
                     ) -> tuple[Agreement, list[list[SandboxResult]]]:
    """Execute all pairs and apply :func:`codet_select`."""
    results = pass_matrix(solutions, tests, timeout_s=timeout_s, limits=limits, workers=workers)
    matrix = [[r.passed for r in row] for row in results]
    return codet_select(matrix), results
