"""Record and dead-letter shapes shared by every Beam transform.

A record is a plain ``dict`` (see ``filters/base.py``). The three base columns always exist;
input fields kept from the sources come next (:mod:`pipelines.io.input_fields`), then the typed
score columns stages declare through ``Stage.output_columns``.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import pyarrow as pa

BASE_COLUMNS: dict[str, str] = {"id": "string", "text": "string", "source": "string"}

_ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "float64": pa.float64(),
    "float32": pa.float32(),
    "int64": pa.int64(),
    "int32": pa.int32(),
    "bool": pa.bool_(),
    "list<float32>": pa.list_(pa.float32()),
    "list<int64>": pa.list_(pa.int64()),
    "list<string>": pa.list_(pa.string()),
    # input fields (pipelines/io/input_fields.py): lists of floats, and JSON text for unstable
    # nested values / mixed types (a string column whose values are JSON documents); nested
    # list<T>, struct<...> and timestamp[...] names are parsed (parse_type below)
    "list<float64>": pa.list_(pa.float64()),
    "json": pa.string(),
}

MAX_RAW_CHARS = 20_000  # dead-letter keeps at most this much of the raw input


def arrow_type(name: str) -> pa.DataType:
    try:
        return _ARROW_TYPES[name]
    except KeyError:
        pass
    try:
        return _tree_arrow(parse_type(name))
    except ValueError:
        raise ValueError(
            f"unknown column type {name!r}; allowed: {', '.join(sorted(_ARROW_TYPES))}, "
            "list<T>, struct<name: T, ...>, timestamp[us] or timestamp[us, tz=UTC]"
        ) from None


# --------------------------------------------------------------------------- nested types
# Input fields (pipelines/io/input_fields.py) may be typed columns of nested types, written as
# ``list<T>``, ``struct<name: T, other: T>`` (a name other than [A-Za-z_][A-Za-z0-9_]* is
# JSON-quoted) and ``timestamp[UNIT]`` / ``timestamp[UNIT, tz=ZONE]``. A parsed type is a tree:
# a scalar name (``"int64"``; ``"null"`` only while planning), ``("list", T)``,
# ``("struct", ((name, T), ...))`` or ``("timestamp", unit, tz or None)``.

_BARE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TS_TYPE = re.compile(r"timestamp\[(s|ms|us|ns)(?:, tz=([^\]]+))?\]")
_SCALAR_NAME = re.compile(r"[a-z0-9?]+")
PLANNING_SCALARS = ("null",)  # a field seen only as null so far (never a column type)


def format_type(t: Any) -> str:
    """The type name of a parsed type (inverse of :func:`parse_type`)."""
    if isinstance(t, str):
        return t
    kind = t[0]
    if kind == "list":
        return "list<?>" if t[1] == "null" else f"list<{format_type(t[1])}>"
    if kind == "struct":
        return "struct<" + ", ".join(
            f"{n if _BARE_NAME.fullmatch(n) else json.dumps(n)}: {format_type(c)}"
            for n, c in t[1]) + ">"
    if kind == "timestamp":
        return f"timestamp[{t[1]}]" if t[2] is None else f"timestamp[{t[1]}, tz={t[2]}]"
    raise ValueError(f"not a type: {t!r}")


@functools.lru_cache(maxsize=4096)
def parse_type(name: str) -> Any:
    """The tree of a type name (see above); ValueError when it is not one."""
    t, end = _parse(name, 0)
    if end != len(name):
        raise ValueError(f"not a type: {name!r}")
    return t


def _parse(s: str, i: int) -> tuple[Any, int]:
    if s.startswith("list<", i):
        inner, i = _parse(s, i + 5)
        if not s.startswith(">", i):
            raise ValueError(s)
        return ("list", inner), i + 1
    if s.startswith("struct<", i):
        i += 7
        fields: list[tuple[str, Any]] = []
        while not s.startswith(">", i):
            if fields:
                if not s.startswith(", ", i):
                    raise ValueError(s)
                i += 2
            if s.startswith('"', i):
                name, i = json.JSONDecoder().raw_decode(s, i)
            else:
                m = _BARE_NAME.match(s, i)
                if not m:
                    raise ValueError(s)
                name, i = m.group(), m.end()
            if not s.startswith(": ", i):
                raise ValueError(s)
            child, i = _parse(s, i + 2)
            fields.append((name, child))
        return ("struct", tuple(fields)), i + 1
    m = _TS_TYPE.match(s, i)
    if m:
        return ("timestamp", m.group(1), m.group(2)), m.end()
    m = _SCALAR_NAME.match(s, i)
    if not m:
        raise ValueError(s)
    word = m.group()
    if word == "?":
        word = "null"
    if word not in _ARROW_TYPES and word not in PLANNING_SCALARS:
        raise ValueError(s)
    return word, m.end()


def _tree_arrow(t: Any) -> pa.DataType:
    if isinstance(t, str):
        if t not in _ARROW_TYPES:  # "null": planning only
            raise ValueError(f"not a column type: {t!r}")
        return _ARROW_TYPES[t]
    if t[0] == "list":
        return pa.list_(_tree_arrow(t[1]))
    if t[0] == "struct":
        if not t[1]:
            raise ValueError("a struct needs at least one field")
        return pa.struct([pa.field(n, _tree_arrow(c)) for n, c in t[1]])
    return pa.timestamp(t[1], t[2])


def arrow_schema(columns: dict[str, str]) -> pa.Schema:
    """Schema of the output: base columns first, then stage columns in stage order."""
    merged = dict(BASE_COLUMNS)
    merged.update(columns)
    return pa.schema([pa.field(name, arrow_type(t)) for name, t in merged.items()])


def raw_text(raw: Any) -> str:
    """Render raw input (bytes, str, dict) for a dead-letter row, losslessly where possible."""
    if isinstance(raw, bytes):
        if len(raw) > MAX_RAW_CHARS:  # cut first: never decode a huge input whole
            return _encodable(raw[:MAX_RAW_CHARS].decode("utf-8", errors="backslashreplace")
                              + f"...[truncated: {len(raw):,} bytes in all]")
        text = raw.decode("utf-8", errors="backslashreplace")
    elif isinstance(raw, str):
        text = raw
    else:
        try:
            text = json.dumps(raw, ensure_ascii=False, sort_keys=True, default=repr)
        except (TypeError, ValueError):
            text = repr(raw)
    if len(text) > MAX_RAW_CHARS:
        text = text[:MAX_RAW_CHARS] + f"...[truncated {len(text) - MAX_RAW_CHARS} chars]"
    return _encodable(text)


def _encodable(text: str) -> str:
    """Escape lone surrogates, which no UTF-8 writer (or Beam coder) accepts."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def dead_letter(
    stage: str,
    reason: str,
    raw: Any,
    *,
    record_id: str | None = None,
    source: str | None = None,
    location: str | None = None,
) -> dict[str, Any]:
    """A dead-letter row: which stage failed, why, and the raw input that failed.

    ``reason`` is a short category (``bad_json``, ``invalid_utf8``, ``exception``...);
    details go after a colon (``exception: ZeroDivisionError: division by zero``).
    """
    if record_id is None and isinstance(raw, dict):
        rid = raw.get("id")
        record_id = rid if isinstance(rid, str) else None
    if source is None and isinstance(raw, dict):
        src = raw.get("source")
        source = src if isinstance(src, str) else None
    return {
        "stage": stage,
        "reason": _encodable(reason),
        "id": None if record_id is None else _encodable(record_id),
        "source": None if source is None else _encodable(source),
        "location": None if location is None else _encodable(location),
        "raw": raw_text(raw),
    }


def reason_category(reason: str) -> str:
    """``"exception: KeyError: 'x'"`` -> ``"exception"``: the part counted in stats."""
    return reason.split(":", 1)[0].strip()
