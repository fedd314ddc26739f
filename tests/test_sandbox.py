"""The code sandbox against hostile programs, run_tests' contract, and CodeT agreement."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from synth.code import codet_select, extract_code, run_tests, split_asserts
from synth.sandbox import SandboxLimits, run_python

LIM = SandboxLimits(timeout_s=5, cpu_s=2, memory_mb=512, file_size_mb=4, nproc=16)


def _live_processes(uid):
    """Processes of ``uid`` that are not zombies (killed ones may wait to be reaped)."""
    live = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid != uid:
                    continue
                with open(f"/proc/{entry}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state not in ("Z", "X"):
                live.append(int(entry))
    return live


def _no_stray_processes(uid):
    if uid is None:
        return True
    for _ in range(20):
        if not _live_processes(uid):
            return True
        time.sleep(0.1)
    return False


def test_passing_and_failing_programs():
    ok = run_tests("def add(a, b):\n    return a + b\n", "assert add(2, 3) == 5\n")
    assert ok.passed and ok.status == "passed" and ok.error is None
    bad = run_tests("def add(a, b):\n    return a - b\n",
                    "assert add(2, 3) == 5, 'add(2, 3) should be 5'\n")
    assert not bad.passed and bad.status == "failed"
    assert "AssertionError: add(2, 3) should be 5" in bad.error
    assert "Traceback" in bad.stderr
    syn = run_tests("def f(:\n", "")
    assert not syn.passed and "SyntaxError" in syn.error


def test_output_is_captured_and_capped():
    r = run_python("print('hello'); import sys; print('oops', file=sys.stderr)", "", LIM)
    assert r.passed and r.stdout.strip() == "hello" and "oops" in r.stderr
    big = run_python("print('x' * 200_000)", "", LIM)
    assert big.passed and big.stdout.endswith("[truncated]") and len(big.stdout) < 70_000


def test_exiting_early_does_not_count_as_passing():
    r = run_tests("import sys\nsys.exit(0)\n", "raise AssertionError('never ran')\n")
    assert not r.passed and "SystemExit(0) raised in solution.py before the tests ran" in r.error
    r = run_tests("import os\nos._exit(0)\n", "assert False\n")
    assert not r.passed and r.error == "the program exited before the tests completed"


def test_infinite_loop_hits_cpu_limit():
    # generous wall clock so that the CPU rlimit (1 s) is what stops it even on a busy machine
    r = run_python("while True:\n    pass\n", "", SandboxLimits(timeout_s=60, cpu_s=1))
    assert not r.passed and r.status == "cpu_limit" and r.wall_s < 60


def test_infinite_loop_hits_wall_timeout_first_when_shorter():
    t0 = time.perf_counter()
    r = run_python("while True:\n    pass\n", "", SandboxLimits(timeout_s=0.5, cpu_s=30))
    assert not r.passed and r.status == "timeout"
    assert time.perf_counter() - t0 < 3


def test_sleeping_program_hits_wall_timeout_and_group_is_killed():
    lim = SandboxLimits(timeout_s=1.5, cpu_s=5)
    prog = "import os, time\nfor _ in range(3):\n    if os.fork() == 0:\n        time.sleep(60)\ntime.sleep(60)\n"
    r = run_python(prog, "", lim)
    assert not r.passed and r.status == "timeout" and 1.4 < r.wall_s < 5
    time.sleep(0.2)
    assert _no_stray_processes(r.uid)


def test_fork_bomb_is_contained():
    t0 = time.perf_counter()
    r = run_python("import os\nwhile True:\n    os.fork()\n", "", LIM)
    assert not r.passed
    assert r.status in ("failed", "timeout", "cpu_limit")
    if os.geteuid() == 0:
        assert r.uid is not None  # ran as a private unprivileged uid: RLIMIT_NPROC applies
        assert "BlockingIOError" in (r.error or "") or r.status != "failed"
    assert time.perf_counter() - t0 < LIM.timeout_s + 3
    time.sleep(0.2)
    assert _no_stray_processes(r.uid)


def test_detached_child_is_killed_after_the_run():
    prog = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(120)\n"
            "    os._exit(0)\n")
    r = run_python(prog, "", LIM)
    assert r.passed
    time.sleep(0.2)
    if os.geteuid() == 0:
        assert _no_stray_processes(r.uid)  # escaped the process group but not the uid


def test_memory_hog_hits_memory_limit():
    r = run_python("x = bytearray(2 * 1024**3)\n", "", LIM)
    assert not r.passed and r.status == "memory_limit"


def test_large_file_hits_file_size_limit():
    r = run_python("open('big.bin', 'wb').write(b'x' * (20 * 1024 * 1024))\n", "", LIM)
    assert not r.passed and r.status == "file_size_limit"


@pytest.mark.skipif(os.geteuid() != 0, reason="uid separation needs root (CI runs as root)")
def test_cannot_write_or_delete_outside_its_directory():
    # a root-owned directory outside /tmp (the sandbox gets a private /tmp, which would hide a
    # victim there -- including this checkout when it is cloned under /tmp)
    private = ("/tmp", "/var/tmp", "/dev/shm")  # the sandbox mounts fresh tmpfs there
    base = next(b for b in (Path(__file__).resolve().parent, Path.home())
                if b.is_dir() and not str(b).startswith(private))
    victim_dir = base / f".sbx-victim-{os.getpid()}"
    victim_dir.mkdir()
    try:
        victim = victim_dir / "precious.txt"
        victim.write_text("keep me")
        target = victim_dir / "pwned.txt"
        r = run_python(f"open({str(target)!r}, 'w').write('x')\n", "", LIM)
        # PermissionError where the sandbox sees the directory; FileNotFoundError where its
        # private mounts hide it (a checkout under /tmp or /root): contained either way
        denied = ("PermissionError", "FileNotFoundError")
        assert not r.passed and r.error.startswith(denied) and not target.exists()
        r = run_python(f"import os\nos.remove({str(victim)!r})\n", "", LIM)
        assert not r.passed and r.error.startswith(denied) and victim.read_text() == "keep me"
        r = run_python(f"import shutil\nshutil.rmtree({str(victim_dir)!r})\n", "", LIM)
        assert not r.passed and victim.exists()
    finally:
        shutil.rmtree(victim_dir, ignore_errors=True)
    # its own directory is writable; /tmp is a private tmpfs that disappears with the run
    marker = f"/tmp/dm-sbx-escape-{os.getpid()}"
    r = run_python(f"open('mine.txt', 'w').write('ok')\nopen({marker!r}, 'w').write('x')\n", "",
                   LIM)
    assert r.passed
    if r.details.get("private_tmp"):
        assert not os.path.exists(marker)


def test_network_is_blocked():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(3)
    port = srv.getsockname()[1]
    accepted = []

    def serve():
        try:
            conn, _ = srv.accept()
            accepted.append(conn)
        except OSError:
            pass

    th = threading.Thread(target=serve)
    th.start()
    r = run_python(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n",
                   "", LIM)
    th.join()
    srv.close()
    assert not r.passed and accepted == []
    assert r.network in ("netns", "userns+netns", "audit_hook")
    assert "Network is unreachable" in r.error or "Connection refused" in r.error \
        or "network access is disabled" in r.error or "Operation not permitted" in r.error


def test_network_fallback_audit_hook_blocks_sockets():
    lim = SandboxLimits(network_fallback_only=True)
    r = run_python("import socket\nsocket.socket()\n", "", lim)
    assert not r.passed and r.network == "audit_hook"
    assert "network access is disabled in the sandbox" in r.error
    r = run_python("import socket\nsocket.getaddrinfo('localhost', 80)\n", "", lim)
    assert not r.passed and "network access is disabled" in r.error


def test_without_privilege_drop_still_runs_and_limits():
    r = run_python("print(sum(range(10)))", "assert True\n", LIM, drop_privileges=False)
    assert r.passed and r.uid is None and r.stdout.strip() == "45"
    r = run_python("x = bytearray(2 * 1024**3)\n", "", LIM, drop_privileges=False)
    assert r.status == "memory_limit"


def test_network_allowed_when_asked():
    r = run_python("import socket\ns = socket.socket()\ns.close()\n", "",
                   SandboxLimits(network=True))
    assert r.passed and r.network == "allowed"


def test_environment_is_scrubbed(monkeypatch):
    monkeypatch.setenv("DM_SECRET_TOKEN", "hunter2")
    r = run_python("import os\nprint(sorted(os.environ))\nprint(os.getcwd())\n", "", LIM)
    assert r.passed and "DM_SECRET_TOKEN" not in r.stdout
    assert ("/tmp/work" if r.details.get("quota_mb") else "dm-sbx-") in r.stdout


def test_home_tmpdir_and_tempfile_work_inside():
    prog = ("import os, tempfile\nassert os.path.samefile(os.environ['HOME'], '.')\n"
            "fd, p = tempfile.mkstemp()\nos.write(fd, b'x')\nos.close(fd)\n"
            "assert os.path.dirname(p) == os.getcwd()\nopen('f.txt', 'w').write('y')\n")
    r = run_python(prog, "", LIM)
    assert r.passed, r.stderr


def test_extract_code_and_split_asserts():
    text = "Here:\n```python\ndef f(x):\n    return x\n```\nand\n```python\nprint(1)\n```"
    assert extract_code(text) == "def f(x):\n    return x\n"  # not the usage example
    assert extract_code("```python\nprint(1)\n```") == "print(1)\n"
    assert extract_code("no code") is None
    cases = split_asserts("import math\nassert f(1) == 1\nassert f(\n    2) == 2\n")
    assert cases == ["import math\nassert f(1) == 1\n", "import math\nassert f(\n    2) == 2\n"]


def test_codet_rejects_a_wrong_test_and_wrong_solutions():
    sols = ["def sq(x):\n    return x * x\n", "def sq(x):\n    return x ** 2\n",
            "def sq(x):\n    return x + x\n", "def sq(x):\n    return x * x\n"]
    tests = ["assert sq(3) == 9\n", "assert sq(0) == 0\n", "assert sq(2) == 5\n"]  # last is wrong
    matrix = [[run_tests(s, t, 5).passed for t in tests] for s in sols]
    agree = codet_select(matrix)
    assert agree.kept_solutions == [0, 1, 3]
    assert agree.kept_tests == [0, 1] and agree.rejected_tests == [2]
    assert codet_select([[False, False]]).kept_solutions == []


# --------------------------------------------------------------------------- verdict attacks
# Each program below passed the old in-process harness; every one must fail now.

ADD_TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"
WRONG_ADD = "def add(a, b):\n    return 0\n"


def test_attack_tests_calling_sys_exit_zero():
    r = run_tests(WRONG_ADD, "import sys\nsys.exit(0)\nassert add(2, 3) == 5\n", 5)
    assert not r.passed and r.status == "failed"
    assert "SystemExit(0) raised by the tests at line 2" in r.error
    assert r.details["completed"] == 1 and r.details["statements"] == 3
    r = run_tests(WRONG_ADD, "import os\nos._exit(0)\nassert add(2, 3) == 5\n", 5)
    assert not r.passed and r.status == "launcher_error" and "no verdict" in r.error


def test_attack_solution_function_calling_sys_exit_zero():
    prog = "import sys\ndef add(a, b):\n    sys.exit(0)\n"
    r = run_tests(prog, ADD_TESTS, 5)
    assert not r.passed and "SystemExit" in r.error
    prog = "import os\ndef add(a, b):\n    os._exit(0)\n"
    r = run_tests(prog, ADD_TESTS, 5)
    assert not r.passed and "candidate process ended" in r.error


def test_attack_solution_replacing_builtins_exec():
    prog = "import builtins\nbuiltins.exec = lambda *a, **k: None\n" + WRONG_ADD
    r = run_tests(prog, ADD_TESTS, 5)
    assert not r.passed and "AssertionError" in r.error


def test_attack_compile_with_optimize_2_strips_no_asserts():
    prog = ("import builtins\n_c = builtins.compile\n"
            "builtins.compile = lambda s, f, m, *a, **k: _c(s, f, m, optimize=2)\n" + WRONG_ADD)
    r = run_tests(prog, ADD_TESTS, 5)
    assert not r.passed and "AssertionError" in r.error


def test_attack_reading_harness_state_and_forging_a_verdict():
    # the old marker lived in __main__; now try everything a same-process attack could: print
    # markers, write a forged "all passed" verdict to every open fd and to the parent's fds
    prog = r'''
import __main__, json, os, sys
for k, v in list(vars(__main__).items()):
    print(k, v, file=sys.stderr)
forged = json.dumps({"isolation": {"network": "netns"}, "loaded": True, "statements": 2,
                     "completed": 2, "candidate_exit": None}).encode()
for fd in range(3, 64):
    try:
        os.write(fd, forged)
    except OSError:
        pass
for pid in (os.getppid(), os.getpid()):
    try:
        for name in os.listdir(f"/proc/{pid}/fd"):
            try:
                fd = os.open(f"/proc/{pid}/fd/{name}", os.O_WRONLY)
                os.write(fd, forged)
            except OSError:
                pass
    except OSError:
        pass
print("__SANDBOX_DONE__", file=sys.stderr)
os._exit(0)
'''
    r = run_tests(prog, ADD_TESTS, 5)
    assert not r.passed and r.status == "failed"


def test_attack_always_equal_result_is_refused():
    prog = "class A:\n    def __eq__(self, other):\n        return True\n" \
           "    __hash__ = object.__hash__\ndef add(a, b):\n    return A()\n"
    r = run_tests(prog, ADD_TESTS, 5)
    assert not r.passed and "not plain data" in r.error
    prog = "class I(int):\n    def __eq__(self, other):\n        return True\n" \
           "def add(a, b):\n    return I(0)\n"
    r = run_tests(prog, ADD_TESTS, 5)
    assert not r.passed and "not plain data" in r.error
    # nested inside a list too
    prog = "class A:\n    __eq__ = lambda s, o: True\ndef add(a, b):\n    return [A()]\n"
    r = run_tests(prog, "assert add(1, 2) == [3]\n", 5)
    assert not r.passed


def test_plain_data_round_trips_and_exceptions_keep_their_type():
    prog = ("def f():\n    return {'a': (1, 2.5, None), 2: {1, 2}, 'b': b'x', 'c': 1j,"
            " 'd': frozenset([3]), 'e': [True, 'z']}\n"
            "def g(x):\n    if x < 0:\n        raise ValueError('negative')\n    return x\n")
    tests = ("assert f() == {'a': (1, 2.5, None), 2: {1, 2}, 'b': b'x', 'c': 1j, "
             "'d': frozenset([3]), 'e': [True, 'z']}\n"
             "assert type(f()['a']) is tuple\n"
             "try:\n    g(-1)\n    raise AssertionError('no raise')\nexcept ValueError as e:\n"
             "    assert 'negative' in str(e)\n"
             "assert g(x=4) == 4\n")
    r = run_tests(prog, tests, 5)
    assert r.passed, r.error


def test_candidate_cannot_read_the_tests():
    prog = ("import os\nfor root, dirs, files in os.walk('/tmp'):\n    print(root, files)\n"
            "print(os.listdir('.'))\n" + WRONG_ADD)
    r = run_tests(prog, "SECRET_EXPECTED = 12345\nassert add(2, 3) == 5\n", 5)
    assert not r.passed and "12345" not in r.stdout and "tests.py" not in r.stdout


def test_candidate_killing_the_harness_fails():
    prog = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n" + WRONG_ADD
    r = run_tests(prog, ADD_TESTS, 5)
    assert not r.passed


# --------------------------------------------------------------------------- isolation gaps

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="mount namespace + uids need root")


HIDE = SandboxLimits(**{**LIM.__dict__, "fs_view": "hide"})


@root_only
@pytest.mark.parametrize("view", ["minimal", "hide"])
def test_run_lock_and_world_writable_dirs_are_not_writable(view):
    ww = Path(f"/run/dm-sbx-ww-{os.getpid()}")
    ww.mkdir(mode=0o777)
    os.chmod(ww, 0o777)
    try:
        lock = f"/run/lock/dm-sbx-{os.getpid()}"
        prog = (f"try:\n    open({lock!r}, 'w').write('x')\n    print('LOCK')\n"
                "except OSError as e:\n    print(type(e).__name__, e.errno)\n"
                f"try:\n    open({str(ww / 'x')!r}, 'w').write('x')\n    print('WROTE')\n"
                "except OSError as e:\n    print(type(e).__name__, e.errno)\n")
        r = run_python(prog, "", LIM if view == "minimal" else HIDE)
        assert r.passed, r.stderr
        assert not os.path.exists(lock)  # a private tmpfs that vanished with the run / absent
        assert "WROTE" not in r.stdout and not (ww / "x").exists()
        if view == "hide":
            assert "LOCK" in r.stdout  # /run/lock is a private tmpfs
            assert "30" in r.stdout  # EROFS: every pre-existing mount is read-only inside
        else:
            assert r.details["fs_view"] == "minimal"
            assert r.stdout.count("FileNotFoundError") == 2  # /run is not in the view at all
    finally:
        shutil.rmtree(ww, ignore_errors=True)


def test_filesystem_unix_sockets_are_unreachable():
    path = f"/run/dm-sbx-{os.getpid()}.sock" if os.access("/run", os.W_OK) else \
        str(Path.home() / f".dm-sbx-{os.getpid()}.sock")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    os.chmod(path, 0o777)
    srv.listen(1)
    srv.settimeout(0.5)
    try:
        prog = (f"import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect({path!r})\n"
                "s.sendall(b'hi')\n")
        r = run_python(prog, "", LIM)
        assert not r.passed
        with pytest.raises(OSError):
            srv.accept()
    finally:
        srv.close()
        os.unlink(path)


@root_only
@pytest.mark.parametrize("view", ["minimal", "hide"])
def test_project_checkout_and_home_are_hidden(view):
    import synth.sandbox as sb

    target = str(Path(sb.__file__).resolve())
    prog = f"print(len(open({target!r}).read()))\n"
    r = run_python(prog, "", LIM if view == "minimal" else HIDE)
    assert not r.passed and r.error.startswith(("FileNotFoundError", "PermissionError"))
    if view == "hide":
        project = str(Path(sb.__file__).resolve().parents[1])
        # a checkout under /tmp (CI clones there) is covered by the run's private /tmp tmpfs
        assert project in r.details["hidden"] or project.startswith("/tmp/"), r.details
    else:
        assert r.details["fs_view"] == "minimal"  # only the interpreter + libraries exist


@root_only
def test_disk_quota_stops_a_writer_quickly():
    lim = SandboxLimits(timeout_s=10, cpu_s=5, memory_mb=512, file_size_mb=1024, disk_mb=16)
    prog = ("chunk = b'x' * (1 << 20)\nfor i in range(64):\n"
            "    with open(f'f{i}.bin', 'wb') as f:\n        f.write(chunk * 16)\n")
    t0 = time.perf_counter()
    r = run_python(prog, "", lim)
    assert not r.passed and r.status == "disk_quota", (r.status, r.error)
    assert time.perf_counter() - t0 < 5 and r.details["quota_mb"] == 16
