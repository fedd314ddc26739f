"""Stage ``semdedup``: drop semantic near-duplicates inside k-means clusters (SemDeDup,
Abbas et al. 2023; rules in ``filters/semdedup.py``).

Needs ``embedding`` (unit vectors, from ``embed``) and ``cluster_id`` (from ``cluster``).
Within each cluster, records are walked in survivor order (``order``: by id, or by distance to
the centroid); a record is removed with reason ``semantic_duplicate`` when an earlier *kept*
record has cosine >= 1 - ``eps``. Kept and removed records get ``semdedup_max_sim`` (highest
cosine to an earlier record of their block, -1 for the first); removed ones also name the kept
record they duplicate in ``semdedup_duplicate_of``.

The SemDeDup curve (records removed at every ``curve_eps`` value) is computed in the same pass
and stored in stats, so eps can be chosen without rerunning.

Bounded work per cluster: a cluster with more than ``max_block_size`` records is cut into slabs
along a seeded random direction (exact per-cluster histogram of the projection, 65536 bins over
[-1, 1]), each slab with at most ``max_block_size`` records, and deduplicated slab by slab.
Trade-off: two near-duplicates in different slabs are not compared. Their projections differ
by at most their Euclidean distance ``sqrt(2 * eps)`` (0.32 at eps = 0.05), while a slab of a
large cluster usually spans a wider range, so only pairs straddling a cut are missed. A single
projection bin holding more than ``max_block_size`` records (thousands of identical texts)
stays one block; it is still processed ``chunk_size`` rows at a time, so memory is
``block x dim`` floats for the embeddings plus ``chunk_size x block`` similarities.
"""

from __future__ import annotations

from typing import Literal

import apache_beam as beam
import numpy as np
from apache_beam import pvalue
from pydantic import Field, field_validator

from filters.semdedup import (
    DEFAULT_CURVE,
    projection_bin,
    projection_direction,
    semdedup_block,
    split_starts,
    sub_block,
    survivor_order,
)
from pipelines.stages.embed.embedding_common import (
    SparseHistogram,
    SumCounts,
    embedding_array,
    eps_curve_figure,
)
from pipelines.core.records import dead_letter
from pipelines.stages.base import DEAD, KEPT, REMOVED, Stage, StageParams, StageResult
from pipelines.stages.registry import register_stage

REASON = "semantic_duplicate"
CURVE = "curve"


class SemDedupFields(StageParams):
    eps: float = Field(default=0.05, ge=0.0, lt=1.0,
                       description="Duplicates: cosine >= 1 - eps (0 = identical only).")
    curve_eps: list[float] = Field(default_factory=lambda: list(DEFAULT_CURVE),
                                   description="eps values reported in the SemDeDup curve.")
    order: Literal["id", "closest", "farthest"] = Field(
        default="id",
        description="Survivor order inside a cluster: id ascending, or distance to the "
        "centroid (closest/farthest first), ties by id. The first of a duplicate group is kept.",
    )
    max_block_size: int = Field(default=5000, ge=2, le=1_000_000,
                                description="Larger clusters are split into slabs this big.")
    chunk_size: int = Field(default=512, ge=1, le=100_000,
                            description="Rows per similarity matrix product.")
    seed: int = Field(default=1234, ge=0, description="Seed of the slab projection direction.")
    embedding_column: str = "embedding"

    @field_validator("curve_eps")
    @classmethod
    def _curve(cls, v: list[float]) -> list[float]:
        bad = [e for e in v if not 0.0 <= e < 1.0]
        if bad:
            raise ValueError(f"every curve eps must be in [0, 1); bad values: {bad}")
        return sorted(set(v))


class SemDedupParams(SemDedupFields):
    stage: Literal["semdedup"]


class _Project(beam.DoFn):
    """Check the inputs; key each record by (cluster, projection bin)."""

    def __init__(self, label: str, column: str, seed: int):
        self._label, self._col, self._seed = label, column, seed
        self._dirs: dict[int, np.ndarray] = {}

    def process(self, r):
        ok = isinstance(r, dict) and isinstance(r.get("id"), str)
        cid = r.get("cluster_id") if ok else None
        v = embedding_array(r.get(self._col)) if ok else None
        if v is None or not isinstance(cid, int) or isinstance(cid, bool):
            yield pvalue.TaggedOutput(DEAD, dead_letter(
                self._label, "missing_embedding_or_cluster: needs a string id, an embedding and "
                "cluster_id (run embed and cluster first)", r))
            return
        d = self._dirs.get(v.size)
        if d is None:
            d = self._dirs[v.size] = projection_direction(v.size, self._seed)
        yield cid, projection_bin(float(v @ d)), r


class _Dedup(beam.DoFn):
    def __init__(self, label: str, p: SemDedupFields):
        self._label, self._p = label, p

    def process(self, kv):
        (cid, _slab), records = kv
        recs = list(records)
        p = self._p
        ids = [r["id"] for r in recs]
        dists = [r.get("cluster_distance") for r in recs] if p.order != "id" else None
        if dists is not None and any(not isinstance(d, (int, float)) for d in dists):
            dists = [float(d) if isinstance(d, (int, float)) else 1.0 for d in dists]
        perm = survivor_order(ids, dists, p.order)
        dims = {len(recs[i][p.embedding_column]) for i in perm}
        if len(dims) != 1:  # mixed sizes inside one cluster: cannot compare, dead-letter all
            for i in perm:
                yield pvalue.TaggedOutput(DEAD, dead_letter(
                    self._label, f"bad_embedding: mixed sizes {sorted(dims)} in cluster {cid}",
                    recs[i]))
            return
        emb = np.asarray([recs[i][p.embedding_column] for i in perm], dtype=np.float32)
        res = semdedup_block(emb, p.eps, p.curve_eps, p.chunk_size)
        for row, i in enumerate(perm):
            out = dict(recs[i])
            out["semdedup_max_sim"] = float(res.max_sim_earlier[row])
            if res.kept[row]:
                out["semdedup_duplicate_of"] = None
                yield out
            else:
                out["semdedup_duplicate_of"] = recs[perm[int(res.duplicate_of[row])]]["id"]
                yield pvalue.TaggedOutput(REMOVED, (REASON, out))
        curve = {repr(float(e)): n for e, n in res.removed_by_eps.items()}
        curve["__records__"] = len(recs)
        curve["__blocks__"] = 1
        yield pvalue.TaggedOutput(CURVE, curve)


def _curve_stats(summed: dict, eps: float, largest: int, split: int) -> dict:
    curve = sorted((float(k), int(v)) for k, v in summed.items() if not k.startswith("__"))
    return {
        "eps": eps,
        "records": int(summed.get("__records__", 0)),
        "removed": int(dict(curve).get(float(eps), 0)),
        "curve": [[e, n] for e, n in curve],
        "blocks": int(summed.get("__blocks__", 0)),
        "largest_block": int(largest),
        "split_clusters": int(split),
    }


def expand_semdedup(records, label: str, p: SemDedupFields) -> StageResult:
    """The SemDeDup graph (shared by ``semdedup`` and ``d4``)."""
    keyed = records | "Project" >> beam.ParDo(
        _Project(label, p.embedding_column, p.seed)).with_outputs(DEAD, main=KEPT)
    max_block = p.max_block_size
    splits = (
        keyed[KEPT]
        | "ClusterBin" >> beam.Map(lambda t: (t[0], t[1]))
        | "ProjHist" >> beam.CombinePerKey(SparseHistogram())
        | "Cuts" >> beam.Map(lambda kv: (kv[0], split_starts(kv[1], max_block)))
        | "OnlySplit" >> beam.Filter(lambda kv: bool(kv[1]))
        | "CutsDict" >> beam.combiners.ToDict()
    )
    blocks = (
        keyed[KEPT]
        | "BlockKey" >> beam.Map(
            lambda t, cuts: ((t[0], sub_block(cuts.get(t[0], []), t[1])), t[2]),
            pvalue.AsSingleton(splits))
        | "GroupBlocks" >> beam.GroupByKey()
    )
    outs = blocks | "Dedup" >> beam.ParDo(_Dedup(label, p)).with_outputs(
        REMOVED, DEAD, CURVE, main=KEPT)
    largest = (
        blocks
        | "BlockSize" >> beam.Map(lambda kv: sum(1 for _ in kv[1]))
        | "Largest" >> beam.CombineGlobally(lambda xs: max(xs, default=0))
    )
    n_split = splits | "NSplit" >> beam.Map(len)
    curve = (
        outs[CURVE]
        | "SumCurve" >> beam.CombineGlobally(SumCounts())
        | "CurveStats" >> beam.Map(_curve_stats, p.eps, pvalue.AsSingleton(largest),
                                   pvalue.AsSingleton(n_split))
    )
    dead = (keyed[DEAD], outs[DEAD]) | "Dead" >> beam.Flatten()
    return StageResult(kept=outs[KEPT], removed=outs[REMOVED], dead=dead,
                       stats={"semdedup": curve})


@register_stage
class SemDedupStage(Stage):
    name = "semdedup"
    Params = SemDedupParams
    description = "SemDeDup: drop near-duplicate embeddings within each k-means cluster."

    def output_columns(self) -> dict[str, str]:
        return {"semdedup_max_sim": "float64", "semdedup_duplicate_of": "string"}

    def expand(self, records) -> StageResult:
        return expand_semdedup(records, self.label, self.params)  # type: ignore[arg-type]

    def report_section(self, stage_stats: dict) -> str | None:
        return semdedup_report(stage_stats)


def semdedup_report(stage_stats: dict) -> str | None:
    from pipelines.report.html import figure_html, table_html

    s = (stage_stats.get("stats") or {}).get("semdedup")
    if not isinstance(s, dict) or not s.get("curve"):
        return None
    total = s.get("records", 0)
    rows = [[e, n, f"{100.0 * n / total:.2f}%" if total else ""] for e, n in s["curve"]]
    return "\n".join([
        f"<p>eps = {s['eps']}: removed {s['removed']} of {total} records; "
        f"{s['blocks']} blocks (largest {s['largest_block']}), "
        f"{s['split_clusters']} clusters split into slabs.</p>",
        figure_html(eps_curve_figure(s["curve"], total, s["eps"]), "SemDeDup curve"),
        table_html(["eps", "removed", "share"], rows),
    ])
