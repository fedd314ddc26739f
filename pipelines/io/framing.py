"""Counted record framing: a JSONL file's decompressed byte stream cut into input records.

This is the one place where JSONL input records are *counted*, from the raw bytes, before and
independently of parsing: a record is a non-blank newline-delimited piece of the decompressed
stream (whitespace-only lines are not records). :class:`RecordFramer` yields one
:class:`Frame` per record and every reader turns every frame into exactly one record or one
dead-letter row, so ``framer.records`` is the number the build's conservation check
(``input = kept + removed + dead_letter``) starts from, whatever the parser makes of the bytes.

Memory is bounded whatever the data: the stream is decompressed in chunks of at most
``CHUNK_BYTES`` (also for "zip bombs"), and a record longer than ``max_record_bytes`` is not
kept whole: only its first ``RAW_PREFIX_BYTES`` are, the rest is counted and dropped, and the
frame is marked ``oversize``. A stream that cannot be read to its end (truncated ``.gz``/``.bz2``/
``.zst``, I/O error) ends with one ``unreadable`` frame: what follows the break cannot be split
into records, so it counts as one input record (and becomes one dead-letter row).
"""

from __future__ import annotations

import bz2
import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipelines.io.input_files import compression_of
from pipelines.core.records import MAX_RAW_CHARS

DEFAULT_MAX_RECORD_BYTES = 32 << 20  # 32 MiB: far above any document, far below RAM
CHUNK_BYTES = 1 << 20
RAW_PREFIX_BYTES = MAX_RAW_CHARS  # what a dead-letter row keeps of an oversize record

RECORD, OVERSIZE, UNREADABLE = "record", "oversize", "unreadable"


@dataclass(slots=True)
class Frame:
    kind: str  # RECORD, OVERSIZE or UNREADABLE
    lineno: int  # 1-based physical line number where the record starts
    data: bytes  # the record without its line end (a prefix of it when OVERSIZE)
    size: int = 0  # OVERSIZE: bytes of the whole record
    error: str = ""  # UNREADABLE: why the stream stopped


class CountingReader:
    """A binary file wrapper that counts the raw (compressed) bytes read through it."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        self.bytes_read = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self.bytes_read += len(data)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()


def _zstd_decompressor():
    try:
        from compression.zstd import ZstdDecompressor  # Python >= 3.14
    except ImportError:
        from backports.zstd import ZstdDecompressor
    return ZstdDecompressor()


def _zstd_chunks(raw: CountingReader, chunk: int) -> Iterator[bytes]:
    """Decompress a (multi-frame) .zst stream in output pieces of at most ``chunk`` bytes;
    a stream that ends inside a frame raises EOFError."""
    dobj = _zstd_decompressor()
    data = b""
    started = False
    while True:
        if dobj.eof:
            data = dobj.unused_data + data
            dobj = _zstd_decompressor()
            started = False
        if not data and dobj.needs_input:
            data = raw.read(chunk)
            if not data:
                break
        out = dobj.decompress(data, max_length=chunk)
        started = True
        data = b""
        if out:
            yield out
    if started and not dobj.eof:
        raise EOFError("zstd stream ended before the end of its frame (truncated file)")


def _reader_chunks(stream, chunk: int) -> Iterator[bytes]:
    while True:
        data = stream.read(chunk)
        if not data:
            return
        yield data


def decompressed_chunks(raw: CountingReader, path: str, chunk: int = CHUNK_BYTES
                        ) -> Iterator[bytes]:
    """The decompressed content of ``path`` (compression from its name) in bounded chunks.

    Truncated archives raise (EOFError) instead of ending early: Beam's own decompressing
    reader stops silently on a truncated .gz."""
    kind = compression_of(path)
    if kind == "gzip":
        return _reader_chunks(gzip.GzipFile(fileobj=raw), chunk)
    if kind == "bz2":
        return _reader_chunks(bz2.BZ2File(raw), chunk)
    if kind == "zstd":
        return _zstd_chunks(raw, chunk)
    return _reader_chunks(raw, chunk)


class RecordFramer:
    """Iterate the records (non-blank lines) of a chunk stream; count them and the lines.

    ``records`` is the number of frames yielded so far (every kind counts: each frame is one
    input record). The iterator never raises on bad data or a broken stream."""

    def __init__(self, chunks: Iterator[bytes], max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES):
        self._chunks = chunks
        self._max = max_record_bytes
        self.records = 0
        self.lines = 0

    def _frame(self, lineno: int, parts: list[bytes], size: int, over: bool) -> Frame | None:
        if over or size > self._max:
            prefix = b"".join(parts)[:RAW_PREFIX_BYTES]
            return Frame(OVERSIZE, lineno, prefix, size)
        line = parts[0] if len(parts) == 1 else b"".join(parts)
        if not line or line.isspace():
            return None
        if line.endswith(b"\r"):
            line = line[:-1]
        return Frame(RECORD, lineno, line)

    def __iter__(self) -> Iterator[Frame]:
        limit = self._max
        pending: list[bytes] = []  # start of the current line (or its prefix when over)
        pending_len = 0
        over = False  # the current line is longer than the limit: keep only a prefix
        chunks = iter(self._chunks)
        while True:
            try:
                chunk = next(chunks)
            except StopIteration:
                break
            except Exception as err:  # noqa: BLE001 - truncated archive, I/O error...
                self.lines += 1
                self.records += 1
                prefix = b"".join(pending)[:RAW_PREFIX_BYTES]
                yield Frame(UNREADABLE, self.lines, prefix, pending_len,
                            f"{type(err).__name__}: {err}")
                return
            pieces = chunk.split(b"\n")
            tail = pieces.pop()  # after the last newline: the start of the next line
            for piece in pieces:
                self.lines += 1
                if pending:
                    size = pending_len + len(piece)
                    if not over:
                        pending.append(piece)
                    frame = self._frame(self.lines, pending, size, over)
                    pending, pending_len, over = [], 0, False
                elif len(piece) > limit:
                    frame = Frame(OVERSIZE, self.lines, piece[:RAW_PREFIX_BYTES], len(piece))
                elif not piece or piece.isspace():
                    continue
                else:
                    frame = Frame(RECORD, self.lines, piece[:-1] if piece.endswith(b"\r")
                                  else piece)
                if frame is not None:
                    self.records += 1
                    yield frame
            if tail:
                pending_len += len(tail)
                if not over:
                    pending.append(tail)
                    if pending_len > limit:  # keep a prefix only, count the rest
                        over = True
                        pending = [b"".join(pending)[:RAW_PREFIX_BYTES]]
        if pending_len:
            self.lines += 1
            frame = self._frame(self.lines, pending, pending_len, over)
            if frame is not None:
                self.records += 1
                yield frame


class FramedFile:
    """Open ``path`` (any Beam filesystem), decompress by name and frame its records.

    Iterate it once; afterwards ``records`` is the count and ``bytes_read`` the raw bytes read.
    An error opening the file becomes the single UNREADABLE frame."""

    def __init__(self, path: str, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES):
        self.path = path
        self._max = max_record_bytes
        self._framer: RecordFramer | None = None
        self._counter: CountingReader | None = None
        self.open_error = ""

    @property
    def records(self) -> int:
        return self._framer.records if self._framer else (1 if self.open_error else 0)

    @property
    def bytes_read(self) -> int:
        return self._counter.bytes_read if self._counter else 0

    def __iter__(self) -> Iterator[Frame]:
        try:
            raw = FileSystems.open(self.path, compression_type=CompressionTypes.UNCOMPRESSED) \
                if "://" in self.path else open(self.path, "rb")  # noqa: SIM115
        except Exception as err:  # noqa: BLE001
            self.open_error = f"{type(err).__name__}: {err}"
            yield Frame(UNREADABLE, 1, b"", 0, self.open_error)
            return
        with raw:
            self._counter = CountingReader(raw)
            self._framer = RecordFramer(decompressed_chunks(self._counter, self.path), self._max)
            yield from self._framer


def iter_lines(path: str, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Iterator[bytes]:
    """The records (non-blank lines, without line ends) of a possibly compressed JSONL file.

    Oversize records come as their prefix; a broken stream raises at the break."""
    for frame in FramedFile(path, max_record_bytes):
        if frame.kind == UNREADABLE:
            raise OSError(f"{path}: {frame.error}")
        yield frame.data
