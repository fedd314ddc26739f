"""Score statistics for filter stages: fixed-bin histograms and removed-by-rule samples.

Both are Beam combiners, so no step collects all scores or all removed records on one worker:

* :class:`HistogramFn` keeps a fixed-bin histogram (plus under/overflow, missing, min, max,
  sum) for each declared score column -- O(bins) state whatever the input size;
* :class:`ReasonSampleFn` keeps, per drop reason, the count and the ``k`` records with the
  smallest ids (a deterministic sample) with a short text snippet.

:class:`ScoreReportMixin` wires both into a stage's :class:`~pipelines.stages.base.StageResult`
(as stats ``score_histograms`` and ``removed_by_rule``) and renders them as an HTML report
section: one histogram per score with its thresholds marked, and a table of removal counts
with example snippets.
"""

from __future__ import annotations

import heapq
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam

from pipelines.core.combine import combine_parts, combine_per_key_parts
from pipelines.stages.base import StageResult, parts

SNIPPET_CHARS = 160


@dataclass(frozen=True)
class HistSpec:
    """How to histogram one score column. ``log``: bin ``log10(1 + max(v, 0))`` instead of v."""

    column: str
    lo: float
    hi: float
    bins: int = 40
    thresholds: tuple[float, ...] = field(default_factory=tuple)
    log: bool = False

    def transform(self, v: float) -> float:
        return math.log10(1.0 + max(v, 0.0)) if self.log else v

    def edges(self) -> tuple[float, float]:
        return self.transform(self.lo), self.transform(self.hi)


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
        return float(v)
    return None


def _add_exact(partials: list, x: float) -> None:
    """Add ``x`` to ``partials``, non-overlapping floats whose sum is exact (Shewchuk's
    error-free addition, the algorithm behind ``math.fsum``). An exact sum does not depend on
    the order records arrive or accumulators merge in, so the mean in stats.json is the same
    bit for bit whatever the worker count or the bundle split."""
    kept = 0
    for y in partials:
        if abs(x) < abs(y):
            x, y = y, x
        high = x + y
        low = y - (high - x)
        if low:
            partials[kept] = low
            kept += 1
        x = high
    del partials[kept:]
    partials.append(x)


class HistogramFn(beam.CombineFn):
    """Fixed-bin histograms of several numeric columns of records, in one pass."""

    def __init__(self, specs: Sequence[HistSpec]):
        self._specs = list(specs)

    def create_accumulator(self):
        # per column: [counts..., underflow, overflow, missing, n, sum partials, min, max]
        return {s.column: [[0] * s.bins, 0, 0, 0, 0, [], math.inf, -math.inf]
                for s in self._specs}

    def _plan(self):
        plan = getattr(self, "_plan_cache", None)
        if plan is None:
            plan = []
            for s in self._specs:
                lo, hi = s.edges()
                scale = s.bins / (hi - lo) if hi > lo else 0.0
                plan.append((s.column, s.log, lo, hi, scale, s.bins - 1))
            self._plan_cache = plan
        return plan

    def add_input(self, acc, record):
        get = record.get if isinstance(record, dict) else (lambda _k: None)
        log10 = math.log10
        for column, log, lo, hi, scale, last in self._plan():
            a = acc[column]
            v = get(column)
            if v.__class__ is not float:
                v = _number(v)
                if v is None:
                    a[3] += 1
                    continue
            if math.isnan(v) or math.isinf(v):
                a[3] += 1
                continue
            a[4] += 1
            _add_exact(a[5], v)
            a[6] = min(a[6], v)
            a[7] = max(a[7], v)
            t = log10(1.0 + max(v, 0.0)) if log else v
            if t < lo:
                a[1] += 1
            elif t > hi:
                a[2] += 1
            else:
                i = int((t - lo) * scale)
                a[0][min(last, i)] += 1
        return acc

    def merge_accumulators(self, accs):
        accs = list(accs)
        out = self.create_accumulator()
        for acc in accs:
            for col, a in acc.items():
                o = out[col]
                o[0] = [x + y for x, y in zip(o[0], a[0])]
                for j in (1, 2, 3, 4):
                    o[j] += a[j]
                for part in a[5]:
                    _add_exact(o[5], part)
                o[6] = min(o[6], a[6])
                o[7] = max(o[7], a[7])
        return out

    def extract_output(self, acc):
        out = {}
        for s in self._specs:
            counts, under, over, missing, n, total, vmin, vmax = acc[s.column]
            out[s.column] = {
                "lo": s.lo,
                "hi": s.hi,
                "bins": s.bins,
                "log": s.log,
                "counts": counts,
                "underflow": under,
                "overflow": over,
                "missing": missing,
                "n": n,
                "mean": math.fsum(total) / n if n else None,
                "min": vmin if n else None,
                "max": vmax if n else None,
                "thresholds": list(s.thresholds),
            }
        return out


def snippet(text: Any, limit: int = SNIPPET_CHARS, max_lines: int = 6) -> str:
    """A short excerpt that keeps the document's line breaks (runs of spaces are folded and
    blank lines dropped), so that line-based rules can be judged from the report."""
    if text is None:
        return ""
    lines = [" ".join(ln.split()) for ln in str(text).splitlines()]
    s = "\n".join([ln for ln in lines if ln][:max_lines])
    return s if len(s) <= limit else s[: limit - 1] + "…"


def sample_key(record_id: str, seed: int = 0) -> int:
    """Rank used to pick examples: a seeded hash of the id, so examples are a deterministic
    random sample (the same on every run and worker count), not the smallest ids."""
    import xxhash

    return xxhash.xxh64_intdigest(record_id.encode("utf-8", "surrogatepass"), seed=seed)


class ReasonSampleFn(beam.CombineFn):
    """Per key: ``{"count": n, "examples": [[id, snippet], ...]}``: k examples chosen at random
    with a fixed seed (smallest :func:`sample_key`)."""

    def __init__(self, k: int = 3):
        self._k = k

    def create_accumulator(self):
        return (0, [])

    def add_input(self, acc, item):
        n, best = acc
        best = heapq.nsmallest(self._k, best + [item])
        return (n + 1, best)

    def merge_accumulators(self, accs):
        n, items = 0, []
        for c, b in accs:
            n += c
            items.extend(b)
        return (n, heapq.nsmallest(self._k, items))

    def extract_output(self, acc):
        n, best = acc
        return {"count": n, "examples": [[rid, snip] for _rank, rid, snip in best]}


def _id_snippet(pair):
    reason, rec = pair
    rid = str(rec.get("id"))
    return reason, (sample_key(rid), rid, snippet(rec.get("text")))


def score_stats(label: str, kept: Any, removed: Any, specs: Sequence[HistSpec],
                examples_per_reason: int = 3) -> dict[str, Any]:
    """Stats (:class:`pipelines.core.combine.Stat`, each a dict) of a filter stage's outputs."""
    out: dict[str, Any] = {}
    removed_parts = parts(removed)  # a stage may give its removals in several parts

    def records_of(tag: str) -> list:
        return [r | f"{label}{tag}{'' if i == 0 else i}" >> beam.Map(lambda x: x[1])
                for i, r in enumerate(removed_parts)]

    if specs:
        # kept + removed, combined per side: a Flatten of the records would hold them all
        # in the local runner's memory (pipelines.core.combine)
        scored = [kept, *records_of("HistRemoved")]
        out["score_histograms"] = combine_parts(scored, HistogramFn(specs), f"{label}Hist")
        # the removed records alone, drawn over the full histogram (kept vs removed)
        only = records_of("HistRemovedOnly")
        out["removed_histograms"] = combine_parts(only, HistogramFn(specs), f"{label}HistR")
    snippets = [r | f"{label}ReasonSnippet{'' if i == 0 else i}" >> beam.Map(_id_snippet)
                for i, r in enumerate(removed_parts)]
    out["removed_by_rule"] = combine_per_key_parts(
        snippets, ReasonSampleFn(examples_per_reason), f"{label}ReasonSample")
    return out


# --------------------------------------------------------------------------- rendering


_KEPT_COLOR, _REMOVED_COLOR = "#4c78a8", "#f58518"


def histogram_figures(hists: dict[str, Any], per_row: int = 3,
                      removed: dict[str, Any] | None = None) -> str:
    """One small histogram per score, thresholds drawn as red dashed lines; with ``removed``
    (histograms of the removed records only) the removed part is overlaid in orange."""
    if not hists:
        return ""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = sorted(hists)
    rows = math.ceil(len(cols) / per_row)
    # margins fixed in inches (7-8 pt labels) instead of a tight layout: measuring every
    # label of a 12-panel grid cost more than drawing it; likewise one legend for the grid
    # and at most 5 ticks per axis (per-panel legends and the default ticks were a third of
    # the drawing)
    width, height = 4.0 * per_row, 2.6 * rows
    fig, axes = plt.subplots(rows, per_row, figsize=(width, height), squeeze=False,
                             gridspec_kw={"left": 0.55 / width, "right": 1 - 0.15 / width,
                                          "bottom": 0.45 / height, "top": 1 - 0.55 / height,
                                          "wspace": 0.28, "hspace": 0.62})
    for ax in axes.flat[len(cols):]:
        ax.axis("off")
    overlaid = False
    for ax, col in zip(axes.flat, cols):
        h = hists[col]
        spec = HistSpec(col, h["lo"], h["hi"], h["bins"], log=h.get("log", False))
        lo, hi = spec.edges()
        step = (hi - lo) / h["bins"] if h["bins"] else 1.0
        edges = [lo + i * step for i in range(h["bins"] + 1)]
        r = (removed or {}).get(col)
        # one filled step outline per series (not one patch per bin): the same bars, drawn
        # at a fraction of the cost
        ax.stairs(h["counts"], edges, fill=True, color=_KEPT_COLOR)
        if r and len(r.get("counts", [])) == h["bins"]:
            ax.stairs(r["counts"], edges, fill=True, color=_REMOVED_COLOR)
            overlaid = True
        for t in h.get("thresholds", []):
            ax.axvline(spec.transform(t), color="red", linestyle="--", linewidth=1.2)
        extra = f" (+{h['underflow']} below, +{h['overflow']} above range)" if (
            h["underflow"] or h["overflow"]) else ""
        ax.set_title(col + extra, fontsize=8)
        ax.set_xlabel("log10(1+x)" if spec.log else "value", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.locator_params(nbins=4)
    if overlaid:
        from matplotlib.patches import Patch

        fig.legend(handles=[Patch(color=_KEPT_COLOR, label="kept"),
                            Patch(color=_REMOVED_COLOR, label="removed")],
                   loc="upper center", bbox_to_anchor=(0.5, 1 - 0.04 / height), ncol=2,
                   fontsize=7, frameon=False)
    from pipelines.report.html import figure_html

    out = figure_html(fig, "score histograms", laid_out=True)
    plt.close(fig)
    return out


def removed_table(by_rule: dict[str, Any]) -> str:
    if not by_rule:
        return "<p>No records removed.</p>"
    rows = []
    for reason, v in sorted(by_rule.items(), key=lambda kv: (-kv[1]["count"], kv[0])):
        ex = "".join(
            f"<div class=snip><code>{html.escape(i)}</code>: {html.escape(s)}</div>"
            for i, s in v["examples"]
        )
        rows.append(
            f"<tr><td><code>{html.escape(reason)}</code></td><td>{v['count']}</td>"
            f"<td>{ex}</td></tr>"
        )
    return (
        "<table class=wrap><colgroup><col style='width:22%'><col style='width:6em'><col>"
        "</colgroup><thead><tr><th>rule</th><th>removed</th><th>examples (random, fixed seed)</th>"
        "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def render_section(title: str, stage_stats: dict[str, Any], rules_text: str = "") -> str | None:
    run = stage_stats.get("stats") or {}  # the stage's stats.json entry (Stage.report_section)
    hists = run.get("score_histograms") or {}
    removed_hists = run.get("removed_histograms") or {}
    by_rule = run.get("removed_by_rule") or {}
    would = run.get("would_remove")
    if not hists and not by_rule and not would:
        return None
    parts = [f"<h3>{html.escape(title)}</h3>"]
    if rules_text:
        parts.append(f"<p>{html.escape(rules_text)}</p>")
    if isinstance(would, dict) and would:
        items = ", ".join(f"{html.escape(str(k))}: {v}" for k, v in sorted(would.items()))
        parts.append(f"<p>Annotate-only: would remove {items}</p>")
    if isinstance(hists, dict) and hists:
        parts.append(histogram_figures(
            hists, removed=removed_hists if isinstance(removed_hists, dict) else None))
    parts.append(removed_table(by_rule if isinstance(by_rule, dict) else {}))
    return "\n".join(parts)


class ScoreReportMixin:
    """For stages: add score histograms and removed-by-rule samples to the stage's stats."""

    examples_per_reason: int = 3

    def hist_specs(self) -> list[HistSpec]:
        return []

    def rules_text(self) -> str:
        return ""

    def with_score_stats(self, result: StageResult) -> StageResult:
        label = self.label  # type: ignore[attr-defined]
        extra = score_stats(label, result.kept, result.removed, self.hist_specs(),
                            self.examples_per_reason)
        result.stats.update(extra)
        return result

    def report_section(self, stage_stats: dict[str, Any]) -> str | None:
        label = self.label  # type: ignore[attr-defined]
        return render_section(f"{label}: score distributions and removals", stage_stats,
                              self.rules_text())


# --------------------------------------------------------------------------- user score stages


class ScoreStage(ScoreReportMixin):
    """Base for a per-record score/filter stage (e.g. a plugin) that gets the standard report
    section -- a histogram per numeric score column with its thresholds marked, and the removal
    counts per rule with examples -- without any report code of its own.

    Subclass it together with :class:`pipelines.stages.record_stage.RecordStage` (``class MyStage(ScoreStage,
    RecordStage)``) and implement ``make_scorer`` as for any record stage. Histogram ranges come
    from ``score_ranges`` (column -> (lo, hi); default (0, 1)); thresholds are read from the
    stage's params by name: ``min_<column>``, ``max_<column>`` and ``<column>_threshold``.
    """

    score_ranges: dict[str, tuple[float, float]] = {}
    histogram_bins: int = 40

    def hist_specs(self) -> list[HistSpec]:
        params = self.params.model_dump()  # type: ignore[attr-defined]
        specs = []
        for column, typ in self.output_columns().items():  # type: ignore[attr-defined]
            if typ not in ("float", "float32", "float64", "int", "int32", "int64"):
                continue
            lo, hi = self.score_ranges.get(column, (0.0, 1.0))
            marks = tuple(float(params[k]) for k in
                          (f"min_{column}", f"max_{column}", f"{column}_threshold")
                          if isinstance(params.get(k), (int, float))
                          and not isinstance(params.get(k), bool))
            specs.append(HistSpec(column, lo, hi, self.histogram_bins, marks))
        return specs

    def expand(self, records: Any) -> StageResult:
        return self.with_score_stats(super().expand(records))  # type: ignore[misc]
