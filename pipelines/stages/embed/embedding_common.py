"""Beam helpers shared by the embedding stages (embed, cluster, prototype_prune, semdedup, d4).

Nothing here imports torch, faiss or sentence-transformers; the per-record maths lives in
``filters/``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import apache_beam as beam
import numpy as np
import xxhash

HASH_SPACE = 1 << 64


def id_hash(record_id: str, seed: int) -> int:
    """Seeded 64-bit hash of a record id (deterministic sampling, independent of order)."""
    return xxhash.xxh64_intdigest(record_id.encode("utf-8"), seed=seed & 0xFFFFFFFFFFFFFFFF)


def embedding_array(value: Any, dim: int | None = None) -> np.ndarray | None:
    """The record's embedding as a float32 vector, or ``None`` if it is missing/malformed."""
    if value is None:
        return None
    try:
        v = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        return None
    if v.ndim != 1 or v.size == 0 or not np.all(np.isfinite(v)):
        return None
    if dim is not None and v.size != dim:
        return None
    return v


class SparseHistogram(beam.CombineFn):
    """Sums ``bin -> count`` mappings (or single bin indices) into one dict."""

    def create_accumulator(self) -> Counter:
        return Counter()

    def add_input(self, acc: Counter, element: Any) -> Counter:
        if isinstance(element, dict):
            acc.update(element)
        else:
            acc[int(element)] += 1
        return acc

    def merge_accumulators(self, accs: Iterable[Counter]) -> Counter:
        out: Counter = Counter()
        for a in accs:
            out.update(a)
        return out

    def extract_output(self, acc: Counter) -> dict[int, int]:
        return dict(acc)


class SumCounts(beam.CombineFn):
    """Sums dicts of ``key -> number``."""

    def create_accumulator(self) -> dict:
        return {}

    def add_input(self, acc: dict, element: dict) -> dict:
        for k, v in element.items():
            acc[k] = acc.get(k, 0) + v
        return acc

    def merge_accumulators(self, accs: Iterable[dict]) -> dict:
        out: dict = {}
        for a in accs:
            self.add_input(out, a)
        return out

    def extract_output(self, acc: dict) -> dict:
        return acc


def coarse_histogram(values_hist: dict[int, int], src_bins: int, src_lo: float, src_hi: float,
                     bins: int) -> list[int]:
    """Re-bin a fine sparse histogram into ``bins`` dense bins over the same range."""
    out = [0] * bins
    for b, c in values_hist.items():
        out[min(bins - 1, int(b * bins / src_bins))] += int(c)
    return out


def distance_histogram_figure(hist: list[int], lo: float, hi: float, title: str) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nz = [i for i, c in enumerate(hist) if c]
    last = (max(nz) + 1) if nz else len(hist)
    width = (hi - lo) / len(hist)
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar([lo + (i + 0.5) * width for i in range(last)], hist[:last], width=width * 0.95)
    ax.set_xlabel("cosine distance to nearest centroid")
    ax.set_ylabel("records")
    ax.set_title(title)
    return fig


def cluster_sizes_figure(sizes: list[list[int]], title: str) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = sorted((int(c) for _, c in sizes), reverse=True)
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(range(len(counts)), counts, width=1.0)
    ax.set_xlabel("cluster (sorted by size)")
    ax.set_ylabel("records")
    ax.set_title(title)
    if counts and counts[0] > 50 * max(1, counts[-1]):
        ax.set_yscale("log")
    return fig


def eps_curve_figure(curve: list[list[float]], total: int, chosen: float | None) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [float(e) for e, _ in curve]
    ys = [100.0 * r / total if total else 0.0 for _, r in curve]
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(xs, ys, marker="o")
    if chosen is not None:
        ax.axvline(chosen, color="grey", linestyle="--", label=f"eps = {chosen:g}")
        ax.legend()
    ax.set_xlabel("eps (duplicate if cosine >= 1 - eps)")
    ax.set_ylabel("% of records removed")
    ax.set_title("SemDeDup: removed vs eps")
    if xs and min(xs) > 0 and max(xs) / min(xs) > 50:
        ax.set_xscale("log")
    return fig
