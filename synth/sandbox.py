"""Run untrusted Python (generated solutions + tests) in a contained child process.

Every run gets:

* its **own process** (``python -I``: isolated mode, no user site, ``PYTHON*`` env ignored) in a
  **new session / process group**, started in a fresh **temporary working directory**, with a
  **scrubbed environment** (only ``PATH``, ``LANG``, ``HOME``/``TMPDIR`` = the work dir);
* **rlimits** set by a trusted launcher before any untrusted code runs: ``RLIMIT_CPU``,
  ``RLIMIT_AS`` (memory), ``RLIMIT_FSIZE`` (largest file it may write, stdout/stderr included
  since they go to files), ``RLIMIT_NPROC`` (processes), ``RLIMIT_NOFILE``, ``RLIMIT_CORE=0``;
* a **wall-clock timeout** after which the whole process group is killed with SIGKILL;
* **no network**: the launcher calls ``unshare(CLONE_NEWNET)`` through libc (ctypes; Python
  3.11 has no ``os.unshare``), so the child sees a network namespace with only a down loopback
  device. As root this needs no user namespace; as a normal user it tries
  ``CLONE_NEWUSER|CLONE_NEWNET`` (unprivileged user namespaces). If both fail (containers
  without the capability, non-Linux), the fallback is an audit hook installed before the
  untrusted code runs that refuses ``socket.__new__``/``socket.connect``/``socket.bind`` —
  weaker (ctypes could bypass it); :attr:`SandboxResult.network` says which one applied.
* **a private /tmp** where possible: a new mount namespace with fresh ``tmpfs`` mounts on
  ``/tmp``, ``/var/tmp`` and ``/dev/shm`` (the working directory stays reachable because the
  child's cwd is entered before the mounts);
* **an unprivileged uid** when the parent runs as root (CI containers do): the launcher drops
  to a per-run uid/gid from a high range (no passwd entry needed). This is what makes
  ``RLIMIT_NPROC`` effective (root ignores it), stops writes/deletes outside the work dir
  (everything else is owned by root) and lets us kill every process of the run afterwards,
  even ones that escaped the process group with ``setsid``. As a normal user the child keeps
  the caller's uid: NPROC is then set to the user's current process count + the limit.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

UID_BASE = 200_000  # per-run uids are drawn from [UID_BASE, UID_BASE + UID_SPAN)
UID_SPAN = 800_000
MAX_CAPTURE = 64 * 1024  # bytes of stdout/stderr returned


@dataclass
class SandboxLimits:
    timeout_s: float = 10.0  # wall clock
    cpu_s: int = 10  # RLIMIT_CPU (seconds of CPU time)
    memory_mb: int = 1024  # RLIMIT_AS
    file_size_mb: int = 16  # RLIMIT_FSIZE
    nproc: int = 32  # RLIMIT_NPROC (processes + threads of the run's uid)
    nofile: int = 256  # RLIMIT_NOFILE
    network: bool = False  # True: do not isolate the network
    network_fallback_only: bool = False  # skip namespaces, use the audit-hook fallback (tests)
    private_tmp: bool = True


@dataclass
class SandboxResult:
    """What happened to one sandboxed run."""

    passed: bool  # exit code 0 within the limits
    status: str  # passed | failed | timeout | cpu_limit | memory_limit | file_size_limit | killed | launcher_error
    returncode: int | None
    stdout: str
    stderr: str
    error: str | None  # short description of the failure (last traceback line, limit hit)
    wall_s: float
    network: str = ""  # how network access was blocked: netns | userns+netns | audit_hook | allowed
    uid: int | None = None  # uid the code ran as (None: caller's uid)
    details: dict = field(default_factory=dict)


# The trusted launcher: applies isolation, then runs the program and tests in one namespace.
# It receives its settings as JSON in argv[1]; the program and tests are files in its cwd.
_LAUNCHER = r'''
import ctypes, json, os, resource, sys
cfg = json.loads(sys.argv[1])
_done = sys.stdin.readline().strip()  # completion nonce: printed only after the tests ran
sys.stdin.close()
sys.stdin = open(os.devnull)
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000
MS_REC, MS_PRIVATE = 16384, 1 << 18
libc = ctypes.CDLL(None, use_errno=True)
net = "allowed"
if not cfg["network"]:
    if cfg["net_fallback"]:
        net = "audit_hook"
    elif libc.unshare(CLONE_NEWNET) == 0:
        net = "netns"
    elif cfg["uid"] is None and libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0:
        net = "userns+netns"
    else:
        net = "audit_hook"
MS_BIND, MNT_DETACH = 4096, 2
mnt = os.geteuid() == 0 and libc.unshare(CLONE_NEWNS) == 0 and \
    libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) == 0

def closed_ancestor(path):
    """(closed ancestor, its child on the way to path) when others cannot traverse it."""
    parts = path.split("/")
    for i in range(2, len(parts)):
        anc = "/".join(parts[:i])
        if not os.stat(anc).st_mode & 0o001:
            return anc, "/".join(parts[: i + 1])
    return None

uid_ok = True
if cfg["uid"] is not None:
    # the interpreter must stay importable after dropping to an unprivileged uid: re-expose
    # prefixes hidden under a closed directory (e.g. pyenv under /root, mode 0700) by mounting
    # a world-traversable tmpfs over the closed directory and binding the prefix back.
    for prefix in sorted({os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}):
        hit = closed_ancestor(prefix)
        if hit is None:
            continue
        anc, keep = hit
        if not mnt:
            uid_ok = False
            break
        stage = os.path.abspath(".sbx_stage")
        os.mkdir(stage)
        ok = libc.mount(keep.encode(), stage.encode(), None, MS_BIND | MS_REC, None) == 0
        ok = ok and libc.mount(b"tmpfs", anc.encode(), b"tmpfs", 0, b"size=1m,mode=755") == 0
        if ok:
            os.mkdir(keep)
            ok = libc.mount(stage.encode(), keep.encode(), None, MS_BIND | MS_REC, None) == 0
        libc.umount2(stage.encode(), MNT_DETACH)
        os.rmdir(stage)
        if not ok:
            uid_ok = False
            break
if cfg["private_tmp"] and mnt:
    work = os.getcwd()
    hidden = False
    for d in ("/tmp", "/var/tmp", "/dev/shm"):
        if os.path.isdir(d) and libc.mount(b"tmpfs", d.encode(), b"tmpfs", 0,
                                           b"size=64m,mode=1777") == 0:
            hidden = hidden or work.startswith(d + "/")
    if hidden:  # the work dir lived under a now-private dir: bind it back at the same path
        os.makedirs(work, exist_ok=True)
        if libc.mount(b".", work.encode(), None, MS_BIND, None) == 0:
            os.chdir(work)
R = resource
lim = cfg["limits"]
R.setrlimit(R.RLIMIT_CORE, (0, 0))
R.setrlimit(R.RLIMIT_CPU, (lim["cpu"], lim["cpu"] + 1))
R.setrlimit(R.RLIMIT_AS, (lim["as"], lim["as"]))
R.setrlimit(R.RLIMIT_FSIZE, (lim["fsize"], lim["fsize"]))
R.setrlimit(R.RLIMIT_NOFILE, (lim["nofile"], lim["nofile"]))
R.setrlimit(R.RLIMIT_NPROC, (lim["nproc"], lim["nproc"]))
if cfg["uid"] is not None and uid_ok:
    os.setgroups([])
    os.setgid(cfg["uid"])
    os.setuid(cfg["uid"])
info = {"network": net, "uid": os.getuid(), "private_tmp": bool(cfg["private_tmp"] and mnt)}
sys.stderr.write("__SANDBOX__ " + json.dumps(info) + "\n")
sys.stderr.flush()
if net == "audit_hook":
    def _no_net(event, args):
        if event in ("socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo"):
            raise PermissionError("network access is disabled in the sandbox")
    sys.addaudithook(_no_net)
del ctypes, libc, cfg, lim, R, info
import builtins, traceback
ns = {"__name__": "__main__", "__builtins__": builtins}
def _finish(code):
    sys.stdout.flush(); sys.stderr.flush()
    os._exit(code)
phase = "solution"
try:
    with open("solution.py", encoding="utf-8") as f:
        exec(compile(f.read(), "solution.py", "exec"), ns)
    phase = "tests"
    with open("tests.py", encoding="utf-8") as f:
        exec(compile(f.read(), "tests.py", "exec"), ns)
except SystemExit as e:
    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    if phase == "solution" or code:
        sys.stderr.write(f"SystemExit({e.code!r}) raised in {phase}.py before the tests "
                         "completed\n" if phase == "solution" else f"SystemExit: {e.code!r}\n")
        _finish(1)
except BaseException:
    traceback.print_exc()
    _finish(1)
sys.stderr.write("__SANDBOX_DONE__ " + _done + "\n")
_finish(0)
'''

_uid_lock = threading.Lock()
_uid_rng = random.Random()


def _pick_uid() -> int:
    with _uid_lock:
        return UID_BASE + _uid_rng.randrange(UID_SPAN)


def _count_own_processes() -> int:
    uid = os.getuid()
    n = 0
    try:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.stat(f"/proc/{entry}").st_uid == uid:
                        n += 1
                except OSError:
                    pass
    except OSError:
        return 0
    return n


def _live_pids_of(uid: int) -> list[int]:
    """Non-zombie processes owned by ``uid`` (Linux /proc)."""
    out = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return out
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            with open(f"/proc/{entry}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in (b"Z", b"X"):
            out.append(int(entry))
    return out


def _kill_uid(uid: int, attempts: int = 20) -> None:
    """SIGKILL every process owned by ``uid`` (a fork that becomes uid and kills -1).

    Repeated until none is left: a process forking while the signal is delivered could
    otherwise leave a fresh child behind.
    """
    for _ in range(attempts):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
                os.kill(-1, signal.SIGKILL)
            except BaseException:  # noqa: BLE001, S110 - forked child: must reach _exit
                pass
            os._exit(0)
        os.waitpid(pid, 0)
        if not _live_pids_of(uid):
            return
        time.sleep(0.01)
    log.warning("sandbox: processes of uid %d survived %d kill rounds", uid, attempts)


def _read_capped(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CAPTURE + 1)
    except OSError:
        return ""
    text = data[:MAX_CAPTURE].decode("utf-8", errors="replace")
    if len(data) > MAX_CAPTURE:
        text += "\n...[truncated]"
    return text


_EXC_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit|Warning)\b")


def _last_error_line(stderr: str) -> str | None:
    """The last exception line of stderr (forked children may interleave their tracebacks,
    so the very last line is not always the exception), else the last non-empty line."""
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    for ln in reversed(lines):
        if _EXC_LINE.match(ln):
            return ln[:500]
    return lines[-1][:500] if lines else None


def run_python(program: str, tests: str = "", limits: SandboxLimits | None = None,
               *, drop_privileges: bool | None = None) -> SandboxResult:
    """Run ``program`` then ``tests`` (same globals) in a sandbox; see the module docstring."""
    lim = limits or SandboxLimits()
    is_root = os.geteuid() == 0
    drop = is_root if drop_privileges is None else (drop_privileges and is_root)
    uid = _pick_uid() if drop else None
    nproc = lim.nproc if drop else _count_own_processes() + lim.nproc
    work = Path(tempfile.mkdtemp(prefix="dm-sbx-"))
    out_dir = Path(tempfile.mkdtemp(prefix="dm-sbx-out-"))  # parent-owned, not visible to child
    try:
        (work / "solution.py").write_text(program, encoding="utf-8")
        (work / "tests.py").write_text(tests, encoding="utf-8")
        if uid is not None:
            os.chown(work, uid, uid)
            os.chmod(work, 0o700)
            for f in work.iterdir():
                os.chown(f, uid, uid)
        cfg = {
            "network": lim.network,
            "net_fallback": lim.network_fallback_only,
            "private_tmp": lim.private_tmp,
            "uid": uid,
            "limits": {
                "cpu": int(max(1, lim.cpu_s)),
                "as": int(lim.memory_mb) * 1024 * 1024,
                "fsize": int(lim.file_size_mb) * 1024 * 1024,
                "nofile": int(lim.nofile),
                "nproc": int(nproc),
            },
        }
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(work),
            "TMPDIR": str(work),
            "PYTHONDONTWRITEBYTECODE": "1",
            "OMP_NUM_THREADS": "1",
        }
        nonce = secrets.token_hex(16)
        t0 = time.perf_counter()
        with open(out_dir / "stdout", "wb") as so, open(out_dir / "stderr", "wb") as se:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-c", _LAUNCHER, json.dumps(cfg)],
                cwd=work, env=env, stdin=subprocess.PIPE, stdout=so, stderr=se,
                start_new_session=True, close_fds=True,
            )
            try:
                assert proc.stdin is not None
                proc.stdin.write(nonce.encode() + b"\n")
                proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            timed_out = False
            try:
                rc = proc.wait(timeout=lim.timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                rc = None
            # kill the whole group (and, with a private uid, everything that uid still runs)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            if uid is not None:
                _kill_uid(uid)
            if rc is None:
                rc = proc.wait()
        wall = time.perf_counter() - t0
        stdout = _read_capped(out_dir / "stdout")
        raw_err = _read_capped(out_dir / "stderr")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(out_dir, ignore_errors=True)

    network = ""
    info: dict = {}
    completed = False
    err_lines = []
    for ln in raw_err.splitlines():
        if ln.startswith("__SANDBOX__ ") and not info:
            try:
                info = json.loads(ln[len("__SANDBOX__ "):])
                network = info["network"]
            except (ValueError, KeyError):
                pass
        elif ln == f"__SANDBOX_DONE__ {nonce}":
            completed = True
        else:
            err_lines.append(ln)
    ran_as = info.get("uid")
    uid = ran_as if ran_as != os.getuid() else None
    stderr = "\n".join(err_lines)
    if not network and rc != 0:
        status, error = "launcher_error", _last_error_line(stderr) or f"exit code {rc}"
        return SandboxResult(False, status, rc, stdout, stderr, error, wall, network, uid, info)

    if timed_out:
        status, error = "timeout", f"wall-clock timeout after {lim.timeout_s:g}s"
    elif rc == 0 and completed:
        status, error = "passed", None
    elif rc == 0:
        status, error = "failed", "the program exited before the tests completed"
    elif rc == -signal.SIGXCPU or rc == -signal.SIGKILL and "MemoryError" not in stderr:
        status, error = "cpu_limit", f"CPU time limit ({lim.cpu_s}s) exceeded"
    elif rc == -signal.SIGXFSZ or "File too large" in stderr:
        status, error = "file_size_limit", f"file size limit ({lim.file_size_mb} MB) exceeded"
    elif "MemoryError" in stderr or "Cannot allocate memory" in stderr:
        status, error = "memory_limit", f"memory limit ({lim.memory_mb} MB) exceeded"
    elif rc is not None and rc < 0:
        status, error = "killed", f"killed by signal {signal.Signals(-rc).name}"
    else:
        status, error = "failed", _last_error_line(stderr) or f"exit code {rc}"
    return SandboxResult(status == "passed", status, rc, stdout, stderr, error, wall, network, uid,
                         info)
