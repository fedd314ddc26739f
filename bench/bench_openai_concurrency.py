"""Tokens/s of the OpenAI-compatible backend vs. max_concurrency, against a local test server.

    python bench/bench_openai_concurrency.py [--requests 16] [--n 4] [--latency-ms 100]

The server (127.0.0.1 only, a ThreadingHTTPServer in this process) answers every chat
completion after an injected latency of ``latency_ms + per_token_ms * tokens`` per sample, as a
remote model server would; each reply reports ``tokens`` completion tokens. The client sends
``--requests`` prompts of ``--n`` samples each, one ``generate`` call per pipeline batch of
``--batch`` prompts (as SolveMath does), and we measure completion tokens per second of wall
time for each ``max_concurrency``, with ``split_n`` on (default: one HTTP request per sample)
and off (one request with ``n`` samples, in-flight bounded by the batch size). Rounds
alternate over the settings (A B A B ...) so load changes on a shared machine hit all alike;
the median of ``--rounds`` is reported. The total number of requests is bounded by
``requests * n * rounds * settings``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synth.backends import (  # noqa: E402
    GenerationRequest,
    OpenAICompatibleBackend,
    SamplingParams,
    derive_seed,
)


class LatencyServer:
    def __init__(self, latency_s: float, per_token_s: float, tokens: int, max_requests: int):
        self.calls = 0
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
                    outer.calls += 1
                    over = outer.calls > max_requests
                    outer.active += 1
                    outer.max_active = max(outer.max_active, outer.active)
                try:
                    if over:  # bounded: refuse anything beyond the planned number of requests
                        self.send_response(400)
                        self.end_headers()
                        return
                    n = int(body.get("n", 1))
                    time.sleep(latency_s + per_token_s * tokens * n)
                finally:
                    with outer.lock:
                        outer.active -= 1
                choices = [{"index": i, "message": {"role": "assistant",
                                                    "content": "The answer is 7."},
                            "finish_reason": "stop"} for i in range(n)]
                payload = json.dumps({"choices": choices,
                                      "usage": {"completion_tokens": tokens * n}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256  # listen backlog: must be set before the bind

        self.httpd = Server(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


def run_once(url: str, conc: int, split: bool, args) -> tuple[float, int, int]:
    b = OpenAICompatibleBackend("bench", url, max_concurrency=conc, timeout_s=60,
                                max_retries=0, split_n=split)
    reqs = [GenerationRequest(id=f"p{i}", params=SamplingParams(
        n=args.n, max_tokens=args.tokens, seed=derive_seed(0, i)),
        messages=(("user", f"problem {i}"),)) for i in range(args.requests)]
    t0 = time.perf_counter()
    toks = 0
    for k in range(0, len(reqs), args.batch):  # one generate call per pipeline batch
        for r in b.generate(reqs[k:k + args.batch]):
            assert r.error is None, r.error
            toks += sum(s.num_tokens for s in r.samples)
    wall = time.perf_counter() - t0
    peak = b.max_in_flight
    b.close()
    return toks / wall, peak, toks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8, help="prompts per generate call")
    ap.add_argument("--tokens", type=int, default=100, help="completion tokens per sample")
    ap.add_argument("--latency-ms", type=float, default=100.0)
    ap.add_argument("--per-token-ms", type=float, default=0.5)
    ap.add_argument("--concurrency", default="1,2,4,8,16,32")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    concs = [int(c) for c in args.concurrency.split(",")]
    settings = [(c, True) for c in concs] + [(max(concs), False)]
    bound = args.requests * args.n * args.rounds * len(settings)
    srv = LatencyServer(args.latency_ms / 1000, args.per_token_ms / 1000, args.tokens, bound)
    res: dict[tuple[int, bool], list[tuple[float, int]]] = {s: [] for s in settings}
    try:
        for _ in range(args.rounds):
            for c, split in settings:
                tps, peak, _ = run_once(srv.url, c, split, args)
                res[(c, split)].append((tps, peak))
    finally:
        srv.close()
    base = statistics.median(t for t, _ in res[(concs[0], True)])
    print(f"server latency {args.latency_ms:g} ms + {args.per_token_ms:g} ms/token, "
          f"{args.tokens} tokens/sample; {args.requests} prompts x n={args.n}, "
          f"batches of {args.batch}; median of {args.rounds} rounds; {srv.calls} HTTP requests")
    print(f"{'max_concurrency':>15} {'split_n':>8} {'tokens/s':>10} {'x vs c=1':>9} "
          f"{'peak in flight':>15}")
    for (c, split), rows in res.items():
        t = statistics.median(x for x, _ in rows)
        peak = max(p for _, p in rows)
        print(f"{c:>15} {str(split):>8} {t:>10.0f} {t / base:>9.2f} {peak:>15}")


if __name__ == "__main__":
    main()
