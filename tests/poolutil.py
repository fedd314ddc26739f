"""A Beam SDK worker pool (``apache_beam.runners.worker.worker_pool_main``) as a separate
process group for the tests that run builds on EXTERNAL workers (the Fn API path of Flink,
Spark and Dataflow workers)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker pool exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("localhost", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"worker pool not listening on {port} after {timeout} s")


def _stop(proc: subprocess.Popen) -> None:
    """Stop the pool and the SDK workers it started (its own process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    try:  # workers left behind by a pool that died first
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@contextlib.contextmanager
def sdk_worker_pool(workdir: Path, env: dict[str, str], log: Path,
                    timeout: float = 60) -> Iterator[int]:
    """Start a worker pool in ``workdir`` with ``env`` (which decides where its workers import
    datamill from), its output in ``log``; yield its port; stop it and its workers after."""
    port = free_port()
    # the pool starts its workers as `python -c ...`: this interpreter first on PATH
    env = dict(env, PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    with open(log, "wb") as fh:
        pool = subprocess.Popen(
            [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
             f"--service_port={port}"],
            cwd=workdir, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_listening(port, pool, log, timeout)
        yield port
    finally:
        _stop(pool)


REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def worker_pool(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """:func:`sdk_worker_pool` with datamill from this checkout, in its own working directory
    (not the repo, not the driver's cwd); yields (port, log path)."""
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    log = tmp_path / "pool.log"
    with sdk_worker_pool(workdir, dict(os.environ, PYTHONPATH=str(REPO)), log) as port:
        yield port, log
