"""Deterministic sharded writers (Parquet and JSONL) whose memory does not grow with the data.

Beam's file sinks assign records to shards arbitrarily, so two runs (or 1 vs 2 workers) give
different files. Here a record's shard is ``xxh64(sort key) % num_shards`` and every shard is
sorted by that key (rows with equal keys by their full JSON content), so the same records
always produce byte-identical files. Every shard index is written, empty or not, so the file
set is fixed by ``num_shards``.

Memory is bounded by the work in flight, not by the shard or the corpus (an external sort):

1. ``Spill``: each worker buffers incoming rows, each pickled on arrival (bytes: ~1x its text,
   where a row as Python objects is 3-4x) with its sort key, up to ``spill_bytes``, sorts the
   buffer per shard by key and writes it as one sorted *run* file (pickle frames of
   ``(key, row bytes)``) next to the output (``<prefix>-runs/``); only the run's path crosses
   the shuffle;
2. ``Merge``: per shard, the run files are merged (``heapq.merge`` on the keys) and streamed
   into the shard file (Parquet row groups of ``row_group_size`` rows and at most
   ``ROW_GROUP_BYTES`` of text, built from Arrow record batches of ``BATCH_ROWS`` rows so that
   only one batch exists as Python rows; or one gzip stream), then deleted. A worker holds one
   frame per run plus one row group as Arrow arrays.

The local runner materializes every PCollection that crosses a shuffle in memory; with this
layout that is only run paths, never the rows themselves.
"""

from __future__ import annotations

import gzip
import heapq
import io
import itertools
import json
import pickle
import re
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from operator import itemgetter
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam import pvalue
from apache_beam.transforms.window import GlobalWindows

from pipelines.core.memory import release_free_memory
from pipelines.core.spill import (
    DeleteFiles, approx_size, read_spill, run_file, run_folder, write_spill)

ROW_GROUP_SIZE = 50_000
# text per Parquet row group (with at most ROW_GROUP_SIZE rows): the writer holds a group as an
# Arrow table plus its encoded pages (~1.5x its text) and one batch of BATCH_ROWS Python rows,
# so a byte bound keeps a merge worker's group at ~50 MB whatever the document length
ROW_GROUP_BYTES = 32 << 20
BATCH_ROWS = 1024  # rows converted to Arrow at a time while a row group is assembled
_END = object()
SPILL_BYTES = 64 << 20  # text buffered per worker before a sorted run is written


def shard_name(prefix: str, index: int, total: int, ext: str, partition: str | None = None) -> str:
    folder = f"{prefix}/{partition}" if partition else prefix
    return f"{folder}/part-{index:05d}-of-{total:05d}{ext}"


_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def partition_dir(column: str, value: Any) -> str:
    """Folder name of a partition, e.g. ``language-en`` (unsafe characters become ``_``).

    Not Hive-style ``language=en`` on purpose: the files keep the column itself, and a Hive
    folder would make pandas/pyarrow/duckdb add a second ``language`` column of another type
    (dictionary) while ``datasets`` drops it; with plain folder names every reader sees the
    column exactly as written."""
    text = "__null__" if value is None or value == "" else _SAFE.sub("_", str(value))[:100]
    return f"{column}-{text}"


def partition_shards(rows: int, max_shards: int, rows_per_shard: int) -> int:
    """Shards for a partition of ``rows`` records: enough for ``rows_per_shard`` each, at most
    ``max_shards`` (``output.shards``), at least one."""
    return max(1, min(max_shards, -(-rows // rows_per_shard)))


def _write_bytes(path: str, data: bytes) -> None:
    with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as fh:
        fh.write(data)


def parquet_bytes(rows: list[dict], schema: pa.Schema, row_group_size: int = ROW_GROUP_SIZE) -> bytes:
    """The bytes :func:`write_parquet_stream` writes for ``rows`` (same row groups)."""
    buf = io.BytesIO()
    if not rows:
        pq.write_table(pa.Table.from_pylist([], schema=schema), buf, compression="zstd")
    else:
        _write_row_groups(buf, iter(rows), schema, row_group_size)
    return buf.getvalue()


def _next_group(it: Iterator, schema: pa.Schema, max_rows: int) -> tuple[list, int]:
    """The next row group as Arrow record batches, and its row count: up to ``max_rows`` rows
    and about ``ROW_GROUP_BYTES`` of text (:func:`~pipelines.core.spill.approx_size`; the row
    that reaches the bound is the group's last, so a group has at least one row), converted
    ``BATCH_ROWS`` at a time, so the group never exists as Python rows all at once."""
    batches, chunk, rows, size = [], [], 0, 0
    for x in it:
        chunk.append(x)
        rows += 1
        size += approx_size(x)
        if rows >= max_rows or size >= ROW_GROUP_BYTES:
            break
        if len(chunk) >= BATCH_ROWS:
            batches.append(pa.RecordBatch.from_pylist(chunk, schema=schema))
            chunk = []
    if chunk:
        batches.append(pa.RecordBatch.from_pylist(chunk, schema=schema))
    return batches, rows


def _write_row_groups(fh, it: Iterator, schema: pa.Schema, row_group_size: int) -> int:
    n = 0
    with pq.ParquetWriter(fh, schema, compression="zstd") as writer:
        batches, rows = _next_group(it, schema, row_group_size)
        while rows:
            writer.write_table(pa.Table.from_batches(batches, schema=schema),
                               row_group_size=row_group_size)
            n += rows
            batches, rows = _next_group(it, schema, row_group_size)
    return n


def _json_default(v: Any) -> str:
    """JSON for values json cannot write: timestamps (and dates) in ISO 8601
    (``2024-01-02T01:00:05+00:00``), anything else as ``str``."""
    iso = getattr(v, "isoformat", None)
    return iso() if callable(iso) else str(v)


def _json_line(r: Any) -> str:
    return json.dumps(r, ensure_ascii=False, sort_keys=True, default=_json_default) + "\n"


def jsonl_gz_bytes(rows: list[Any]) -> bytes:
    body = "".join(_json_line(r) for r in rows).encode("utf-8")
    # mtime=0: identical bytes on every run; level 6 is ~3x faster than the default 9
    return gzip.compress(body, compresslevel=6, mtime=0)


def write_parquet_stream(path: str, rows: Iterable[dict], schema: pa.Schema,
                         row_group_size: int = ROW_GROUP_SIZE) -> int:
    """Stream ``rows`` into one Parquet file, one row group at a time. The bytes equal
    ``parquet_bytes(list(rows), schema, row_group_size)``. Returns the row count."""
    it = iter(rows)
    first = next(it, _END)
    if first is _END:
        _write_bytes(path, parquet_bytes([], schema, row_group_size))
        return 0
    with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as fh:
        return _write_row_groups(fh, itertools.chain([first], it), schema, row_group_size)


def write_jsonl_gz_stream(path: str, rows: Iterable[Any], lines_per_write: int = 1024) -> int:
    """Stream ``rows`` as gzip-compressed JSON lines; bytes equal ``jsonl_gz_bytes``
    (one deflate stream, level 6, zero mtime)."""
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)
    n = 0
    with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as fh:
        it = iter(rows)
        while True:
            chunk = _take(it, lines_per_write)
            if not chunk:
                break
            n += len(chunk)
            fh.write(comp.compress("".join(_json_line(r) for r in chunk).encode("utf-8")))
        fh.write(comp.flush())
    return n


def _take(it: Iterator, n: int) -> list:
    out = []
    for x in it:
        out.append(x)
        if len(out) >= n:
            break
    return out


def _stable(r: Any) -> str:
    return json.dumps(r, sort_keys=True, ensure_ascii=False, default=_json_default)


def deterministic_sort(items: Any, key: Callable[[Any], Any]) -> list:
    """Sort by ``key``; only items whose keys tie are ordered by their full content
    (serializing every row just for rare ties would dominate the sort)."""
    rows = sorted(items, key=key)
    keys = [key(r) for r in rows]
    if any(keys[i] == keys[i + 1] for i in range(len(keys) - 1)):
        rows.sort(key=lambda r: (key(r), _stable(r)))
    return rows


def order_ties(rows: Iterable[Any], key: Callable[[Any], Any]) -> Iterator[Any]:
    """Rows already sorted by ``key``: order each run of equal keys by full content (the
    streaming counterpart of :func:`deterministic_sort`)."""
    group: list = []
    gk: Any = None
    for r in rows:
        k = key(r)
        if group and k != gk:
            yield from group if len(group) == 1 else sorted(group, key=_stable)
            group = []
        gk = k
        group.append(r)
    if group:
        yield from group if len(group) == 1 else sorted(group, key=_stable)


# --------------------------------------------------------------------------- sorted runs


# output type declared: Beam's inference of it cost ~0.3 CPU s per sink at graph construction
@beam.typehints.with_output_types(Any)
class _SpillSortedRuns(beam.DoFn):
    """rows -> ``(shard key, run path)``: sorted runs of at most ``spill_bytes`` each.

    A row is buffered as ``(sort key, pickled row)``: bytes cost about their text where a row
    of Python objects costs 3-4x, and the run is written without pickling the rows again."""

    def __init__(self, run_dir: str, total: int, sort_key: Callable[[Any], str],
                 partition_by: str | None, spill_bytes: int):
        self._dir, self._n, self._key = run_dir, total, sort_key
        self._col, self._limit = partition_by, spill_bytes

    def start_bundle(self) -> None:
        self._buf: dict[Any, list] = {}
        self._size = 0

    def _shard(self, r: Any, key: str) -> Any:
        idx = xxhash.xxh64_intdigest(key.encode("utf-8")) % self._n
        return (partition_dir(self._col, r.get(self._col)), idx) if self._col else idx

    def process(self, r):
        key = self._key(r)
        data = pickle.dumps(r, protocol=5)
        self._buf.setdefault(self._shard(r, key), []).append((key, data))
        self._size += 64 + len(data)
        if self._size >= self._limit:
            yield from self._flush()

    def finish_bundle(self):
        for item in self._flush():
            yield GlobalWindows.windowed_value(item)

    def _flush(self):
        buf, self._buf, self._size = self._buf, {}, 0
        batch = uuid.uuid4().hex
        rows: list = []
        for shard in sorted(buf, key=str):
            rows = buf.pop(shard)
            rows.sort(key=itemgetter(0))  # stable: equal keys keep their arrival order
            name = shard if not isinstance(shard, tuple) else (
                f"{shard[1]}-{xxhash.xxh64_hexdigest(shard[0].encode('utf-8'))}")
            path = run_file(self._dir, name, batch)
            write_spill(path, rows)
            # partitioned: the row count sizes the partition's shards (_PartitionShard)
            yield (shard, (path, len(rows)) if isinstance(shard, tuple) else path)
        if rows:
            rows = None
            release_free_memory()  # the sort buffer's rows, freed: back to the OS


class _PartitionShard(beam.DoFn):
    """``((partition, fine index), (run, rows))`` -> ``((partition, index, shards), run)``.

    Runs are spilled under ``num_shards`` fine indices per partition; once the partition's
    record count is known (a side input summed from the runs' row counts: no record waits for
    it), fine index ``f`` goes to shard ``f % k`` of ``k = partition_shards(...)``, so a small
    partition gets one file instead of ``num_shards`` tiny ones, deterministically."""

    def __init__(self, total: int, rows_per_shard: int):
        self._n, self._per = total, rows_per_shard

    def process(self, item, sizes):
        (part, fine), (run, _rows) = item
        k = partition_shards(sizes.get(part, 1), self._n, self._per)
        yield ((part, fine % k, k), run)


class _MergeShard(beam.DoFn):
    def __init__(self, prefix: str, total: int, fmt: str, sort_key: Callable[[Any], str],
                 schema: pa.Schema | None, row_group_size: int):
        self._prefix, self._total, self._fmt = prefix, total, fmt
        self._sort_key, self._schema = sort_key, schema
        self._rgs = row_group_size

    def process(self, item):
        key, groups = item
        partition, index, total = key if isinstance(key, tuple) else (None, key, self._total)
        runs = sorted(groups["runs"])
        merged = heapq.merge(*(read_spill(p) for p in runs), key=itemgetter(0))
        rows = order_ties((pickle.loads(data) for _key, data in merged), self._sort_key)
        if self._fmt == "parquet":
            path = shard_name(self._prefix, index, total, ".parquet", partition)
            n = write_parquet_stream(path, rows, self._schema, self._rgs)
        else:
            path = shard_name(self._prefix, index, total, ".jsonl.gz", partition)
            n = write_jsonl_gz_stream(path, rows)
        release_free_memory()  # the shard's row groups, freed: back to the OS
        yield {"path": path, "rows": n}
        for run in runs:
            yield pvalue.TaggedOutput("merged", run)


class WriteSortedShards(beam.PTransform):
    """Write a PCollection (or a tuple of them: the rows of all) to ``num_shards``
    deterministic files under ``prefix``.

    With ``partition_by`` (a column name) records are split into one folder per value
    (``language-en/part-...``; the files keep the column), each with as many shards as its
    record count needs at ``rows_per_shard`` records per shard, at most ``num_shards``; only
    non-empty shards are written.
    Without ``partition_by`` a record's shard is ``xxh64(sort key) % num_shards``; shards no
    record falls into are not written (an output with no rows gets an empty shard 0).
    Output: one ``{"path", "rows"}`` dict per shard written (for manifests and checks).
    Temporary sorted runs live in ``<prefix>-runs/`` and are deleted once merged.
    """

    def __init__(self, prefix: str, num_shards: int, fmt: str = "parquet",
                 sort_key: Callable[[Any], str] = lambda r: r["id"],
                 schema: pa.Schema | None = None, partition_by: str | None = None,
                 spill_bytes: int | None = None, row_group_size: int = ROW_GROUP_SIZE,
                 rows_per_shard: int = 100_000):
        super().__init__()
        if fmt not in ("parquet", "jsonl"):
            raise ValueError(f"unknown format {fmt!r}")
        if fmt == "parquet" and schema is None:
            raise ValueError("parquet shards need a schema")
        spill_bytes = SPILL_BYTES if spill_bytes is None else spill_bytes
        if spill_bytes < 1 or row_group_size < 1:
            raise ValueError("spill_bytes and row_group_size must be >= 1")
        self._prefix, self._n, self._fmt = prefix.rstrip("/"), num_shards, fmt
        self._sort_key, self._schema = sort_key, schema
        self._partition_by = partition_by
        self._spill, self._rgs = spill_bytes, row_group_size
        self._per_shard = rows_per_shard

    def expand(self, pcoll):
        n, col = self._n, self._partition_by
        spill = _SpillSortedRuns(run_folder(self._prefix), n, self._sort_key, col, self._spill)
        if isinstance(pcoll, (list, tuple)):
            # several inputs (e.g. each stage's removed rows): spill each one where it is
            # produced (fused into its producer's step) and flatten only the run paths; a
            # Flatten of the rows themselves would be held in memory by the local runner
            # until its last producer finished
            inputs = list(pcoll)
            if not inputs:
                raise ValueError("WriteSortedShards needs at least one input PCollection")
            pipeline = inputs[0].pipeline
            runs = [pc | f"Spill[{i}]" >> beam.ParDo(spill) for i, pc in enumerate(inputs)]
            runs = runs[0] if len(runs) == 1 else tuple(runs) | "Runs" >> beam.Flatten()
        else:
            pipeline = pcoll.pipeline
            runs = pcoll | "Spill" >> beam.ParDo(spill)
        if col:  # records per partition, summed from the (few) runs, size its shards
            sizes = (runs
                     | "RunRows" >> beam.Map(lambda kv: (kv[0][0], kv[1][1]))
                     | "PartitionRows" >> beam.CombinePerKey(sum))
            runs = runs | "ToShard" >> beam.ParDo(
                _PartitionShard(n, self._per_shard), beam.pvalue.AsDict(sizes))
        # only shards that hold rows are written (at most one file per record, whatever
        # num_shards says); an unpartitioned output with no rows at all gets one empty shard 0
        # that carries the schema
        if col:
            indices = pipeline | "NoEmptyShard" >> beam.Create([])
        else:
            indices = (runs
                       | "CountRuns" >> beam.combiners.Count.Globally()
                       | "EmptyShard" >> beam.FlatMap(lambda c: [] if c else [(0, None)]))
        written = (
            {"runs": runs, "slot": indices}
            | "Group" >> beam.CoGroupByKey()
            | "Write" >> beam.ParDo(_MergeShard(self._prefix, n, self._fmt, self._sort_key,
                                                self._schema, self._rgs)).with_outputs(
                "merged", main="shards")
        )
        written.merged | "DeleteRuns" >> DeleteFiles()
        return written.shards


def to_output_row(record: dict, columns: list[str]) -> dict:
    """Keep only the declared output columns (missing ones become null)."""
    return {c: record.get(c) for c in columns}
