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
    body = blocks[pick]
    if not (entry_point or "").startswith("test"):
        body = solution_only(body)  # its own asserts / __main__ demo are not the solution
    return ("\n\n".join(x for x in extra if x) + "\n\n" if extra else "") + body


def code_blocks(text: str) -> list[str]:
    """The fenced blocks of a model response (```` ``` ````, ```` ```python ````,
    ```` ```python3 ````, ```` ```Python ````, ```` ```py ````), in order."""
    return _FENCE.findall(text or "")


def first_function(src: str) -> tuple[str, str] | None:
    """``(name, signature)`` of the first top-level function of ``src`` that is not a test
    (``sq(x, bounds=(0, 10)) -> int``), read with the parser, so default values with
    parentheses or a signature over several lines are whole."""
    tree = _parse(src or "")
    for node in tree.body if tree is not None else []:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and \
                not node.name.startswith("test"):
            returns = f" -> {ast.unparse(node.returns)}" if node.returns is not None else ""
            return node.name, f"{node.name}({ast.unparse(node.args)}){returns}"
    return None


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


def _is_main_guard(node: ast.stmt) -> bool:
    """``if __name__ == "__main__":``"""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    t = node.test
    names = [t.left, *t.comparators]
    return (len(t.ops) == 1 and isinstance(t.ops[0], ast.Eq)
            and any(isinstance(x, ast.Name) and x.id == "__name__" for x in names)
            and any(isinstance(x, ast.Constant) and x.value == "__main__" for x in names))


def _is_test_def(node: ast.stmt, called: frozenset[str] = frozenset()) -> bool:
    """A test function: no parameters, and named ``test...`` or a helper with asserts that the
    module calls bare (``check()`` at the top level or in its ``__main__`` block)."""
    if not isinstance(node, ast.FunctionDef) or node.args.args or node.args.vararg or \
            node.args.kwonlyargs:
        return False
    return node.name.startswith("test") or (node.name in called and _has_assert(node))


def _has_assert(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Assert) for n in ast.walk(node))


def _is_loop_of_asserts(node: ast.stmt) -> bool:
    """A loop over cases with asserts inside (``for a, b in cases: assert f(a) == b``)."""
    return isinstance(node, (ast.For, ast.While)) and _has_assert(node)


def _bare_call(node: ast.stmt) -> str | None:
    """``name`` when ``node`` is the statement ``name()`` (no arguments), else None."""
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and \
            isinstance(node.value.func, ast.Name) and not node.value.args and \
            not node.value.keywords:
        return node.value.func.id
    return None


def _bare_calls(tree: ast.Module) -> frozenset[str]:
    """Names called without arguments as whole statements at the top level or in the
    ``__main__`` block (``check()``): test runners, not the solution's API."""
    body = [*tree.body, *(st for n in tree.body if _is_main_guard(n) for st in n.body)]
    return frozenset(name for st in body if (name := _bare_call(st)) is not None)


def _is_unittest_class(node: ast.stmt) -> bool:
    """``class X(unittest.TestCase)`` / ``class X(TestCase)``."""
    return isinstance(node, ast.ClassDef) and any(
        (isinstance(b, ast.Name) and b.id == "TestCase")
        or (isinstance(b, ast.Attribute) and b.attr == "TestCase") for b in node.bases)


def _is_unittest_main(node: ast.stmt) -> bool:
    """``unittest.main()`` (any arguments): the runner line of a unittest module."""
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Attribute) and node.value.func.attr == "main"
            and isinstance(node.value.func.value, ast.Name)
            and node.value.func.value.id == "unittest")


def _imports_unittest(node: ast.stmt) -> bool:
    if isinstance(node, ast.Import):
        return all(a.name.split(".")[0] == "unittest" for a in node.names)
    return isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "unittest"


def _run_unittest_class(name: str) -> str:
    """One assert that runs a TestCase class's tests (quietly) and passes when all pass."""
    return (f"assert __import__('unittest').TextTestRunner(stream=__import__('io').StringIO())"
            f".run(__import__('unittest').defaultTestLoader.loadTestsFromTestCase({name}))"
            ".wasSuccessful()")


def _is_print_or_test_call(node: ast.stmt, test_names: set[str]) -> bool:
    """A top-level ``print(...)`` / ``test_x()`` call: example output or a test runner line."""
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and \
        isinstance(node.value.func, ast.Name) and (node.value.func.id == "print"
                                                    or node.value.func.id in test_names)


def _flat_test_body(fn: ast.FunctionDef) -> list[ast.stmt] | None:
    """A test function's body as top-level statements, when that keeps its meaning."""
    out: list[ast.stmt] = []
    for st in fn.body:
        if isinstance(st, (ast.Assert, ast.Assign, ast.AnnAssign, ast.Import, ast.ImportFrom)):
            out.append(st)
        elif isinstance(st, ast.Expr) and isinstance(st.value, ast.Constant):
            continue  # docstring
        elif isinstance(st, ast.Expr) and isinstance(st.value, ast.Call) and \
                isinstance(st.value.func, ast.Name) and st.value.func.id == "print":
            continue
        else:
            return None
    return out


def split_solution_and_tests(code: str) -> tuple[str, str] | None:
    """``(solution, tests)`` from one block that holds both, or None when it has no tests.

    Recognised tests: top-level ``assert`` statements and loops with asserts inside
    (``for a, b in cases: assert ...``), ``test_...()`` functions and helpers with asserts that
    the module calls bare (``check()``; their asserts become top-level asserts when the body is
    plain asserts and assignments, else the function is kept and called), ``unittest.TestCase``
    classes (run by one assert; ``unittest.main()`` is dropped), and the same inside an
    ``if __name__ == "__main__":`` block. Everything else (imports, functions, classes,
    constants) is the solution; example ``print`` calls are dropped from both.
    """
    tree = _parse(code or "")
    if tree is None:
        return None
    called = _bare_calls(tree)
    test_defs = {n.name for n in tree.body if _is_test_def(n, called)}
    sol: list[str] = []
    tests: list[str] = []
    imports: list[str] = []

    def seg(node: ast.AST) -> str:
        return ast.get_source_segment(code, node) or ""

    def take_test_stmt(node: ast.stmt) -> None:
        if isinstance(node, ast.Assert):
            tests.append(seg(node))
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and \
                isinstance(node.value.func, ast.Name) and node.value.func.id in test_defs:
            fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef)
                      and n.name == node.value.func.id)
            if _flat_test_body(fn) is None:
                tests.append(seg(node))  # a kept test function is called where it was
        elif _is_loop_of_asserts(node):
            tests.append(seg(node))

    for node in tree.body:
        if isinstance(node, ast.Assert) or _is_loop_of_asserts(node):
            take_test_stmt(node)
        elif _is_unittest_main(node):
            continue
        elif _is_unittest_class(node):
            tests.append(seg(node))
            tests.append(_run_unittest_class(node.name))  # type: ignore[attr-defined]
        elif _is_test_def(node, called):
            flat = _flat_test_body(node)  # type: ignore[arg-type]
            if flat is not None:
                tests.extend(seg(st) for st in flat)
            else:
                tests.append(seg(node))
                tests.append(f"{node.name}()")  # type: ignore[attr-defined]
        elif _is_main_guard(node):
            for st in node.body:  # type: ignore[attr-defined]
                take_test_stmt(st)
        elif _is_print_or_test_call(node, test_defs):
            continue
        else:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                imports.append(seg(node))
                if _imports_unittest(node):
                    continue  # the tests' runner, not the solution's
            sol.append(seg(node))
    if not tests:
        return None
    # a test function kept whole is called after its definition; drop duplicate calls
    seen: set[str] = set()
    uniq = [t for t in tests if not (t.endswith("()") and (t in seen or seen.add(t)))]
    head = "\n".join(imports)
    return ("\n\n".join(sol).strip() + "\n",
            (head + "\n" if head else "") + "\n".join(uniq) + "\n")


def solution_only(code: str) -> str:
    """``code`` without its own tests (asserts, ``test_...`` functions, ``__main__`` block)."""
    split = split_solution_and_tests(code)
    if split is not None:
        return split[0]
    tree = _parse(code or "")
    if tree is None or not any(_is_main_guard(n) for n in tree.body):
        return code
    return "\n\n".join(ast.get_source_segment(code, n) or "" for n in tree.body
                       if not _is_main_guard(n)).strip() + "\n"


def split_asserts(tests: str) -> list[str]:
    """Split a test script into independent test cases: one per top-level ``assert``.

    Lines before the first assert (imports, helpers) are a shared prelude prepended to each.
    Asserts inside ``test_...`` functions or an ``if __name__ == "__main__":`` block are
    brought to the top level first; a loop of asserts, the call of a test function kept whole
    and a unittest class's run are one case each.
    """
    tree = _parse(tests or "")
    called = _bare_calls(tree) if tree is not None else frozenset()
    if tree is not None and any(_is_test_def(n, called) or _is_main_guard(n)
                                or _is_loop_of_asserts(n) or _is_unittest_class(n)
                                for n in tree.body):
        split = split_solution_and_tests(tests)
        if split is not None:
            helpers = split[0].strip()
            tests = (helpers + "\n" if helpers else "") + split[1]
    tree = _parse(tests)
    if tree is not None:  # by statement: an assert, a loop of asserts, a test function's call
        called = _bare_calls(tree)
        runners = {n.name for n in tree.body if _is_test_def(n, called)}
        prelude_nodes: list[str] = []
        case_nodes: list[str] = []
        for node in tree.body:
            src = ast.get_source_segment(tests, node) or ""
            if isinstance(node, ast.Assert) or _is_loop_of_asserts(node) or \
                    _bare_call(node) in runners:
                case_nodes.append(src)
            else:
                prelude_nodes.append(src)
        pre = "\n".join(prelude_nodes)
        return [(pre + "\n" if pre else "") + c + "\n" for c in case_nodes]
    lines = tests.splitlines()  # not Python as a whole: by line
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


# --------------------------------------------------------------------------- behaviour agreement

_MAX_INT = 10_000
_MAX_STR = 200


def _perturb(v: object) -> list[object]:
    """Nearby values of one literal argument (deterministic order, small sizes)."""
    if isinstance(v, bool):
        return [not v]
    if isinstance(v, int):
        out = [0, v + 1, v - 1, -v, 2 * v + 1, v + 7, 1, 2]
        return [x for x in out if abs(x) <= _MAX_INT]
    if isinstance(v, float):
        return [0.0, v + 0.5, -v, v * 2, 1.0]
    if isinstance(v, str):
        out = ["", v[::-1], (v + v)[:_MAX_STR], v.upper(), v.lower(), v[1:], v + " x",
               v.title(), " " + v]
        return [x for x in out if len(x) <= _MAX_STR]
    if isinstance(v, (list, tuple)):
        seq = list(v)
        out: list[object] = [[], seq[::-1], seq + seq[:1], seq[1:], seq[:1] * 3]
        try:
            out.append(sorted(seq))
            out.append(sorted(seq, reverse=True))
        except TypeError:
            pass
        if seq and all(isinstance(x, int) and not isinstance(x, bool) for x in seq):
            out += [[x + 1 for x in seq], [-x for x in seq], seq + [0], [x * 2 for x in seq]]
        if all(isinstance(x, str) for x in seq):
            out += [[x[::-1] for x in seq], seq + [""]]
        return [type(v)(x) if isinstance(v, tuple) else x for x in out]  # type: ignore[arg-type]
    if isinstance(v, dict):
        return [{}]
    return []


def derive_inputs(tests: str, entry_point: str, *, max_inputs: int = 24) -> list[str]:
    """Extra call arguments for ``entry_point``, derived from the tests' own literal calls.

    Each argument of each literal call is perturbed in turn (ints: 0, ±1, -x, 2x+1...;
    strings: empty, reversed, doubled, case changes; lists: empty, reversed, sorted, shifted
    elements); for one-int-argument functions the sums and products of the tested values are
    added (``fizzbuzz(3)`` and ``fizzbuzz(5)`` give 15). Returns ``(args, kwargs)`` literals as
    source text (``"((15,), {})"``), the given calls left out, at most ``max_inputs``,
    deterministic.
    """
    tree = _parse(tests or "")
    if tree is None or not entry_point:
        return []
    calls: list[tuple[tuple, tuple]] = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == entry_point:
            try:
                args = tuple(ast.literal_eval(a) for a in n.args)
                kw = tuple(sorted((k.arg, ast.literal_eval(k.value)) for k in n.keywords
                                  if k.arg))
            except (ValueError, SyntaxError, TypeError):
                continue
            if len(kw) == len(n.keywords) and not any(isinstance(a, ast.Starred)
                                                      for a in n.args):
                calls.append((args, kw))
    if not calls:
        return []
    seen = {repr(c) for c in calls}
    out: list[str] = []

    def add(args: tuple, kw: tuple) -> None:
        key = repr((args, kw))
        if key in seen or len(out) >= max_inputs:
            return
        seen.add(key)
        out.append(repr((args, dict(kw))))

    ints = [c[0][0] for c in calls if len(c[0]) == 1 and not c[1]
            and isinstance(c[0][0], int) and not isinstance(c[0][0], bool)]
    if ints and len(ints) == len(calls):
        vals = sorted(set(ints))
        for i, a in enumerate(vals):
            for b in vals[i + 1:]:
                for x in (a * b, a + b):
                    if abs(x) <= _MAX_INT:
                        add((x,), ())
    for args, kw in calls:
        for pos, v in enumerate(args):
            for alt in _perturb(v):
                add(args[:pos] + (alt,) + args[pos + 1:], kw)
    return out


_PROBE = '''
def __dm_probe():
    import signal as __s
    def __dm_alarm(*_a):
        raise TimeoutError("probe call timed out")
    try:
        __s.signal(__s.SIGALRM, __dm_alarm)
    except Exception:
        pass
    for __i, __args in enumerate(__DM_INPUTS):
        try:
            __s.setitimer(__s.ITIMER_REAL, __DM_CALL_S)
            try:
                __r = "= " + repr({entry}(*__args[0], **__args[1]))
            finally:
                __s.setitimer(__s.ITIMER_REAL, 0)
        except BaseException as __e:
            __r = "raise " + type(__e).__name__
        print("{nonce}", __i, __r[:500].replace("\\n", " "), flush=True)
__DM_INPUTS = [{inputs}]
__DM_CALL_S = {call_s}
__dm_probe()
'''


def probe_outputs(program: str, entry_point: str, inputs: list[str], *,
                  timeout_s: float = 10, call_s: float = 1.0,
                  limits: SandboxLimits | None = None) -> list[str]:
    """What ``program``'s ``entry_point`` returns (``"= <repr>"``) or raises for each input.

    Runs in the sandbox (one process). Each call gets ``call_s`` seconds; an input whose
    line is missing (the run was killed) reads ``"missing"``. Output lines carry a random
    nonce, so what the program prints itself is not mistaken for a result.
    """
    import secrets

    nonce = "DMPROBE" + secrets.token_hex(8)
    code = program + "\n" + _PROBE.format(entry=entry_point, nonce=nonce,
                                          inputs=", ".join(inputs), call_s=call_s)
    res = run_tests(code, "", timeout_s, limits)
    got: dict[int, str] = {}
    for ln in (res.stdout or "").splitlines():
        if ln.startswith(nonce + " "):
            _, idx, val = ln.split(" ", 2)
            got.setdefault(int(idx), val)
    return [got.get(i, "missing") for i in range(len(inputs))]


@dataclass
class Behaviour:
    """Passing solutions grouped by what they return on extra inputs."""

    groups: list[list[int]]  # indices into the solutions, largest group first
    inputs: list[str]
    outputs: list[list[str]] = field(default_factory=list)

    @property
    def agree(self) -> bool:
        """Every probed solution behaves the same (or there was nothing to compare)."""
        return len(self.groups) <= 1

    @property
    def tied(self) -> bool:
        return len(self.groups) > 1 and len(self.groups[0]) == len(self.groups[1])


def behaviour_groups(solutions: list[str], entry_point: str | None, tests: str, *,
                     max_inputs: int = 24, timeout_s: float = 10, workers: int = 2,
                     limits: SandboxLimits | None = None) -> Behaviour:
    """Compare solutions that pass the same tests on inputs those tests do not cover.

    Inputs come from :func:`derive_inputs`; each solution runs once in the sandbox
    (:func:`probe_outputs`); solutions with identical results on every input form a group.
    Groups are ordered by size, then by their lowest index (deterministic). With fewer than
    two solutions or no derivable inputs there is one group of all of them.
    """
    idx = list(range(len(solutions)))
    inputs = derive_inputs(tests, entry_point or "", max_inputs=max_inputs) \
        if len(solutions) > 1 and entry_point else []
    if not inputs:
        return Behaviour([idx] if idx else [], [])
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        outs = list(pool.map(lambda sol: probe_outputs(sol, entry_point or "", inputs,
                                                       timeout_s=timeout_s, limits=limits),
                             solutions))
    by: dict[tuple[str, ...], list[int]] = {}
    for i, o in enumerate(outs):
        by.setdefault(tuple(o), []).append(i)
    groups = sorted(by.values(), key=lambda g: (-len(g), g[0]))
    return Behaviour(groups, inputs, outs)


def behaviour_vote(solutions: list[str], entry_point: str | None, tests: str, *,
                   max_inputs: int = 24, timeout_s: float = 10, workers: int = 2,
                   limits: SandboxLimits | None = None) -> tuple[list[int], Behaviour, str]:
    """Which passing solutions to keep: the group of the sample that agrees with the others
    on the most extra inputs.

    Each passing sample runs on inputs derived from the tests; a sample's score is, summed
    over the inputs, how many other samples give the same result there (execution-based
    minimum Bayes risk, "MBR-exec": Shi et al. 2022, "Natural Language to Code Translation
    with Execution"). The answer is the highest-scoring sample (ties: sample order) together
    with every sample that behaves exactly like it. Per input rather than per whole result
    vector, so two correct samples that differ only on an input outside the task's spec (the
    inputs are derived without knowing it) still count as agreeing on everything else
    (bench/README.md §21: lower wrong-answer rates than the largest identical group in every
    setting measured). Returns ``(kept indices, behaviour, note)``; the note is the sentence a
    record's ``keep_reason`` gains ("" when nothing could be compared). A task whose passing
    samples disagree is marked: its answer rests on the given tests plus a vote among
    samples, weaker than tests that pin the behaviour down.
    """
    b = behaviour_groups(solutions, entry_point, tests, max_inputs=max_inputs,
                         timeout_s=timeout_s, workers=workers, limits=limits)
    if not b.inputs:
        return list(range(len(solutions))), b, ""
    n, k = len(solutions), len(b.inputs)
    if b.agree:
        return b.groups[0], b, (f"all {n} passing samples agree on {k} extra inputs "
                                "derived from the tests")
    outs = b.outputs
    score = [sum(a == c for j, o in enumerate(outs) if j != i for a, c in zip(outs[i], o))
             for i in range(n)]
    best = max(range(n), key=lambda i: (score[i], -i))
    kept = next(g for g in b.groups if best in g)
    sizes = "/".join(str(len(g)) for g in b.groups)
    note = (f"passing samples DISAGREE on {k} extra inputs derived from the tests (groups "
            f"{sizes}): kept the sample agreeing with the others on most inputs and its "
            f"group, {len(kept)} of {n} (agreement {score[best]} of {k * (n - 1)})")
    return kept, b, note