"""Stage ``exact_dedup``: keep one record per identical (canonicalized) text.

Scalable two-pass plan, safe with hot keys (one text repeated millions of times):
1. every record -> (content key, representative rank); a combiner (lifted, so partial minima are
   computed before the shuffle) finds the winning rank per key;
2. winners are joined back by ``(record id, content key)`` -- groups of 1-2 elements -- so no
   worker ever holds all copies of a popular text.
Duplicates are removed with reason ``duplicate``; ``dup_count`` on the survivor says how many
copies the group had.
"""

from __future__ import annotations

from typing import Literal

import apache_beam as beam
from apache_beam import pvalue
from pydantic import Field, model_validator

from filters.text_hash import content_key, representative_key
from pipelines.records import dead_letter
from pipelines.sinks import deterministic_sort
from pipelines.stage import Stage, StageParams, StageResult, register_stage


class ExactDedupParams(StageParams):
    stage: Literal["exact_dedup"]
    canonicalize: Literal["none", "whitespace", "lower"] = Field(
        default="whitespace", description="Text canonicalization before hashing.")
    keep: Literal["lowest_id", "longest", "highest_score"] = "lowest_id"
    score_column: str | None = Field(default=None, description="Column for keep: highest_score.")

    @model_validator(mode="after")
    def _score(self):
        if self.keep == "highest_score" and not self.score_column:
            raise ValueError("keep: highest_score needs score_column (the column to maximize)")
        return self


class _Key(beam.DoFn):
    def __init__(self, p: ExactDedupParams, label: str):
        self._p, self._label = p, label

    def process(self, r):
        try:
            key = content_key(r["text"], self._p.canonicalize)
            rank = representative_key(r, self._p.keep, self._p.score_column)
        except Exception as e:  # noqa: BLE001
            yield pvalue.TaggedOutput("dead", dead_letter(
                self._label, f"exception: {type(e).__name__}: {e}", r))
            return
        yield (key, (rank, r))


class _Decide(beam.DoFn):
    def process(self, item):
        _, groups = item
        winner = groups["winner"]
        for _key, (rank, r) in deterministic_sort(groups["rec"], lambda kr: kr[1][0]):
            if winner and winner[0][0] == rank and winner[0][1] == r["id"]:
                out = dict(r)
                out["dup_count"] = winner[0][2]
                winner = []  # identical (id, text) repeated: only the first copy wins
                yield out
            else:
                yield pvalue.TaggedOutput("removed", ("duplicate", r))


class _Best(beam.CombineFn):
    """(rank, id, count): the smallest rank and the number of copies."""

    def create_accumulator(self):
        return None

    def add_input(self, acc, value):
        rank, rid = value
        if acc is None:
            return (rank, rid, 1)
        best = min((acc[0], acc[1]), (rank, rid))
        return (best[0], best[1], acc[2] + 1)

    def merge_accumulators(self, accs):
        out = None
        for a in accs:
            if a is None:
                continue
            if out is None:
                out = a
            else:
                best = min((out[0], out[1]), (a[0], a[1]))
                out = (best[0], best[1], out[2] + a[2])
        return out

    def extract_output(self, acc):
        return acc


@register_stage
class ExactDedupStage(Stage):
    name = "exact_dedup"
    Params = ExactDedupParams
    description = "Remove exact duplicates (after canonicalization), keeping one per group."

    def output_columns(self) -> dict[str, str]:
        return {"dup_count": "int64"}

    def expand(self, records) -> StageResult:
        p: ExactDedupParams = self.params  # type: ignore[assignment]
        keyed = records | "Key" >> beam.ParDo(_Key(p, self.label)).with_outputs("dead", main="kv")
        kv = keyed["kv"]
        winners = (
            kv
            | "RankId" >> beam.MapTuple(lambda k, rr: (k, (rr[0], rr[1]["id"])))
            | "Best" >> beam.CombinePerKey(_Best())
            | "ByWinner" >> beam.MapTuple(lambda k, best: ((best[1], k), best))
        )
        by_id = kv | "ById" >> beam.MapTuple(lambda k, rr: ((rr[1]["id"], k), (k, rr)))
        decided = (
            {"rec": by_id, "winner": winners}
            | "Join" >> beam.CoGroupByKey()
            | "Decide" >> beam.ParDo(_Decide()).with_outputs("removed", main="kept")
        )
        return StageResult(kept=decided["kept"], removed=decided["removed"], dead=keyed["dead"])
