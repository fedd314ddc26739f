"""Input fields: which fields of the input records become output columns, with which types.

Every field of an input record other than ``text_field`` and ``id_field`` is kept by default
(``keep_fields: [a, b]`` keeps only those, ``drop_fields: [c]`` all but those,
``keep_fields: []`` none). Types are planned once, before any work, and never change while
the build runs:

* Parquet: from the schemas of the first :data:`SCHEMA_FILES` files (footers only);
* ``hf``: from the dataset's Arrow schema (its features);
* JSONL: from a bounded, deterministic sample: the first :data:`SAMPLE_RECORDS` parseable
  records, at most :data:`SAMPLE_BYTES` of decompressed input, of the source's files in listing
  order (at most :data:`SAMPLE_FILES` files).

Column types (:mod:`pipelines.core.records`): ``string``, ``int64``, ``float64``, ``bool``,
``timestamp[us]`` / ``timestamp[us, tz=UTC]``, ``list<T>``, ``struct<name: T, ...>`` (Parquet
lists and structs, nested to any of these) and ``json`` (JSON text). From JSON values:

* an object whose shape is stable in the sample becomes a struct: its fields are the keys of
  every sampled object, in first-seen order (a key missing from some objects is a nullable
  field); each field's type follows these rules, and a key only ever null (or an empty list or
  object) is a ``json`` field. Objects with more than :data:`MAX_STRUCT_FIELDS` keys in all
  (map-like), keys that are not valid column names, nesting deeper than :data:`MAX_DEPTH` or a
  field whose types conflict make the whole field ``json``;
* a list whose elements share one type (after the merge rule) is a ``list<T>``, lists of
  objects included (``list<struct<...>>``); mixed elements make the field ``json``;
* a string that is an ISO-8601 date and time (``2024-01-02T03:04:05``, ``T`` or a space, with
  optional seconds and up to 6 fraction digits) is a timestamp when every sampled value of the
  field is: with ``Z`` or an offset ``timestamp[us, tz=UTC]`` (converted to UTC; the offset
  itself is not kept), without one ``timestamp[us]`` (naive, as written). Dates alone stay
  ``string``; timestamps with and without offsets mixed, or with other text, are ``string``;
* fields only ever null in the sample are ``json``.

Arrow inputs map: strings -> string, integers -> int64, floats -> float64, bool -> bool,
timestamps -> the same timestamp (unit and zone kept), dates and times -> string (ISO 8601),
lists -> list<...>, structs -> struct<...> (of those types), anything else (map, binary,
decimal, a struct holding one of them) -> json.
Types met for the same field (in the sample, across files or across sources) merge by one rule
(:func:`merge_types`): equal -> that type; null -> the other; int64 + float64 -> float64 (in
lists and structs too); two different timestamps or a timestamp and a string -> string; lists
-> a list of the merged elements; structs -> the union of their fields, merged field by field;
otherwise json (a conflict anywhere inside a list or struct makes the whole field json).
The sample is read in one process before the pipeline starts (the same files, in listing
order), so the schema does not depend on the runner or the worker count.

The lossless rule for values (:func:`FieldPlan.values`): a value that fits its column's type
goes there (an integer into a float64 column when exact; a timestamp into a string column as
ISO 8601; an ISO-8601 text into a timestamp column, when it has an offset exactly when the
column has a zone; anything into a json column as JSON text; an object into a struct column
when each of its keys is a field of the struct and each value fits, missing keys null). A value
that does not fit (a string in an int64 column, an integer beyond int64, an object with a key
the struct lacks, a text that is no timestamp in a timestamp column), a field not seen at
planning, or a field beyond the
column cap (:data:`MAX_COLUMNS` input columns in all: a hostile input with 100k distinct keys
creates 256 columns, not 100k) is neither dropped nor fatal: it goes, with its original value,
into the one ``extra_fields`` column, a JSON object text ``{"field": value, ...}`` in input
order (null when empty). ``extra_fields`` exists whenever any source keeps fields. A null
value and a missing field are both null.

Names: an input field named like a base column (``id``, ``text``, ``source``), a web-source
column, ``extra_fields`` or a column a stage adds (``language``, ``tokens``, score columns)
is renamed ``input_<name>``; when that name is taken too, planning fails naming the field and
the fix (``drop_fields``). Field names that are empty, longer than
:data:`MAX_NAME_CHARS` characters, hold control characters or are not valid Unicode never
become columns (their values go to ``extra_fields``).
"""

from __future__ import annotations

import base64
import datetime as _dt
import decimal
import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pipelines.core.records import format_type, parse_type

EXTRA_FIELDS = "extra_fields"
RENAME_PREFIX = "input_"
MAX_COLUMNS = 256  # input-field columns in all, whatever the sources hold
MAX_NAME_CHARS = 128
SAMPLE_RECORDS = 1000  # JSONL: records sampled to plan types ...
SAMPLE_BYTES = 4 << 20  # ... or this much decompressed input, whichever comes first
SAMPLE_FILES = 8  # JSONL: files opened for the sample, in listing order
SCHEMA_FILES = 8  # Parquet: footers read for the schema

JSON = "json"
_NULL = "null"  # a type seen only as null so far (planning only, never a column type)
_LIST_ANY = "list<?>"  # only empty / all-null lists so far (planning only)
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_FLOAT_EXACT = 1 << 53


class FieldConfigError(ValueError):
    """A keep_fields/drop_fields mistake or an unresolvable name collision."""


# --------------------------------------------------------------------------- types
# Planned types are type names (pipelines/core/records.py: parse_type / format_type); the
# rules work on their parsed trees.

MAX_STRUCT_FIELDS = 64  # a sampled object with more keys (in all) is map-like: json
MAX_DEPTH = 8  # nesting deeper than this: json
_SCALARS = frozenset({"string", "int64", "float64", "bool", JSON})
# an ISO-8601 date and time (the "T" may be a space), seconds and up to 6 fraction digits
# optional, with "Z" or an offset (timezone-aware) or without (naive)
_TS_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?"
                      r"(?:Z|[+-]\d{2}(?::?\d{2})?)?")
TS_UTC = ("timestamp", "us", "UTC")  # JSON text with Z or an offset: converted to UTC
TS_NAIVE = ("timestamp", "us", None)  # JSON text without an offset


def merge_types(a: str, b: str) -> str:
    """The one type both ``a`` and ``b`` values fit in (see module doc)."""
    if a == b:
        return a
    if a == _NULL:
        return b
    if b == _NULL:
        return a
    return format_type(_merge(parse_type(a), parse_type(b)))


def _merge(a: Any, b: Any) -> Any:
    if a == b:
        return a
    if a == _NULL:
        return b
    if b == _NULL:
        return a
    if {a, b} == {"int64", "float64"}:
        return "float64"
    ka, kb = _kind(a), _kind(b)
    if {ka, kb} <= {"timestamp", "string"}:  # two kinds of timestamps, or some text: text
        return "string"
    if ka != kb or ka not in ("list", "struct"):
        return JSON
    if ka == "list":
        inner = _merge(a[1], b[1])
        return JSON if inner == JSON else ("list", inner)
    fields = dict(a[1])
    for name, t in b[1]:
        t = _merge(fields[name], t) if name in fields else t
        if t == JSON:
            return JSON
        fields[name] = t
    if len(fields) > MAX_STRUCT_FIELDS:
        return JSON
    return ("struct", tuple(fields.items()))


def _kind(t: Any) -> str:
    return t if isinstance(t, str) else t[0]


def final_type(t: str) -> str:
    """The column type of a planned type: what was only ever null (a field, a struct field,
    a list's elements) or an empty object is ``json``."""
    if t in _SCALARS:
        return t
    return format_type(_final(parse_type(t)))


def _final(t: Any) -> Any:
    if t == _NULL:
        return JSON
    if isinstance(t, str):
        return t
    if t[0] == "list":
        inner = _final(t[1])
        return JSON if inner == JSON else ("list", inner)
    if t[0] == "struct":
        return ("struct", tuple((n, _final(c)) for n, c in t[1])) if t[1] else JSON
    return t


def parse_timestamp(s: str) -> _dt.datetime | None:
    """An ISO-8601 date-time text as a datetime (UTC when it has ``Z`` or an offset, else
    naive), or None when it is not one (a date alone is not)."""
    if not _TS_TEXT.fullmatch(s):
        return None
    try:
        d = _dt.datetime.fromisoformat(s)
    except ValueError:
        return None
    if d.tzinfo is not None:
        try:
            d = d.astimezone(_dt.timezone.utc)
        except (OverflowError, ValueError):  # 0001-01-01T00:00+01:00
            return None
    return d


def value_type(v: Any) -> str:
    """Planned type of one JSON value."""
    if v is None:
        return _NULL
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int64" if _INT64_MIN <= v <= _INT64_MAX else JSON
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return _str_type(v)
    return format_type(_value_tree(v, 0))


def _str_type(v: str) -> Any:
    if not _encodable(v):
        return JSON
    if v[:1].isdigit():
        d = parse_timestamp(v)
        if d is not None:
            return format_type(TS_NAIVE if d.tzinfo is None else TS_UTC)
    return "string"


def _value_tree(v: Any, depth: int) -> Any:
    if isinstance(v, (list, dict)) and depth >= MAX_DEPTH:
        return JSON
    if isinstance(v, list):
        t: Any = _NULL
        for x in v:
            t = _merge(t, _value_tree(x, depth + 1))
            if t == JSON:
                return JSON
        return ("list", t)
    if isinstance(v, dict):
        if len(v) > MAX_STRUCT_FIELDS:
            return JSON
        fields = []
        for k, x in v.items():
            if not column_name_ok(k):
                return JSON
            t = _value_tree(x, depth + 1)
            if t == JSON:
                return JSON
            fields.append((k, t))
        return ("struct", tuple(fields))
    t = value_type(v)
    return t if t in _SCALARS or t == _NULL else parse_type(t)


def arrow_to_type(t: Any) -> str:
    """Planned type of an Arrow column type."""
    return format_type(_arrow_tree(t))


def _arrow_tree(t: Any) -> Any:
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or _is(pa.types, "is_string_view", t):
        return "string"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int64"
    if pa.types.is_floating(t):
        return "float64"
    if pa.types.is_timestamp(t):
        return ("timestamp", t.unit, t.tz)
    if pa.types.is_temporal(t) and not pa.types.is_duration(t) and not pa.types.is_interval(t):
        return "string"  # dates and times: ISO 8601
    if pa.types.is_null(t):
        return _NULL
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        inner = _arrow_tree(t.value_type)
        return JSON if inner == JSON else ("list", inner)
    if pa.types.is_struct(t):
        names = [t.field(i).name for i in range(t.num_fields)]
        if not names or len(set(names)) < len(names) or not all(map(column_name_ok, names)):
            return JSON
        fields = []
        for i, name in enumerate(names):
            child = _arrow_tree(t.field(i).type)
            if child == JSON:
                return JSON
            fields.append((name, child))
        return ("struct", tuple(fields))
    return JSON


def _is(mod: Any, name: str, t: Any) -> bool:
    fn = getattr(mod, name, None)
    return bool(fn and fn(t))


def _encodable(s: str) -> bool:
    try:
        s.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _json_default(v: Any) -> Any:
    if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(v)).decode("ascii")
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, (set, frozenset, tuple)):
        return list(v)
    return str(v)


def json_text(v: Any) -> str:
    """JSON text of ``v`` (non-JSON values from Arrow: ISO dates, base64 bytes, decimal text);
    non-ASCII kept as is, unless it holds lone surrogates (then ``\\u`` escapes)."""
    text = json.dumps(v, ensure_ascii=False, default=_json_default)
    if not _encodable(text):
        text = json.dumps(v, ensure_ascii=True, default=_json_default)
    return text


_NOFIT = object()


def _fit_scalar(t: str, v: Any) -> Any:
    if t == "string":
        if isinstance(v, str):
            return v if _encodable(v) else _NOFIT
        if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
            return v.isoformat()
        return _NOFIT
    if isinstance(v, bool):
        return v if t == "bool" else _NOFIT
    if t == "int64":
        return v if isinstance(v, int) and _INT64_MIN <= v <= _INT64_MAX else _NOFIT
    if t == "float64":
        if isinstance(v, float):
            return v
        if isinstance(v, int) and -_FLOAT_EXACT <= v <= _FLOAT_EXACT:
            return float(v)
    return _NOFIT


def fit(t: str, v: Any) -> Any:
    """``v`` as a value of column type ``t``, or ``_NOFIT``. ``v`` is not None."""
    if t == JSON:
        return json_text(v)
    if t in _SCALARS:
        return _fit_scalar(t, v)
    return _fit(parse_type(t), v)


def _fit(t: Any, v: Any) -> Any:
    if isinstance(t, str):
        return json_text(v) if t == JSON else _fit_scalar(t, v)
    kind = t[0]
    if kind == "list":
        if not isinstance(v, (list, tuple)):
            return _NOFIT
        out = []
        for x in v:
            y = None if x is None else _fit(t[1], x)
            if y is _NOFIT:
                return _NOFIT
            out.append(y)
        return out
    if kind == "struct":
        # every key must be a field of the struct (a key not planned: the value does not
        # fit, it goes whole to extra_fields); missing keys are null
        if not isinstance(v, dict) or len(v) > len(t[1]):
            return _NOFIT
        out = {}
        seen = 0
        for name, child in t[1]:
            x = v.get(name)
            if name in v:
                seen += 1
            y = None if x is None else _fit(child, x)
            if y is _NOFIT:
                return _NOFIT
            out[name] = y
        return out if seen == len(v) else _NOFIT
    return _fit_timestamp(t, v)


_UNIT_US = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 1}


def _fit_timestamp(t: tuple, v: Any) -> Any:
    if isinstance(v, str):
        d = parse_timestamp(v) if v[:1].isdigit() else None
        if d is None:
            return _NOFIT
        v = d
    if not isinstance(v, _dt.datetime):
        return _NOFIT
    if (v.tzinfo is not None and v.utcoffset() is not None) != (t[2] is not None):
        return _NOFIT  # an offset for a naive column, or none for a zoned one: not assumed
    if v.microsecond % _UNIT_US[t[1]]:
        return _NOFIT  # finer than the column's unit
    if t[2] is not None:
        # in the zone object pyarrow reads back, so that a record equals itself after a
        # checkpoint (records are hashed by repr to order ties)
        tz = _tzinfo(t[2])
        if tz is not None and v.tzinfo is not tz:
            try:
                v = v.astimezone(tz)
            except (OverflowError, ValueError):
                return _NOFIT
    return v


@functools.lru_cache(maxsize=64)
def _tzinfo(zone: str) -> Any:
    import pyarrow as pa

    try:
        return pa.array([0], pa.timestamp("s", zone)).to_pylist()[0].tzinfo
    except Exception:  # noqa: BLE001 - a zone pyarrow cannot read: values left as they are
        return None


def column_name_ok(name: Any) -> bool:
    return (isinstance(name, str) and 0 < len(name) <= MAX_NAME_CHARS and _encodable(name)
            and not any(ord(c) < 32 or ord(c) == 127 for c in name))


# --------------------------------------------------------------------------- per-source plan


@dataclass
class FieldPlan:
    """How one source's input fields become columns (picklable; shipped to the readers)."""

    columns: dict[str, tuple[str, str]] = field(default_factory=dict)  # field -> (column, type)
    skip: frozenset = frozenset()  # text_field, id_field
    keep: frozenset | None = None  # keep_fields (None: every field)
    drop: frozenset = frozenset()  # drop_fields
    extra: bool = False  # whether this build has an extra_fields column
    renamed: dict[str, str] = field(default_factory=dict)  # field -> column, for collisions

    @property
    def keeps_any(self) -> bool:
        return self.keep is None or bool(self.keep)

    def kept(self, key: str) -> bool:
        if key in self.skip or key in self.drop:
            return False
        return self.keep is None or key in self.keep

    def read_columns(self, available: Iterable[str]) -> list[str] | None:
        """Columns a Parquet/hf reader must load (None: all of them)."""
        if self.keep is None and not self.drop:
            return None
        return [c for c in available if c in self.skip or self.kept(c)]

    def values(self, obj: dict) -> dict:
        """Columns to add to the record built from ``obj``: typed values, plus
        ``extra_fields`` for what does not fit (see module doc). Never raises on data."""
        out: dict[str, Any] = {}
        extra: dict[str, Any] | None = None
        cols = self.columns
        for key, v in obj.items():
            if key in self.skip:
                continue
            col = cols.get(key)
            if col is None:
                if not self.kept(key):
                    continue
                if extra is None:
                    extra = {}
                extra[key] = v
                continue
            if v is None:
                continue
            name, t = col
            y = fit(t, v)
            if y is _NOFIT:
                if extra is None:
                    extra = {}
                extra[key] = v
            else:
                out[name] = y
        if extra and self.extra:
            out[EXTRA_FIELDS] = json_text(_plain_keys(extra))
        return out


def _plain_keys(d: dict) -> dict:
    # JSON object keys must be strings (always true for JSON input; Arrow maps may differ)
    return {k if isinstance(k, str) else json_text(k): v for k, v in d.items()}


# --------------------------------------------------------------------------- planning


@dataclass
class _Candidates:
    """Fields seen at planning for one source: field -> merged type, in rank order."""

    types: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    order: dict[str, int] = field(default_factory=dict)

    def see(self, key: str, t: str) -> None:
        if key in self.types:
            self.types[key] = merge_types(self.types[key], t)
            self.counts[key] += 1
        else:
            self.types[key] = t
            self.counts[key] = 1
            self.order[key] = len(self.order)

    def ranked(self) -> list[str]:
        """Most frequent first, then first seen (deterministic)."""
        return sorted(self.types, key=lambda k: (-self.counts[k], self.order[k]))


def sample_jsonl(paths: list[str], max_record_bytes: int, text_field: str | None = None
                 ) -> _Candidates:
    """Types of the fields of the first records of ``paths`` (bounded; see module doc).

    Records the reader will dead-letter (no string ``text_field``) are not sampled: their
    fields would otherwise become columns that are null in every kept row."""
    from pipelines.io.framing import RECORD, FramedFile

    cand = _Candidates()
    n = nbytes = 0
    for path in paths[:SAMPLE_FILES]:
        it = iter(FramedFile(path, max_record_bytes))
        try:
            for frame in it:
                if frame.kind != RECORD:
                    continue
                nbytes += len(frame.data)
                try:
                    obj = json.loads(frame.data)
                except Exception:  # noqa: BLE001 - dead-lettered by the reader, not sampled
                    continue
                if not isinstance(obj, dict):
                    continue
                if text_field is not None and not isinstance(obj.get(text_field), str):
                    continue
                for key, v in obj.items():
                    cand.see(key, value_type(v))
                n += 1
                if n >= SAMPLE_RECORDS or nbytes >= SAMPLE_BYTES:
                    return cand
        finally:
            close = getattr(it, "close", None)
            if close:
                close()
    return cand


def schema_candidates(schemas: list[Any]) -> _Candidates:
    cand = _Candidates()
    for schema in schemas:
        for f in schema:
            cand.see(f.name, arrow_to_type(f.type))
    return cand


def _check_names(src: Any, index: int, cand: _Candidates, strict: bool) -> None:
    """keep/drop names must be fields of a source with a schema (``strict``)."""
    where = f"sources[{index}]"
    if src.keep_fields is not None and src.drop_fields is not None:
        raise FieldConfigError(
            f"{where}: keep_fields and drop_fields are mutually exclusive (got both); keep the "
            "one list you need")
    if not strict:
        return
    for key in ("keep_fields", "drop_fields"):
        names = getattr(src, key) or []
        missing = [n for n in names if n not in cand.types]
        if missing:
            raise FieldConfigError(
                f"{where}.{key}: {missing} not a field of {src.path!r}; fields: "
                f"{list(cand.types)[:50]} (fix the spelling or remove the name)")


def _position(src: Any, cand: Any, key: str) -> int:
    if src.keep_fields is not None:
        return src.keep_fields.index(key)
    return cand.order.get(key, len(cand.order))


def plan_fields(sources: list[Any], candidates: list[_Candidates | None], strict: list[bool],
                reserved: Iterable[str]) -> tuple[list[FieldPlan], dict[str, str]]:
    """Per-source :class:`FieldPlan` and the input columns (name -> type, in order, with
    ``extra_fields`` last when any source keeps fields). ``candidates[i]`` is None for sources
    without input fields (web sources). ``reserved``: names taken by other columns."""
    reserved = set(reserved) | {EXTRA_FIELDS}
    wanted: list[tuple[int, str]] = []  # (source, field) in rank order
    for i, (src, cand) in enumerate(zip(sources, candidates)):
        if cand is None:
            continue
        _check_names(src, i, cand, strict[i])
        skip = {src.text_field, *([src.id_field] if src.id_field else [])}
        keep = None if src.keep_fields is None else set(src.keep_fields)
        drop = set(src.drop_fields or [])
        names = list(src.keep_fields) if keep is not None else cand.ranked()
        for key in names:
            if key in skip or key in drop or not column_name_ok(key):
                continue
            if key not in cand.types:  # keep_fields of a JSONL field unseen in the sample
                cand.types[key] = JSON
            wanted.append((i, key))
    # columns: the first MAX_COLUMNS distinct names by rank (most frequent in the sample
    # first), laid out in first-seen order (source order, then order of appearance)
    chosen: set[str] = set()
    for i, key in wanted:
        if len(chosen) >= MAX_COLUMNS:
            break
        chosen.add(key)
    col_types: dict[str, str] = {}
    def first_seen(w: tuple[int, str]) -> tuple[int, int]:
        return w[0], _position(sources[w[0]], candidates[w[0]], w[1])

    for i, key in sorted(wanted, key=first_seen):
        if key not in chosen:
            continue
        t = candidates[i].types[key]  # type: ignore[union-attr]
        col_types[key] = merge_types(col_types[key], t) if key in col_types else t
    renamed: dict[str, str] = {}
    taken = set(col_types)
    for key in col_types:
        if key in reserved:
            new = RENAME_PREFIX + key
            if new in reserved or new in taken:
                raise FieldConfigError(
                    f"input field {key!r} collides with the column {key!r} and its renamed "
                    f"form {new!r} is taken too; add {key!r} (or {new!r}) to drop_fields of "
                    "the source that has it")
            renamed[key] = new
            taken.add(new)
    columns = {renamed.get(k, k): final_type(t) for k, t in col_types.items()}
    any_kept = any(c is not None and (s.keep_fields is None or s.keep_fields)
                   for s, c in zip(sources, candidates))
    if any_kept:
        columns[EXTRA_FIELDS] = "string"
    plans = []
    for src, cand in zip(sources, candidates):
        skip = frozenset({src.text_field, *([src.id_field] if src.id_field else [])})
        if cand is None:
            plans.append(FieldPlan(skip=skip, keep=frozenset()))
            continue
        keep = None if src.keep_fields is None else frozenset(src.keep_fields)
        fp = FieldPlan(skip=skip, keep=keep, drop=frozenset(src.drop_fields or []),
                       extra=any_kept)
        for key in col_types:
            if fp.kept(key):
                fp.columns[key] = (renamed.get(key, key), final_type(col_types[key]))
        fp.renamed = {k: v for k, v in renamed.items() if k in fp.columns}
        plans.append(fp)
    return plans, columns


def describe(sources: list[Any], plans: list[FieldPlan]) -> list[str]:
    """One line per source for ``datamill validate`` and stats: kept fields and renames."""
    lines = []
    for src, fp in zip(sources, plans):
        if not fp.keeps_any:
            lines.append(f"source {src.name}: no input fields kept (keep_fields: [])")
            continue
        shown = list(fp.columns.values())
        cols = ", ".join(f"{c}:{t}" for c, t in shown[:40]) or "(none seen)"
        if len(shown) > 40:
            cols += f", ... ({len(shown)} in all)"
        line = f"source {src.name}: input fields kept as columns: {cols}"
        if fp.renamed:
            line += "; renamed (name taken): " + ", ".join(
                f"{k} -> {v}" for k, v in fp.renamed.items())
        if fp.extra:
            line += f"; other fields and values that do not fit: {EXTRA_FIELDS}"
        lines.append(line)
    return lines
