"""Execution-verified code synthesis: run candidate solutions against tests in the sandbox.

Public API: :func:`run_tests` (one program vs. one test script, in the sandbox of
:mod:`synth.sandbox`) and :func:`codet_select` / :func:`agreement_filter`, the CodeT-style
dual agreement (Chen et al. 2022, "CodeT: Code Generation with Generated Tests") used when the
tests are themselves generated: solutions are grouped by the exact set of tests they pass; a
group's score is ``#solutions x #tests passed``; the best group's solutions are kept and the
tests it fails are rejected as probably wrong.
"""

from __future__ import annotations

import ast
import builtins
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


_FENCE = re.compile(r"```[ \t]*(?:python3?|py|Python)?[ \t]*\n(.*?)```", re.DOTALL)


def _defined_names(tree: ast.Module) -> set[str]:
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            out.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Assign):
            out.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return out


def _parse(block: str) -> ast.Module | None:
    try:
        return ast.parse(block)
    except (SyntaxError, ValueError):
        return None


def extract_code(text: str, entry_point: str | None = None) -> str | None:
    """The program in a model response: the fenced block that defines ``entry_point``.

    Responses often end with an "example usage" fence after the solution, so the last fence is
    not the answer. With ``entry_point`` the last block whose top level defines that function
    is chosen; definitions and imports (never top-level calls) from the other blocks that it
    uses are prepended, so a solution split over several fences still runs. Without
    ``entry_point`` the last block defining any function is chosen, else the last block.
    """
    blocks = [b.strip() + "\n" for b in _FENCE.findall(text or "") if b.strip()]
    if not blocks:
        return None
    trees = [_parse(b) for b in blocks]

    def defines(t: ast.Module | None, name: str | None) -> bool:
        return t is not None and any(
            isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            and (name is None or n.name == name) for n in t.body)

    pick = next((i for i in range(len(blocks) - 1, -1, -1) if defines(trees[i], entry_point)),
                None)
    if pick is None:
        if entry_point is not None:
            return None
        return blocks[-1]
    tree = trees[pick]
    assert tree is not None
    have = _defined_names(tree)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    extra: list[str] = []
    for i, t in enumerate(trees):
        if i == pick or t is None:
            continue
        for node in t.body:
            names: set[str] = set()
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names = {node.name}
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = {(a.asname or a.name).split(".")[0] for a in node.names}
            if names and names & used and not names & have:
                extra.append(ast.get_source_segment(blocks[i], node) or "")
                have |= names
    return ("\n\n".join(x for x in extra if x) + "\n\n" if extra else "") + blocks[pick]


def last_code_block(text: str) -> str | None:
    """The last fenced block (program-of-thought answers: the program that prints)."""
    blocks = [b.strip() + "\n" for b in _FENCE.findall(text or "") if b.strip()]
    return blocks[-1] if blocks else None


def entry_points(tests: str) -> list[str]:
    """Functions the tests call but do not define themselves (the solution must supply them)."""
    tree = _parse(tests or "")
    if tree is None:
        return []
    defined = _defined_names(tree)
    called: list[str] = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name):
            name = n.func.id
            if name not in defined and not hasattr(builtins, name) and name not in called:
                called.append(name)
    return called


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


def assert_statements(tests: str) -> tuple[list[int], list[str]] | None:
    """Indices of the top-level ``assert`` statements of a test script and their source."""
    tree = _parse(tests or "")
    if tree is None:
        return None
    idx = [i for i, n in enumerate(tree.body) if isinstance(n, ast.Assert)]
    return idx, [ast.get_source_segment(tests, tree.body[i]) or "" for i in idx]


def pass_row(program: str, tests: str, *, timeout_s: float = 10,
             limits: SandboxLimits | None = None) -> tuple[list[bool], SandboxResult]:
    """One sandboxed run: which top-level asserts of ``tests`` the program passes.

    Non-assert statements (imports, helpers) must all succeed, else every assert counts as
    failed. The harness runs every statement (``keep_going``), so one process per solution
    fills its CodeT row.
    """
    parsed = assert_statements(tests)
    if parsed is None:
        return [], run_tests(program, tests, timeout_s, limits)
    idx, _ = parsed
    lim = limits or SandboxLimits()
    lim = SandboxLimits(**{**lim.__dict__, "timeout_s": float(timeout_s),
                           "cpu_s": max(1, int(min(lim.cpu_s, timeout_s + 1)))})
    r = run_python(program, tests, lim, keep_going=True)
    outcomes = r.details.get("outcomes")
    if not outcomes or len(outcomes) != (r.details.get("statements") or -1):
        return [False] * len(idx), r
    setup_ok = all(ok for i, ok in enumerate(outcomes) if i not in set(idx))
    return [bool(setup_ok and outcomes[i]) for i in idx], r


def pass_matrix(solutions: list[str], tests: str, *, timeout_s: float = 10,
                limits: SandboxLimits | None = None, workers: int = 2
                ) -> tuple[list[list[bool]], list[SandboxResult]]:
    """Run every solution once against all asserts of ``tests`` (one sandbox per solution)."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        rows = list(pool.map(lambda sol: pass_row(sol, tests, timeout_s=timeout_s,
                                                  limits=limits), solutions))
    return [r for r, _ in rows], [res for _, res in rows]


def agreement_filter(solutions: list[str], tests: str, *, timeout_s: float = 10,
                     limits: SandboxLimits | None = None, workers: int = 2
                     ) -> tuple[Agreement, list[SandboxResult]]:
    """Execute all solutions and apply :func:`codet_select`."""
    matrix, results = pass_matrix(solutions, tests, timeout_s=timeout_s, limits=limits,
                                  workers=workers)
    return codet_select(matrix), results
