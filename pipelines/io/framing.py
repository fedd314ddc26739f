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
frame is marked ``oversize``. A compressed stream that cannot be decoded to its end (truncated or
corrupt ``.gz``/``.bz2``/``.zst``, trailing garbage) is decoded up to the break with incremental
decompressor objects (every decodable byte is framed: complete lines before the break are
records) and ends with one ``unreadable`` frame: the partial line at the break plus the damaged
tail cannot be split into records, so they count as one input record (one dead-letter row whose
reason says where the break is and how many compressed bytes were not decoded). An I/O error
(the file cannot be opened or read: EIO, permission, a storage error) is not damage: it also ends
in an ``unreadable`` frame, and :attr:`FramedFile.read_failure` says why, so that the reader fails
the build instead of counting the rest of the file as one record.

Before framing, the decompressed stream is normalized (:func:`_normalized`), the same for plain,
``.gz``, ``.bz2`` and ``.zst`` files:

* a UTF-8 byte order mark (``EF BB BF``) at the very start of the stream is dropped (Windows
  exports), so the first record parses; a BOM anywhere else is data;
* line ends: a record ends at ``\n`` (``\r\n`` too: the ``\r`` is dropped). A file whose
  *first* line end is a lone ``\r`` (not followed by ``\n``) is read as a CR-terminated file
  (classic Mac exports): every ``\r`` ends a record there (and a stray ``\n`` still does). The
  first line end decides because the stream is read once, in bounded memory; a raw ``\r``
  cannot be part of a valid JSON record's string (JSON escapes it as ``\\r``), so for valid
  JSONL the rule only changes how a CR-only file is cut. Counting stays exact either way: every
  frame is one input record.
"""

from __future__ import annotations

import bz2
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipelines.io.input_files import compression_of
from pipelines.core.records import MAX_RAW_CHARS

DEFAULT_MAX_RECORD_BYTES = 32 << 20  # 32 MiB: far above any document, far below RAM
CHUNK_BYTES = 1 << 20
BZ2_READ_BYTES = 64 << 10  # compressed bytes given to a bz2 decompressor at a time
RAW_PREFIX_BYTES = MAX_RAW_CHARS  # what a dead-letter row keeps of an oversize record

RECORD, OVERSIZE, UNREADABLE = "record", "oversize", "unreadable"
BOM = b"\xef\xbb\xbf"  # UTF-8 byte order mark, dropped at the start of a stream


class DamagedStream(Exception):
    """The compressed data cannot be decoded past this point (damage, not an I/O error)."""


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
        try:
            out = dobj.decompress(data, max_length=chunk)
        except Exception as err:  # noqa: BLE001 - ZstdError: corrupt frame
            at = raw.bytes_read - len(data)
            raise _damaged(raw, f"corrupt zstd data at compressed byte ~{at:,} "
                           f"({type(err).__name__}: {err})", at) from None
        started = True
        data = b""
        if out:
            yield out
    if started and not dobj.eof:
        raise DamagedStream(f"truncated zstd stream: the file ends at compressed byte "
                            f"{raw.bytes_read:,} inside a frame (the data decoded up to there "
                            "was read)")


def _reader_chunks(stream, chunk: int) -> Iterator[bytes]:
    while True:
        data = stream.read(chunk)
        if not data:
            return
        yield data


def _damaged(raw: CountingReader, what: str, at: int) -> DamagedStream:
    """The error for damage found at compressed byte ``at``: reads (and drops) the rest of the
    file in bounded chunks to say how many compressed bytes were not decoded."""
    while raw.read(CHUNK_BYTES):
        pass
    lost = max(0, raw.bytes_read - at)
    return DamagedStream(f"{what}: {lost:,} compressed bytes (from byte {at:,} to the end of "
                         f"the file, {raw.bytes_read:,} bytes) could not be decoded")


def _decodable_prefix(dobj, data: bytes, chunk: int, step: int = 256) -> Iterator[bytes]:
    """What a zlib decompressor (a copy taken before the failing call) decodes from ``data``
    fed ``step`` bytes at a time, up to the error: the output of the call that failed."""
    for i in range(0, len(data), step):
        piece = data[i:i + step]
        while piece:
            try:
                out = dobj.decompress(piece, chunk)
            except zlib.error:
                return
            if out:
                yield out
            if dobj.eof:
                return
            piece = dobj.unconsumed_tail


def _member_chunks(raw: CountingReader, kind: str, chunk: int) -> Iterator[bytes]:
    """Decompress a (multi-member) .gz or (multi-stream) .bz2 stream with incremental
    decompressor objects, in output pieces of at most ``chunk`` bytes (memory is bounded
    whatever the ratio). Every byte that can be decoded is yielded; then damage (truncated
    member, corrupt data, trailing garbage) raises :class:`DamagedStream` once. Zero bytes
    between gzip members are padding (as for ``gzip -dc``). I/O errors propagate as they are."""
    gz = kind == "gzip"
    name = "gzip member" if gz else "bz2 stream"
    dobj = None  # the current member's decompressor (None between members)
    start = 0  # compressed offset where the current member starts
    members = 0
    data = b""  # compressed bytes read but not yet given to a decompressor
    while True:
        if not data and (dobj is None or getattr(dobj, "needs_input", True)):
            # bz2 decompressors cannot be copied: small reads keep the output a corrupt
            # block's error discards (that of the failing call) to that block's
            data = raw.read(chunk if gz else BZ2_READ_BYTES)
            if not data:
                break
        if dobj is None:
            if gz:
                data = data.lstrip(b"\0")
                if not data:
                    continue
            start = raw.bytes_read - len(data)
            dobj = zlib.decompressobj(wbits=31) if gz else bz2.BZ2Decompressor()
        saved = dobj.copy() if gz else None  # to replay a failing call in small steps
        try:
            out = dobj.decompress(data, chunk)
        except (zlib.error, OSError, EOFError, ValueError) as err:
            if saved is not None:  # the failed call's output is lost: decode it again
                yield from _decodable_prefix(saved, data, chunk)
            at = raw.bytes_read - len(data)
            if members and at == start:
                what = f"trailing data after {members:,} complete {name}(s) is not {kind} data"
            else:
                what = (f"corrupt {kind} data at compressed byte ~{at:,} in the {name} "
                        f"starting at byte {start:,} ({type(err).__name__}: {err})")
            raise _damaged(raw, what, at) from None
        if out:
            yield out
        if dobj.eof:
            data, dobj = dobj.unused_data, None
            members += 1
        else:
            data = dobj.unconsumed_tail if gz else b""
    if dobj is not None:  # the file ends inside a member
        if gz:
            rest = dobj.flush()  # whatever the last input still decodes to (a few bytes)
            if rest:
                yield rest
        raise DamagedStream(
            f"truncated {kind} file: the {name} starting at compressed byte {start:,} is cut off "
            f"at the end of the file (byte {raw.bytes_read:,}); "
            + ("every byte before the break was decoded" if gz else
               # bzip2 decodes whole blocks: the cut one is lost, as with bzip2 -dc
               "its last block, cut off, could not be decoded (bzip2 decodes whole blocks of "
               "up to 900 kB of data; bzip2 -dc loses the same)")
            + ", the data after the break is missing")


def decompressed_chunks(raw: CountingReader, path: str, chunk: int = CHUNK_BYTES
                        ) -> Iterator[bytes]:
    """The decompressed content of ``path`` (compression from its name) in bounded chunks.

    Damaged archives yield what can be decoded, then raise :class:`DamagedStream` instead of
    ending early (Beam's own decompressing reader stops silently on a truncated .gz, and
    ``GzipFile``/``BZ2File.read`` drop what they decoded in the failing call). Other
    exceptions are I/O errors."""
    kind = compression_of(path)
    if kind in ("gzip", "bz2"):
        return _member_chunks(raw, kind, chunk)
    if kind == "zstd":
        return _zstd_chunks(raw, chunk)
    return _reader_chunks(raw, chunk)


def _normalized(chunks: Iterator[bytes], framer: RecordFramer) -> Iterator[bytes]:
    """``chunks`` without a leading UTF-8 BOM and, when the stream's first line end is a lone
    ``\\r``, with every ``\\r`` turned into ``\\n`` (see the module docstring). At most 3 bytes
    are held back between chunks; an exception from ``chunks`` is raised after the bytes
    held back are yielded, so nothing decoded before a break is lost. Sets ``framer.bom`` and
    ``framer.line_end``."""
    it = iter(chunks)
    head = b""  # bytes held back: a possible BOM prefix, or a \r whose next byte decides
    first = True  # the start of the stream has not been looked at yet
    failure: BaseException | None = None
    while True:
        try:
            chunk = next(it)
        except StopIteration:
            break
        except Exception as err:  # noqa: BLE001 - re-raised below, after the held bytes
            failure = err
            break
        data = head + chunk if head else chunk
        head = b""
        if first:
            if len(data) < len(BOM) and BOM.startswith(data):
                head = data
                continue
            if data.startswith(BOM):
                data = data[len(BOM):]
                framer.bom = True
            first = False
        if framer.line_end is None:
            n, r = data.find(b"\n"), data.find(b"\r")
            if r == -1 or -1 < n < r:
                if n != -1:
                    framer.line_end = "lf"
            elif r + 1 < len(data):
                framer.line_end = "lf" if data[r + 1] == 0x0A else "cr"
            else:  # the \r is the chunk's last byte: the next byte decides
                head, data = data[-1:], data[:-1]
        if framer.line_end == "cr":
            data = data.replace(b"\r", b"\n")
        if data:
            yield data
    if head:  # a partial BOM, or a last \r (stripped from the last record by the framer)
        yield head
    if failure is not None:
        raise failure


class RecordFramer:
    """Iterate the records (non-blank lines) of a chunk stream; count them and the lines.

    ``records`` is the number of frames yielded so far (every kind counts: each frame is one
    input record). The iterator never raises on bad data or a broken stream."""

    def __init__(self, chunks: Iterator[bytes], max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES):
        self._chunks = chunks
        self._max = max_record_bytes
        self.records = 0
        self.lines = 0
        self.read_failure = ""  # set when the stream stopped on an I/O error, not on damage
        self.bom = False  # the stream started with a UTF-8 BOM (dropped)
        self.line_end = None  # "lf" or "cr" once the first line end was seen (_normalized)

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
        chunks = _normalized(self._chunks, self)
        while True:
            try:
                chunk = next(chunks)
            except StopIteration:
                break
            except Exception as err:  # noqa: BLE001 - damaged archive, I/O error...
                self.lines += 1
                self.records += 1
                prefix = b"".join(pending)[:RAW_PREFIX_BYTES]
                if isinstance(err, DamagedStream):
                    error = str(err)
                else:
                    error = self.read_failure = f"{type(err).__name__}: {err}"
                yield Frame(UNREADABLE, self.lines, prefix, pending_len, error)
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
    An error opening the file becomes the single UNREADABLE frame. ``read_failure`` is the
    I/O error (open or read) that stopped the stream, "" when there was none: damaged
    compressed data is not one (it ends in an UNREADABLE frame with ``read_failure`` empty)."""

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
    def read_failure(self) -> str:
        return self.open_error or (self._framer.read_failure if self._framer else "")

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
