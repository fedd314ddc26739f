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
``list<string>``, ``list<int64>``, ``list<float64>`` and ``json`` (JSON text; for nested
objects, lists of mixed values, fields whose sampled values have different types and fields
only ever null in the sample). Arrow inputs map: strings -> string, integers -> int64,
floats -> float64, bool -> bool, timestamp/date/time -> string (ISO 8601), lists of those
scalars -> list<...>, anything else (struct, map, binary, decimal, nested lists) -> json.
Types met for the same field (in the sample, across files or across sources) merge by one rule
(:func:`merge_types`): equal -> that type; null -> the other; int64 + float64 -> float64 (and
their lists); otherwise json.

The lossless rule for values (:func:`FieldPlan.values`): a value that fits its column's type
goes there (an integer into a float64 column when exact; a timestamp into a string column as
ISO 8601; anything into a json column as JSON text). A value that does not fit (a string in an
int64 column, an integer beyond int64), a field not seen at planning, or a field beyond the
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
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

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


def merge_types(a: str, b: str) -> str:
    """The one type both ``a`` and ``b`` values fit in (see module doc)."""
    if a == b:
        return a
    if a == _NULL:
        return b
    if b == _NULL:
        return a
    pair = {a, b}
    if pair == {"int64", "float64"}:
        return "float64"
    if pair == {"list<int64>", "list<float64>"}:
        return "list<float64>"
    if _LIST_ANY in pair:
        other = (pair - {_LIST_ANY}).pop()
        return other if other.startswith("list<") else JSON
    return JSON


def final_type(t: str) -> str:
    return JSON if t in (_NULL, _LIST_ANY) else t


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
        return "string" if _encodable(v) else JSON
    if isinstance(v, list):
        t = _NULL
        for x in v:
            xt = value_type(x)
            if xt not in (_NULL, "string", "int64", "float64"):
                return JSON
            t = merge_types(t, xt)
            if t == JSON:
                return JSON
        return _LIST_ANY if t == _NULL else f"list<{t}>"
    return JSON


def arrow_to_type(t: Any) -> str:
    """Planned type of an Arrow column type."""
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
    if pa.types.is_temporal(t) and not pa.types.is_duration(t) and not pa.types.is_interval(t):
        return "string"  # ISO 8601
    if pa.types.is_null(t):
        return _NULL
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = arrow_to_type(t.value_type)
        if inner in ("string", "int64", "float64"):
            return f"list<{inner}>"
        return JSON
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
    if t.startswith("list<"):
        if not isinstance(v, list):
            return _NOFIT
        inner = t[5:-1]
        out = []
        for x in v:
            if x is None:
                out.append(None)
                continue
            y = _fit_scalar(inner, x)
            if y is _NOFIT:
                return _NOFIT
            out.append(y)
        return out
    return _fit_scalar(t, v)


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
