"""Sources: JSONL (plain, .gz, .zst, .bz2), Parquet and Hugging Face ``datasets``.

Each source becomes a PTransform whose main output is records (``id``, ``text``, ``source``) and
whose ``dead`` output holds every line/row that could not be turned into a record, with a
reason. One line or row of input is exactly one record or one dead-letter row, so the build
can check ``input = kept + removed + dead_letter``. Blank lines in JSONL are not records.

Parallelism: files are distributed across workers (a file is read by one worker, streamed, so
very large single files should be split upstream); a ``datasets`` source is read in
``hf_shards`` contiguous row ranges. Globs are expanded once when the graph is built, so the
file list is recorded in the manifest and the same files are read on every worker.

Ids: the ``id_field`` value when configured (string or integer), otherwise
``<path relative to the glob's base directory>:<line or row number>`` (1-based lines, 0-based
rows), which is stable across machines and runs for the same files.
"""

from __future__ import annotations

import glob as globlib
import json
import os
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipelines import progress
from pipelines.config import ConfigError, SourceConfig
from pipelines.records import dead_letter

DEAD = "dead"
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class InputFile:
    path: str
    rel: str  # path relative to the glob's base directory (used in ids)
    size: int
    mtime: float


def _glob_base(pattern: str) -> str:
    parts = pattern.replace("\\", "/").split("/")
    base: list[str] = []
    for part in parts:
        if _GLOB_CHARS & set(part):
            break
        base.append(part)
    else:
        base = base[:-1]  # a plain file: its directory is the base
    return "/".join(base) or "."


def expand_files(src: SourceConfig, index: int) -> list[InputFile]:
    """Resolve a source's path/glob/directory to a sorted file list (raises ConfigError)."""
    pattern = src.path
    if "://" not in pattern and os.path.isdir(pattern):
        suffixes = {
            "jsonl": (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".jsonl.zst", ".jsonl.bz2"),
            "parquet": (".parquet",),
        }.get(src.type, ("",))
        pattern = os.path.join(pattern, "**", "*")
        matched = [
            p
            for p in globlib.glob(pattern, recursive=True)
            if os.path.isfile(p) and p.endswith(suffixes)
        ]
        base = src.path
        files = [
            InputFile(p, os.path.relpath(p, base), os.path.getsize(p), os.path.getmtime(p))
            for p in matched
        ]
    else:
        base = _glob_base(pattern)
        try:
            results = FileSystems.match([pattern])[0].metadata_list
        except Exception as err:  # noqa: BLE001 - filesystem errors become config errors
            raise ConfigError(f"sources[{index}].path: cannot list {pattern!r}: {err}") from None
        files = []
        for m in results:
            rel = m.path[len(base) :].lstrip("/") if m.path.startswith(base) else m.path
            if base == "." and not os.path.isabs(pattern):
                rel = os.path.relpath(m.path)
            files.append(InputFile(m.path, rel, m.size_in_bytes, float(m.last_updated_in_seconds)))
    files.sort(key=lambda f: f.path)
    if not files:
        raise ConfigError(
            f"sources[{index}].path: no {src.type} files match {src.path!r} "
            "(check the path relative to the current directory, or the glob)"
        )
    return files


def _make_record(
    src: SourceConfig, obj: Any, fallback_id: str, location: str
) -> tuple[dict | None, dict | None]:
    """Validate one parsed object; returns (record, None) or (None, dead_letter)."""
    name = src.name
    if not isinstance(obj, dict):
        return None, dead_letter("read", "not_an_object", obj, source=name, location=location)
    text = obj.get(src.text_field)
    if src.text_field not in obj:
        return None, dead_letter(
            "read", f"missing_text_field: no field {src.text_field!r}", obj, source=name,
            location=location,
        )
    if not isinstance(text, str):
        return None, dead_letter(
            "read", f"non_string_text: {src.text_field!r} is {type(text).__name__}", obj,
            source=name, location=location,
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        return None, dead_letter(
            "read", f"invalid_unicode: {err.reason}", obj, source=name, location=location
        )
    if src.id_field:
        rid = obj.get(src.id_field)
        if isinstance(rid, bool) or not isinstance(rid, (str, int)) or rid == "":
            return None, dead_letter(
                "read", f"bad_id: {src.id_field!r} missing or not a string/integer", obj,
                source=name, location=location,
            )
        rid = str(rid)
    else:
        rid = fallback_id
    return {"id": rid, "text": text, "source": name}, None


def _zstd_chunks(raw, chunk: int = 1 << 20):
    """Decompress a (multi-frame) .zst stream, raising EOFError if it is truncated.

    (zstandard's stream reader returns the decoded prefix of a truncated file silently.)
    """
    import zstandard

    dctx = zstandard.ZstdDecompressor()
    dobj = dctx.decompressobj()
    pending = False
    while True:
        data = raw.read(chunk)
        if not data:
            break
        while data:
            out = dobj.decompress(data)
            pending = not dobj.eof
            if out:
                yield out
            data = dobj.unused_data if dobj.eof else b""
            if dobj.eof:
                dobj = dctx.decompressobj()
                pending = bool(data)
    if pending:
        raise EOFError("zstd stream ended before the end of its frame (truncated file)")


def _chunk_lines(chunks):
    buf = b""
    for c in chunks:
        buf += c
        lines = buf.split(b"\n")
        buf = lines.pop()
        for line in lines:
            yield line + b"\n"
    if buf:
        yield buf


def iter_lines(path: str):
    """Lines (bytes) of a possibly compressed file; truncated archives raise instead of
    ending early (Beam's own decompressing reader stops silently on a truncated .gz)."""
    import bz2
    import gzip

    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        lower = path.lower()
        if lower.endswith(".gz"):
            yield from iter(gzip.GzipFile(fileobj=raw).readline, b"")
        elif lower.endswith(".bz2"):
            yield from iter(bz2.BZ2File(raw).readline, b"")
        elif lower.endswith((".zst", ".zstd")):
            yield from _chunk_lines(_zstd_chunks(raw))
        else:
            yield from iter(raw.readline, b"")


class _ReadJsonl(beam.DoFn):
    def __init__(self, src: SourceConfig):
        self._src = src

    def process(self, f: InputFile):
        src = self._src
        lineno = 0
        key = f"read/{src.name}/records"
        try:
            for lineno, raw in enumerate(iter_lines(f.path), 1):
                if lineno % 1000 == 0:
                    progress.add(key, 1000)
                line = raw.rstrip(b"\r\n")
                if not line.strip():
                    continue
                loc = f"{f.path}:{lineno}"
                try:
                    decoded = line.decode("utf-8")
                except UnicodeDecodeError as err:
                    yield pvalue.TaggedOutput(DEAD, dead_letter(
                        "read", f"invalid_utf8: byte {err.start}", line, source=src.name,
                        location=loc))
                    continue
                try:
                    obj = json.loads(decoded)
                except ValueError as err:
                    yield pvalue.TaggedOutput(DEAD, dead_letter(
                        "read", f"bad_json: {err}", decoded, source=src.name, location=loc))
                    continue
                rec, dead = _make_record(src, obj, f"{f.rel}:{lineno}", loc)
                if rec is not None:
                    yield rec
                else:
                    yield pvalue.TaggedOutput(DEAD, dead)
        except Exception as err:  # noqa: BLE001 - truncated archive, I/O error...
            yield pvalue.TaggedOutput(DEAD, dead_letter(
                "read", f"read_error: {type(err).__name__}: {err}", f"<file {f.path}>",
                source=src.name, location=f"{f.path}:{lineno + 1}"))
        progress.add(key, lineno % 1000)
        progress.add(f"read/{src.name}/bytes", f.size)
        progress.flush()


class _ReadParquet(beam.DoFn):
    def __init__(self, src: SourceConfig):
        self._src = src

    def process(self, f: InputFile):
        import pyarrow.parquet as pq

        src = self._src
        row = 0
        try:
            with FileSystems.open(f.path, compression_type=CompressionTypes.UNCOMPRESSED) as fh:
                pf = pq.ParquetFile(fh)
                names = set(pf.schema_arrow.names)
                if src.text_field not in names:
                    raise KeyError(f"no column {src.text_field!r} (columns: {sorted(names)})")
                cols = [src.text_field] + (
                    [src.id_field] if src.id_field and src.id_field in names else []
                )
                for batch in pf.iter_batches(batch_size=4096, columns=cols):
                    progress.add(f"read/{src.name}/records", batch.num_rows)
                    for obj in batch.to_pylist():
                        loc = f"{f.path}#row={row}"
                        rec, dead = _make_record(src, obj, f"{f.rel}#{row}", loc)
                        row += 1
                        if rec is not None:
                            yield rec
                        else:
                            yield pvalue.TaggedOutput(DEAD, dead)
        except Exception as err:  # noqa: BLE001
            yield pvalue.TaggedOutput(DEAD, dead_letter(
                "read", f"read_error: {type(err).__name__}: {err}", f"<file {f.path}>",
                source=src.name, location=f"{f.path}#row={row}"))
        progress.add(f"read/{src.name}/bytes", f.size)
        progress.flush()


def _load_hf(src: SourceConfig):
    import datasets

    if os.path.isdir(src.path):
        ds = datasets.load_from_disk(src.path)
        if isinstance(ds, datasets.DatasetDict):
            if src.split not in ds:
                raise ConfigError(
                    f"source {src.name!r}: split {src.split!r} not in {sorted(ds)} (set 'split')"
                )
            ds = ds[src.split]
        return ds
    return datasets.load_dataset(src.path, split=src.split)


class _ReadHfShard(beam.DoFn):
    def __init__(self, src: SourceConfig, n_rows: int):
        self._src = src
        self._n = n_rows
        self._ds = None

    def setup(self):
        self._ds = _load_hf(self._src)

    def process(self, shard: tuple[int, int]):
        src = self._src
        index, n_shards = shard
        start, end = index * self._n // n_shards, (index + 1) * self._n // n_shards
        cols = [c for c in (src.text_field, src.id_field) if c and c in self._ds.column_names]
        part = self._ds.select_columns(cols).select(range(start, end))
        for offset, obj in enumerate(part):
            row = start + offset
            rec, dead = _make_record(src, obj, f"{src.path}#{src.split}#{row}", f"row={row}")
            if rec is not None:
                yield rec
            else:
                yield pvalue.TaggedOutput(DEAD, dead)


class ReadSource(beam.PTransform):
    """Read one configured source. Main output: records; tagged output ``dead``."""

    def __init__(self, src: SourceConfig, files: list[InputFile] | None, n_rows: int = 0):
        super().__init__()
        self._src = src
        self._files = files
        self._n_rows = n_rows

    def expand(self, pbegin):
        src = self._src
        if src.type in ("warc", "html"):  # web sources: pipelines/web_sources.py
            from pipelines.web_sources import ReadWeb
            return pbegin | "ReadWeb" >> ReadWeb(src, self._files)
        if src.type == "hf":
            shards = [(i, src.hf_shards) for i in range(src.hf_shards)]
            return (
                pbegin
                | "Shards" >> beam.Create(shards)
                | "Spread" >> beam.Reshuffle()
                | "ReadHF" >> beam.ParDo(_ReadHfShard(src, self._n_rows)).with_outputs(
                    DEAD, main="records")
            )
        reader = _ReadParquet(src) if src.type == "parquet" else _ReadJsonl(src)
        return (
            pbegin
            | "Files" >> beam.Create(self._files)
            | "Spread" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(reader).with_outputs(DEAD, main="records")
        )


def describe_inputs(src: SourceConfig, index: int) -> tuple[list[InputFile] | None, int, dict]:
    """Resolve a source at graph-construction time: its files (or row count) and fingerprint."""
    if src.type == "hf":
        try:
            ds = _load_hf(src)
        except ConfigError:
            raise
        except Exception as err:  # noqa: BLE001
            raise ConfigError(
                f"sources[{index}].path: cannot load dataset {src.path!r}: "
                f"{type(err).__name__}: {err}"
            ) from None
        if src.text_field not in ds.column_names:
            raise ConfigError(
                f"sources[{index}].text_field: {src.text_field!r} is not a column of "
                f"{src.path!r}; columns: {ds.column_names}"
            )
        fp = {"path": src.path, "rows": len(ds), "fingerprint": getattr(ds, "_fingerprint", "")}
        return None, len(ds), fp
    files = expand_files(src, index)
    fp = {"files": [[f.path, f.size, f.mtime] for f in files]}
    return files, 0, fp
