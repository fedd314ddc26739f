"""Run untrusted Python (generated solutions + tests) in a contained child process.

**Verdict.** A pass is decided by a harness the candidate program cannot reach:

* the candidate program (``solution.py``) runs in its **own process**, forked by a trusted
  launcher before any untrusted code runs; its only channel to the tests is a socket on which
  it receives calls and answers with **plain data** (None, bool, int, float, str, bytes,
  complex, list, tuple, dict, set, frozenset, encoded as tagged JSON). Objects that could lie
  about their value (an ``__eq__`` that always returns True, an ``int`` subclass, a proxy)
  cannot cross: the call fails with ``TypeError``.
* the tests run in a **second process** (the harness), which never executes candidate code:
  top-level callables the solution defines **and the tests use by name** are bound to stubs
  that forward the call; a builtin name (``abs``, ``len``, ``isinstance``, ``ValueError``...)
  or a dunder (``__import__``, ``__builtins__``) is never bound: builtins stay the tests' own
  (``details['shadowed_builtins']`` lists builtins the solution redefined and the tests use).
  Each call carries a fresh nonce the reply must echo (replies queued in advance are refused).
  An exception of the solution reaches the tests as itself only when it is a builtin
  ``Exception`` subclass other than ``StopIteration`` / ``StopAsyncIteration`` (so
  ``pytest.raises(ValueError)`` and ``except KeyError`` work); anything else (those two,
  ``GeneratorExit``, ``KeyboardInterrupt``, ``SystemExit``, custom classes, a forged reply)
  becomes ``CandidateError``, which no iteration protocol swallows: a solution raising
  ``StopIteration`` cannot end the tests' ``map``/``filter``/``zip``/``next(it, default)``
  early. The harness
  parses the tests itself, compiles every top-level statement with ``optimize=0`` (asserts
  kept whatever the candidate does to ``compile``) and executes them one by one; ``SystemExit``
  raised by a test counts as a failure. The harness reads the tests from its stdin *after* the
  fork, so the candidate never sees them (it cannot special-case the asserts).
* the verdict (statements run / statements in the tests, the error, the candidate's exit) is
  written to a **pipe the parent opened before starting the launcher**; the candidate closes its
  copy before it runs, and ``PR_SET_DUMPABLE=0`` plus a separate uid keep it out of the
  harness's ``/proc/<pid>/fd``, memory and ptrace. Stdout/stderr carry no verdict.
* the parent counts the statements of the tests itself; a pass means the harness reported that
  every one of them ran to the end.

Not covered: tests are trusted not to attack the harness (a test can forge the verdict, since
it runs inside it); solutions must return plain data (tests that inspect mutated arguments,
generators, class instances or side effects fail instead of passing); a solution exception of a
type the tests may expect still acts as itself inside protocols the *tests* define (an
``AttributeError`` inside a test class's property under ``hasattr``, an ``IndexError`` in a
test class's ``__getitem__`` iteration); an entry point named like a builtin cannot be tested
(the builtin is what the tests call); a test expecting ``StopIteration`` from the solution
fails.

**Isolation** of both processes (``details['isolation_level']`` says which applied):

* ``minimal_root`` (root, the default ``fs_view="minimal"``): a private mount namespace whose
  root is a fresh read-only tmpfs (``pivot_root``) holding only the interpreter's prefix and
  the system library dirs (``/usr/lib``, ``/usr/lib64``, ``/lib*`` links, ``ld.so.cache``)
  bound read-only, ``/dev/{null,zero,full,random,urandom}``, tmpfs ``/tmp`` (``disk_mb``),
  ``/dev/shm`` and ``/var/tmp`` (1 MB), and a fresh ``/proc`` of a private **PID
  namespace** (the harness is its pid 1: host command lines are not visible, ``kill(-1)``
  stays inside, everything left dies with the harness). No checkout, home, ``/etc``,
  ``/var/log``, ``/run`` or ``/sys`` exists there.
* ``hidden_paths`` (``fs_view="hide"``, or when building the minimal root fails): the host
  tree read-only with the paths below covered, plus the PID namespace and private ``/proc``.
* ``process_only`` (no root and no user namespaces, or ``private_tmp=False``): everything the
  caller's uid can read stays readable, ``/proc`` is the host's unless a PID namespace could
  be made (root, or a user namespace), and only the measures below apply.

* ``python -I`` of the base interpreter (no venv site-packages, no user site, ``PYTHON*`` env
  ignored), new session / process group, scrubbed environment;
* **rlimits** set by the launcher before any untrusted code: ``RLIMIT_CPU``, ``RLIMIT_AS``,
  ``RLIMIT_FSIZE``, ``RLIMIT_NPROC``, ``RLIMIT_NOFILE``, ``RLIMIT_CORE=0``; a wall-clock
  timeout kills the process group and every process of the run's uids;
* **no network**: ``unshare(CLONE_NEWNET)`` (or a user namespace, or an audit-hook fallback)
  and a **seccomp filter** that makes ``socket()`` and ``io_uring_setup()`` fail with EPERM,
  which also closes filesystem Unix sockets (``/run/...sock``) that a network namespace
  leaves reachable;
* as root (CI containers), a **private mount namespace**: every existing mount is remounted
  read-only (``/run/lock``, ``/var/crash`` and other world-writable directories included),
  the project checkout, the caller's cwd and home, ``/root`` and ``/home`` are covered by
  empty read-only tmpfs mounts (the interpreter's prefix is bound back), and the only writable
  places are fresh size-limited tmpfs mounts: ``/tmp`` (``disk_mb``, the run's disk quota,
  holding the working directory) and 1 MB ones on ``/var/tmp``, ``/dev/shm``, ``/run/lock``;
* as root, **two unprivileged uids** (candidate, harness) from a high range: NPROC applies,
  nothing else is writable, and every process of both uids is killed after the run.

Without root (no mount namespace, no uid switch) the candidate keeps the caller's uid: writes
are limited by ``RLIMIT_FSIZE`` per file only, the checkout stays readable, and
:attr:`SandboxResult.details` says which protections applied.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import random
import re
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

UID_BASE = 200_000  # per-run uid pairs are drawn from [UID_BASE, UID_BASE + UID_SPAN)
UID_SPAN = 800_000
MAX_CAPTURE = 64 * 1024  # bytes of stdout/stderr returned
_PROJECT = Path(__file__).resolve().parents[1]


def _default_hide() -> tuple[str, ...]:
    paths = {str(_PROJECT), os.getcwd(), str(Path.home()), "/root", "/home", sys.prefix}
    return tuple(sorted(paths))


@dataclass
class SandboxLimits:
    timeout_s: float = 10.0  # wall clock
    cpu_s: int = 10  # RLIMIT_CPU (seconds of CPU time)
    memory_mb: int = 1024  # RLIMIT_AS
    file_size_mb: int = 16  # RLIMIT_FSIZE
    disk_mb: int = 64  # size of the private /tmp tmpfs holding the work dir (root only)
    nproc: int = 32  # RLIMIT_NPROC (processes + threads of the run's uid)
    nofile: int = 256  # RLIMIT_NOFILE
    network: bool = False  # True: do not isolate the network
    network_fallback_only: bool = False  # skip namespaces, use the audit-hook fallback (tests)
    private_tmp: bool = True  # private mount namespace (read-only root, hidden paths, quota)
    seccomp: bool = True  # socket()/io_uring_setup() fail with EPERM
    hide_paths: tuple[str, ...] | None = None  # None: project, cwd, home, /root, /home, venv
    # root only: "minimal" pivots into a fresh root holding only the interpreter, the system
    # libraries and the run's tmpfs dirs (falls back to "hide" when that fails); "hide" keeps
    # the host tree read-only and covers ``hide_paths``
    fs_view: str = "minimal"
    pid_namespace: bool = True  # private PID namespace (root, or in a user namespace) + /proc


@dataclass
class SandboxResult:
    """What happened to one sandboxed run."""

    passed: bool  # every test statement ran to the end (reported by the harness), within limits
    status: str  # passed | failed | timeout | cpu_limit | memory_limit | file_size_limit | killed | launcher_error
    returncode: int | None
    stdout: str
    stderr: str
    error: str | None  # short description of the failure (exception line, limit hit)
    wall_s: float
    network: str = ""  # how network access was blocked: netns | userns+netns | audit_hook | allowed
    uid: int | None = None  # uid the candidate ran as (None: caller's uid)
    details: dict = field(default_factory=dict)


# The trusted launcher: applies isolation, forks the candidate process, then runs the tests.
# Settings come as a JSON file named in argv[1]; the solution is a file, the tests arrive
# on stdin.
_LAUNCHER = r'''
import ast, builtins, ctypes, json, os, re, resource, select, signal, socket, struct, sys, traceback
with open(sys.argv[1], encoding="utf-8") as _f:  # not in argv: /proc/<pid>/cmdline is public
    cfg = json.load(_f)
VFD = cfg["verdict_fd"]
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: /proc/<pid>/fd, mem, ptrace closed to same uid
with open(cfg["solution"], encoding="utf-8") as f:
    SRC = f.read()
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000
CLONE_NEWPID = 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE, MNT_DETACH = 32, 4096, 16384, 1 << 18, 2
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(os.uname().machine)
info = {"network": "allowed", "private_mounts": False, "read_only_root": False, "hidden": [],
        "quota_mb": None, "seccomp": False, "fs_view": "host", "proc": "host",
        "pid_namespace": False}
IS_ROOT = os.geteuid() == 0
EUID, EGID = os.geteuid(), os.getegid()

def _map_self():
    """In a fresh user namespace: map our own uid/gid to themselves (files we create keep
    our uid instead of failing with EOVERFLOW); allowed without privilege."""
    for path, text in (("/proc/self/setgroups", "deny"), ("/proc/self/uid_map", f"{EUID} {EUID} 1"),
                       ("/proc/self/gid_map", f"{EGID} {EGID} 1")):
        try:
            with open(path, "w") as fh:
                fh.write(text)
        except OSError:
            pass

if not cfg["network"]:
    if cfg["net_fallback"]:
        info["network"] = "audit_hook"
    elif libc.unshare(CLONE_NEWNET) == 0:
        info["network"] = "netns"
    elif cfg["uid"] is None and libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0:
        _map_self()
        info["network"] = "userns+netns"
    else:
        info["network"] = "audit_hook"
mnt = IS_ROOT and cfg["private_mounts"] and libc.unshare(CLONE_NEWNS) == 0 and \
    libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) == 0

def _m(src, dst, fstype, flags, data):
    enc = lambda s: None if s is None else s.encode()
    return libc.mount(enc(src), enc(dst), enc(fstype), flags, enc(data)) == 0

def _mountpoints():
    out = []
    with open("/proc/self/mountinfo") as f:
        for ln in f:
            mp = ln.split()[4]
            out.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), mp))
    return out

def _bind_ro(src, dst):
    # non-recursive: mounts below src stay invisible instead of writable
    return _m(src, dst, None, MS_BIND, None) and \
        _m(None, dst, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, None)

def minimal_root(nr, q):
    """Build a fresh root in nr: the interpreter + system libraries read-only, tmpfs /tmp of q
    MB, a few device nodes, an empty /proc mount point. Returns True when pivoted into it."""
    if any(p == d or p.startswith(d + "/") for p in cfg["view"]
           for d in ("/tmp", "/dev", "/var/tmp", "/proc")):
        return False  # an interpreter there would be covered by the run's own mounts
    os.mkdir(nr, 0o755)
    if not _m("tmpfs", nr, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=755"):
        return False
    try:
        bound = []
        for p in cfg["view"]:
            if any(p == b or p.startswith(b.rstrip("/") + "/") for b in bound):
                continue
            t = nr + p
            if os.path.islink(p):
                os.makedirs(os.path.dirname(t), exist_ok=True)
                os.symlink(os.readlink(p), t)
                continue
            if os.path.isdir(p):
                os.makedirs(t, exist_ok=True)
            elif os.path.isfile(p):
                os.makedirs(os.path.dirname(t), exist_ok=True)
                open(t, "w").close()
            else:
                continue
            if not _bind_ro(p, t):
                raise OSError(f"bind {p}")
            bound.append(p)
        os.makedirs(nr + "/dev", exist_ok=True)
        if not _m("tmpfs", nr + "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=755"):
            raise OSError("tmpfs /dev")
        for d in ("null", "zero", "full", "random", "urandom"):
            if os.path.exists("/dev/" + d):
                open(f"{nr}/dev/{d}", "w").close()
                if not _m("/dev/" + d, f"{nr}/dev/{d}", None, MS_BIND, None):
                    raise OSError(f"bind /dev/{d}")
        for n, tgt in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                       ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
            os.symlink(tgt, f"{nr}/dev/{n}")
        for d, size, mode in (("/tmp", q, "1777"), ("/dev/shm", 1, "1777"), ("/var/tmp", 1, "1777")):
            os.makedirs(nr + d, exist_ok=True)
            if not _m("tmpfs", nr + d, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size}m,mode={mode}"):
                raise OSError(f"tmpfs {d}")
        _m(None, nr + "/dev", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC, None)
        os.makedirs(nr + "/proc", exist_ok=True)
        os.makedirs(nr + "/.old", exist_ok=True)
        if SYS_PIVOT_ROOT is None or libc.syscall(SYS_PIVOT_ROOT, nr.encode(),
                                                  (nr + "/.old").encode()) != 0:
            raise OSError("pivot_root")
    except OSError:
        libc.umount2(nr.encode(), MNT_DETACH)
        return False
    os.chdir("/")
    return True

def finish_root():
    """In the new root: drop the old root, make / read-only."""
    libc.umount2(b"/.old", MNT_DETACH)
    try:
        os.rmdir("/.old")
    except OSError:
        pass
    _m(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, None)

work = os.getcwd()
cand_dir, drv_dir = os.path.join(work, "c"), os.path.join(work, "d")
pivoted = False
if mnt and cfg["fs_view"] == "minimal":
    pivoted = minimal_root(os.path.join(work, "nr"), int(cfg["disk_mb"]))
    if pivoted:
        info.update(fs_view="minimal", read_only_root=True, quota_mb=int(cfg["disk_mb"]),
                    proc="none", private_mounts=True)
        cand_dir, drv_dir = "/tmp/work", "/tmp/.harness"
if mnt and not pivoted:
    # 1. keep the interpreter reachable when it lives under a hidden path: bind it aside first
    keep = cfg["keep"]
    hide = [h for h in cfg["hide"] if os.path.isdir(h)]
    staged = []
    for i, k in enumerate(keep):
        if any(k == h or k.startswith(h.rstrip("/") + "/") for h in hide):
            st = os.path.join(work, f"stage{i}")
            os.mkdir(st)
            if _m(k, st, None, MS_BIND | MS_REC, None):
                staged.append((k, st))
    # 2. everything mounted so far becomes read-only (world-writable dirs included)
    ro = 0
    for mp in _mountpoints():
        if _m(None, mp, None, MS_REMOUNT | MS_BIND | MS_RDONLY, None):
            ro += 1
    info["read_only_root"] = ro > 0
    # 3. hidden paths (project checkout, home dirs...): an empty read-only tmpfs on top
    for h in hide:
        if _m("tmpfs", h, "tmpfs", 0, "size=1m,mode=755"):
            for k, st in staged:
                if k.startswith(h.rstrip("/") + "/"):
                    os.makedirs(k, exist_ok=True)
                    _m(st, k, None, MS_BIND | MS_REC, None)
                    _m(None, k, None, MS_REMOUNT | MS_BIND | MS_RDONLY, None)
            _m(None, h, None, MS_REMOUNT | MS_RDONLY, "size=1m,mode=755")
            info["hidden"].append(h)
    for _, st in staged:
        libc.umount2(st.encode(), MNT_DETACH)
    # 4. the only writable places: fresh size-limited tmpfs mounts (a disk quota for the run)
    q = int(cfg["disk_mb"])
    if _m("tmpfs", "/tmp", "tmpfs", 0, f"size={q}m,mode=1777"):
        info["quota_mb"] = q
        cand_dir, drv_dir = "/tmp/work", "/tmp/.harness"
    for d in ("/var/tmp", "/dev/shm", "/run/lock"):
        if os.path.isdir(d):
            _m("tmpfs", d, "tmpfs", 0, "size=1m,mode=1777")
    info["private_mounts"] = True
    info["fs_view"] = "hidden_paths"
# a private PID namespace: the harness becomes its init (pid 1); a fresh /proc shows only the
# run's processes (host command lines, other users' processes are gone); when the harness
# exits the kernel kills everything left inside. The launcher waits outside and relays.
def _new_pid_ns():
    """unshare a PID namespace: as root directly, else inside a user namespace (the one the
    network isolation made, or a fresh one). Returns (ok, in_userns)."""
    in_userns = info["network"] == "userns+netns"
    if IS_ROOT or in_userns:
        return libc.unshare(CLONE_NEWPID) == 0, in_userns
    if cfg["uid"] is None and libc.unshare(CLONE_NEWUSER | CLONE_NEWPID) == 0:
        _map_self()
        return True, True
    return False, False

pid_ok, in_userns = _new_pid_ns() if cfg["pid_ns"] else (False, False)
if pid_ok:
    ipid = os.fork()
    if ipid:
        os.close(VFD)
        try:
            os.close(0)
        except OSError:
            pass
        while True:
            try:
                _, st = os.waitpid(ipid, 0)
                break
            except InterruptedError:
                continue
        os._exit(os.WEXITSTATUS(st) if os.WIFEXITED(st) else 128 + os.WTERMSIG(st))
    info["pid_namespace"] = True
    own_mnt = mnt or (in_userns and libc.unshare(CLONE_NEWNS) == 0 and
                      libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) == 0)
    if own_mnt and _m("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None):
        info["proc"] = "private"
    elif own_mnt and not pivoted:
        # the host /proc would stay visible: cover it (in our own mount namespace only)
        if _m("tmpfs", "/proc", "tmpfs", 0, "size=4k,mode=555"):
            info["proc"] = "none"
if pivoted:
    finish_root()
    info["fs_view"] = "minimal"
if cfg["uid"] is not None and cand_dir.startswith(work + "/"):
    os.chmod(work, 0o711)  # no private /tmp: the uids may traverse the work dir, not list it
for d, u in ((cand_dir, cfg["uid"]), (drv_dir, cfg["uid2"])):
    os.makedirs(d, exist_ok=True)
    if u is not None:
        os.chown(d, u, u)
        os.chmod(d, 0o700)
R = resource
lim = cfg["limits"]
R.setrlimit(R.RLIMIT_CORE, (0, 0))
R.setrlimit(R.RLIMIT_CPU, (lim["cpu"], lim["cpu"] + 1))
R.setrlimit(R.RLIMIT_AS, (lim["as"], lim["as"]))
R.setrlimit(R.RLIMIT_FSIZE, (lim["fsize"], lim["fsize"]))
R.setrlimit(R.RLIMIT_NOFILE, (lim["nofile"], lim["nofile"]))
R.setrlimit(R.RLIMIT_NPROC, (lim["nproc"], lim["nproc"]))

# seccomp: socket() and io_uring_setup() fail with EPERM (closes AF_UNIX paths + network)
ARCH = {"x86_64": (0xC000003E, 41), "aarch64": (0xC00000B7, 198)}.get(os.uname().machine)
class _F(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                ("k", ctypes.c_uint)]
class _P(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_F))]

def seccomp():
    if ARCH is None or not cfg["seccomp"]:
        return False
    prog = [(0x20, 0, 0, 4), (0x15, 0, 5, ARCH[0]), (0x20, 0, 0, 0), (0x15, 3, 0, ARCH[1]),
            (0x15, 2, 0, 425), (0x35, 1, 0, 0x40000000), (0x06, 0, 0, 0x7FFF0000),
            (0x06, 0, 0, 0x00050001)]
    arr = (_F * len(prog))(*[_F(*p) for p in prog])
    fp = _P(len(prog), arr)
    return libc.prctl(38, 1, 0, 0, 0) == 0 and libc.prctl(22, 2, ctypes.byref(fp), 0, 0) == 0

def drop(uid):
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    libc.prctl(4, 0, 0, 0, 0)

if not cfg["network"] and info["network"] == "audit_hook":
    def _no_net(event, args):
        if event in ("socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo"):
            raise PermissionError("network access is disabled in the sandbox")
else:
    _no_net = None

# ---- plain-data codec: the only values that cross from the candidate to the tests
def enc(x, depth=0):
    if depth > 200:
        raise ValueError("value nested too deeply")
    t = type(x)
    if x is None or t is bool or t is int or t is float or t is str:
        return x
    if t is list:
        return [enc(v, depth + 1) for v in x]
    if t is tuple:
        return {"T": [enc(v, depth + 1) for v in x]}
    if t is dict:
        return {"D": [[enc(k, depth + 1), enc(v, depth + 1)] for k, v in x.items()]}
    if t is set or t is frozenset:
        return {"S" if t is set else "F": [enc(v, depth + 1) for v in x]}
    if t is bytes:
        return {"B": x.hex()}
    if t is complex:
        return {"C": [x.real, x.imag]}
    raise TypeError(f"value of type {t.__name__} is not plain data (None, bool, int, float, "
                    "str, bytes, complex, list, tuple, dict, set, frozenset)")

def dec(x, depth=0):
    if depth > 200:
        raise ValueError("value nested too deeply")
    t = type(x)
    if x is None or t is bool or t is int or t is float or t is str:
        return x
    if t is list:
        return [dec(v, depth + 1) for v in x]
    if t is dict and len(x) == 1:
        (tag, v), = x.items()
        if tag == "T" and type(v) is list:
            return tuple(dec(e, depth + 1) for e in v)
        if tag == "D" and type(v) is list:
            out = {}
            for kv in v:
                if type(kv) is not list or len(kv) != 2:
                    raise ValueError("bad dict item")
                out[dec(kv[0], depth + 1)] = dec(kv[1], depth + 1)
            return out
        if tag in ("S", "F") and type(v) is list:
            s = {dec(e, depth + 1) for e in v}
            return s if tag == "S" else frozenset(s)
        if tag == "B" and type(v) is str:
            return bytes.fromhex(v)
        if tag == "C" and type(v) is list and len(v) == 2 and all(type(e) in (int, float) for e in v):
            return complex(v[0], v[1])
    raise ValueError("malformed value from the candidate process")

MAXMSG = 64 * 1024 * 1024

def send(sock, obj):
    data = json.dumps(obj).encode()
    sock.sendall(struct.pack(">I", len(data)) + data)

a_sock, b_sock = socket.socketpair()
verdict = {"isolation": info}
pid = os.fork()
if pid == 0:
    # ================= candidate process: runs solution.py, answers calls with plain data
    try:
        os.close(0)
        os.open(os.devnull, os.O_RDONLY)
        os.close(VFD)
        b_sock.close()
        keepfd = a_sock.fileno()
        os.closerange(3, keepfd)
        os.closerange(keepfd + 1, 4096)
        drop(cfg["uid"])
        os.chdir(cand_dir)
        os.environ["HOME"] = os.environ["TMPDIR"] = cand_dir
        seccomp()
        if _no_net is not None:
            sys.addaudithook(_no_net)
    except BaseException:
        os._exit(70)
    sock = a_sock
    ns = {"__name__": "__main__", "__builtins__": builtins}
    src = SRC
    del SRC
    try:
        exec(compile(src, "solution.py", "exec", dont_inherit=True), ns)
    except BaseException as e:
        traceback.print_exc()
        msg = f"{type(e).__name__}: {e}"[:2000]
        if isinstance(e, SystemExit):
            msg = f"SystemExit({e.code!r}) raised in solution.py before the tests ran"
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except BaseException:
                pass
        try:
            send(sock, {"loaded": False, "error": msg})
        except BaseException:
            pass
        os._exit(1)
    def _flush():
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except BaseException:
                pass
    _flush()
    names = sorted(k for k, v in list(ns.items()) if callable(v) and not k.startswith("__"))
    send(sock, {"loaded": True, "names": names})
    rf = sock.makefile("rb")
    while True:
        head = rf.read(4)
        if len(head) < 4:
            os._exit(0)
        req = json.loads(rf.read(struct.unpack(">I", head)[0]))
        try:
            fn = ns[req["call"]]
            res = fn(*dec(req["args"]), **dec(req["kwargs"]))
            out = {"ok": enc(res)}
        except BaseException as e:
            out = {"exc": type(e).__name__, "msg": str(e)[:2000]}
        out["id"] = req.get("id")
        _flush()
        try:
            send(sock, out)
        except ValueError as e:  # e.g. an int too large to print
            send(sock, {"exc": "ValueError", "msg": str(e)[:2000], "id": req.get("id")})

# ================= harness process: runs the tests, calls into the candidate, writes verdict
a_sock.close()
child_status = None

def candidate_status():
    global child_status
    if child_status is None:
        try:
            p, st = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if p == pid:
            child_status = ({"signal": signal.Signals(os.WTERMSIG(st)).name}
                            if os.WIFSIGNALED(st) else {"code": os.WEXITSTATUS(st)})
    return child_status

class CandidateDied(Exception):
    pass

def recv():
    buf = b""
    need = 4
    size = None
    while True:
        while len(buf) < need:
            r, _, _ = select.select([b_sock], [], [], 0.05)
            if r:
                chunk = b_sock.recv(min(1 << 20, need - len(buf)))
                if not chunk:
                    for _ in range(50):
                        if candidate_status() is not None:
                            break
                        select.select([], [], [], 0.01)
                    raise CandidateDied(f"the candidate process ended ({candidate_status()})")
                buf += chunk
            elif candidate_status() is not None:
                b_sock.setblocking(False)
                try:
                    chunk = b_sock.recv(need - len(buf))
                except BlockingIOError:
                    chunk = b""
                b_sock.setblocking(True)
                if not chunk:
                    raise CandidateDied(f"the candidate process ended ({candidate_status()})")
                buf += chunk
        if size is None:
            size = struct.unpack(">I", buf)[0]
            if size > MAXMSG:
                raise CandidateDied("oversized message from the candidate process")
            buf, need = b"", size
            if size == 0:
                raise CandidateDied("empty message from the candidate process")
        else:
            return json.loads(buf)

def emit():
    data = json.dumps(verdict).encode()
    os.write(VFD, data)
    os.close(VFD)

class CandidateError(Exception):
    """An exception of the solution that the tests may not see as itself: anything but a
    builtin Exception subclass, and StopIteration / StopAsyncIteration, which iteration
    protocols (map, filter, zip, next(it, default), async for) would swallow silently.
    Not a subclass of either, so it always propagates to the test statement."""

# the exception types a test may legitimately expect from the solution (pytest.raises,
# try/except): builtin Exception subclasses, minus the ones that end an iteration protocol
_BUILTIN_NAMES = frozenset(dir(builtins))
_NO_PASS = (StopIteration, StopAsyncIteration)

def candidate_exception(en, msg):
    cls = getattr(builtins, en, None) if en in _BUILTIN_NAMES else None
    if isinstance(cls, type) and issubclass(cls, Exception) and not issubclass(cls, _NO_PASS):
        try:
            e = cls(msg)
        except Exception:
            e = None
        if type(e) is cls:
            return e
    return CandidateError(f"{en}: {msg}")

def remote(name):
    def call(*args, **kwargs):
        # a fresh nonce per call: replies queued in advance (then exit) cannot answer it
        nonce = os.urandom(12).hex()
        send(b_sock, {"call": name, "args": enc(list(args)), "kwargs": enc(kwargs),
                      "id": nonce})
        rep = recv()
        try:
            if type(rep) is not dict or rep.get("id") != nonce:
                raise ValueError("a reply that does not answer this call")
            if "ok" in rep:
                return dec(rep["ok"])
            en, msg = str(rep.get("exc"))[:200], str(rep.get("msg"))[:2000]
        except (TypeError, ValueError, RecursionError) as e:  # a forged or broken reply
            raise CandidateError(f"bad reply from the candidate process: {e}") from None
        raise candidate_exception(en, msg)
    call.__name__ = call.__qualname__ = name
    return call

def api_names(offered, tree):
    """The solution names bound into the tests' namespace: callables the solution defines at
    top level that the tests use by name, never a builtin (``abs``, ``len``, ``isinstance``,
    exception classes...) nor a dunder (``__import__``, ``__builtins__``): builtins stay the
    tests' own. Returns (bound, shadowed builtins the tests use, which stay builtins)."""
    used = {n.id for n in ast.walk(tree) if type(n) is ast.Name}
    bound, shadowed = [], []
    for n in offered if type(offered) is list else []:
        if type(n) is not str or not n.isidentifier() or n.startswith("__") or n not in used:
            continue
        (shadowed if n in _BUILTIN_NAMES else bound).append(n)
    return sorted(set(bound)), sorted(set(shadowed))

try:
    tests = sys.stdin.read()
    sys.stdin.close()
    sys.stdin = open(os.devnull)
    drop(cfg["uid2"])
    os.chdir(drv_dir)
    os.environ["HOME"] = os.environ["TMPDIR"] = drv_dir
    info["seccomp"] = seccomp()
    if _no_net is not None:
        sys.addaudithook(_no_net)
    KEEP_GOING = bool(cfg.get("keep_going"))
    del cfg, libc
    try:
        hello = recv()
    except CandidateDied as e:
        hello = {"loaded": False, "error": str(e)}
    verdict["loaded"] = bool(hello.get("loaded")) if type(hello) is dict else False
    verdict["load_error"] = None if verdict["loaded"] else str(hello.get("error"))[:2000]
    if verdict["loaded"]:
        tree = ast.parse(tests, "tests.py")
        verdict["statements"] = len(tree.body)
        verdict["completed"] = 0
        tns = {"__name__": "__main__", "__builtins__": builtins}
        bound, shadowed = api_names(hello.get("names"), tree)
        verdict["api"] = bound
        if shadowed:
            verdict["shadowed_builtins"] = shadowed
        for n in bound:
            tns[n] = remote(n)
        outcomes = verdict["outcomes"] = []
        for i, stmt in enumerate(tree.body):
            code = compile(ast.Module([stmt], []), "tests.py", "exec", dont_inherit=True,
                           optimize=0)
            try:
                exec(code, tns)
                outcomes.append(True)
            except BaseException as e:
                outcomes.append(False)
                if "error" not in verdict:
                    verdict["failed_statement"] = i
                    verdict["failed_line"] = stmt.lineno
                    if isinstance(e, SystemExit):
                        verdict["error"] = (f"SystemExit({e.code!r}) raised by the tests at line "
                                            f"{stmt.lineno}: the remaining tests did not run"
                                            if not KEEP_GOING else
                                            f"SystemExit({e.code!r}) raised by the tests at line "
                                            f"{stmt.lineno}")
                    else:
                        verdict["error"] = f"{type(e).__name__}: {e}"[:2000]
                        traceback.print_exc()
                if not KEEP_GOING:
                    break
            verdict["completed"] = sum(outcomes)
except BaseException as e:
    verdict["harness_error"] = f"{type(e).__name__}: {e}"[:2000]
verdict["candidate_exit"] = candidate_status()  # None: still serving calls, as it must
try:
    b_sock.close()
except OSError:
    pass
emit()
os._exit(0)
'''

_uid_lock = threading.Lock()
_uid_rng = random.Random()


def _pick_uid() -> int:
    """An even uid; the harness runs as uid + 1."""
    with _uid_lock:
        return UID_BASE + 2 * _uid_rng.randrange(UID_SPAN // 2)


def _keep_paths() -> list[str]:
    """What the sandboxed interpreter needs: its prefix (stdlib, libpython)."""
    exe = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    return sorted({os.path.realpath(sys.base_prefix), os.path.dirname(os.path.dirname(exe))})


_LIB_DIRS = ("/lib", "/lib64", "/lib32", "/libx32", "/usr/lib", "/usr/lib64", "/usr/lib32",
             "/usr/libx32", "/etc/ld.so.cache")


def _view_paths(keep: list[str]) -> list[str]:
    """What the minimal root shows (read-only): the interpreter's prefix and the system
    libraries it and its extension modules link against (``/lib`` symlinks stay symlinks)."""
    out = set(keep)
    for p in _LIB_DIRS:
        if os.path.lexists(p):
            out.add(p if os.path.islink(p) else os.path.realpath(p))
    return sorted(out, key=lambda p: (p.count("/"), p))


def _interpreter() -> str:
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


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


_SYSTEM = ("/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/opt", "/proc", "/run",
           "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var")


def _hide_list(lim: SandboxLimits, keep: list[str], work: str) -> list[str]:
    want = list(lim.hide_paths if lim.hide_paths is not None else _default_hide())
    for k in keep:  # closed ancestors of the interpreter (pyenv under /root 0700)
        parts = k.split("/")
        for j in range(2, len(parts)):
            anc = "/".join(parts[:j])
            try:
                if not os.stat(anc).st_mode & 0o001:
                    want.append(anc)
                    break
            except OSError:
                break
    out = []
    for h in sorted({os.path.realpath(p) for p in want}):
        if h in _SYSTEM or h.startswith(("/tmp/", "/proc/", "/sys/", "/dev/")) \
                or work.startswith(h.rstrip("/") + "/"):
            continue
        if any(k == h or h.startswith(k.rstrip("/") + "/") for k in keep):
            continue  # inside the interpreter prefix: needed
        out.append(h)
    # keep only outermost paths
    return [h for h in out if not any(h != o and h.startswith(o.rstrip("/") + "/") for o in out)]


def count_statements(tests: str) -> int | None:
    """Top-level statements of a test script (None: it does not parse)."""
    try:
        return len(ast.parse(tests or "", "tests.py").body)
    except (SyntaxError, ValueError):
        return None


def run_python(program: str, tests: str = "", limits: SandboxLimits | None = None,
               *, drop_privileges: bool | None = None, keep_going: bool = False
               ) -> SandboxResult:
    """Run ``program`` in a candidate process and ``tests`` in a separate harness process.

    ``passed`` is True only when the program ran to its end and the harness reports that
    every top-level statement of ``tests`` ran to the end (see the module docstring). With
    empty tests it means the program itself finished without an exception or exit.
    ``keep_going``: run every test statement even after a failure; ``details['outcomes']``
    then holds one bool per top-level statement (one run fills a CodeT pass-matrix row).
    """
    lim = limits or SandboxLimits()
    n_statements = count_statements(tests)
    if n_statements is None:
        try:
            ast.parse(tests or "", "tests.py")
        except SyntaxError as e:
            err = f"SyntaxError in the tests: {e.msg} (line {e.lineno})"
        return SandboxResult(False, "failed", None, "", "", err, 0.0)
    is_root = os.geteuid() == 0
    drop = is_root if drop_privileges is None else (drop_privileges and is_root)
    uid = _pick_uid() if drop else None
    uid2 = uid + 1 if uid is not None else None
    nproc = lim.nproc if drop else _count_own_processes() + 2 * lim.nproc
    work = Path(tempfile.mkdtemp(prefix="dm-sbx-"))
    out_dir = Path(tempfile.mkdtemp(prefix="dm-sbx-out-"))  # parent-owned, not visible to child
    keep = _keep_paths()
    try:
        sol = out_dir / "solution.py"
        sol.write_text(program, encoding="utf-8")
        os.chmod(sol, 0o600)
        rfd, wfd = os.pipe()
        cfg = {
            "network": lim.network,
            "net_fallback": lim.network_fallback_only,
            "private_mounts": lim.private_tmp,
            "seccomp": lim.seccomp and not lim.network,
            "uid": uid, "uid2": uid2,
            "verdict_fd": wfd,
            "keep_going": keep_going,
            "solution": str(sol),
            "keep": keep,
            "hide": _hide_list(lim, keep, str(work)),
            "view": _view_paths(keep),
            "fs_view": lim.fs_view,
            "pid_ns": bool(lim.pid_namespace),
            "disk_mb": int(lim.disk_mb),
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
        cfg_path = out_dir / "cfg.json"
        cfg_path.write_text(json.dumps(cfg), encoding="utf-8")
        os.chmod(cfg_path, 0o600)
        t0 = time.perf_counter()
        chunks: list[bytes] = []

        def _drain() -> None:
            while True:
                b = os.read(rfd, 65536)
                if not b:
                    return
                if sum(map(len, chunks)) < 16 * 1024 * 1024:
                    chunks.append(b)

        with open(out_dir / "stdout", "wb") as so, open(out_dir / "stderr", "wb") as se:
            try:
                proc = subprocess.Popen(
                    [_interpreter(), "-I", "-c", _LAUNCHER, str(cfg_path)],
                    cwd=work, env=env, stdin=subprocess.PIPE, stdout=so, stderr=se,
                    start_new_session=True, close_fds=True, pass_fds=(wfd,),
                )
            finally:
                os.close(wfd)
            reader = threading.Thread(target=_drain, daemon=True)
            reader.start()
            try:
                assert proc.stdin is not None
                proc.stdin.write((tests or "").encode("utf-8"))
                proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            timed_out = False
            try:
                rc = proc.wait(timeout=lim.timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                rc = None
            # kill the whole group (and, with private uids, everything they still run)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            if uid is not None:
                _kill_uid(uid)
                _kill_uid(uid2)
            if rc is None:
                rc = proc.wait()
            reader.join(5)
            os.close(rfd)
        wall = time.perf_counter() - t0
        stdout = _read_capped(out_dir / "stdout")
        stderr = _read_capped(out_dir / "stderr")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(out_dir, ignore_errors=True)

    verdict: dict = {}
    raw = b"".join(chunks)
    if raw and not timed_out:
        try:
            verdict = json.loads(raw)
        except ValueError:
            verdict = {}
    return _judge(verdict, n_statements, rc, timed_out, lim, stdout, stderr, wall, uid)


def _judge(v: dict, n_statements: int, rc: int | None, timed_out: bool, lim: SandboxLimits,
           stdout: str, stderr: str, wall: float, uid: int | None) -> SandboxResult:
    info = v.get("isolation") or {}
    network = info.get("network", "")
    details = {**info, "private_tmp": bool(info.get("private_mounts")),
               **{k: v.get(k) for k in ("statements", "completed", "candidate_exit",
                                         "failed_line", "outcomes", "api",
                                         "shadowed_builtins") if k in v}}
    uid = uid if network else None
    if info:
        details["isolation_level"] = {"minimal": "minimal_root", "hidden_paths": "hidden_paths"
                                      }.get(info.get("fs_view"), "process_only")

    def res(status: str, error: str | None) -> SandboxResult:
        return SandboxResult(status == "passed", status, rc, stdout, stderr, error, wall,
                             network, uid, details)

    if timed_out:
        return res("timeout", f"wall-clock timeout after {lim.timeout_s:g}s")
    if not v:
        return res("launcher_error", "no verdict from the harness (it was killed or exited "
                   "early); " + (_last_error_line(stderr) or f"exit code {rc}"))
    if v.get("harness_error"):
        return res("failed", f"harness: {v['harness_error']}")
    cexit = v.get("candidate_exit") or {}
    sig = cexit.get("signal")
    err = v.get("load_error") if not v.get("loaded") else v.get("error")
    text = f"{err or ''}\n{stderr}"
    if v.get("loaded") and v.get("statements") == n_statements \
            and v.get("completed") == n_statements and not v.get("error"):
        if n_statements and cexit:
            # it answered calls, then ended: replies queued before dying are not a solution
            return res("failed", "the program exited before the tests completed")
        return res("passed", None)
    if sig == "SIGXCPU":
        return res("cpu_limit", f"CPU time limit ({lim.cpu_s}s) exceeded")
    if "MemoryError" in text or "Cannot allocate memory" in text:
        return res("memory_limit", f"memory limit ({lim.memory_mb} MB) exceeded")
    if sig == "SIGXFSZ" or "File too large" in text:
        return res("file_size_limit", f"file size limit ({lim.file_size_mb} MB) exceeded")
    if "No space left on device" in text:
        return res("disk_quota", f"disk quota ({lim.disk_mb} MB) exceeded")
    if sig == "SIGKILL":
        return res("cpu_limit" if "MemoryError" not in text else "memory_limit",
                   "killed by SIGKILL (CPU hard limit)")
    if not v.get("loaded"):
        if err and err.startswith("the candidate process"):
            err = "the program exited before the tests completed"
        elif not err:
            err = "the program did not finish"
        if sig:
            return res("killed", f"killed by signal {sig}")
        return res("failed", err)
    if v.get("statements") != n_statements:
        return res("failed", "the harness saw a different number of test statements")
    return res("failed", err or "the tests did not complete")
