"""Start llama-cpp-python's OpenAI-compatible server on a free loopback port.

For tests and benchmarks of the ``openai`` backend against a real server process, and for
trying the backend on a laptop::

    from synth.local_server import LlamaCppServer
    from synth.tiny_model import smollm2_gguf_path

    with LlamaCppServer(smollm2_gguf_path(), alias="smollm2") as srv:
        ...  # backend: {type: openai, model: smollm2, options: {base_url: srv.base_url}}

Needs ``pip install 'datamill[synth-server]'`` (llama-cpp-python[server]; pip compiles
llama.cpp from source). The server runs one request at a time (llama-cpp-python has no
continuous batching): requests sent together queue at the server.

**Illegal instruction at start-up.** On some CPUs llama.cpp's CPU weight-repacking code (the
"extra buffer types" that re-lay quantized weights for wider SIMD kernels) executes an
instruction the CPU does not have, and the server dies with SIGILL (exit -4, "Illegal
instruction" in its log) while loading the model. llama.cpp's own binaries take
``--no-repack``; ``python -m llama_cpp.server`` has no such flag (it never sets the model
parameter ``use_extra_bufts``), so ``LlamaCppServer(..., no_repack=True)`` starts the same
server through a small launcher that sets ``use_extra_bufts = False`` in llama.cpp's default
model parameters. A SIGILL at start-up raises :class:`ServerCrashedError` naming that cause
and this remedy.
"""

from __future__ import annotations

import importlib.util
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Self

SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context",
                  "pydantic_settings")

# ``python -c`` launcher for no_repack: llama_cpp.Llama builds its model parameters from
# llama.cpp's defaults (use_extra_bufts = true) and exposes no switch; this turns the field off
# in those defaults, then runs the unchanged server module with the same arguments.
NO_REPACK_LAUNCHER = """\
import runpy, sys
import llama_cpp.llama_cpp as _c
if "use_extra_bufts" not in dict(_c.llama_model_params._fields_):
    sys.exit("no_repack: this llama-cpp-python has no llama_model_params.use_extra_bufts")
_default = _c.llama_model_default_params
def _no_repack():
    p = _default()
    p.use_extra_bufts = False
    return p
_c.llama_model_default_params = _no_repack
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


class ServerCrashedError(RuntimeError):
    """The server process died before it answered (its exit code and log are attached)."""

    def __init__(self, message: str, returncode: int | None, log_tail: str):
        super().__init__(message)
        self.returncode = returncode
        self.log_tail = log_tail


def illegal_instruction(returncode: int | None, log: str) -> bool:
    """The process was killed by SIGILL (an instruction the CPU does not have)."""
    return returncode in (-signal.SIGILL, 128 + signal.SIGILL) or "Illegal instruction" in log


def crash_message(returncode: int | None, log_tail: str, *, no_repack: bool = False) -> str:
    """Why ``llama_cpp.server`` exited during start-up, with the remedy when one is known."""
    msg = f"llama_cpp.server exited with {returncode}"
    if illegal_instruction(returncode, log_tail):
        msg += (" (SIGILL: Illegal instruction). " + (
            "It was started with no_repack=True, so weight repacking was off: the llama.cpp "
            "build itself uses instructions this CPU lacks; rebuild llama-cpp-python here "
            "(pip install --force-reinstall --no-cache-dir 'llama-cpp-python[server]')."
            if no_repack else
            "Known cause on some CPUs: llama.cpp's CPU weight-repack code (extra buffer types) "
            "runs an instruction the CPU lacks while the model loads. Remedy: start it with "
            "repacking off, LlamaCppServer(..., no_repack=True) (what llama.cpp's own binaries "
            "call --no-repack; it sets the model parameter use_extra_bufts = False)."))
    return msg + ":\n" + log_tail


def server_command(model: str | Path, *, alias: str, port: int, n_ctx: int, threads: int,
                   extra_args: Sequence[str] = (), no_repack: bool = False) -> list[str]:
    """The command line that starts the server (through :data:`NO_REPACK_LAUNCHER` when
    ``no_repack``)."""
    head = [sys.executable, "-c", NO_REPACK_LAUNCHER] if no_repack else \
        [sys.executable, "-m", "llama_cpp.server"]
    return [*head, "--model", str(model), "--model_alias", alias, "--host", "127.0.0.1",
            "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(threads),
            "--n_threads_batch", str(threads), *extra_args]


def missing_server_modules() -> list[str]:
    """The modules of ``llama-cpp-python[server]`` that are not importable here."""
    return [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class LlamaCppServer:
    """``python -m llama_cpp.server`` serving one GGUF on ``127.0.0.1:<free port>``.

    Waits until ``/v1/models`` answers (``self.models``), raises with the log's tail if the
    process exits (:class:`ServerCrashedError`; a SIGILL names llama.cpp's CPU repack code and
    ``no_repack``) or does not answer within ``start_timeout_s``. Its output (uvicorn's access
    log: one line per request) goes to ``log_path``. ``close()`` terminates it.

    ``no_repack``: load the model with llama.cpp's weight repacking off (``use_extra_bufts =
    False``, llama.cpp's ``--no-repack``), for CPUs where the repack code crashes.
    ``command`` replaces the whole command line (tests use it to simulate a crash).
    """

    def __init__(self, model: str | Path, *, alias: str, log_path: str | Path,
                 n_ctx: int = 1024, threads: int = 2, start_timeout_s: float = 180.0,
                 extra_args: tuple[str, ...] = (), no_repack: bool = False,
                 command: Sequence[str] | None = None):
        self.alias = alias
        self.no_repack = no_repack
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.log_path = Path(log_path)
        self.models: dict = {}
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in close()
        cmd = list(command) if command is not None else server_command(
            model, alias=alias, port=self.port, n_ctx=n_ctx, threads=threads,
            extra_args=extra_args, no_repack=no_repack)
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        t0 = time.monotonic()
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.close()
                tail = self.log_tail()
                raise ServerCrashedError(crash_message(code, tail, no_repack=no_repack),
                                         code, tail)
            try:
                with urllib.request.urlopen(self.base_url + "/models", timeout=2) as r:
                    self.models = json.loads(r.read().decode())
                    break
            except OSError:
                pass
            if time.monotonic() - t0 > start_timeout_s:
                self.close()
                raise RuntimeError(f"llama_cpp.server did not answer /v1/models within "
                                   f"{start_timeout_s:.0f} s:\n{self.log_tail()}")
            time.sleep(0.25)
        self.start_s = time.monotonic() - t0

    def log_text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def log_tail(self, n: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        if not self._log.closed:
            self._log.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
