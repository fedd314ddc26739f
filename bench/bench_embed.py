"""Embedding throughput: the ``embed`` stage inside Beam vs raw ``model.encode``.

Both sides embed the same texts (first paragraphs of this Python installation's docstrings,
repeated with a numeric suffix up to ``--n``) with the same model, already loaded (the stage
shares the process-wide model cache, as a Beam worker shares it across its threads), and
normalize the vectors. The Beam time covers the whole pipeline run on the in-process runner
(graph construction, create, length grouping, encode, convert to lists, count). Runs alternate
(raw, Beam, raw, Beam, ...); the best of ``--repeats`` wall times is reported for each side,
with the process CPU time of every run and the 1-minute load average when it ended (the
machine may be shared: compare within one invocation). Each Beam run is split into graph
construction, time inside ``Embedder.encode`` and the rest (runner start-up, grouping,
conversion), so a gap between the two sides can be attributed.

    python bench/bench_embed.py --n 2000 --repeats 2
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODULES = ["os", "json", "re", "collections", "itertools", "functools", "string", "textwrap",
           "shutil", "pathlib", "heapq", "bisect", "random", "statistics", "fractions",
           "decimal", "csv", "argparse", "logging", "threading", "queue", "socket",
           "subprocess", "tempfile", "zipfile", "gzip", "hashlib", "base64", "datetime",
           "calendar", "copy", "pickle", "inspect", "typing", "email", "unittest", "difflib"]


def texts(n: int) -> list[str]:
    paras: list[str] = []
    for m in MODULES:
        mod = importlib.import_module(m)
        for name, obj in sorted(vars(mod).items()):
            doc = inspect.getdoc(obj) if callable(obj) and not name.startswith("_") else None
            if doc:
                paras.append(" ".join(doc.split("\n\n")[0].split()))
    paras = sorted(set(p for p in paras if len(p.split()) >= 5))
    return [f"{paras[i % len(paras)]} ({i // len(paras)})" for i in range(n)]


def run_raw(model, data, encode_batch: int) -> tuple[float, float]:
    """(wall, process CPU) seconds of one plain ``model.encode`` over all texts."""
    t0, c0 = time.perf_counter(), time.process_time()
    v = model.encode(data, batch_size=encode_batch, normalize_embeddings=True,
                     convert_to_numpy=True, show_progress_bar=False)
    assert v.shape[0] == len(data)
    return time.perf_counter() - t0, time.process_time() - c0


_ENCODE = {"s": 0.0}  # time spent in Embedder.encode inside the stage (same process)


def _timed_encode(orig):
    def encode(self, texts):
        t = time.perf_counter()
        try:
            return orig(self, texts)
        finally:
            _ENCODE["s"] += time.perf_counter() - t

    return encode


def run_beam(data, batch: int, encode_batch: int,
             sort_buffer: int) -> tuple[float, float, float, float]:
    """(total, graph construction, encode inside the stage, process CPU) in seconds."""
    import apache_beam as beam

    from pipelines.stages.registry import parse_stages
    from pipelines.stages.base import StageContext
    from pipelines.stages.registry import load_stages
    from pipelines.stages.testing import collect, collected, local_pipeline

    (sp,) = parse_stages([{"stage": "embed", "batch_size": batch,
                           "encode_batch_size": encode_batch, "sort_buffer": sort_buffer}])
    stage = load_stages()["embed"](sp, StageContext("embed", 0, "/tmp/bench-embed", {}))
    records = [{"id": f"d{i:07d}", "text": t, "source": "bench"} for i, t in enumerate(data)]
    _ENCODE["s"] = 0.0
    t0, c0 = time.perf_counter(), time.process_time()
    p = local_pipeline()
    res = stage.expand(p | beam.Create(records))
    key = collect(res.kept | beam.combiners.Count.Globally(), "n")
    t1 = time.perf_counter()
    p.run().wait_until_finish()
    n = collected(key)[0]
    assert n == len(data), n
    return time.perf_counter() - t0, t1 - t0, _ENCODE["s"], time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch", type=int, default=512, help="texts per model.encode call")
    ap.add_argument("--encode-batch", type=int, default=64)
    ap.add_argument("--sort-buffer", type=int, default=4096,
                    help="records the stage holds to group texts by length")
    args = ap.parse_args()

    import torch

    from filters import embedding
    from filters.embedding import load_model

    embedding.Embedder.encode = _timed_encode(embedding.Embedder.encode)

    data = texts(args.n)
    model = load_model(None)
    model.encode(data[:64], batch_size=args.encode_batch)  # warm-up
    raw, beam_t, parts = [], [], []
    for _ in range(args.repeats):
        wall, cpu = run_raw(model, data, args.encode_batch)
        raw.append((wall, cpu, os.getloadavg()[0]))
        total, construct, enc, cpu = run_beam(data, args.batch, args.encode_batch,
                                              args.sort_buffer)
        beam_t.append((total, cpu, os.getloadavg()[0]))
        parts.append((construct, enc, total - construct - enc))
    r, b = min(w for w, _, _ in raw), min(w for w, _, _ in beam_t)

    def runs(rs):
        return ", ".join(f"{w:.2f} s (cpu {c:.2f} s, load {ld:.1f})" for w, c, ld in rs)

    print(f"texts={len(data)} torch_threads={torch.get_num_threads()} batch={args.batch} "
          f"encode_batch={args.encode_batch} sort_buffer={args.sort_buffer}")
    print(f"raw model.encode : {r:7.2f} s  {len(data) / r:8.1f} texts/s  (runs {runs(raw)})")
    print(f"beam embed stage : {b:7.2f} s  {len(data) / b:8.1f} texts/s  (runs {runs(beam_t)})")
    print(f"throughput ratio beam/raw = {r / b:.3f} (best wall vs best wall); per pair: "
          + ", ".join(f"{a[0] / c[0]:.3f}" for a, c in zip(raw, beam_t))
          + "; CPU per pair: " + ", ".join(f"{a[1] / c[1]:.3f}" for a, c in zip(raw, beam_t)))
    for i, (c, e, rest) in enumerate(parts):
        print(f"  beam run {i + 1}: graph construction {c:.2f} s, encode inside the stage "
              f"{e:.2f} s (= {raw[i][0] / e:.3f}x raw speed), rest of the run {rest:.2f} s")


if __name__ == "__main__":
    main()
