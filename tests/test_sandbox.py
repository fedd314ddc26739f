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
    assert not r.passed and "before the tests completed" in r.error
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
        or "network access is disabled" in r.error


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
    assert r.passed and "DM_SECRET_TOKEN" not in r.stdout and "dm-sbx-" in r.stdout


def test_home_tmpdir_and_tempfile_work_inside():
    prog = ("import os, tempfile\nassert os.path.samefile(os.environ['HOME'], '.')\n"
            "fd, p = tempfile.mkstemp()\nos.write(fd, b'x')\nos.close(fd)\n"
            "assert os.path.dirname(p) == os.getcwd()\nopen('f.txt', 'w').write('y')\n")
    r = run_python(prog, "", LIM)
    assert r.passed, r.stderr


def test_extract_code_and_split_asserts():
    text = "Here:\n```python\ndef f(x):\n    return x\n```\nand\n```python\nprint(1)\n```"
    assert extract_code(text) == "print(1)\n"
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
