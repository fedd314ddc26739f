"""Stage ``exact_dedup``: keep one record per identical (canonicalized) text.

Text never crosses a shuffle and memory does not grow with the corpus:

1. ``KeySpill`` (one pass, fused with the stages before): every record gets its content key
   (128-bit xxh3 of the canonical text) and is appended to a spill file
   (:mod:`pipelines.spill`); what goes on is only ``(key, candidate)``, where the candidate is
   ``(representative rank, text hash, source, spill file id, position)``;
2. ``Best``: a lifted combine per key finds the smallest candidate and the number of copies;
   only keys with more than one copy are kept, as a side input (``key -> winner position,
   count``): its size is the number of duplicate groups, not of documents;
3. ``Decide``: the spill files are streamed back; a record is kept when its key has no
   duplicate or its position is the winner's; the others are removed with reason
   ``duplicate``. Spill files are deleted after a Reshuffle (once ``Decide`` has committed).

Which copy survives is fixed by ``keep`` (``filters.text_hash.representative_key``: a total
order whose last field is the id). Copies with the same rank, same text and same source are
the same record (same id, text, source; score columns are functions of them), so the position
only picks which of identical copies is written: the output does not depend on worker count or
order. ``dup_count`` on the survivor says how many copies the group had.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

import apache_beam as beam
import xxhash
from apache_beam import pvalue
from apache_beam.transforms.window import GlobalWindows
from pydantic import Field, model_validator

from filters.text_hash import canonical, representative_key
from pipelines.records import dead_letter
from pipelines.spill import DeleteFiles, approx_size, read_spill, write_spill
from pipelines.stage import Stage, StageParams, StageResult, register_stage

SPILL_BYTES = 8 << 20  # text per spill file: several files per worker, so reading them back
# is spread over workers (the local runner splits a step's input evenly by element count)


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


@beam.typehints.with_output_types(Any)  # tagged outputs mixed in: no inference
class _KeySpill(beam.DoFn):
    """record -> ``(key, candidate)``; records go to spill files (tag ``spill``: paths)."""

    def __init__(self, p: ExactDedupParams, label: str, spill_dir: str,
                 spill_bytes: int = SPILL_BYTES):
        self._p, self._label, self._dir, self._limit = p, label, spill_dir, spill_bytes

    def start_bundle(self) -> None:
        self._new_file()

    def _new_file(self) -> None:
        self._file = uuid.uuid4().int & 0xFFFFFFFFFFFFFFFF
        self._rows: list = []
        self._size = 0

    def process(self, r):
        try:
            text = r["text"]
            key = xxhash.xxh3_128_digest(canonical(text, self._p.canonicalize).encode("utf-8"))
            rank = representative_key(r, self._p.keep, self._p.score_column)
            tie = (xxhash.xxh3_64_intdigest(text.encode("utf-8")), str(r.get("source")))
        except Exception as e:  # noqa: BLE001
            yield pvalue.TaggedOutput("dead", dead_letter(
                self._label, f"exception: {type(e).__name__}: {e}", r))
            return
        yield (key, (rank, tie, self._file, len(self._rows)))
        self._rows.append((key, r))
        self._size += approx_size(r)
        if self._size >= self._limit:
            yield pvalue.TaggedOutput("spill", self._flush())

    def _flush(self) -> str:
        path = spill_path(self._dir, self._file)
        write_spill(path, self._rows)
        self._new_file()
        return path

    def finish_bundle(self):
        if self._rows:
            yield pvalue.TaggedOutput("spill", GlobalWindows.windowed_value(self._flush()))


def spill_path(folder: str, file_id: int) -> str:
    return f"{folder}/spill-{file_id:016x}.bin"


def spill_id(path: str) -> int:
    return int(path.rsplit("spill-", 1)[1][:16], 16)


class _Best(beam.CombineFn):
    """``(smallest candidate, number of copies)``."""

    def create_accumulator(self):
        return None

    def add_input(self, acc, value):
        if acc is None:
            return (value, 1)
        return (min(acc[0], value), acc[1] + 1)

    def merge_accumulators(self, accs):
        out = None
        for a in accs:
            if a is None:
                continue
            out = a if out is None else (min(out[0], a[0]), out[1] + a[1])
        return out

    def extract_output(self, acc):
        return acc


@beam.typehints.with_output_types(Any)
class _Decide(beam.DoFn):
    """spill path -> kept records (with ``dup_count``) and removed duplicates."""

    def process(self, path, dups):
        file_id = spill_id(path)
        for pos, (key, r) in enumerate(read_spill(path)):
            winner = dups.get(key)
            if winner is None:
                out = dict(r)
                out["dup_count"] = 1
                yield out
            elif winner[0] == file_id and winner[1] == pos:
                out = dict(r)
                out["dup_count"] = winner[2]
                yield out
            else:
                yield pvalue.TaggedOutput("removed", ("duplicate", r))
        yield pvalue.TaggedOutput("consumed", path)


def _winner_row(item):
    key, ((_rank, _tie, file_id, pos), count) = item
    return key, (file_id, pos, count)


@register_stage
class ExactDedupStage(Stage):
    name = "exact_dedup"
    Params = ExactDedupParams
    description = "Remove exact duplicates (after canonicalization), keeping one per group."

    def output_columns(self) -> dict[str, str]:
        return {"dup_count": "int64"}

    def spill_dir(self) -> str:
        return f"{self.ctx.output_dir.rstrip('/')}/_staging/spill/{self.label}-{uuid.uuid4().hex}"

    def expand(self, records) -> StageResult:
        p: ExactDedupParams = self.params  # type: ignore[assignment]
        keyed = records | "KeySpill" >> beam.ParDo(
            _KeySpill(p, self.label, self.spill_dir(), SPILL_BYTES)).with_outputs(
                "dead", "spill", main="kv")
        dups = (
            keyed.kv
            | "Best" >> beam.CombinePerKey(_Best())
            | "OnlyDuplicated" >> beam.Filter(lambda kv: kv[1][1] > 1)
            | "Winner" >> beam.Map(_winner_row)
        )
        decided = keyed.spill | "Decide" >> beam.ParDo(
            _Decide(), beam.pvalue.AsDict(dups)).with_outputs("removed", "consumed", main="kept")
        decided.consumed | "DeleteSpill" >> DeleteFiles()
        return StageResult(kept=decided.kept, removed=decided.removed, dead=keyed.dead)
