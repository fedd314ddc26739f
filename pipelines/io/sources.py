"""Sources: JSONL (plain, .gz, .bz2, .zst), Parquet and Hugging Face ``datasets``.

Each source becomes a PTransform returning three PCollections (contract C1):

* ``records``: parsed records (``id``, ``text``, ``source``, and the input fields kept as
  columns as planned by :mod:`pipelines.io.input_fields`, with ``extra_fields``);
* ``dead``: one dead-letter row (stage ``read``, a reason, the raw input) per input record that
  could not be turned into a record;
* ``counted``: one row per input file (per shard for ``hf``):
  ``{"source", "path", "records", "bytes", "changed"}``, where ``records`` is counted from the
  raw data independently of parsing: JSONL by :mod:`pipelines.io.framing` (non-blank
  newline-delimited records of the decompressed stream), Parquet from the file's metadata,
  ``hf`` from the dataset's row count. ``changed`` is None, or why the file is not the one that
  was planned (size or mtime differ, deleted, replaced by a special file) or why it could not
  be opened or read (an I/O error at run time, not damaged data): the build then fails naming
  it (a partly read file cannot be reported as complete).

Per file, records + dead rows == ``counted["records"]``, where a dead row with a
``"records": n`` field stands for n input records: that is only used for an unreadable Parquet
row group or the unreadable rest of an ``hf`` shard (row range in ``location``). Every other unparseable record is
its own dead row; a JSONL or Parquet file whose records cannot be counted at all (damaged
archive tail after the records decoded before it, unreadable Parquet footer) contributes one
record and one dead row for that part.

Parallelism: files are distributed across workers (a file is read by one worker, streamed, so
very large single files should be split upstream); a ``datasets`` source is read in
``hf_shards`` contiguous row ranges. Files are listed once when the graph is built
(:mod:`pipelines.io.input_files`), so the file list is recorded in the manifest and the same files
are read on every worker.

Ids: the ``id_field`` value when configured (string or integer), otherwise
``<path relative to the glob's base directory>:<line or row number>`` (1-based lines, 0-based
rows), which is stable across machines and runs for the same files.
"""

from __future__ import annotations

import json
import os
import stat
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipelines.core import progress, remote
from pipelines.core.settings import ConfigError
from pipelines.io.source_config import SourceConfig
from pipelines.io.framing import OVERSIZE, UNREADABLE, Frame, FramedFile
from pipelines.io.input_files import InputFile, SkippedFile, list_input_files, printable
from pipelines.core.records import MAX_RAW_CHARS, dead_letter

__all__ = ["DEAD", "COUNTED", "ReadSource", "describe_inputs", "expand_files"]

DEAD = "dead"
COUNTED = "counted"


def expand_files(src: SourceConfig, index: int) -> tuple[list[InputFile], list[SkippedFile]]:
    """Resolve a source's path/glob/directory to its files and the files it skips
    (raises ConfigError when it cannot be listed or no file would be read, RemoteUnreachable
    when a remote location does not answer in time or refuses the credentials).

    A dry run plans offline (:func:`pipelines.core.remote.offline`): a remote source is not
    listed; it stands as one file named by its path, of unknown (0) size."""
    if remote.offline() and remote.is_remote(src.path):
        return [InputFile(src.path, printable(src.path.rsplit("/", 1)[-1]), 0, 0.0)], []
    try:
        files, skipped = list_input_files(src.path, src.type)
    except remote.RemoteUnreachable:
        raise
    except Exception as err:  # noqa: BLE001 - filesystem errors become config errors
        raise ConfigError(f"sources[{index}].path: cannot list {src.path!r}: {err}") from None
    if not files:
        extra = ""
        if skipped:
            shown = "; ".join(f"{s.path}: {s.reason}" for s in skipped[:5])
            extra = f"; found but not read: {shown}" + (" ..." if len(skipped) > 5 else "")
        raise ConfigError(
            f"sources[{index}].path: no {src.type} files match {printable(src.path)!r} "
            f"(check the path relative to the current directory, or the glob){extra}"
        )
    return files, skipped


def _unencodable(value: str) -> str | None:
    try:
        value.encode("utf-8")
        return None
    except UnicodeEncodeError as err:
        return f"{err.reason} at character {err.start}"


def _too_long(text: str, limit: int) -> int:
    """Bytes of ``text`` in UTF-8 when above ``limit`` (0 otherwise), encoding only if needed."""
    if len(text) * 4 <= limit:
        return 0
    n = len(text.encode("utf-8", "surrogatepass"))
    return n if n > limit else 0


def _make_record(
    src: SourceConfig, obj: Any, fallback_id: str, location: str
) -> tuple[dict | None, dict | None]:
    """Validate one parsed object; returns (record, None) or (None, dead_letter)."""
    name = src.name

    def dead(reason: str, raw: Any = obj) -> tuple[None, dict]:
        return None, dead_letter("read", reason, raw, source=name, location=location)

    if not isinstance(obj, dict):
        return dead("not_an_object")
    if src.text_field not in obj:
        return dead(f"missing_text_field: no field {src.text_field!r}")
    text = obj[src.text_field]
    if not isinstance(text, str):
        return dead(f"non_string_text: {src.text_field!r} is {type(text).__name__}")
    bad = _unencodable(text)
    if bad:
        return dead(f"invalid_unicode: {bad}")
    size = _too_long(text, src.max_record_bytes)
    if size:
        return dead(f"record_too_large: text of {size:,} bytes > max_record_bytes "
                    f"{src.max_record_bytes:,}", text[:MAX_RAW_CHARS])
    if src.id_field:
        rid = obj.get(src.id_field)
        if isinstance(rid, bool) or not isinstance(rid, (str, int)) or rid == "":
            return dead(f"bad_id: {src.id_field!r} missing or not a string/integer")
        rid = str(rid)
        bad = _unencodable(rid)
        if bad:
            return dead(f"bad_id: {src.id_field!r} is not valid Unicode ({bad})")
    else:
        rid = fallback_id
    rec = {"id": rid, "text": text, "source": name}
    fields = src._input_fields  # the planned FieldPlan (pipelines/io/input_fields.py), if any
    if fields is not None and fields.keeps_any:
        try:
            rec.update(fields.values(obj))
        except Exception as err:  # noqa: BLE001 - never expected; the record is not lost
            return dead(f"bad_fields: {type(err).__name__}: {err}")
    return rec, None


# --------------------------------------------------------------------------- file identity


def file_change(f: InputFile, before_reading: bool = False) -> str | None:
    """Why ``f`` is no longer the file that was planned (None when size and mtime match).

    Stat only: nothing is opened (a file replaced by a FIFO must not block the build). Remote
    files are checked after reading only (one listing call per file; the raw bytes read are
    compared with the planned size as well)."""
    if "://" in f.path:
        if before_reading:
            return None
        try:
            found = FileSystems.match([f.path])[0].metadata_list
        except Exception as err:  # noqa: BLE001
            return f"cannot be listed any more: {err}"
        if not found:
            return "deleted since planning"
        size, mtime = found[0].size_in_bytes, float(found[0].last_updated_in_seconds)
    else:
        try:
            st = os.stat(f.path)
        except FileNotFoundError:
            return "deleted since planning"
        except OSError as err:
            return f"cannot stat any more: {err.strerror or err}"
        if not stat.S_ISREG(st.st_mode):
            return "no longer a regular file"
        size, mtime = st.st_size, st.st_mtime
    if size != f.size:
        return f"size changed since planning: {f.size:,} -> {size:,} bytes"
    if mtime != f.mtime:
        return f"modified since planning (mtime {f.mtime} -> {mtime})"
    return None


def unreadable_at_run_time(error: str) -> str:
    """The ``changed`` reason of a planned (readable) file that could not be opened or read
    when the build read it: its records cannot be counted, so the build fails (exit 5)."""
    return f"could not be read at run time ({error}); it was readable when the build was planned"


def _os_error(err: BaseException) -> bool:
    """An operating-system I/O error (errno set: EIO, EACCES, ESTALE...), as opposed to the
    OSError pyarrow raises for corrupt data (no errno)."""
    return isinstance(err, OSError) and err.errno is not None


def _counted(src: SourceConfig, path: str, records: int, nbytes: int,
             changed: str | None) -> pvalue.TaggedOutput:
    progress.flush()  # the file is done: show its totals now
    return pvalue.TaggedOutput(COUNTED, {"source": src.name, "path": path, "records": records,
                                         "bytes": nbytes, "changed": changed})


def _open_binary(path: str):
    if "://" in path:
        return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    return open(path, "rb")  # noqa: SIM115 - local names may hold undecodable bytes


# --------------------------------------------------------------------------- JSONL


def _frame_to_output(src: SourceConfig, frame: Frame, f: InputFile, display: str):
    """Exactly one record or one dead-letter row for one frame; never raises."""
    loc = f"{display}:{frame.lineno}"

    def dead(reason: str, raw: Any) -> pvalue.TaggedOutput:
        return pvalue.TaggedOutput(DEAD, dead_letter("read", reason, raw, source=src.name,
                                                     location=loc))

    if frame.kind == OVERSIZE:
        return dead(f"record_too_large: {frame.size:,} bytes > max_record_bytes "
                    f"{src.max_record_bytes:,} (first {len(frame.data):,} bytes kept)", frame.data)
    if frame.kind == UNREADABLE:
        return dead(f"read_error: {frame.error}", frame.data or f"<file {display}>")
    try:
        decoded = frame.data.decode("utf-8")
    except UnicodeDecodeError as err:
        return dead(f"invalid_utf8: byte {err.start}", frame.data)
    try:
        obj = json.loads(decoded)
    except RecursionError:
        return dead("bad_json: nested too deeply to parse", frame.data)
    except ValueError as err:
        return dead(f"bad_json: {err}", decoded)
    except Exception as err:  # noqa: BLE001 - MemoryError and the like: this record only
        return dead(f"bad_json: {type(err).__name__}: {err}", frame.data)
    try:
        rec, bad = _make_record(src, obj, f"{f.rel}:{frame.lineno}", loc)
    except Exception as err:  # noqa: BLE001
        return dead(f"exception: {type(err).__name__}: {err}", frame.data)
    return rec if rec is not None else pvalue.TaggedOutput(DEAD, bad)


class _Shown:
    """What a reader has reported to the live progress so far (pipelines/core/progress.py)."""

    def __init__(self, source: str):
        self._keys = (f"read/{source}/records", f"read/{source}/bytes")
        self._records = self._bytes = 0

    def update(self, records: int, nbytes: int) -> None:
        progress.add(self._keys[0], records - self._records)
        progress.add(self._keys[1], nbytes - self._bytes)
        self._records, self._bytes = records, nbytes


class _ReadJsonl(beam.DoFn):
    def __init__(self, src: SourceConfig):
        self._src = src

    def process(self, f: InputFile):
        src = self._src
        changed = file_change(f, before_reading=True)
        records = nbytes = 0
        display = f.display
        if changed is None:
            framed = FramedFile(f.path, src.max_record_bytes)
            complete = True
            shown = _Shown(src.name)
            for n, frame in enumerate(framed, 1):
                if frame.kind == UNREADABLE:
                    complete = False
                yield _frame_to_output(src, frame, f, display)
                if n % 1000 == 0:
                    shown.update(framed.records, framed.bytes_read)
            records, nbytes = framed.records, framed.bytes_read
            shown.update(records, nbytes)
            changed = file_change(f)
            if changed is None and framed.read_failure:
                changed = unreadable_at_run_time(framed.read_failure)
            if changed is None and complete and nbytes != f.size:
                changed = f"read {nbytes:,} bytes but {f.size:,} were planned"
        yield _counted(src, display, records, nbytes, changed)


# --------------------------------------------------------------------------- Parquet


def _rows_of(batch) -> list[tuple[dict | None, str | None, Any]]:
    """``(row, None, None)`` per row, or ``(None, error, raw)`` for rows pyarrow cannot
    convert (e.g. invalid UTF-8 in a string column): only those rows are lost."""
    try:
        return [(r, None, None) for r in batch.to_pylist()]
    except Exception:  # noqa: BLE001 - find the bad rows one by one
        pass
    import pyarrow as pa

    out: list[tuple[dict | None, str | None, Any]] = []
    for j in range(batch.num_rows):
        one = batch.slice(j, 1)
        try:
            out.append((one.to_pylist()[0], None, None))
        except Exception as err:  # noqa: BLE001
            raw = {}
            for name, col in zip(one.schema.names, one.columns):
                if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
                    col = col.view(pa.binary() if pa.types.is_string(col.type)
                                   else pa.large_binary())
                try:
                    raw[name] = col.to_pylist()[0]
                except Exception:  # noqa: BLE001
                    raw[name] = "<unconvertible>"
            reason = "invalid_utf8" if isinstance(err, UnicodeDecodeError) else "bad_value"
            out.append((None, f"{reason}: {type(err).__name__}: {err}", raw))
    return out


def duplicated_column(src: SourceConfig, names: list[str]) -> tuple[str, str] | None:
    """``(setting, column)`` when the column ``text_field`` or ``id_field`` names appears more
    than once in a Parquet schema (which one would be read is arbitrary), else None."""
    for setting, column in (("text_field", src.text_field), ("id_field", src.id_field)):
        if column and names.count(column) > 1:
            return setting, column
    return None


class _ReadParquet(beam.DoFn):
    BATCH_ROWS = 1024

    def __init__(self, src: SourceConfig):
        self._src = src

    def process(self, f: InputFile):
        import pyarrow.parquet as pq

        src = self._src
        display = f.display
        changed = file_change(f, before_reading=True)
        if changed is not None:
            yield _counted(src, display, 0, 0, changed)
            return

        def dead(reason: str, raw: Any, location: str, records: int = 1):
            row = dead_letter("read", reason, raw, source=src.name, location=location)
            if records != 1:
                row["records"] = records
            return pvalue.TaggedOutput(DEAD, row)

        try:
            fh = _open_binary(f.path)
        except Exception as err:  # noqa: BLE001 - planned readable, now unreadable: fail
            yield _counted(src, display, 0, 0, file_change(f) or unreadable_at_run_time(
                f"{type(err).__name__}: {err}"))
            return
        try:
            pf = pq.ParquetFile(fh)
            n_rows = pf.metadata.num_rows
            names = set(pf.schema_arrow.names)
        except Exception as err:  # noqa: BLE001 - not Parquet, unreadable footer...
            fh.close()
            if _os_error(err):  # an I/O error, not a corrupt footer
                yield _counted(src, display, 0, 0, file_change(f) or unreadable_at_run_time(
                    f"{type(err).__name__}: {err}"))
                return
            yield dead(f"read_error: {type(err).__name__}: {err}", f"<file {display}>",
                       f"{display}#footer")
            yield _counted(src, display, 1, 0, file_change(f))
            return
        dup = duplicated_column(src, pf.schema_arrow.names)
        if dup is not None:  # the whole file: which of the columns holds the data is unknown
            fh.close()
            if n_rows:
                times = pf.schema_arrow.names.count(dup[1])
                yield dead(f"duplicate_column: {dup[1]!r} ({dup[0]}) is {times} columns of "
                           "this file; rewrite it with unique column names",
                           f"<file {display}>", f"{display}#schema", n_rows)
            yield _counted(src, display, n_rows, f.size, file_change(f))
            return
        row = 0
        failure = ""  # an I/O error while reading a row group: the build fails
        with fh:
            cols = None  # every column, so that rows without the text column keep their data
            if src.text_field in names:
                fields = src._input_fields
                if fields is not None and fields.keeps_any:
                    cols = fields.read_columns(pf.schema_arrow.names)
                else:
                    cols = [src.text_field] + (
                        [src.id_field] if src.id_field and src.id_field in names else [])
            for group in range(pf.metadata.num_row_groups):  # a corrupt group loses only itself
                end = row + pf.metadata.row_group(group).num_rows
                try:
                    for batch in pf.iter_batches(batch_size=self.BATCH_ROWS, columns=cols,
                                                 row_groups=[group]):
                        for obj, error, raw in _rows_of(batch):
                            loc = f"{display}#row={row}"
                            if error is not None:
                                yield dead(error, raw, loc)
                            else:
                                rec, bad = _make_record(src, obj, f"{f.rel}#{row}", loc)
                                yield rec if rec is not None else pvalue.TaggedOutput(DEAD, bad)
                            row += 1
                except Exception as err:  # noqa: BLE001 - a corrupt page or column chunk
                    if _os_error(err) and not failure:
                        failure = f"{type(err).__name__}: {err}"
                    if row < end:
                        yield dead(f"read_error: {type(err).__name__}: {err}",
                                   f"<rows {row}..{end - 1} of {display}>",
                                   f"{display}#rows={row}-{end - 1}", end - row)
                        row = end
        if row < n_rows:  # the reader ended early without an error
            yield dead("read_error: fewer rows than the file's metadata",
                       f"<rows {row}..{n_rows - 1} of {display}>",
                       f"{display}#rows={row}-{n_rows - 1}", n_rows - row)
        _Shown(src.name).update(n_rows, f.size)
        changed = file_change(f)
        if changed is None and failure:
            changed = unreadable_at_run_time(failure)
        yield _counted(src, display, n_rows, f.size, changed)


# --------------------------------------------------------------------------- Hugging Face


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
        done = start
        try:
            cols = [c for c in (src.text_field, src.id_field) if c and c in self._ds.column_names]
            fields = src._input_fields
            if fields is not None and fields.keeps_any:
                cols = fields.read_columns(self._ds.column_names) or self._ds.column_names
            part = self._ds.select_columns(cols).select(range(start, end))
            for obj in part:
                loc = f"row={done}"
                try:
                    rec, bad = _make_record(src, obj, f"{src.path}#{src.split}#{done}", loc)
                except Exception as err:  # noqa: BLE001
                    rec, bad = None, dead_letter("read", f"exception: {type(err).__name__}: {err}",
                                                 obj, source=src.name, location=loc)
                done += 1
                yield rec if rec is not None else pvalue.TaggedOutput(DEAD, bad)
        except Exception as err:  # noqa: BLE001 - the rest of the shard cannot be read
            if done < end:
                row = dead_letter("read", f"read_error: {type(err).__name__}: {err}",
                                  f"<rows {done}..{end - 1}>", source=src.name,
                                  location=f"rows={done}-{end - 1}")
                row["records"] = end - done
                yield pvalue.TaggedOutput(DEAD, row)
        yield _counted(src, f"{printable(src.path)}#{src.split}#shard={index}", end - start, 0,
                       None)


# --------------------------------------------------------------------------- transform


class ReadSource(beam.PTransform):
    """Read one configured source: ``{"records", "dead", "counted"}`` (see module doc)."""

    def __init__(self, src: SourceConfig, files: list[InputFile] | None, n_rows: int = 0):
        super().__init__()
        self._src = src
        self._files = files
        self._n_rows = n_rows

    def expand(self, pbegin):
        src = self._src
        if src.type in ("warc", "html"):  # web sources: pipelines/io/web_sources.py
            from pipelines.io.web_sources import ReadWeb

            return pbegin | "ReadWeb" >> ReadWeb(src, self._files)
        reader, work, _ = _work(src, self._files, self._n_rows)
        outs = (
            pbegin
            | "Files" >> beam.Create(work)
            | "Spread" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(reader).with_outputs(DEAD, COUNTED, main="records")
        )
        return {"records": outs["records"], "dead": outs[DEAD], "counted": outs[COUNTED]}


def _work(src: SourceConfig, files: list[InputFile] | None, n_rows: int):
    """(reader DoFn, its input elements: files or hf shards, counting DoFn or None) of one
    source: what a read step needs, alone (:class:`ReadSource`) or next to others."""
    if src.type == "hf":
        return _ReadHfShard(src, n_rows), [(i, src.hf_shards) for i in range(src.hf_shards)], None
    if src.type in ("warc", "html"):
        from pipelines.io.web_sources import web_reader_and_counter

        reader, counter = web_reader_and_counter(src)
        return reader, list(files or []), counter
    return (_ReadParquet(src) if src.type == "parquet" else _ReadJsonl(src)), list(files or []), None


class _ReadAny(beam.DoFn):
    """``(source index, file or shard)`` -> that source's reader output; for web sources also
    the per-file count (a separate pass over the raw file, as in their own read step)."""

    def __init__(self, readers: list, counters: list):
        self._readers, self._counters = readers, counters

    def setup(self):
        for fn in [*self._readers, *filter(None, self._counters)]:
            fn.setup()

    def teardown(self):
        for fn in [*self._readers, *filter(None, self._counters)]:
            fn.teardown()

    def process(self, item):
        i, work = item
        yield from self._readers[i].process(work)
        counter = self._counters[i]
        if counter is not None:
            for row in counter.process(work):
                yield pvalue.TaggedOutput(COUNTED, row)


def read_sources(p, sources: list[tuple[SourceConfig, list[InputFile] | None, int]]) -> dict:
    """Read all configured sources into pipeline ``p``: ``{"records", "dead", "counted"}``.

    One source is read by :class:`ReadSource` (step ``Read[<name>]``). Several are read by
    one step ``Read[sources]`` over the files and shards of all of them: a Flatten of the
    sources' records would be held in memory whole by the local runner (it materializes a
    multi-input Flatten until every producer is done), i.e. the whole corpus."""
    if len(sources) == 1:
        src, files, n_rows = sources[0]
        return p | f"Read[{src.name}]" >> ReadSource(src, files, n_rows)
    return p | "Read[sources]" >> _ReadMany(sources)


class _ReadMany(beam.PTransform):
    def __init__(self, sources: list[tuple[SourceConfig, list[InputFile] | None, int]]):
        super().__init__()
        self._sources = sources

    def expand(self, pbegin):
        readers, counters, items = [], [], []
        for i, (src, files, n_rows) in enumerate(self._sources):
            reader, work, counter = _work(src, files, n_rows)
            readers.append(reader)
            counters.append(counter)
            items += [(i, w) for w in work]
        outs = (
            pbegin
            | "Files" >> beam.Create(items)
            | "Spread" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(_ReadAny(readers, counters)).with_outputs(
                DEAD, COUNTED, main="records")
        )
        return {"records": outs["records"], "dead": outs[DEAD], "counted": outs[COUNTED]}


def _check_parquet_text_field(src: SourceConfig, index: int, first: InputFile) -> None:
    """A text_field that is not a column of the first file is a config error, before work."""
    import pyarrow.parquet as pq

    try:
        with _open_binary(first.path) as fh:
            names = pq.ParquetFile(fh).schema_arrow.names
    except Exception:  # noqa: BLE001 - an unreadable file is dead-lettered by the reader
        return
    if src.text_field not in names:
        raise ConfigError(
            f"sources[{index}].text_field: {src.text_field!r} is not a column of "
            f"{first.display!r}; columns: {names} (set text_field to one of them)")
    dup = duplicated_column(src, names)
    if dup is not None:  # files after the first: dead-lettered whole by the reader
        raise ConfigError(
            f"sources[{index}].{dup[0]}: {first.display!r} has {names.count(dup[1])} columns "
            f"named {dup[1]!r} (which one holds the data is ambiguous); rewrite the file with "
            f"unique column names or set {dup[0]} to another column")


def field_candidates(src: SourceConfig, files: list[InputFile] | None):
    """What planning knows of a source's input fields: ``(candidates, strict)`` for
    :func:`pipelines.io.input_fields.plan_fields`: Parquet and ``hf`` from their schemas
    (``strict``: keep_fields/drop_fields must name columns), JSONL from a bounded sample of
    the first records; ``(None, False)`` for web sources and ``keep_fields: []``."""
    if src.type in ("warc", "html") or src.keep_fields == []:
        return None, False
    if remote.offline() and remote.is_remote(src.path):  # a dry run reads no remote sample
        return None, False
    if files and src.type in ("parquet", "jsonl") and remote.is_remote(files[0].path):
        return remote.call(lambda: _field_candidates(src, files), src.path,
                           "reading a sample of the records")
    return _field_candidates(src, files)


def _field_candidates(src: SourceConfig, files: list[InputFile] | None):
    from pipelines.io import input_fields as inf

    if src.type == "hf":
        return inf.schema_candidates([_load_hf(src).features.arrow_schema]), True
    if src.type == "parquet":
        import pyarrow.parquet as pq

        schemas = []
        for f in (files or [])[:inf.SCHEMA_FILES]:
            try:
                with _open_binary(f.path) as fh:
                    schemas.append(pq.ParquetFile(fh).schema_arrow)
            except Exception:  # noqa: BLE001 - an unreadable file is dead-lettered by the reader
                continue
        return inf.schema_candidates(schemas), bool(schemas)
    return inf.sample_jsonl([f.path for f in files or []], src.max_record_bytes,
                           src.text_field), False


def describe_inputs(src: SourceConfig, index: int
                    ) -> tuple[list[InputFile] | None, int, dict, list[SkippedFile]]:
    """Resolve a source at graph-construction time: its files (or row count), fingerprint and
    the files found but not read."""
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
        return None, len(ds), fp, []
    files, skipped = expand_files(src, index)
    unlisted = remote.offline() and remote.is_remote(src.path)  # a dry run: nothing read
    if src.type == "parquet" and not unlisted:
        remote.call(lambda: _check_parquet_text_field(src, index, files[0]), files[0].path,
                     "reading the first file's schema")
    fp = {"files": [[f.display, f.size, f.mtime] for f in files]}
    if src.fingerprint == "content" and not unlisted:
        fp["content"] = [content_hash(f.path) for f in files]
    return files, 0, fp, skipped


def content_hash(path: str, chunk: int = 8 << 20) -> str:
    """xxh3-128 of a file's raw bytes (``fingerprint: content``), streamed in 8 MiB chunks."""
    import xxhash

    h = xxhash.xxh3_128()
    with _open_binary(path) as fh:
        while True:
            block = fh.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()
