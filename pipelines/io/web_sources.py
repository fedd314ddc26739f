"""Web sources: ``type: warc`` (plain or .gz WARC files) and ``type: html`` (one page per file).

Reading and extraction (``filters.extract``) happen in one worker per file, streamed record by
record with FastWARC, so memory is one record at a time whatever the file size. Every record
of the source's document types (WARC ``response`` and ``resource`` records) becomes exactly one
record or one dead-letter row:

* kept: HTTP status 2xx, content type in ``content_types``, decodable, non-empty main text;
* dead (stage ``read``), with the raw payload (truncated to 20 kB) and a reason:
  ``http_status: 404``, ``not_html: application/pdf``, ``undecodable: ...``,
  ``unsupported_content_encoding: ...``, ``truncated_record: ...``, ``no_main_text``,
  ``extract_error: ...``.
  ``request``, ``metadata``, ``warcinfo``, ``revisit`` ... records are not documents: they are
  neither counted nor emitted.

Columns (declared by :func:`source_columns`, null for records of other sources): ``url``
(``WARC-Target-URI``; for html files the path), ``fetch_date`` (``WARC-Date``, ISO 8601),
``content_type`` (MIME type), ``language_hint`` (HTTP ``Content-Language``, else the page's
``<html lang>``) and ``warc_record_id``. Ids are ``<path relative to the glob base>:<n>`` with
``n`` the 1-based ordinal of the document record in the file (``<rel path>`` for html files).

Input counting (contract C1): :class:`_CountWarc` walks each file's WARC framing in its own
pass (FastWARC, ``parse_http=False``: no HTTP parsing, decoding or extraction) and emits one
``counted`` row per file. A file that cannot be read to its end (truncated .gz, garbage
between records) counts ``documents framed before the error + 1``; the reader emits one
dead-letter row for that remainder with ``"records": 1 + (1 if a document record was in
progress)``, so records + dead rows (weighted by ``records``) always equal the count. A
record whose block is shorter than its ``Content-Length`` (a plain file cut mid-record)
is counted and dead-lettered as ``truncated_record``. For ``type: html`` every file is one
record.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from filters.extract import (Undecodable, check_extractor, clean_extracted, decode_html,
                             header_charset, html_lang, make_extractor, mime_type)
from pipelines.core.settings import ConfigError
from pipelines.core.records import dead_letter

DEAD = "dead"
COUNTED = "counted"
WEB_TYPES = ("warc", "html")
WEB_COLUMNS: dict[str, str] = {
    "url": "string",
    "fetch_date": "string",
    "content_type": "string",
    "language_hint": "string",
    "warc_record_id": "string",
}


def source_columns(sources: list[Any]) -> dict[str, str]:
    """Columns the configured sources add to every record (empty without web sources)."""
    return dict(WEB_COLUMNS) if any(s.type in WEB_TYPES for s in sources) else {}


def check_web_source(src: Any, index: int) -> None:
    """Fail before any work when the source's libraries are missing."""
    problem = check_extractor(src.extractor)
    if problem is None and src.type == "warc":
        try:
            import fastwarc  # noqa: F401
        except ImportError as err:
            problem = f"type warc needs fastwarc ({err}); pip install 'datamill[web]'"
    if problem:
        raise ConfigError(f"sources[{index}].extractor: {problem}")


# --------------------------------------------------------------------------- WARC framing


def _open_decompressed(path: str):
    raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    # Python's gzip raises EOFError on a truncated member (FastWARC's own gzip reader stops
    # silently), and reads multi-member files (one member per record, as crawlers write).
    return (gzip.GzipFile(fileobj=raw) if path.lower().endswith(".gz") else raw), raw


def _doc_types():
    from fastwarc.warc import WarcRecordType

    return WarcRecordType.response | WarcRecordType.resource


class _Failure:
    """Marks where reading a file stopped with an error (``in_record``: inside a document)."""

    def __init__(self, err: BaseException, in_record: bool, ordinal: int):
        self.reason = f"read_error: {type(err).__name__}: {err}"
        self.in_record = in_record
        self.ordinal = ordinal


def _frames(path: str, parse_http: bool) -> Iterator[Any]:
    """FastWARC document records of ``path``, then one :class:`_Failure` if reading failed.

    The caller must consume each record's content before asking for the next one.
    """
    from fastwarc.warc import ArchiveIterator

    fh, raw = _open_decompressed(path)
    n = 0
    try:
        it = iter(ArchiveIterator(fh, record_types=_doc_types(), parse_http=parse_http,
                                  stream_detect=False, auto_decode="none"))
        while True:
            try:
                rec = next(it)
            except StopIteration:
                return
            except Exception as err:  # noqa: BLE001 - unreadable header / decompression
                yield _Failure(err, False, n + 1)
                return
            n += 1
            yield rec
    finally:
        fh.close()
        raw.close()


class _CountWarc(beam.DoFn):
    """One ``counted`` row per file from the WARC framing alone (see the module docstring)."""

    def __init__(self, source: str):
        self._source = source

    def process(self, f):
        n = 0
        failed = False
        for item in _frames(f.path, parse_http=False):
            if isinstance(item, _Failure):
                failed = True
                break
            n += 1
            try:
                while item.reader.read(1 << 20):
                    pass
            except Exception:  # noqa: BLE001 - the reader dead-letters this record + the rest
                failed = True
                break
        yield {"source": self._source, "path": f.path, "records": n + (1 if failed else 0),
               "bytes": f.size}


def _decode_payload(body: bytes, encoding: str | None) -> bytes:
    enc = (encoding or "identity").strip().lower()
    if enc in ("identity", ""):
        return body
    if enc in ("gzip", "x-gzip"):
        return gzip.decompress(body)
    if enc == "deflate":
        try:
            return zlib.decompress(body)
        except zlib.error:
            return zlib.decompress(body, -zlib.MAX_WBITS)
    if enc == "br":
        import brotli  # installed with trafilatura

        return brotli.decompress(body)
    raise ValueError(enc)


class _Page:
    """Turns one fetched page into a record or a dead-letter row (shared by warc and html)."""

    def __init__(self, src: Any):
        self._src = src
        self._extract = None
        self._types = tuple(t.lower() for t in src.content_types)

    def setup(self) -> None:
        self._extract = make_extractor(self._src.extractor)

    def build(self, rid: str, body: bytes, loc: str, *, url: str | None, fetch_date: str | None,
              content_type: str | None, language: str | None, record_id: str | None):
        src = self._src

        def dead(reason: str):
            return None, dead_letter("read", reason, body, record_id=rid, source=src.name,
                                     location=loc)

        mime = mime_type(content_type)
        if mime is not None and mime not in self._types:
            return dead(f"not_html: {mime}")
        try:
            html, _ = decode_html(body, header_charset(content_type))
        except Undecodable as err:
            return dead(f"undecodable: {err}")
        if mime is None and "<" not in html[:4096]:
            return dead("not_html: no content type and no markup")
        try:
            text = clean_extracted(self._extract(html))  # type: ignore[misc]
        except Exception as err:  # noqa: BLE001 - extractor crash on hostile HTML
            return dead(f"extract_error: {type(err).__name__}: {err}")
        if not text.strip():
            return dead("no_main_text")
        return {
            "id": rid,
            "text": text,
            "source": src.name,
            "url": url,
            "fetch_date": fetch_date,
            "content_type": mime,
            "language_hint": language or html_lang(html),
            "warc_record_id": record_id,
        }, None


class _PageReader(beam.DoFn):
    """Base of the WARC and HTML readers: the source config and its page extractor."""

    def __init__(self, src: Any):
        self._src = src
        self._page = _Page(src)

    def setup(self):
        self._page.setup()


class _ReadWarc(_PageReader):
    def process(self, f):
        src = self._src
        name = src.name
        ordinal = 0
        for item in _frames(f.path, parse_http=False):
            if isinstance(item, _Failure):
                row = dead_letter("read", item.reason, f"<file {f.path}>", source=name,
                                  location=f"{f.path}#record={item.ordinal}")
                row["records"] = 1
                yield pvalue.TaggedOutput(DEAD, row)
                return
            ordinal += 1
            rid = f"{f.rel}:{ordinal}"
            loc = f"{f.path}#record={ordinal}"
            headers = item.headers
            try:
                block = item.reader.read()
            except Exception as err:  # noqa: BLE001 - decompression failed inside the record
                row = dead_letter("read", f"read_error: {type(err).__name__}: {err}",
                                  f"<file {f.path}>", record_id=rid, source=name, location=loc)
                row["records"] = 2  # this record and the unreadable rest of the file
                yield pvalue.TaggedOutput(DEAD, row)
                return
            rec, dead = self._record(item, headers, block, rid, loc)
            if rec is not None:
                yield rec
            else:
                yield pvalue.TaggedOutput(DEAD, dead)

    def _record(self, item, headers, block: bytes, rid: str, loc: str):
        src = self._src
        if len(block) < item.content_length:
            return None, dead_letter(
                "read", f"truncated_record: {len(block)} of {item.content_length} bytes",
                block, record_id=rid, source=src.name, location=loc)
        url = headers.get("WARC-Target-URI")
        date = headers.get("WARC-Date")
        wid = headers.get("WARC-Record-ID")
        wtype = headers.get("Content-Type") or ""
        if "application/http" in wtype.lower():
            head, sep, body = block.partition(b"\r\n\r\n")
            if not sep:
                head, sep, body = block.partition(b"\n\n")
            status, http = _parse_http_head(head)
            if status is None:
                return None, dead_letter("read", "bad_http_headers", block, record_id=rid,
                                         source=src.name, location=loc)
            if not 200 <= status < 300:
                return None, dead_letter("read", f"http_status: {status}", block,
                                         record_id=rid, source=src.name, location=loc)
            if http.get("transfer-encoding", "identity").lower() not in ("identity", ""):
                return None, dead_letter(
                    "read", f"unsupported_transfer_encoding: {http['transfer-encoding']}",
                    block, record_id=rid, source=src.name, location=loc)
            try:
                body = _decode_payload(body, http.get("content-encoding"))
            except Exception as err:  # noqa: BLE001
                return None, dead_letter(
                    "read", f"unsupported_content_encoding: {http.get('content-encoding')}: "
                    f"{type(err).__name__}", block, record_id=rid, source=src.name,
                    location=loc)
            ctype = http.get("content-type")
            lang = http.get("content-language")
        else:  # a resource record: the block is the document itself
            body, ctype, lang = block, wtype or None, None
        if lang:
            lang = lang.split(",")[0].strip() or None
        return self._page.build(rid, body, loc, url=url, fetch_date=date, content_type=ctype,
                                language=lang, record_id=wid)


def _parse_http_head(head: bytes) -> tuple[int | None, dict[str, str]]:
    """Status code and lower-cased headers of an HTTP response head (None when malformed)."""
    lines = head.decode("iso-8859-1").split("\n")
    parts = lines[0].strip().split(None, 2)
    if len(parts) < 2 or not parts[0].upper().startswith("HTTP/") or not parts[1].isdigit():
        return None, {}
    out: dict[str, str] = {}
    for ln in lines[1:]:
        key, sep, value = ln.partition(":")
        if sep:
            out.setdefault(key.strip().lower(), value.strip())
    return int(parts[1]), out


class _ReadHtml(_PageReader):
    def process(self, f):
        src = self._src
        try:
            fh, raw = _open_decompressed(f.path)
            try:
                body = fh.read()
            finally:
                fh.close()
                raw.close()
        except Exception as err:  # noqa: BLE001
            yield pvalue.TaggedOutput(DEAD, dead_letter(
                "read", f"read_error: {type(err).__name__}: {err}", f"<file {f.path}>",
                record_id=f.rel, source=src.name, location=f.path))
            return
        rec, dead = self._page.build(f.rel, body, f.path, url=f.path, fetch_date=None,
                                     content_type=None, language=None, record_id=None)
        yield rec if rec is not None else pvalue.TaggedOutput(DEAD, dead)


class _CountHtml(beam.DoFn):
    """One record per HTML file (a page is one record, however it parses)."""

    def __init__(self, source: str):
        self._source = source

    def process(self, f):
        yield {"source": self._source, "path": f.path, "records": 1, "bytes": f.size}


def web_reader_and_counter(src: Any):
    """(reader DoFn, counting DoFn) of a ``warc`` or ``html`` source: used by :class:`ReadWeb`
    and by the read step shared with other sources (``pipelines.io.sources.read_sources``)."""
    if src.type == "warc":
        return _ReadWarc(src), _CountWarc(src.name)
    return _ReadHtml(src), _CountHtml(src.name)


class ReadWeb(beam.PTransform):
    """Read a ``warc`` or ``html`` source: ``{"records", "dead", "counted"}`` PCollections."""

    def __init__(self, src: Any, files: list[Any]):
        super().__init__()
        if src.type not in WEB_TYPES:
            raise ValueError(f"ReadWeb reads {WEB_TYPES}, not {src.type!r}")
        self._src = src
        self._files = files

    def expand(self, pbegin):
        src = self._src
        files = pbegin | "Files" >> beam.Create(self._files) | "Spread" >> beam.Reshuffle()
        reader, counter = web_reader_and_counter(src)
        outs = files | "Read" >> beam.ParDo(reader).with_outputs(DEAD, main="records")
        counted = files | "Count" >> beam.ParDo(counter)  # from the raw file, not the parse
        return {"records": outs["records"], DEAD: outs[DEAD], COUNTED: counted}
