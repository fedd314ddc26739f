"""Spill files: rows written to disk by one step and streamed back by a later one.

The local runner (FnApiRunner) keeps every PCollection that crosses a fusion break (a
GroupByKey, or the main input of a step waiting for a side input) in memory. A step that needs a
global decision before it can route records (exact dedup, the sinks' sort) therefore either
holds the corpus in memory or writes it out and reads it back. These helpers do the latter: a
DoFn buffers rows up to a byte budget, writes them as one *spill file* (length-prefixed pickle
frames, not compressed: zstd level 1 cost more CPU than the disk writes it saved) and emits only
the file's path; a later step reads the file back one frame at a time. Paths are what crosses the shuffle, never the rows.

Files are written through Beam's ``FileSystems`` (local disk, gs://, s3://...). They are deleted
by :class:`DeleteFiles` after a GroupByKey, i.e. once the step that read them has committed its
output, so a retried bundle on a distributed runner still finds its inputs.
"""

from __future__ import annotations

import os
import pickle
import struct
import uuid
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam import pvalue
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindows

FRAME_ROWS = 256  # rows per frame (a reader holds one frame per open file)


def approx_size(row: Any) -> int:
    """Cheap size estimate of a row in bytes (string payloads, one level of nesting)."""
    if isinstance(row, dict):
        text = row.get("text")
        if isinstance(text, str):  # records: the text dominates
            return 256 + len(text)
        n = 64
        for v in row.values():
            if isinstance(v, str):
                n += len(v)
            elif isinstance(v, dict):
                n += approx_size(v)
            elif isinstance(v, (list, tuple)):
                n += 8 * len(v)
            else:
                n += 8
        return n
    if isinstance(row, tuple):
        return 16 + sum(approx_size(x) for x in row)
    return 64 + (len(row) if isinstance(row, (str, bytes)) else 0)


class SizeBuffered(beam.DoFn):
    """Base of the DoFns that buffer incoming rows up to ``self._limit`` bytes
    (:func:`approx_size`) and then hand the buffer to :meth:`flush_rows`, a generator of outputs
    (values or ``TaggedOutput``s), and once more at the end of each bundle (those outputs are
    put in the global window, as ``finish_bundle`` requires)."""

    _limit: int

    def start_bundle(self) -> None:
        self._rows: list = []
        self._size = 0

    def process(self, r):
        self._rows.append(r)
        self._size += approx_size(r)
        if self._size >= self._limit:
            yield from self._take()

    def finish_bundle(self):
        if not self._rows:
            return
        for item in self._take():
            if isinstance(item, pvalue.TaggedOutput):
                yield pvalue.TaggedOutput(item.tag, GlobalWindows.windowed_value(item.value))
            else:
                yield GlobalWindows.windowed_value(item)

    def _take(self):
        rows, self._rows, self._size = self._rows, [], 0
        return self.flush_rows(rows)

    def flush_rows(self, rows: list):
        raise NotImplementedError


# ------------------------------------------------------------------ file names
# Every spill file is named here: pipelines/build/run.py recognises a writer's leftover runs by
# ``RUN_PATH_PATTERN``.


def new_file_id() -> int:
    """A random 63-bit spill file id (fits an int64 array)."""
    return uuid.uuid4().int & 0x7FFFFFFFFFFFFFFF


def spill_file(folder: str, kind: str, file_id: int) -> str:
    """``<folder>/<kind>-<file id as 16 hex digits>.bin``: one step's file for one id."""
    return f"{folder}/{kind}-{file_id:016x}.bin"


def spill_file_id(path: str) -> int:
    """The file id in a :func:`spill_file` name."""
    return int(path.rsplit("-", 1)[1][:16], 16)


def rows_file(folder: str) -> str:
    """``<folder>/rows-<random hex>.bin``: one buffer of :class:`SpillRows`."""
    return f"{folder}/rows-{uuid.uuid4().hex}.bin"


def run_folder(prefix: str) -> str:
    """``<prefix>-runs``: the folder of a sorted writer's runs (pipelines/io/sinks.py)."""
    return f"{prefix}-runs"


def run_file(folder: str, name: str | int, batch: str) -> str:
    """``<folder>/run-<name>-<batch>.bin``: one sorted run of a writer's shard ``name``."""
    return f"{folder}/run-{name}-{batch}.bin"


# a run file relative to the folder that holds ``<prefix>-runs/``, after the prefix
RUN_PATH_PATTERN = r"-runs/run-[^/]+\.bin"


def write_spill(path: str, rows: list) -> None:
    """Write ``rows`` (in order) to ``path``."""
    with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as fh:
        for i in range(0, len(rows), FRAME_ROWS):
            data = pickle.dumps(rows[i:i + FRAME_ROWS], protocol=5)
            fh.write(struct.pack("<Q", len(data)))
            fh.write(data)


def read_spill(path: str) -> Iterator:
    """The rows of a spill file, in order, one frame in memory at a time."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as fh:
        while True:
            head = fh.read(8)
            if not head:
                return
            if len(head) != 8:
                raise EOFError(f"truncated spill file {path}")
            (size,) = struct.unpack("<Q", head)
            data = fh.read(size)
            if len(data) != size:
                raise EOFError(f"truncated spill file {path}")
            yield from pickle.loads(data)


def write_object(path: str, obj: Any) -> None:
    """One object (numpy arrays inside stay out-of-band pickle buffers) as a spill file."""
    write_spill(path, [obj])


def read_object(path: str) -> Any:
    """The object written by :func:`write_object`."""
    return next(iter(read_spill(path)))


class _Delete(beam.DoFn):
    def process(self, path: str):
        try:
            FileSystems.delete([path])
        except Exception:  # noqa: BLE001 - already deleted by an earlier attempt
            pass
        if "://" not in path:  # the folder once its last file is gone, and empty parents
            folder = os.path.dirname(path)  # that only spill files use
            for d, name in ((folder, None), (os.path.dirname(folder), "spill"),
                            (os.path.dirname(os.path.dirname(folder)), "_staging")):
                if name is not None and os.path.basename(d) != name:
                    break
                try:
                    os.rmdir(d)
                except OSError:
                    break


class _DeleteAll(_Delete):
    def process(self, item):
        for path in item[1]:
            yield from super().process(path) or ()


class DeleteFiles(beam.PTransform):
    """Delete the spill files named by a PCollection of paths, after a GroupByKey (a commit
    point: the step that produced the paths has finished and its output is durable)."""

    def expand(self, paths):
        return (paths | "One" >> beam.Map(lambda p: (0, p))
                | "Commit" >> beam.GroupByKey() | "Delete" >> beam.ParDo(_DeleteAll()))


SPILL_SUFFIX = ".spill"  # <out>/_staging/<run id>.spill/: one build run's spill folders


def spill_root(out: str, run_id: str) -> str:
    """The folder under which one build run puts its spill folders: beside the run's staging
    directory (not in it: the staging directory becomes the published build), and named after
    the run, so that a failed run's cleanup and the next run's recovery remove it."""
    return f"{out.rstrip('/')}/_staging/{run_id}{SPILL_SUFFIX}"


LEGACY_SPILL_ROOT = "spill"  # <out>/_staging/spill/: the spill folder of versions before 0.2


def spill_folder(root: str | None, out: str, owner: str) -> str:
    """A new folder for one owner's spill files (a stage's label, ``redistribute``) in the run's
    spill root (:func:`spill_root`); without one (a stage run outside a build), in
    ``<out>/_staging/spill/``, which the next build's recovery removes."""
    import uuid

    base = root or f"{out.rstrip('/')}/_staging/{LEGACY_SPILL_ROOT}"
    return f"{base}/{owner}-{uuid.uuid4().hex}"


SPILL_BYTES = 8 << 20  # text per spill file of :class:`SpillRows`


@beam.typehints.with_output_types(str)
class SpillRows(SizeBuffered):
    """rows -> the path of one spill file per ``SPILL_BYTES`` of rows, in ``folder``."""

    def __init__(self, folder: str, limit: int | None = None):
        self._folder, self._limit = folder, SPILL_BYTES if limit is None else limit

    def flush_rows(self, rows: list):
        path = rows_file(self._folder)
        write_spill(path, rows)
        yield path


@beam.typehints.with_output_types(Any)
class StreamSpilled(beam.DoFn):
    """Spill file path -> ``inner``'s outputs for every row of the file (side inputs are
    passed on to ``inner.process``), then the path under tag ``consumed`` (delete it with
    :class:`DeleteFiles`). A step that needs a side input computed from its own input reads
    its input this way instead of having the runner hold it."""

    def __init__(self, inner: beam.DoFn):
        self._inner = inner

    def setup(self) -> None:
        self._inner.setup()

    def process(self, path: str, *args, **kwargs):
        for row in read_spill(path):
            yield from self._inner.process(row, *args, **kwargs) or ()
        yield pvalue.TaggedOutput("consumed", path)

    def teardown(self) -> None:
        self._inner.teardown()


# ------------------------------------------------------------------ arrays read back in slices


def write_array(path: str, arr) -> None:
    """One numpy array (no objects) as an ``.npy`` file through ``FileSystems``; a later step
    reads row ranges of it with :func:`read_array_rows`. A step that would shuffle large
    arrays writes them here and shuffles ``(path, start, stop)`` references instead: the local
    runner keeps every shuffled element in memory until its consumer runs."""
    import numpy as np

    with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as fh:
        np.lib.format.write_array(fh, np.ascontiguousarray(arr), allow_pickle=False)


def read_array_rows(path: str, start: int, stop: int):
    """Rows ``start:stop`` (along the first axis) of an array written by :func:`write_array`,
    reading only those bytes."""
    import numpy as np

    fmt = np.lib.format
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as fh:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fh)
        else:
            shape, fortran, dtype = fmt.read_array_header_2_0(fh)
        if fortran:
            raise ValueError(f"{path}: Fortran-ordered array")
        row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        fh.seek(fh.tell() + start * row)
        n = stop - start
        data = fh.read(n * row)
        if len(data) != n * row:
            raise EOFError(f"truncated array file {path}")
    return np.frombuffer(data, dtype=dtype).reshape((n, *shape[1:]))


INLINE_BYTES = 64 << 10  # a slice smaller than this travels through the shuffle itself


def slice_refs(path: str, arr, bounds: list[tuple[Any, int, int]],
               inline_bytes: int | None = None) -> tuple[list[tuple[Any, Any]], bool]:
    """``[(key, ref)]`` for the row ranges ``bounds`` (``(key, start, stop)``) of ``arr``:
    ``ref`` is the slice itself when it is smaller than ``inline_bytes`` (many small slices:
    the runner's shuffle moves them best), else ``(path, start, stop)`` of ``arr`` written
    once to ``path`` (a large slice stays on disk: the local runner would hold it in memory).
    Also whether ``path`` was written. Read a ref back with :func:`read_slice`."""
    import numpy as np

    if inline_bytes is None:
        inline_bytes = INLINE_BYTES
    row = arr.nbytes // len(arr) if len(arr) else 0
    big = any((z - a) * row >= inline_bytes for _k, a, z in bounds)
    if big:
        write_array(path, arr)
    return [(k, (path, a, z) if (z - a) * row >= inline_bytes
             else np.ascontiguousarray(arr[a:z])) for k, a, z in bounds], big


def read_slice(ref):
    """The rows a :func:`slice_refs` reference stands for."""
    return read_array_rows(*ref) if isinstance(ref, tuple) else ref
