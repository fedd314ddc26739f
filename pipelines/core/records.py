"""Record and dead-letter shapes shared by every Beam transform.

A record is a plain ``dict`` (see ``filters/base.py``). The three base columns always exist;
input fields kept from the sources come next (:mod:`pipelines.io.input_fields`), then the typed
score columns stages declare through ``Stage.output_columns``.
"""

from __future__ import annotations

import json
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
    # input fields (pipelines/io/input_fields.py): lists of floats, and JSON text for nested
    # objects / mixed types (a string column whose values are JSON documents)
    "list<float64>": pa.list_(pa.float64()),
    "json": pa.string(),
}

MAX_RAW_CHARS = 20_000  # dead-letter keeps at most this much of the raw input


def arrow_type(name: str) -> pa.DataType:
    try:
        return _ARROW_TYPES[name]
    except KeyError:
        raise ValueError(
            f"unknown column type {name!r}; allowed: {', '.join(sorted(_ARROW_TYPES))}"
        ) from None


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
