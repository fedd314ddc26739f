"""Per-record stages: :class:`RecordStage` adapts a ``filters.base.RecordScorer`` to Beam
(batches, dead-letter isolation, annotate-only) and :class:`FusedRecordStages` runs consecutive
per-record stages on the same batches."""


from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import apache_beam as beam
from apache_beam import pvalue
from pydantic import Field

from filters.base import Decision, RecordScorer
from pipelines.core import progress
from pipelines.core.metrics import StageTimer
from pipelines.core.records import dead_letter
from pipelines.stages.base import (
    DEAD,
    FLAGGED,
    KEPT,
    NOTES,
    REMOVED,
    Stage,
    StageContext,
    StageParams,
    StageResult,
)

# --------------------------------------------------------------------------- record stages


class RecordStageParams(StageParams):
    annotate_only: bool = Field(
        default=False,
        description="Compute and store the scores but drop nothing; would-be drops are counted "
        "in stats under 'would_remove'.",
    )
    batch_size: int = Field(
        default=256, ge=1, le=100_000, description="Records handed to the scorer per call."
    )


class _ScoreBatches(beam.DoFn):
    """Runs a RecordScorer over batches; isolates failures; routes kept/removed/dead."""

    def __init__(self, stage_label: str, make_scorer: Any, annotate_only: bool):
        self._label = stage_label
        self._make_scorer = make_scorer
        self._annotate_only = annotate_only
        self._scorer: RecordScorer | None = None
        self._timer = StageTimer(stage_label)  # per-stage runtime on every runner

    def setup(self) -> None:
        self._scorer = self._make_scorer()
        self._scorer.setup()

    def teardown(self) -> None:
        if self._scorer is not None:
            self._scorer.teardown()

    def _decide(self, batch: Sequence[dict]) -> list[tuple[dict, Decision | None, str | None]]:
        assert self._scorer is not None
        try:
            decisions = self._scorer.process_batch(batch)
            if len(decisions) != len(batch):
                raise RuntimeError(
                    f"scorer returned {len(decisions)} decisions for {len(batch)} records"
                )
            return [(r, d, None) for r, d in zip(batch, decisions)]
        except Exception:  # noqa: BLE001 - isolate the failing records one by one
            out: list[tuple[dict, Decision | None, str | None]] = []
            for r in batch:
                try:
                    out.append((r, self._scorer.process(r), None))
                except Exception as e:  # noqa: BLE001
                    out.append((r, None, f"exception: {type(e).__name__}: {e}"))
            return out

    def finish_bundle(self) -> None:
        progress.flush()

    def process(self, batch: Sequence[dict]):
        with self._timer:
            results = self._decide(batch)
        progress.add(f"stage/{self._label}/in", len(results))
        notes = [d.note for _r, d, _e in results if getattr(d, "note", None) is not None]
        if notes:
            yield pvalue.TaggedOutput(NOTES, notes)
        for record, decision, error in results:
            if decision is None:
                yield pvalue.TaggedOutput(
                    DEAD, dead_letter(self._label, error or "exception", record)
                )
                continue
            out = dict(record)
            out.update(decision.columns)
            if decision.drop is None:
                yield out
            elif self._annotate_only:
                yield pvalue.TaggedOutput(FLAGGED, decision.drop)
                yield out
            else:
                yield pvalue.TaggedOutput(REMOVED, (decision.drop, out))


class RecordStage(Stage):
    """A stage that scores/filters each record independently with a ``RecordScorer``."""

    Params: ClassVar[type[StageParams]] = RecordStageParams

    def make_scorer(self) -> RecordScorer:  # pragma: no cover - abstract
        raise NotImplementedError

    def scorer_factory(self) -> Any:
        """A picklable zero-argument callable building the scorer on the worker."""
        return _BoundFactory(self)

    def output_columns(self) -> dict[str, str]:
        return dict(self.make_scorer().columns)

    def note_stats(self, notes: Any) -> dict[str, Any]:
        """Stats PCollections (name -> one small value) from ``notes``, the PCollection of the
        scorer's ``Decision.note`` values (one list per batch). Transform labels must contain
        ``self.label`` (fused stages share a scope). Default: no notes, no stats."""
        return {}

    def expand(self, records: Any) -> StageResult:
        p: RecordStageParams = self.params  # type: ignore[assignment]
        outs = (
            records
            | "Batch" >> beam.BatchElements(min_batch_size=p.batch_size, max_batch_size=p.batch_size)
            | "Score"
            >> beam.ParDo(
                _ScoreBatches(self.label, self.scorer_factory(), p.annotate_only)
            ).with_outputs(REMOVED, DEAD, FLAGGED, NOTES, main=KEPT)
        )
        stats = dict(self.note_stats(outs[NOTES]))
        if p.annotate_only:
            stats["would_remove"] = (
                outs[FLAGGED]
                | "CountFlagged" >> beam.combiners.Count.PerElement()
                | "FlaggedDict" >> beam.combiners.ToDict()
            )
        return StageResult(kept=outs[KEPT], removed=outs[REMOVED], dead=outs[DEAD], stats=stats)


class _BoundFactory:
    """Pickles the stage's params (not the live stage) and rebuilds the scorer on a worker."""

    def __init__(self, stage: RecordStage):
        self._cls = type(stage)
        self._params = stage.params
        self._ctx = StageContext(
            label=stage.ctx.label,
            index=stage.ctx.index,
            output_dir=stage.ctx.output_dir,
            columns=dict(stage.ctx.columns),
            config=None,
        )

    def __call__(self) -> RecordScorer:
        return self._cls(self._params, self._ctx).make_scorer()


# --------------------------------------------------------------------------- fused record stages


class _ScoreFused(beam.DoFn):
    """Several RecordScorers applied one after the other to each batch: the records a stage
    keeps go straight into the next scorer, with no Beam element boundary in between.
    Removed / dead / flagged outputs are tagged per stage (``removed<i>``, ``dead<i>``,
    ``flagged<i>``), so accounting stays per stage."""

    def __init__(self, parts: list[_ScoreBatches]):
        self._parts = parts

    def setup(self) -> None:
        for part in self._parts:
            part.setup()

    def teardown(self) -> None:
        for part in self._parts:
            part.teardown()

    def finish_bundle(self) -> None:
        progress.flush()

    def process(self, batch: Sequence[dict]):
        current = list(batch)
        for i, part in enumerate(self._parts):
            if not current:
                return
            survivors = []
            for out in part.process(current):
                if isinstance(out, pvalue.TaggedOutput):
                    yield pvalue.TaggedOutput(f"{out.tag}{i}", out.value)
                else:
                    survivors.append(out)
            current = survivors
        yield from current


class FusedRecordStages(beam.PTransform):
    """Apply consecutive :class:`RecordStage` s as one batched ParDo.

    Output: a list with one dict per stage (``kept``, ``removed``, ``dead`` and ``stat:<name>``
    PCollections, as ``_StageScope`` in the graph returns them); ``kept`` is only set for the
    last stage (the records that survive all of them). Batches use the first stage's
    ``batch_size``. Outputs are identical to applying the stages one by one: every scorer sees
    exactly the records the previous one kept, in batches.
    """

    def __init__(self, stages: Sequence[RecordStage]):
        super().__init__()
        if not stages or not all(isinstance(s, RecordStage) for s in stages):
            raise TypeError("FusedRecordStages needs one or more RecordStage instances")
        self._stages = list(stages)

    def expand(self, records):
        stages = self._stages
        size = stages[0].params.batch_size  # type: ignore[attr-defined]
        parts = [_ScoreBatches(s.label, s.scorer_factory(), s.params.annotate_only)  # type: ignore[attr-defined]
                 for s in stages]
        tags = [f"{t}{i}" for i in range(len(stages)) for t in (REMOVED, DEAD, FLAGGED, NOTES)]
        outs = (
            records
            | "Batch" >> beam.BatchElements(min_batch_size=size, max_batch_size=size)
            | "Score" >> beam.ParDo(_ScoreFused(parts)).with_outputs(*tags, main=KEPT)
        )
        result = []
        for i, s in enumerate(stages):
            res: dict[str, Any] = {"kept": outs[KEPT] if i == len(stages) - 1 else None,
                                   "removed": outs[f"{REMOVED}{i}"], "dead": outs[f"{DEAD}{i}"]}
            for name, pc in s.note_stats(outs[f"{NOTES}{i}"]).items():
                res[f"stat:{name}"] = pc
            if s.params.annotate_only:  # type: ignore[attr-defined]
                res["stat:would_remove"] = (
                    outs[f"{FLAGGED}{i}"]
                    | f"CountFlagged[{s.label}]" >> beam.combiners.Count.PerElement()
                    | f"FlaggedDict[{s.label}]" >> beam.combiners.ToDict())
            result.append(res)
        return result


def fusible_runs(stages: Sequence[Stage], checkpoints: Sequence[bool]) -> list[list[int]]:
    """Group stage indices into runs to apply together: consecutive plain RecordStages (same
    ``expand`` as the base class, so no custom Beam code) form one run; a stage that writes a
    checkpoint ends its run (its own kept records must exist); every other stage is alone."""
    runs: list[list[int]] = []
    for i, st in enumerate(stages):
        prev = runs[-1] if runs else None
        if _plain(st) and prev and not checkpoints[i - 1] and _plain(stages[prev[-1]]):
            prev.append(i)
        else:
            runs.append([i])
    return runs


def _plain(st: Stage) -> bool:
    return isinstance(st, RecordStage) and type(st).expand is RecordStage.expand
