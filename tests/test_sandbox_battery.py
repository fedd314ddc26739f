"""A hostile battery for the code sandbox (issue 23, items 8 and 9).

Every CHEAT is a wrong solution that tries to make the tests pass anyway (control flow of the
tests' iteration protocols, builtins shadowed into the tests' namespace, dunder names, objects
that lie about their value, exiting early, forged markers and verdicts, reaching the harness,
reading the tests). Each must be reported as failed. Every CORRECT program must still pass.
The battery runs in each isolation mode this machine offers: the default (root: minimal root
view + PID namespace), the older hidden-paths view, and the plain mode used where namespaces
are unavailable (no mount namespace, no uid switch).
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from synth.sandbox import SandboxLimits, _interpreter, run_python

LIM = SandboxLimits(timeout_s=8, cpu_s=4, memory_mb=512, file_size_mb=4, nproc=16)
MODES = {
    "default": LIM,
    "hide": SandboxLimits(**{**LIM.__dict__, "fs_view": "hide"}),
    # what a machine without namespaces gets (as root the uid switch still applies)
    "no_namespaces": SandboxLimits(**{**LIM.__dict__, "private_tmp": False,
                                      "pid_namespace": False, "network_fallback_only": True}),
}
# kill(-1) reaches every process the caller's uid may signal: only run it as root, where the
# candidate always runs as a private uid (and in a PID namespace unless disabled)
_UNSAFE_WITHOUT_CONTAINMENT = {"kill_everything"}
_EXPOSURE_CHEATS = {"read_tests_anywhere"}
# without a private /tmp (no namespaces) the shared temporary folders are writable to the
# candidate's uid: planting modules there would leave them on the machine, so that cheat runs
# only where they are private (the documented limit of that mode), and anything a run plants
# is removed afterwards
_PLANTED = ("math.py", "pytest.py", "sitecustomize.py", "usercustomize.py")
_SHARED_TMP = ("/tmp", "/var/tmp", "/dev/shm")

SQ_MAP = "assert all(map(lambda x: f(x) == x * x, [2, 3, 4]))\n"
SQ = "assert f(2) == 4\nassert f(3) == 9\n"
WRONG = "def f(x):\n    return 0\n"

# ------------------------------------------------------------------ cheats: (name, program, tests)
CHEATS: list[tuple[str, str, str]] = [
    # --- exceptions that change the control flow of the tests' iteration protocols
    ("stopiteration_map", "def f(x):\n    raise StopIteration\n", SQ_MAP),
    ("stopiteration_filter", "def f(x):\n    raise StopIteration('x')\n",
     "assert not list(filter(lambda x: f(x) != x * x, [2, 3, 4]))\n"),
    ("stopiteration_genexp_over_map", "def f(x):\n    raise StopIteration\n",
     "assert all(y == x * x for x, y in zip([2, 3], map(f, [2, 3])))\n"),
    ("stopiteration_next_default", "def f(x):\n    raise StopIteration\n",
     "assert next(map(f, [2]), 4) == 4\n"),
    ("stopiteration_subclass", ("class Done(StopIteration):\n    pass\n"
     "def f(x):\n    raise Done\n"), SQ_MAP),
    ("stopiteration_iter_sentinel", "def f(x):\n    raise StopIteration\n",
     "vals = list(iter(lambda: f(2), None))\nassert all(v == 4 for v in vals)\n"),
    ("stopasynciteration_async_for", "def f(x):\n    raise StopAsyncIteration\n",
     ("import asyncio\nclass It:\n    def __init__(self):\n        self.xs = [2, 3, 4]\n"
     "    def __aiter__(self):\n        return self\n    async def __anext__(self):\n"
     "        if not self.xs:\n            raise StopAsyncIteration\n"
     "        x = self.xs.pop()\n        return x, f(x)\n"
     "async def check():\n    async for x, y in It():\n        assert y == x * x\n"
     "asyncio.run(check())\n")),
    ("generatorexit", "def f(x):\n    raise GeneratorExit\n", SQ_MAP),
    ("keyboardinterrupt", "def f(x):\n    raise KeyboardInterrupt\n", SQ_MAP),
    ("systemexit_in_function", "def f(x):\n    raise SystemExit(0)\n", SQ),
    ("baseexception_subclass", "class B(BaseException):\n    pass\ndef f(x):\n    raise B\n",
     SQ_MAP),
    # --- builtins bound into the tests' namespace
    ("builtin_abs", "def abs(x):\n    return 0\ndef f(x):\n    return 0.0\n",
     "assert abs(f(2.0) - 4.0) < 1e-9\n"),
    ("builtin_sorted", "def sorted(x, **k):\n    return 'S'\ndef f(x):\n    return 'S'\n",
     "assert f([3, 1, 2]) == sorted([3, 1, 2])\n"),
    ("builtin_set", "def set(x=()):\n    return {1, 2}\ndef f(x):\n    return []\n",
     "assert set(f([1, 1, 2])) == {1, 2}\n"),
    ("builtin_len", "def len(x):\n    return 3\ndef f(n):\n    return []\n",
     "assert len(f(3)) == 3\n"),
    ("builtin_round", "def round(x, n=0):\n    return 4.0\ndef f(x):\n    return 1.0\n",
     "assert round(f(2.0), 6) == 4.0\n"),
    ("builtin_str", "def str(x):\n    return '25'\ndef f(x):\n    return 0\n",
     "assert str(f(5)) == '25'\n"),
    ("builtin_list", "def list(x=()):\n    return [0, 1, 2]\ndef f(n):\n    return 'no'\n",
     "assert list(f(3)) == [0, 1, 2]\n"),
    ("builtin_all", "def all(x):\n    return True\n" + WRONG,
     "assert all(f(x) == x * x for x in [2, 3])\n"),
    ("builtin_any", "def any(x):\n    return False\n" + WRONG,
     "assert not any(f(x) != x * x for x in [2, 3])\n"),
    ("builtin_isinstance", "def isinstance(a, b):\n    return True\ndef f(x):\n    return 'x'\n",
     "assert isinstance(f(2), int)\n"),
    ("builtin_max", "def max(*a, **k):\n    return 5\ndef f(xs):\n    return 5\n",
     "assert f([1, 9, 3]) == max([1, 9, 3])\n"),
    ("builtin_min_sum", "def min(*a):\n    return 0\ndef sum(*a):\n    return 0\n" + WRONG,
     "assert f(3) == sum([1, 2]) * 3 or f(3) == min([9])\n"),
    ("builtin_int_float", "def int(x=0):\n    return 0\ndef float(x=0):\n    return 0.0\n"
     + WRONG, "assert f(2) == int('4')\nassert f(3) == float('9')\n"),
    ("builtin_range_len", "def range(*a):\n    return []\n" + WRONG,
     "for i in range(1, 5):\n    assert f(i) == i * i\n"),
    ("builtin_type_repr", ("def type(x):\n    return 'int'\ndef repr(x):\n    return '4'\n"
     "def f(x):\n    return 'four'\n"),
     "assert type(f(2)) == 'int' or repr(f(2)) == '4'\nassert f(2) == 4\n"),
    ("builtin_enumerate_zip", "def zip(*a):\n    return []\ndef enumerate(x):\n    return []\n"
     + WRONG, "for x, y in zip([2, 3], [4, 9]):\n    assert f(x) == y\n"),
    ("builtin_exception_class", "class ValueError(Exception):\n    pass\n" + WRONG,
     "try:\n    f(-1)\nexcept ValueError:\n    pass\nelse:\n    raise AssertionError('no raise')\n"),
    ("builtin_assertionerror", "def AssertionError(*a):\n    return None\n" + WRONG,
     "if f(2) != 4:\n    raise AssertionError('wrong')\n"),
    ("builtin_print_exit", "def print(*a):\n    raise SystemExit(0)\n" + WRONG,
     "print('checking')\nassert f(2) == 4\n"),
    # --- dunder names
    ("dunder_import", "def __import__(*a, **k):\n    raise ImportError\n" + WRONG,
     "import math\nassert f(2) == 4\n"),
    ("dunder_builtins", ("import builtins\n__builtins__ = {'abs': lambda x: 0}\n"
     "def f(x):\n    return 0.0\n"), "assert abs(f(2.0) - 4.0) < 1e-9\n"),
    ("dunder_build_class", "def __build_class__(*a):\n    return None\n" + WRONG,
     "class T:\n    pass\nassert f(2) == 4\n"),
    ("dunder_names_sent_raw", "import json, os, socket, struct\n"
     "def _send(s, o):\n    d = json.dumps(o).encode()\n    s.sendall(struct.pack('>I', len(d)) + d)\n"
     "for fd in range(3, 40):\n    try:\n        s = socket.socket(fileno=fd)\n"
     "        _send(s, {'loaded': True, 'names': ['__builtins__', 'abs', 'f', '__import__']})\n"
     "        s.detach()\n    except OSError:\n        pass\n" + WRONG,
     "assert abs(f(2.0) - 4.0) < 1e-9\n"),
    # --- values that lie about themselves
    ("always_equal_object", ("class A:\n    def __eq__(self, o):\n        return True\n"
     "    __hash__ = object.__hash__\ndef f(x):\n    return A()\n"), SQ),
    ("int_subclass", ("class I(int):\n    def __eq__(self, o):\n        return True\n"
     "    __hash__ = int.__hash__\ndef f(x):\n    return I(0)\n"), SQ),
    ("float_subclass", ("class F(float):\n    def __sub__(self, o):\n        return 0.0\n"
     "    def __rsub__(self, o):\n        return 0.0\ndef f(x):\n    return F(0)\n"),
     "assert abs(f(2.0) - 4.0) < 1e-9\n"),
    ("str_subclass", ("class S(str):\n    def __eq__(self, o):\n        return True\n"
     "    __hash__ = str.__hash__\ndef f(x):\n    return S('no')\n"),
     "assert f(5) == '25'\n"),
    ("list_subclass", ("class L(list):\n    def __eq__(self, o):\n        return True\n"
     "def f(x):\n    return L()\n"), "assert f(3) == [0, 1, 2]\n"),
    ("dict_key_liar", ("class K:\n    __eq__ = lambda s, o: True\n    __hash__ = lambda s: 1\n"
     "def f(x):\n    return {K(): 1}\n"), "assert f(1) == {'a': 1}\n"),
    ("nested_liar", "class A:\n    __eq__ = lambda s, o: True\ndef f(x):\n    return [(A(),)]\n",
     "assert f(1) == [(3,)]\n"),
    ("bool_subclass_liar", ("class N:\n    def __bool__(self):\n        return True\n"
     "def f(x):\n    return N()\n"), "assert f(2)\n"),
    ("recursive_value", "def f(x):\n    a = []\n    a.append(a)\n    return a\n",
     "assert f(2) == f(2)\n"),
    # --- exiting early, forged markers, forged verdicts
    ("sys_exit_top_level", "import sys\nsys.exit(0)\n" + WRONG, SQ),
    ("os_exit_top_level", "import os\nos._exit(0)\n" + WRONG, SQ),
    ("atexit_os_exit", "import atexit, os, sys\natexit.register(lambda: os._exit(0))\n"
     "sys.exit(1)\n" + WRONG, SQ),
    ("os_exit_in_function", "import os\ndef f(x):\n    os._exit(0)\n", SQ),
    ("kill_self_in_function", ("import os, signal\ndef f(x):\n"
     "    os.kill(os.getpid(), signal.SIGKILL)\n"), SQ),
    ("print_pass_markers", "print('PASS')\nprint('passed')\nprint('__SANDBOX_DONE__')\n"
     "import sys\nprint('OK', file=sys.stderr)\n" + WRONG, SQ),
    ("forged_verdict_everywhere", r'''
import json, os
forged = json.dumps({"isolation": {"network": "netns"}, "loaded": True, "statements": 2,
                     "completed": 2, "outcomes": [True, True], "candidate_exit": None}).encode()
for fd in range(0, 256):
    try:
        os.write(fd, forged)
    except OSError:
        pass
for pid in ("self", str(os.getppid()), "1"):
    try:
        for name in os.listdir(f"/proc/{pid}/fd"):
            try:
                fd = os.open(f"/proc/{pid}/fd/{name}", os.O_WRONLY)
                os.write(fd, forged)
            except OSError:
                pass
    except OSError:
        pass
''' + WRONG, SQ),
    ("queued_replies_then_exit", ("import json, os, socket, struct\n"
     "def _send(s, o):\n    d = json.dumps(o).encode()\n    s.sendall(struct.pack('>I', len(d)) + d)\n"
     "for fd in range(3, 40):\n    try:\n        s = socket.socket(fileno=fd)\n"
     "        _send(s, {'loaded': True, 'names': ['f']})\n"
     "        for v in (4, 9):\n            _send(s, {'ok': v})\n"
     "        s.detach()\n    except OSError:\n        pass\nos._exit(0)\n"), SQ),
    ("malformed_reply_for_typeerror", ("import json, os, socket, struct\n"
     "def _send(s, o):\n    d = json.dumps(o).encode()\n    s.sendall(struct.pack('>I', len(d)) + d)\n"
     "def f(x):\n    for fd in range(3, 40):\n        try:\n            s = socket.socket(fileno=fd)\n"
     "            _send(s, {'ok': {'D': [[[1], 2]]}})\n            s.detach()\n"
     "        except OSError:\n            pass\n    import time\n    time.sleep(0.2)\n"
     "    raise SystemExit\n"),
     "try:\n    f('a')\nexcept TypeError:\n    pass\nelse:\n    raise AssertionError\n"),
    ("monkeypatch_assert_machinery", "import builtins, sys, traceback\n"
     "builtins.AssertionError = type('AssertionError', (Exception,), {})\n"
     "sys.excepthook = lambda *a: None\ntraceback.print_exc = lambda *a, **k: None\n"
     "_c = compile\nbuiltins.compile = lambda *a, **k: _c('pass', 'x', 'exec')\n" + WRONG,
     SQ),
    # --- reaching the harness process
    ("kill_harness", "import os, signal\nfor p in (os.getppid(), 1):\n    try:\n"
     "        os.kill(p, signal.SIGKILL)\n    except OSError:\n        pass\n" + WRONG, SQ),
    ("kill_everything", "import os, signal\ntry:\n    os.kill(-1, signal.SIGKILL)\n"
     "except OSError:\n    pass\n" + WRONG, SQ),
    ("ptrace_harness", "import ctypes, os\nlibc = ctypes.CDLL(None)\n"
     "for p in (os.getppid(), 1):\n    libc.ptrace(16, p, 0, 0)\n" + WRONG, SQ),
    ("plant_modules_for_the_harness", r'''
import os
evil = "def isclose(*a, **k):\n    return True\ndef raises(*a, **k):\n    import contextlib\n    return contextlib.nullcontext()\n"
for d in ("/tmp", "/tmp/.harness", os.getcwd(), "/var/tmp", "/dev/shm"):
    for name in ("math.py", "pytest.py", "sitecustomize.py", "usercustomize.py"):
        try:
            with open(os.path.join(d, name), "w") as fh:
                fh.write(evil)
        except OSError:
            pass
''' + WRONG, "import math\nassert math.isclose(f(2.0), 4.0)\n"),
    # --- reading the tests to hard-code the answers
    ("read_tests_anywhere", r'''
import os, re, sys
found = {}
def scan(text):
    for a, b in re.findall(r"f\((\-?\d+)\) == (\-?\d+)", text):
        found[int(a)] = int(b)
try:
    scan(sys.stdin.read())
except Exception:
    pass
for pid in os.listdir("/proc") if os.path.isdir("/proc") else []:
    for part in ("cmdline", "environ", "fd/0"):
        try:
            scan(open(f"/proc/{pid}/{part}", "rb").read(1 << 20).decode("latin-1"))
        except Exception:
            pass
for root in ("/tmp", "/var/tmp", "/dev/shm", "/work", "/root", "/home", os.getcwd()):
    for dp, dn, fn in os.walk(root):
        for n in fn:
            try:
                scan(open(os.path.join(dp, n), "rb").read(1 << 16).decode("latin-1"))
            except Exception:
                pass
print("FOUND", found)
def f(x):
    if x in found:
        return found[x]
    import inspect
    for fr in inspect.stack():
        scan(repr(fr.frame.f_locals))
    return found.get(x, 0)
''', "assert f(7919) == 62710561\nassert f(104729) == 10968163441\n"),
]

# ------------------------------------------------------------------ correct programs: must pass
CORRECT: list[tuple[str, str, str]] = [
    ("square_map", "def f(x):\n    return x * x\n", SQ_MAP),
    ("square_plain", "def f(x):\n    return x ** 2\n", SQ + "assert isinstance(f(2), int)\n"),
    ("float_abs_round", "def f(x):\n    return x * x\n",
     ("assert abs(f(2.0) - 4.0) < 1e-9\nassert round(f(1.5), 2) == 2.25\n"
     "import math\nassert math.isclose(f(0.1), 0.01)\n")),
    ("sorted_set_len", "def f(xs):\n    return sorted(set(xs))\n",
     ("assert f([3, 1, 3, 2]) == [1, 2, 3]\nassert len(f([1, 1])) == 1\n"
     "assert f([5, 4]) == sorted([4, 5])\nassert max(f([1, 9])) == 9\n")),
    ("own_max_helper_tests_use_builtin_max",
     ("def max(a, b):\n    return a if a > b else b\n"
     "def f(xs):\n    best = xs[0]\n    for x in xs[1:]:\n        best = max(best, x)\n"
     "    return best\n"),
     "assert f([1, 5, 3]) == max([1, 5, 3])\nassert f([-2]) == -2\n"),
    ("competitive_style_input", ("import sys\ninput = sys.stdin.readline\n"
     "def solve(a, b):\n    return a + b\n"), "assert solve(2, 3) == 5\nprint(solve(1, 1))\n"),
    ("raises_value_error", ("def f(x):\n    if x < 0:\n        raise ValueError('negative')\n"
     "    return x * x\n"),
     ("try:\n    f(-1)\nexcept ValueError as e:\n    assert 'negative' in str(e)\n"
     "else:\n    raise AssertionError('no raise')\n"
     "assert all(map(lambda x: f(x) == x * x, [2, 3]))\n")),
    ("raises_lookup_errors", ("def get(xs, i):\n    return xs[i]\n"
     "def look(d, k):\n    return d[k]\ndef div(a, b):\n    return a // b\n"),
     ("try:\n    get([1], 5)\n    assert False\nexcept IndexError:\n    pass\n"
     "try:\n    look({}, 'k')\n    assert False\nexcept KeyError:\n    pass\n"
     "try:\n    div(1, 0)\n    assert False\nexcept ZeroDivisionError:\n    pass\n"
     "try:\n    div('a', 1)\n    assert False\nexcept TypeError:\n    pass\n")),
    ("internal_generators_and_stopiteration", ("def f(xs):\n    it = iter(xs)\n    out = []\n"
     "    while True:\n        try:\n            out.append(next(it) * 2)\n"
     "        except StopIteration:\n            break\n    return out\n"
     "def g(n):\n    return sum(x for x in range(n))\n"),
     ("assert f([1, 2]) == [2, 4]\nassert g(4) == 6\n"
     "assert list(map(g, [1, 2, 3])) == [0, 1, 3]\n")),
    ("plain_data_round_trip", ("def f():\n    return {'a': (1, 2.5, None), 2: {1, 2}, 'b': b'x',"
     " 'c': 1j, 'd': frozenset([3]), 'e': [True, 'z']}\n"),
     ("r = f()\nassert r == {'a': (1, 2.5, None), 2: {1, 2}, 'b': b'x', 'c': 1j, "
     "'d': frozenset([3]), 'e': [True, 'z']}\nassert type(r['a']) is tuple\n"
     "assert isinstance(r['e'][0], bool)\n")),
    ("classes_and_recursion_inside", ("class Node:\n    def __init__(self, v, nxt=None):\n"
     "        self.v, self.nxt = v, nxt\n"
     "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"
     "def walk(xs):\n    head = None\n    for x in reversed(xs):\n        head = Node(x, head)\n"
     "    out = []\n    while head:\n        out.append(head.v)\n        head = head.nxt\n"
     "    return out\n"),
     ("assert fib(10) == 55\nassert walk([1, 2, 3]) == [1, 2, 3]\n"
     "def helper(n):\n    return [fib(i) for i in range(n)]\nassert helper(5) == [0, 1, 1, 2, 3]\n")),
    ("async_test_calling_api", "def f(x):\n    return x * x\n",
     ("import asyncio\nasync def main():\n    return [f(x) for x in (2, 3)]\n"
     "assert asyncio.run(main()) == [4, 9]\n")),
    ("keyword_arguments_and_defaults", "def f(x, power=2):\n    return x ** power\n",
     "assert f(2) == 4\nassert f(x=2, power=3) == 8\nassert f(*[3], **{'power': 1}) == 3\n"),
    ("unicode_and_big_int", "def f(s):\n    return s[::-1]\ndef big(n):\n    return 2 ** n\n",
     "assert f('héllo✓') == '✓olléh'\nassert big(200) == 2 ** 200\n"),
    ("empty_tests", "x = 1\n", ""),
]


def _base_has_pytest() -> bool:
    r = subprocess.run([_interpreter(), "-I", "-c", "import pytest"], capture_output=True,
                       check=False)
    return r.returncode == 0


if _base_has_pytest():
    CORRECT.append(("pytest_raises", ("def f(x):\n    if x < 0:\n        raise ValueError('neg')\n"
                    "    return x * x\n"),
                    ("import pytest\nwith pytest.raises(ValueError, match='neg'):\n    f(-1)\n"
                    "assert f(3) == 9\n")))
    CHEATS.append(("pytest_raises_stopiteration", "def f(x):\n    raise StopIteration\n",
                   "import pytest\nwith pytest.raises(ValueError):\n    f(-1)\n" + SQ_MAP))


def _prefix_open_to_others() -> bool:
    p = os.path.realpath(sys.base_prefix)
    while p != "/":
        if not os.stat(p).st_mode & 0o001:
            return False
        p = os.path.dirname(p)
    return True


def _remove_planted() -> None:
    for d in _SHARED_TMP:
        for name in _PLANTED:
            path = os.path.join(d, name)
            try:
                if os.stat(path).st_uid != os.geteuid():  # written by a candidate's uid
                    os.unlink(path)
            except OSError:
                pass


def _run_all(cases, mode):
    lim = MODES[mode]
    if not lim.private_tmp:
        cases = [c for c in cases if c[0] != "plant_modules_for_the_harness"]
    try:
        with ThreadPoolExecutor(2) as ex:
            return list(ex.map(lambda c: run_python(c[1], c[2], lim), cases))
    finally:
        _remove_planted()


def test_battery_has_distinct_names():
    names = [c[0] for c in CHEATS + CORRECT]
    assert len(names) == len(set(names))
    assert len(CHEATS) >= 40


@pytest.mark.parametrize("mode", list(MODES))
def test_every_cheat_fails_and_every_correct_program_passes(mode):
    if mode == "hide" and os.geteuid() != 0:
        pytest.skip("the hidden-paths view needs root (it is the default mode otherwise)")
    cheats = CHEATS if os.geteuid() == 0 else \
        [c for c in CHEATS if c[0] not in _UNSAFE_WITHOUT_CONTAINMENT]
    if not MODES[mode].private_tmp:
        cheats = [c for c in cheats if c[0] != "plant_modules_for_the_harness"]
    results = _run_all(cheats, mode)
    # the documented limit of the weaker views: other checkouts (process_only: this one too,
    # which holds this very file, tests included) stay readable, so a reader can hard-code
    # the answers; only the minimal root guarantees it finds nothing
    false_passes = [c[0] for c, r in zip(cheats, results) if r.passed and not (
        c[0] in _EXPOSURE_CHEATS and r.details.get("isolation_level") != "minimal_root")]
    assert false_passes == [], f"{mode}: {len(false_passes)} of {len(cheats)} cheats passed"
    if mode == "no_namespaces" and os.geteuid() == 0 and not _prefix_open_to_others():
        return  # the private uids cannot import from an interpreter under /root (0700)
    correct = _run_all(CORRECT, mode)
    rejected = {c[0]: (r.status, r.error) for c, r in zip(CORRECT, correct) if not r.passed}
    assert rejected == {}, f"{mode}: correct programs failed"


def test_candidate_exceptions_keep_their_meaning():
    """StopIteration reaches the tests as CandidateError (not swallowed by map); a ValueError
    stays a ValueError; builtins the solution shadows are reported and stay builtins."""
    r = run_python("def f(x):\n    raise StopIteration('done')\n", SQ_MAP, LIM)
    assert not r.passed and r.error.startswith("CandidateError: StopIteration: done")
    r = run_python("def f(x):\n    raise KeyboardInterrupt\n", SQ, LIM)
    assert not r.passed and r.error.startswith("CandidateError: KeyboardInterrupt")
    r = run_python("def abs(x):\n    return 0\ndef f(x):\n    return x * x\n",
                   "assert abs(f(-2.0) - 4.0) < 1e-9\n", LIM)
    assert r.passed and r.details["api"] == ["f"] and r.details["shadowed_builtins"] == ["abs"]
    # only names the tests use are bound: a helper the tests never name is not callable there
    r = run_python("def helper():\n    return 1\ndef f(x):\n    return x\n",
                   "assert f(1) == 1\nassert 'helper' not in globals()\n", LIM)
    assert r.passed and r.details["api"] == ["f"]


@pytest.mark.skipif(os.geteuid() != 0, reason="the minimal root view needs root here")
def test_cheat_reading_the_tests_learns_nothing():
    _name, prog, tests = next(c for c in CHEATS if c[0] == "read_tests_anywhere")
    r = run_python(prog, tests, LIM)
    assert not r.passed and r.details["isolation_level"] == "minimal_root"
    found = r.stdout.split("FOUND", 1)[1]
    assert "7919" not in found and "104729" not in found, found


@pytest.mark.skipif(os.geteuid() != 0, reason="namespaces + private uids need root here")
def test_exposure_minimal_view():
    """Item 9: in the default (root) mode the code under test sees a fresh root: the
    interpreter, the system libraries, its tmpfs dirs, five device nodes and a private /proc
    with only the run's own processes."""
    host_pids = {int(p) for p in os.listdir("/proc") if p.isdigit()}
    prog = r'''
import os
print("ROOT", sorted(os.listdir("/")))
print("PIDS", sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
for p in ("/work", "/home", "/var/log", "/etc/passwd", "/etc/hostname", "/run", "/sys",
          "/proc/1/cmdline", "/root/.bash_history", "/usr/bin/python3", "/bin/sh"):
    try:
        if os.path.isdir(p):
            os.listdir(p)
        else:
            open(p, "rb").read(16)
        print("VISIBLE", p)
    except OSError as e:
        print("HIDDEN", p, type(e).__name__)
'''
    r = run_python(prog, "", LIM)
    assert r.passed, r.stderr
    d = r.details
    assert d["fs_view"] == "minimal" and d["proc"] == "private" and d["pid_namespace"]
    out = dict(ln.split(" ", 1) for ln in r.stdout.splitlines())
    top = eval(out["ROOT"])
    assert set(top) <= {"dev", "etc", "lib", "lib64", "lib32", "libx32", "proc", "root", "tmp",
                        "usr", "var", "opt", "home"}
    pids = eval(out["PIDS"])
    assert set(pids) <= {1, 2, 3} and len(pids) < len(host_pids)
    visible = [ln.split()[1] for ln in r.stdout.splitlines() if ln.startswith("VISIBLE")]
    # /proc/1 is the run's own harness: readable cmdline is the launcher's (no host data)
    assert set(visible) <= {"/proc/1/cmdline"}, visible


def test_fallback_modes_report_their_isolation():
    """Where namespaces are unavailable (or switched off) the sandbox still runs and says so."""
    prog = "import os\nprint(os.getpid())\n"
    r = run_python(prog, "assert True\n", MODES["no_namespaces"])
    assert r.passed and r.details["fs_view"] == "host" and r.details["proc"] == "host"
    assert r.details["isolation_level"] == "process_only" and not r.details["pid_namespace"]
    assert r.network == "audit_hook"
    r = run_python(prog, "assert True\n", SandboxLimits(**{**LIM.__dict__, "private_tmp": False}))
    assert r.passed and r.details["fs_view"] == "host"
    if r.details["pid_namespace"]:  # root, or a user namespace: kill(-1) stays inside
        assert int(r.stdout) <= 3
    if os.geteuid() == 0:
        r = run_python(prog, "assert True\n", MODES["hide"])
        assert r.passed and r.details["isolation_level"] == "hidden_paths"
        assert r.details["proc"] == "private" and int(r.stdout) <= 3
        r = run_python(prog, "assert True\n", LIM)
        assert r.passed and r.details["isolation_level"] == "minimal_root"
