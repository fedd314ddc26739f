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
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Self

SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context",
                  "pydantic_settings")


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
    process exits or does not answer within ``start_timeout_s``. Its output (uvicorn's access
    log: one line per request) goes to ``log_path``. ``close()`` terminates it.
    """

    def __init__(self, model: str | Path, *, alias: str, log_path: str | Path,
                 n_ctx: int = 1024, threads: int = 2, start_timeout_s: float = 180.0,
                 extra_args: tuple[str, ...] = ()):
        self.alias = alias
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.log_path = Path(log_path)
        self.models: dict = {}
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in close()
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model),
               "--model_alias", alias, "--host", "127.0.0.1", "--port", str(self.port),
               "--n_ctx", str(n_ctx), "--n_threads", str(threads),
               "--n_threads_batch", str(threads), *extra_args]
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        t0 = time.monotonic()
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.close()
                raise RuntimeError(f"llama_cpp.server exited with {code}:\n{self.log_tail()}")
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
