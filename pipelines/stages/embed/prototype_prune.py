"""Stage ``prototype_prune``: keep the easy or hard fraction of records by distance to their
k-means centroid (Sorscher et al. 2022; rules in ``filters/prototypes.py``).

Needs the ``cluster_id`` and ``cluster_distance`` columns of the ``cluster`` stage.

Exact, deterministic selection without gathering all records:

1. a sparse histogram of distances (16384 bins over [0, 2]) per scope (the whole data, or each
   cluster in ``balanced`` mode) and the record count;
2. a plan: the policy (``auto`` resolved from the record count and ``budget_records``), the
   kept fraction, and per scope the bin that holds the boundary and how many of its records
   to keep;
3. only the ``(distance, id)`` keys of records in boundary bins are grouped and sorted, which
   gives each scope's exact threshold key;
4. every record is kept or removed (reason ``prototype_pruned``) against the plan, passed as a
   side input.
"""

from __future__ import annotations

from typing import Literal

import apache_beam as beam
from apache_beam import pvalue
from pydantic import Field, model_validator

from filters.prototypes import (
    boundary_from_histogram,
    histogram_bin,
    is_kept,
    keep_count,
    resolve_keep_fraction,
    resolve_policy,
    threshold_key,
)
from pipelines.stages.embed.embedding_common import SparseHistogram
from pipelines.core.records import dead_letter
from pipelines.stages.base import DEAD, KEPT, REMOVED, Stage, StageParams, StageResult
from pipelines.stages.registry import register_stage

REASON = "prototype_pruned"
GLOBAL = -1  # scope key when not balanced


class PrototypeFields(StageParams):
    policy: Literal["hard", "easy", "auto"] = Field(
        default="auto",
        description="hard: keep atypical records (far from centroid); easy: keep prototypical "
        "ones; auto: hard when records/budget_records >= abundance_ratio, else easy.",
    )
    keep_fraction: float | None = Field(
        default=None, gt=0.0, le=1.0,
        description="Fraction kept; default min(1, budget_records / records).",
    )
    budget_records: int | None = Field(
        default=None, ge=1,
        description="Records the training run will consume (needed by auto, and to derive "
        "keep_fraction).",
    )
    abundance_ratio: float = Field(default=1.0, gt=0.0,
                                   description="auto: abundant when records/budget >= this.")
    balanced: bool = Field(default=False,
                           description="Apply the fraction inside each cluster (none wiped out).")
    min_per_cluster: int = Field(default=1, ge=0,
                                 description="balanced: keep at least this many per cluster.")

    @model_validator(mode="after")
    def _needs(self):
        if self.keep_fraction is None and self.budget_records is None:
            raise ValueError("set keep_fraction (e.g. 0.5) or budget_records")
        if self.policy == "auto" and self.budget_records is None:
            raise ValueError("policy 'auto' needs budget_records (or choose policy hard/easy)")
        return self


class PrototypePruneParams(PrototypeFields):
    stage: Literal["prototype_prune"]


class _Check(beam.DoFn):
    def __init__(self, label: str):
        self._label = label

    def process(self, r):
        cid = r.get("cluster_id") if isinstance(r, dict) else None
        dist = r.get("cluster_distance") if isinstance(r, dict) else None
        if not isinstance(cid, int) or isinstance(cid, bool) or not isinstance(dist, (int, float)) \
                or dist != dist or not isinstance(r.get("id"), str):
            yield pvalue.TaggedOutput(DEAD, dead_letter(
                self._label, "missing_cluster: needs cluster_id/cluster_distance "
                "(run the cluster stage first) and a string id", r))
            return
        yield r


def _scope(r, balanced: bool) -> int:
    return int(r["cluster_id"]) if balanced else GLOBAL


def _make_plan(hists, n_total, p: PrototypeFields):
    policy = resolve_policy(p.policy, n_total, p.budget_records, p.abundance_ratio)
    q = resolve_keep_fraction(p.keep_fraction, n_total, p.budget_records)
    scopes = {}
    for scope, hist in sorted(hists):
        size = sum(hist.values())
        m = keep_count(size, q, p.min_per_cluster if p.balanced else 0)
        b, need = boundary_from_histogram(hist, m, policy)
        scopes[scope] = {"size": size, "keep": m, "bin": b, "need": need}
    return {"policy": policy, "keep_fraction": q, "n_records": n_total, "scopes": scopes}


def _final_plan(plan, thresholds):
    out = dict(plan)
    out["thresholds"] = dict(thresholds)
    return out


class _Decide(beam.DoFn):
    def __init__(self, balanced: bool):
        self._balanced = balanced

    def process(self, r, plan):
        scope = _scope(r, self._balanced)
        s = plan["scopes"].get(scope)
        key = (float(r["cluster_distance"]), r["id"])
        b = histogram_bin(key[0])
        keep = s is not None and is_kept(key, b, s["bin"], plan["thresholds"].get(scope),
                                         plan["policy"])
        if keep:
            yield r
        else:
            yield pvalue.TaggedOutput(REMOVED, (REASON, r))


def _summary(plan, requested: str, p: PrototypeFields, per_cluster: list):
    kept = sum(s["keep"] for s in plan["scopes"].values())
    n = plan["n_records"]
    return {
        "policy_requested": requested,
        "policy": plan["policy"],
        "keep_fraction": round(plan["keep_fraction"], 6),
        "budget_records": p.budget_records,
        "data_to_budget_ratio": round(n / p.budget_records, 4) if p.budget_records else None,
        "abundance_ratio": p.abundance_ratio,
        "regime": ("abundant" if plan["policy"] == "hard" else "scarce")
        if requested == "auto" else None,
        "balanced": p.balanced,
        "n_records": n,
        "kept": kept,
        "clusters_total": len(per_cluster),
        "clusters_emptied": sum(1 for _, k, _t in per_cluster if k == 0),
    }


def _per_cluster(pairs):
    """[(cluster, (kept 0/1))...] counts -> sorted [[cluster, kept, total]]."""
    acc: dict[int, list[int]] = {}
    for (cid, kept), n in pairs:
        row = acc.setdefault(int(cid), [0, 0])
        row[1] += n
        if kept:
            row[0] += n
    return [[c, k, t] for c, (k, t) in sorted(acc.items())]


def expand_prototype(records, label: str, p: PrototypeFields) -> StageResult:
    """The prototype-pruning graph (shared by ``prototype_prune`` and ``d4``)."""
    checked = records | "Check" >> beam.ParDo(_Check(label)).with_outputs(DEAD, main=KEPT)
    valid = checked[KEPT]
    bal = p.balanced
    n_total = valid | "Count" >> beam.combiners.Count.Globally()
    hists = (
        valid
        | "ScopeBin" >> beam.Map(lambda r: (_scope(r, bal), histogram_bin(
            float(r["cluster_distance"]))))
        | "Hist" >> beam.CombinePerKey(SparseHistogram())
        | "HistList" >> beam.combiners.ToList()
    )
    plan = hists | "Plan" >> beam.Map(_make_plan, pvalue.AsSingleton(n_total), p)
    thresholds = (
        valid
        | "BoundaryKeys" >> beam.FlatMap(_boundary_key, pvalue.AsSingleton(plan), bal)
        | "GroupBoundary" >> beam.GroupByKey()
        | "Threshold" >> beam.Map(_threshold, pvalue.AsSingleton(plan))
        | "Thresholds" >> beam.combiners.ToList()
    )
    final = plan | "FinalPlan" >> beam.Map(_final_plan, pvalue.AsSingleton(thresholds))
    decided = valid | "Decide" >> beam.ParDo(_Decide(bal), pvalue.AsSingleton(final)) \
        .with_outputs(REMOVED, main=KEPT)
    kept, removed = decided[KEPT], decided[REMOVED]
    per_cluster = (
        (kept | "KeptFlag" >> beam.Map(lambda r: (r["cluster_id"], True)),
         removed | "RemovedFlag" >> beam.Map(lambda t: (t[1]["cluster_id"], False)))
        | "FlagsAll" >> beam.Flatten()
        | "CountFlags" >> beam.combiners.Count.PerElement()
        | "FlagList" >> beam.combiners.ToList()
        | "PerCluster" >> beam.Map(_per_cluster)
    )
    summary = final | "Summary" >> beam.Map(_summary, p.policy, p,
                                             pvalue.AsSingleton(per_cluster))
    return StageResult(kept=kept, removed=removed, dead=checked[DEAD],
                       stats={"prototype": summary, "prototype_per_cluster": per_cluster})


def _boundary_key(r, plan, balanced):
    scope = _scope(r, balanced)
    s = plan["scopes"].get(scope)
    d = float(r["cluster_distance"])
    if s is not None and s["need"] > 0 and histogram_bin(d) == s["bin"]:
        yield scope, (d, r["id"])


def _threshold(kv, plan):
    scope, keys = kv
    return scope, threshold_key(list(keys), plan["scopes"][scope]["need"], plan["policy"])


@register_stage
class PrototypePruneStage(Stage):
    name = "prototype_prune"
    Params = PrototypePruneParams
    description = "Keep the easy or hard fraction by distance to the k-means centroid."

    def expand(self, records) -> StageResult:
        return expand_prototype(records, self.label, self.params)  # type: ignore[arg-type]

    def report_section(self, stage_stats: dict) -> str | None:
        return prototype_report(stage_stats)


def prototype_report(stage_stats: dict) -> str | None:
    from pipelines.report.html import table_html

    st = stage_stats.get("stats") or {}
    s = st.get("prototype")
    if not isinstance(s, dict):
        return None
    rows = [[k, v] for k, v in s.items() if v is not None]
    parts = [table_html(["setting", "value"], rows)]
    per = st.get("prototype_per_cluster")
    if isinstance(per, list) and per:
        parts.append(_per_cluster_figure(per))
    return "\n".join(parts)


def _per_cluster_figure(per: list) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pipelines.report.html import figure_html

    rows = sorted(per, key=lambda x: -x[2])
    fig, ax = plt.subplots(figsize=(6, 3))
    xs = range(len(rows))
    ax.bar(xs, [t for _, _, t in rows], width=1.0, color="#ccc", label="records")
    ax.bar(xs, [k for _, k, _ in rows], width=1.0, color="#3465a4", label="kept")
    ax.set_xlabel("cluster (sorted by size)")
    ax.set_ylabel("records")
    ax.legend()
    ax.set_title("Prototype pruning per cluster")
    return figure_html(fig, "kept per cluster")
