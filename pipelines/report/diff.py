"""Compact text differences for report sections (near-duplicate pairs, normalization examples).

:func:`diff_segments` compares two texts with :class:`difflib.SequenceMatcher`, by word (a word
keeps the whitespace after it, so line breaks survive; words are compared without it) or, for
``unit="char"``, by finer units (runs of word characters, runs of spaces, line breaks, and
every other character alone, so that a collapsed run of spaces or a removed control character
is one change), and returns a short list of JSON-able segments that a stage can keep in its stats:

* ``["=", text]``: the same in both;
* ``["~", a_text, b_text]``: replaced (``a_text`` or ``b_text`` may be empty: deleted/inserted);
* ``["…", n]``: ``n`` equal units (words or characters) left out.

Long equal runs are cut to ``context`` units on each side of a change; the compared window is
at most ``max_units`` units, starting a little before the first difference. :func:`side_by_side`
renders the segments as a two-column HTML table with the differing parts marked. Plain Python:
no Beam, no matplotlib.
"""

from __future__ import annotations

import difflib
import html
import re
import unicodedata
from typing import Any

_WORD = re.compile(r"\S+\s*")
# "char" units (see _units)
_FINE = re.compile(r"\w+|\r\n|\n| +|\s|.", re.DOTALL)


def _units(text: str, unit: str) -> tuple[list[str], list[str]]:
    """(tokens as shown, tokens as compared)."""
    if unit == "char":  # words, runs of spaces, line breaks, single other characters
        toks = [m.group() for m in _FINE.finditer(text)]
        return toks, toks
    toks = _WORD.findall(text)
    lead = text[: len(text) - len(text.lstrip())]
    if lead:
        toks.insert(0, lead)
    return toks, [t.rstrip() or t for t in toks]


def _common_prefix(a: list[str], b: list[str]) -> int:
    n, i = min(len(a), len(b)), 0
    step = 256
    while i + step <= n and a[i:i + step] == b[i:i + step]:
        i += step
    while i < n and a[i] == b[i]:
        i += 1
    return i


def diff_segments(a: str, b: str, unit: str = "word", context: int = 12,
                  max_units: int = 1500, cut: bool = False) -> dict[str, Any]:
    """Segments describing how ``b`` differs from ``a`` (see the module docstring).

    ``cut``: ``a`` and ``b`` are windows of longer texts (their ends do not correspond).
    Returns ``{"unit", "segments", "identical", "truncated"}``; ``truncated`` is true when a
    text continues beyond the compared window (later differences are not shown)."""
    if unit not in ("word", "char"):
        raise ValueError(f"unit must be 'word' or 'char', not {unit!r}")
    a, b = a or "", b or ""
    ta, ka = _units(a, unit)
    tb, kb = _units(b, unit)
    start = max(0, _common_prefix(ka, kb) - context)
    end_a, end_b = min(len(ka), start + max_units), min(len(kb), start + max_units)
    truncated = cut or end_a < len(ka) or end_b < len(kb)
    sm = difflib.SequenceMatcher(None, ka[start:end_a], kb[start:end_b], autojunk=False)
    ops = sm.get_opcodes()
    if truncated:  # the windows end at arbitrary points: drop what follows the last match
        while ops and ops[-1][0] != "equal":
            ops.pop()
    segments: list[list[Any]] = []
    if start:
        segments.append(["…", start])
    for n, (op, i1, i2, j1, j2) in enumerate(ops):
        if op == "equal":
            run = ta[start + i1:start + i2]
            keep_head = context if n > 0 else 0
            keep_tail = context if n < len(ops) - 1 else 0
            if len(run) > keep_head + keep_tail + 1:
                if keep_head:
                    segments.append(["=", "".join(run[:keep_head])])
                segments.append(["…", len(run) - keep_head - keep_tail])
                if keep_tail:
                    segments.append(["=", "".join(run[len(run) - keep_tail:])])
            else:
                segments.append(["=", "".join(run)])
        else:
            segments.append(["~", "".join(ta[start + i1:start + i2]),
                             "".join(tb[start + j1:start + j2])])
    rest = max(len(ka) - end_a, len(kb) - end_b)
    if truncated and rest:
        segments.append(["…", rest])
    return {"unit": unit, "segments": segments,
            "identical": ka == kb, "truncated": truncated}


_NAMES = {" ": "·", "\t": "→", "\n": "↵\n", "\r": "⟨CR⟩", "\x00": "⟨NUL⟩",
          "\x1b": "⟨ESC⟩", "\x7f": "⟨DEL⟩", "\u00a0": "⟨NBSP⟩", "\ufeff": "⟨BOM⟩",
          "\u200b": "⟨ZWSP⟩"}


def visible(text: str) -> str:
    """Whitespace and invisible characters shown as symbols or names (for character-level
    changes): · space, → tab, ↵ line break, ⟨CR⟩, ⟨NUL⟩..., ⟨U+0301⟩ for other control,
    format, space and combining characters. Names rather than the Control Pictures block
    (␀, ␍), which common fonts lack."""
    out = []
    for ch in text:
        if ch in _NAMES:
            out.append(_NAMES[ch])
        elif unicodedata.category(ch)[0] in "CZ" or unicodedata.combining(ch):
            out.append(f"⟨U+{ord(ch):04X}⟩")
        else:
            out.append(ch)
    return "".join(out)


def _side(segments: list, which: int, show_invisible: bool) -> str:
    parts = []
    for seg in segments:
        if seg[0] == "=":
            parts.append(html.escape(seg[1]))
        elif seg[0] == "…":
            parts.append(f'<span class=skip>[… {int(seg[1]):,} same …]</span> ')
        else:
            text = seg[which]
            if text:
                shown = visible(text) if show_invisible else text
                parts.append(f"<mark class=d{which}>{html.escape(shown)}</mark>")
    return "".join(parts)


def side_by_side(diff: dict[str, Any], left: str, right: str, caption: str = "") -> str:
    """Two-column HTML table: ``left`` text with what ``right`` lacks marked, and vice versa.
    Character-level diffs show changed whitespace and control characters as symbols."""
    segs = diff.get("segments") or []
    invisible = diff.get("unit") == "char"
    note = ""
    if diff.get("identical"):
        note = "<p class=muted>identical after tokenization (differences in spacing only)</p>"
    elif diff.get("truncated"):
        note = ("<p class=muted>compared up to a window after the first difference; later "
                "differences are not shown</p>")
    cap = f"<caption>{caption}</caption>" if caption else ""
    return (f"<table class=pair>{cap}<tr><th>{html.escape(left)}</th>"
            f"<th>{html.escape(right)}</th></tr><tr>"
            f"<td class=snip>{_side(segs, 1, invisible)}</td>"
            f"<td class=snip>{_side(segs, 2, invisible)}</td></tr></table>{note}")
