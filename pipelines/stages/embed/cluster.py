"""Stage ``cluster``: spherical k-means over the embeddings; adds ``cluster_id`` and
``cluster_distance`` (cosine distance ``1 - cos`` to the nearest centroid).

Graph:

1. every record with a valid embedding gets a seeded xxhash64 of its id; records with
   ``hash < fit_fraction * 2^64`` are candidates and the ``max_fit_points`` smallest hashes form
   the fit sample (``Top.Smallest``: the same sample whatever the bundle order or worker count);
2. one DoFn fits faiss spherical k-means on the sample (rows sorted by hash, fixed seed);
3. the centroids reach every worker as a side input; records are assigned in batches.

k defaults to ``filters.kmeans.default_k(n)`` (about ``sqrt(n)`` for n records); set ``k`` to
override. Records without a usable embedding go to the dead-letter output
(``missing_embedding``, ``bad_embedding``). faiss is imported only inside the fit DoFn.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Literal

import apache_beam as beam
import numpy as np
from apache_beam import pvalue
from pydantic import Field

from pipelines.stages.embed.embedding_common import (
    HASH_SPACE,
    SparseHistogram,
    cluster_sizes_figure,
    coarse_histogram,
    distance_histogram_figure,
    embedding_array,
    id_hash,
)
from pipelines.core.records import dead_letter
from pipelines.stages.base import DEAD, KEPT, Stage, StageParams, StageResult, empty_pcollection
from pipelines.stages.registry import register_stage

HIST_BINS = 100  # reported distance histogram: 100 bins over [0, 2]


class ClusterParams(StageParams):
    stage: Literal["cluster"]
    k: int | None = Field(default=None, ge=1, le=1_000_000,
                          description="Number of clusters (default: about sqrt(n)).")
    fit_fraction: float = Field(default=1.0, gt=0.0, le=1.0,
                                description="Fraction of records eligible for the fit sample.")
    max_fit_points: int = Field(default=100_000, ge=1, le=10_000_000,
                                description="At most this many records are used to fit.")
    niter: int = Field(default=20, ge=1, le=1000, description="k-means iterations.")
    nredo: int = Field(default=1, ge=1, le=100,
                       description="k-means restarts; the fit with the best objective is kept.")
    seed: int = Field(default=1234, ge=0, description="Seed of the sample hash and of faiss.")
    embedding_column: str = "embedding"
    batch_size: int = Field(default=1024, ge=1, le=100_000,
                            description="Records assigned per matrix product.")


class _Check(beam.DoFn):
    def __init__(self, label: str, column: str):
        self._label, self._col = label, column

    def process(self, r):
        v = embedding_array(r.get(self._col)) if isinstance(r, dict) else None
        if v is None:
            reason = "missing_embedding" if not isinstance(r, dict) or r.get(self._col) is None \
                else "bad_embedding"
            yield pvalue.TaggedOutput(DEAD, dead_letter(self._label, reason, r))
        elif not isinstance(r.get("id"), str):
            yield pvalue.TaggedOutput(DEAD, dead_letter(self._label, "missing_id", r))
        else:
            yield r


class _Fit(beam.DoFn):
    def __init__(self, p: ClusterParams):
        self._p = p

    def process(self, sample, n_records):
        from filters.kmeans import default_k, fit_kmeans, kmeans_summary

        p = self._p
        k_req = p.k or default_k(n_records)
        rows = sorted(sample)  # (hash, id, bytes): deterministic row order
        vecs = [np.frombuffer(b, dtype=np.float32) for _, _, b in rows]
        vecs = [v for v in vecs if np.any(v)]
        if not vecs:
            yield {"centroids": None, "dim": None, "k_requested": k_req, "k": 0,
                   "fit_points": 0, "fit_seconds": 0.0, "n_records": n_records,
                   "error": "no non-zero embeddings to fit k-means on"}
            return
        # Fit on the most common embedding size; records of other sizes are dead-lettered
        # at assignment (one malformed record must not poison the fit).
        sizes = Counter(v.size for v in vecs)
        dim = min(sizes, key=lambda d: (-sizes[d], d))
        vecs = [v for v in vecs if v.size == dim]
        x = np.stack(vecs)
        t0 = time.perf_counter()
        c = fit_kmeans(x, k_req, niter=p.niter, seed=p.seed, nredo=p.nredo)
        summary = kmeans_summary(c, len(x), k_req, time.perf_counter() - t0)
        summary.update(centroids=c.astype(np.float32).tobytes(), dim=int(x.shape[1]),
                       n_records=n_records, error=None)
        yield summary


class _Assign(beam.DoFn):
    def __init__(self, label: str, column: str):
        self._label, self._col = label, column
        self._cache: tuple[bytes, np.ndarray] | None = None

    def _centroids(self, model) -> np.ndarray | None:
        raw = model.get("centroids")
        if raw is None:
            return None
        if self._cache is None or self._cache[0] is not raw:
            self._cache = (raw, np.frombuffer(raw, dtype=np.float32).reshape(-1, model["dim"]))
        return self._cache[1]

    def process(self, batch, model):
        from filters.kmeans import assign

        c = self._centroids(model)
        good, vecs = [], []
        for r in batch:
            v = embedding_array(r[self._col], None if c is None else c.shape[1])
            if c is None or v is None:
                why = model.get("error") or "embedding size differs from the centroids'"
                yield pvalue.TaggedOutput(
                    DEAD, dead_letter(self._label, f"bad_embedding: {why}", r))
                continue
            good.append(r)
            vecs.append(v)
        if good:
            ids, dist = assign(np.stack(vecs), c)
            for r, cid, d in zip(good, ids.tolist(), dist.tolist()):
                out = dict(r)
                out["cluster_id"] = int(cid)
                out["cluster_distance"] = float(d)
                yield out


def _sizes(pairs):
    return sorted([int(c), int(n)] for c, n in pairs)


@register_stage
class ClusterStage(Stage):
    name = "cluster"
    Params = ClusterParams
    description = "Spherical k-means (faiss) on embeddings: cluster id + distance to centroid."

    def output_columns(self) -> dict[str, str]:
        return {"cluster_id": "int64", "cluster_distance": "float64"}

    def expand(self, records) -> StageResult:
        p: ClusterParams = self.params  # type: ignore[assignment]
        checked = records | "Check" >> beam.ParDo(_Check(self.label, p.embedding_column)) \
            .with_outputs(DEAD, main=KEPT)
        valid = checked[KEPT]
        col, seed = p.embedding_column, p.seed
        limit = int(p.fit_fraction * HASH_SPACE)
        n = valid | "Count" >> beam.combiners.Count.Globally()
        model = (
            valid
            | "SampleKey" >> beam.Map(lambda r: (
                id_hash(r["id"], seed), r["id"],
                np.asarray(r[col], dtype=np.float32).tobytes()))
            | "FitFraction" >> beam.Filter(lambda t: t[0] < limit)
            | "Sample" >> beam.combiners.Top.Smallest(p.max_fit_points)
            | "Fit" >> beam.ParDo(_Fit(p), n_records=pvalue.AsSingleton(n))
        )
        assigned = (
            valid
            | "Batch" >> beam.BatchElements(min_batch_size=p.batch_size,
                                            max_batch_size=p.batch_size)
            | "Assign" >> beam.ParDo(_Assign(self.label, col), pvalue.AsSingleton(model))
            .with_outputs(DEAD, main=KEPT)
        )
        dead = (checked[DEAD], assigned[DEAD]) | "Dead" >> beam.Flatten()
        kept = assigned[KEPT]
        stats = {
            "kmeans": model | "KmeansSummary" >> beam.Map(
                lambda m: {k: v for k, v in m.items() if k != "centroids"}),
            "cluster_sizes": (
                kept
                | "ClusterId" >> beam.Map(lambda r: r["cluster_id"])
                | "CountClusters" >> beam.combiners.Count.PerElement()
                | "SizesList" >> beam.combiners.ToList()
                | "SizesSorted" >> beam.Map(_sizes)
            ),
            "distance_histogram": (
                kept
                | "DistBin" >> beam.Map(lambda r: min(HIST_BINS - 1, max(0, int(
                    r["cluster_distance"] / 2.0 * HIST_BINS))))
                | "DistHist" >> beam.CombineGlobally(SparseHistogram())
                | "DistDense" >> beam.Map(
                    lambda h: {"lo": 0.0, "hi": 2.0,
                               "counts": coarse_histogram(h, HIST_BINS, 0.0, 2.0, HIST_BINS)})
            ),
        }
        return StageResult(kept=kept, removed=empty_pcollection(records.pipeline, "NoRemoved"),
                           dead=dead, stats=stats)

    def report_section(self, stage_stats: dict) -> str | None:
        return cluster_report(stage_stats)


def cluster_report(stage_stats: dict, prefix: str = "") -> str | None:
    from pipelines.report.html import figure_html

    st = stage_stats.get("stats") or {}
    parts = []
    km = st.get(f"{prefix}kmeans")
    if isinstance(km, dict):
        parts.append(f"<p>k-means: k = {km.get('k')} (requested {km.get('k_requested')}), "
                     f"fitted on {km.get('fit_points')} of {km.get('n_records')} records in "
                     f"{km.get('fit_seconds')} s</p>")
    hist = st.get(f"{prefix}distance_histogram")
    if isinstance(hist, dict) and hist.get("counts"):
        parts.append(figure_html(distance_histogram_figure(
            hist["counts"], hist["lo"], hist["hi"], "Distance to nearest centroid"),
            "distance histogram"))
    sizes = st.get(f"{prefix}cluster_sizes")
    if isinstance(sizes, list) and sizes:
        parts.append(figure_html(cluster_sizes_figure(sizes, f"{len(sizes)} clusters"),
                                 "cluster sizes"))
    return "\n".join(parts) or None
