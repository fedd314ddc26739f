"""Stage ``score_select``: keep records by a score column -- a threshold or a global top fraction.

* ``threshold``: keep records with ``column >= threshold`` (or ``<=`` with ``higher_is_better:
  false``, e.g. for perplexity); drop reason ``below_threshold``.
* ``top_fraction: q``: keep the best ``q`` fraction of *all* records. The cutoff is the
  ``1 - q`` quantile of the score, computed with ``ApproximateQuantiles`` as a Beam combiner
  (each worker summarises its share; nothing is collected on one worker) and handed to the
  filter as a side input. Drop reason ``below_top_fraction``.

Ties: the quantile is taken over ``(score, xxh64(id))`` pairs, so records with equal scores
are ordered by a hash of their id. The kept set therefore has (up to the quantile error)
``round(q * N)`` records even when many scores tie. Accuracy: the quantile list has 10,001 entries and Beam's sketch keeps
buffers of about 120k elements at the default ``quantile_epsilon=1e-4``, so for N <= 10,000
the selection is exact; beyond that the cutoff's rank is off by at most about
``max(N / 10,000, quantile_epsilon * N)`` records (worst case; usually much less). Within
the exact range the result does not depend on bundling or worker count; beyond it the
sketch's collapses depend on how the runner merges partial results, so the cutoff can move
by up to that bound between runs.

Records whose column is missing or not a finite number go to the dead-letter output
(reason ``missing_score``), never to an arbitrary side of the cut.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import apache_beam as beam
import xxhash
from apache_beam import pvalue
from apache_beam.transforms.stats import ApproximateQuantilesCombineFn
from pydantic import Field, model_validator

from pipelines.core.records import dead_letter
from pipelines.stages.score_stats import HistSpec, ScoreReportMixin
from pipelines.core.spill import DeleteFiles, SpillRows, StreamSpilled
from pipelines.stages.base import Stage, StageParams, StageResult
from pipelines.stages.registry import register_stage

_NUM_QUANTILES = 10_001  # cutoff resolution 1e-4 of the rank range


def score_of(record: dict, column: str) -> float | None:
    v = record.get(column) if isinstance(record, dict) else None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return None if math.isnan(v) or math.isinf(v) else v


def sort_key(record: dict, column: str, higher_is_better: bool = True) -> tuple[float, int]:
    """Total order used for selection: score (negated when lower is better), then id hash."""
    s = score_of(record, column)
    assert s is not None
    rid = str(record.get("id")).encode("utf-8", "surrogatepass")
    return (s if higher_is_better else -s, xxhash.xxh64_intdigest(rid))


def cutoff_index(q: float, n: int, num_quantiles: int = _NUM_QUANTILES) -> int:
    """Index in the quantile list of the smallest key to keep.

    Keeping ``round(q * n)`` records (at least one) means cutting at the element of rank
    ``r = n - round(q * n)`` (0-based, ascending). Beam's ``ApproximateQuantilesCombineFn``
    returns, at index ``i`` of ``M + 1`` quantiles, the element of rank
    ``floor((i * n - 1) / M)`` (index 0: the minimum, index M: the maximum), so the first index
    reaching rank ``r`` is ``ceil((r * M + 1) / n)``; when ``n <= M`` it lands exactly on ``r``.
    """
    m = num_quantiles - 1
    if n <= 1 or m <= 0:
        return 0
    keep = min(n, max(1, round(q * n)))
    r = n - keep
    if r <= 0:
        return 0
    return min(m, -(-(r * m + 1) // n))


class _SplitByKey(beam.DoFn):
    """Kept when key >= cutoff (side input); else removed with ``reason``."""

    def __init__(self, column: str, higher_is_better: bool, q: float, reason: str):
        self._column, self._hib, self._q, self._reason = column, higher_is_better, q, reason

    def process(self, record, quantiles, n):
        if not quantiles:
            return
        cut = tuple(quantiles[cutoff_index(self._q, n, len(quantiles))])
        if sort_key(record, self._column, self._hib) >= cut:
            yield record
        else:
            yield pvalue.TaggedOutput("removed", (self._reason, record))


def select_top_fraction(records: Any, column: str, q: float, epsilon: float = 1e-4,
                        prefix: str = "Top", higher_is_better: bool = True,
                        reason: str = "below_top_fraction", spill_dir: str | None = None,
                        annotate: str | None = None) -> tuple[Any, Any, Any]:
    """Split ``records`` (all with a finite ``column``) into (kept, removed, cutoff).

    ``cutoff`` is a one-element PCollection with ``{"score": s, "id_hash": h}`` of the
    smallest kept key (in the ``higher_is_better`` orientation).

    The split needs the quantiles of its own input (a side input), so the local runner would
    hold ``records`` whole until they are computed; with ``spill_dir`` the records go to spill
    files in the step that produces them and the split streams them back instead.
    ``annotate``: see :class:`_Annotate` (then ``removed`` carries only reasons).
    """
    combine = ApproximateQuantilesCombineFn.create(num_quantiles=_NUM_QUANTILES, epsilon=epsilon)
    quantiles = (
        records
        | f"{prefix}Key" >> beam.Map(sort_key, column, higher_is_better)
        | f"{prefix}Quantiles" >> beam.CombineGlobally(combine)
    )
    count = records | f"{prefix}Count" >> beam.combiners.Count.Globally()
    split: beam.DoFn = _SplitByKey(column, higher_is_better, q, reason)
    if annotate is not None:
        split = _Annotate(split, annotate)
    source = records
    if spill_dir is not None:
        split = StreamSpilled(split)
        source = records | f"{prefix}Spill" >> beam.ParDo(SpillRows(spill_dir))
    outs = source | f"{prefix}Split" >> beam.ParDo(
        split, pvalue.AsSingleton(quantiles), pvalue.AsSingleton(count),
    ).with_outputs("removed", "consumed", main="kept")
    if spill_dir is not None:
        outs["consumed"] | f"{prefix}DeleteSpill" >> DeleteFiles()

    def _cut(qs, n):
        if not qs:
            return {"score": None, "id_hash": None, "n": n}
        s, h = qs[cutoff_index(q, n, len(qs))]
        return {"score": s if higher_is_better else -s, "id_hash": h, "n": n}

    cutoff = quantiles | f"{prefix}Cutoff" >> beam.Map(_cut, pvalue.AsSingleton(count))
    return outs["kept"], outs["removed"], cutoff


class _Annotate(beam.DoFn):
    """Wraps a splitting DoFn (kept main output, ``removed`` = (reason, record)): every record
    leaves on the main output with ``flag`` True (kept) or False (would be removed); the
    reasons of the would-be removals go to ``removed``. One output, so no Flatten of the
    kept and the flagged records (the local runner would hold it)."""

    def __init__(self, inner: beam.DoFn, flag: str):
        self._inner, self._flag = inner, flag

    def process(self, record, *args, **kwargs):
        for out in self._inner.process(record, *args, **kwargs) or ():
            if isinstance(out, pvalue.TaggedOutput):
                reason, rec = out.value
                yield {**rec, self._flag: False}
                yield pvalue.TaggedOutput("removed", reason)
            else:
                yield {**out, self._flag: True}


class _CheckScore(beam.DoFn):
    def __init__(self, label: str, column: str):
        self._label, self._column = label, column

    def process(self, record):
        if score_of(record, self._column) is None:
            got = record.get(self._column) if isinstance(record, dict) else None
            yield pvalue.TaggedOutput("dead", dead_letter(
                self._label, f"missing_score: column {self._column!r} is {got!r}", record))
        else:
            yield record


class _Threshold(beam.DoFn):
    def __init__(self, column: str, threshold: float, higher_is_better: bool):
        self._c, self._t, self._hib = column, threshold, higher_is_better

    def process(self, record):
        s = score_of(record, self._c)
        ok = s >= self._t if self._hib else s <= self._t  # type: ignore[operator]
        if ok:
            yield record
        else:
            yield pvalue.TaggedOutput("removed", ("below_threshold", record))


class ScoreSelectParams(StageParams):
    stage: Literal["score_select"]
    column: str = Field(description="Numeric score column added by an earlier stage.")
    threshold: float | None = Field(default=None, description="Keep column >= threshold.")
    top_fraction: float | None = Field(default=None, gt=0, le=1,
                                       description="Keep this fraction of all records.")
    higher_is_better: bool = Field(default=True, description="false for e.g. perplexity.")
    quantile_epsilon: float = Field(default=1e-4, gt=0, le=0.1,
                                    description="Rank error bound of the approximate quantile.")
    hist_range: tuple[float, float] | None = Field(
        default=None, description="Histogram range for the report; default [0, 1].")
    annotate_only: bool = Field(
        default=False,
        description="Keep every record and add a bool column '<column>_selected' instead of "
        "dropping; would-be drops are counted in stats under 'would_remove'.",
    )

    @model_validator(mode="after")
    def _one_mode(self):
        if (self.threshold is None) == (self.top_fraction is None):
            raise ValueError("set exactly one of 'threshold' or 'top_fraction'")
        return self


@register_stage
class ScoreSelectStage(ScoreReportMixin, Stage):
    name = "score_select"
    Params = ScoreSelectParams
    description = "Keep records by a score column: threshold or global top fraction."

    def hist_specs(self) -> list[HistSpec]:
        p: ScoreSelectParams = self.params  # type: ignore[assignment]
        lo, hi = p.hist_range or (0.0, 1.0)
        thr = (p.threshold,) if p.threshold is not None else ()
        return [HistSpec(p.column, lo, hi, 40, thr)]

    def output_columns(self) -> dict[str, str]:
        p: ScoreSelectParams = self.params  # type: ignore[assignment]
        return {f"{p.column}_selected": "bool"} if p.annotate_only else {}

    def rules_text(self) -> str:
        p: ScoreSelectParams = self.params  # type: ignore[assignment]
        op = ">=" if p.higher_is_better else "<="
        if p.threshold is not None:
            return f"keep {p.column} {op} {p.threshold}"
        return (f"keep the {'highest' if p.higher_is_better else 'lowest'} {p.top_fraction:.4g} "
                f"fraction of {p.column} (approximate quantile, epsilon {p.quantile_epsilon})")

    def expand(self, records) -> StageResult:
        p: ScoreSelectParams = self.params  # type: ignore[assignment]
        checked = records | "CheckScore" >> beam.ParDo(
            _CheckScore(self.label, p.column)).with_outputs("dead", main="ok")
        stats: dict[str, Any] = {}
        flag = f"{p.column}_selected" if p.annotate_only else None
        if p.threshold is not None:
            split: beam.DoFn = _Threshold(p.column, p.threshold, p.higher_is_better)
            if flag is not None:
                split = _Annotate(split, flag)
            outs = checked["ok"] | "Threshold" >> beam.ParDo(split).with_outputs(
                "removed", main="kept")
            kept, removed = outs["kept"], outs["removed"]
        else:
            kept, removed, cutoff = select_top_fraction(
                checked["ok"], p.column, p.top_fraction, p.quantile_epsilon, "Top",
                p.higher_is_better, spill_dir=self.spill_dir(), annotate=flag)
            stats["cutoff"] = cutoff
        if flag is not None:  # removed carries the would-be reasons only
            stats["would_remove"] = (
                removed
                | "CountFlagged" >> beam.combiners.Count.PerElement()
                | "FlaggedDict" >> beam.combiners.ToDict()
            )
            removed = removed | "NoRemovals" >> beam.Filter(lambda _: False)
        res = StageResult(kept=kept, removed=removed, dead=checked["dead"], stats=stats)
        return self.with_score_stats(res)

    def report_section(self, stage_stats):
        run = stage_stats.get("stats") or {}
        cut = run.get("cutoff")
        h = run.get("score_histograms")
        p: ScoreSelectParams = self.params  # type: ignore[assignment]
        if isinstance(cut, dict) and cut.get("score") is not None and isinstance(h, dict) \
                and p.column in h:  # mark the computed cutoff on the histogram
            h = {**h, p.column: {**h[p.column], "thresholds": [cut["score"]]}}
            stage_stats = {**stage_stats, "stats": {**run, "score_histograms": h}}
        return super().report_section(stage_stats)
