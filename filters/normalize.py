"""Text normalization: Unicode NFC, control characters, whitespace.

The normalized text replaces ``text``; a document that is empty after normalization is
dropped with reason ``empty``. Tabs and newlines are kept (they carry structure); every other
C0/C1 control character, the BOM and zero-width formatting characters are removed.

The defaults keep code and layout intact: line structure, leading indentation (spaces and tabs),
runs of spaces inside a line (aligned tables, man pages) and blank lines are left as they are,
so every parseable ``.py`` file of the standard library parses to the same tree after
normalization apart from string constants that the Unicode form rewrites
(tests/test_normalize_fidelity.py). What they do change: ``\r\n`` and ``\r`` become ``\n``
(Python reads source the same way), control characters go, each unusual space character (NBSP,
en/em/thin spaces, ideographic space...) becomes one plain space, also at a line start, where it
is not indentation Python accepts and a plain space is what the writer meant, trailing spaces and
tabs go, and so do blank lines before the first line and whitespace after the last (the first
line keeps its indentation). Lossy rewrites are opt-in: ``collapse_spaces="inner"`` (runs of
spaces/tabs inside a line become one space, indentation kept: flattens aligned tables and
comments), ``collapse_spaces="all"`` (every run, indentation included: destroys code, Markdown
lists and man-page layout) and ``max_blank_lines >= 0`` (rewrites multi-line string literals).
"""

from __future__ import annotations

import heapq
import re
import typing
import unicodedata
from dataclasses import dataclass, field
from typing import Literal

import xxhash

from filters.base import Decision, Record, RecordScorer

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff\u200b\u200c\u200d\u2060]")
_ODD = "\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000"  # horizontal space other than " ", "\t"
_ODD_SPACE = re.compile(f"[{_ODD}]")
# a run of 2+ horizontal spaces, or one tab or unusual space: single plain spaces are left alone
# (rewriting every space made this the slowest step of a build)
_HSPACE = re.compile(f"[ \t{_ODD}]{{2,}}|[\t{_ODD}]")
# the same, but only after a non-space character of the line: leading indentation is untouched
_INNER_HSPACE = re.compile(f"(?<=[^\\s])(?:[ \t{_ODD}]{{2,}}|[\t{_ODD}])")
_TRAILING = re.compile(r"[ \t]+\n")

CollapseMode = Literal["none", "inner", "all"]
COLLAPSE_MODES = typing.get_args(CollapseMode)
UnicodeForm = Literal["NFC", "NFKC", "NFD", "NFKD", "none"]


def collapse_mode(value) -> str:
    """``collapse_spaces`` as one of :data:`COLLAPSE_MODES`; the old booleans of the Python API
    still work (``True`` was the lossy ``"all"``, ``False`` is ``"none"``)."""
    if value is True:
        return "all"
    if value is False or value is None:
        return "none"
    if value not in COLLAPSE_MODES:
        raise ValueError(f"collapse_spaces must be one of {COLLAPSE_MODES}, got {value!r}")
    return value


@dataclass(frozen=True)
class NormalizeConfig:
    """What normalization does; the defaults are lossless for code and layout (module
    docstring). Each field's metadata is what the ``normalize`` stage's config says of it
    (``pipelines.stages.base.params_from``)."""

    form: UnicodeForm = field(default="NFC", metadata={
        "description": "Unicode normalization form of the text."})
    strip_control: bool = field(default=True, metadata={
        "description": "Remove control characters except newline and tab, the BOM and "
        "zero-width characters."})
    odd_spaces: bool = field(default=True, metadata={
        "description": "Each unusual space character (NBSP, en/em/thin, ideographic space...) "
        "becomes one plain space, at a line start too. Tabs are kept."})
    strip_trailing_spaces: bool = field(default=True, metadata={
        "description": "Remove spaces and tabs at line ends (this also drops Markdown's "
        "two-space hard line break)."})
    collapse_spaces: CollapseMode = field(default="none", metadata={
        "description": "`none` keeps runs of spaces and tabs. LOSSY: `inner` turns each run of "
        "2+ spaces/tabs (or one tab) inside a line into one space, leading indentation kept "
        "(flattens aligned tables, comments, man pages); `all` does it everywhere, "
        "indentation included (the old `true`: destroys code and Markdown lists)."})
    max_blank_lines: int = field(default=-1, metadata={
        "ge": -1, "description": "-1 keeps blank lines as they are; N >= 0 caps each run of "
        "blank lines at N (LOSSY for code: rewrites multi-line string literals)."})

    def __post_init__(self):
        object.__setattr__(self, "collapse_spaces", collapse_mode(self.collapse_spaces))


def normalize_text(text: str, **kw) -> str:
    """Normalize one text; ``kw`` are :class:`NormalizeConfig` fields (``form`` is a
    ``unicodedata`` form or ``"none"``; ``collapse_spaces`` ``"none"``, ``"inner"`` or
    ``"all"``; ``max_blank_lines`` -1 keeps blank lines).

    Every rewrite is guarded by a cheap substring test, so clean text costs a few scans.
    """
    return _normalize(text, NormalizeConfig(**kw), None)


def normalize_changes(text: str, **kw) -> tuple[str, dict[str, int]]:
    """:func:`normalize_text` and what it changed: ``{kind: characters removed}`` for each kind
    of rewrite that changed the text (kinds: ``line_endings``, ``unicode_<form>``,
    ``control_chars``, ``odd_spaces``, ``collapse_inner_spaces`` and ``collapse_all_spaces``
    (the lossy options), ``trailing_spaces``, ``blank_lines``, ``edges``). The count is
    the net length change of that step: 0 or negative for a Unicode form that rewrites or
    expands characters (NFKC turns "ﬁ" into "fi")."""
    changes: dict[str, int] = {}
    return _normalize(text, NormalizeConfig(**kw), changes), changes


def _normalize(text: str, cfg: NormalizeConfig, changes: dict[str, int] | None) -> str:
    def step(kind: str, new: str) -> str:
        if changes is not None and new != text:
            changes[kind] = changes.get(kind, 0) + len(text) - len(new)
        return new

    form, collapse, max_blank_lines = cfg.form, cfg.collapse_spaces, cfg.max_blank_lines
    if "\r" in text:
        text = step("line_endings", text.replace("\r\n", "\n").replace("\r", "\n"))
    if form != "none" and not unicodedata.is_normalized(form, text):
        text = step(f"unicode_{form.lower()}", unicodedata.normalize(form, text))
    if cfg.strip_control and _CONTROL.search(text):
        text = step("control_chars", _CONTROL.sub("", text))
    if cfg.odd_spaces and _ODD_SPACE.search(text):  # one character for one: columns stay aligned
        text = step("odd_spaces", _ODD_SPACE.sub(" ", text))
    if collapse != "none" and ("  " in text or "\t" in text or _ODD_SPACE.search(text)):
        if collapse == "all":
            text = step("collapse_all_spaces", _HSPACE.sub(" ", text))
        else:
            text = step("collapse_inner_spaces", _INNER_HSPACE.sub(" ", text))
    if cfg.strip_trailing_spaces and (" \n" in text or "\t\n" in text):
        text = step("trailing_spaces", _TRAILING.sub("\n", text))
    if max_blank_lines >= 0:
        keep = max_blank_lines + 1  # newlines in a row that are allowed
        if "\n" * (keep + 1) in text:
            text = step("blank_lines", re.sub(f"\n{{{keep + 1},}}", "\n" * keep, text))
    return step("edges", _strip_edges(text, keep_indent=collapse != "all"))


def _strip_edges(text: str, keep_indent: bool) -> str:
    """Whitespace after the last line and blank lines before the first; the first line keeps its
    indentation unless ``keep_indent`` is false (an indented code block stays one)."""
    text = text.rstrip()
    if not keep_indent:
        return text.lstrip()
    lead = len(text) - len(text.lstrip())
    if lead:
        text = text[text.rfind("\n", 0, lead) + 1:]
    return text


def first_difference(a: str, b: str) -> int:
    """Length of the common prefix of ``a`` and ``b`` (compared in chunks, then by character)."""
    n, i, step = min(len(a), len(b)), 0, 4096
    while step:
        while i + step <= n and a[i:i + step] == b[i:i + step]:
            i += step
        step //= 16
    while i < n and a[i] == b[i]:
        i += 1
    return i


def sample_rank(record_id: str, seed: int = 0) -> int:
    """Seeded 64-bit hash of an id: the same rank as ``pipelines.stages.score_stats.sample_key``, so
    examples are a fixed-seed random sample whatever the worker count."""
    return xxhash.xxh64_intdigest(record_id.encode("utf-8", "surrogatepass"), seed=seed)


class Normalizer(RecordScorer):
    """Normalizes ``text``. With ``examples > 0`` every changed record's :class:`Decision`
    carries a note ``(changes, example)`` for the stage's stats: ``changes`` as
    :func:`normalize_changes` gives it, ``example`` ``None`` or, for a record whose
    :func:`sample_rank` is among the ``examples`` smallest this scorer has seen (so every record
    of the global sample has one), ``(rank, id, before, after, cut)``: windows of ``window``
    characters of the text before and after, from a little before the first change."""

    columns = {}

    def __init__(self, config: NormalizeConfig | None = None, *, examples: int = 0,
                 window: int = 2000, seed: int = 0):
        self.config = config or NormalizeConfig()
        self._examples, self._window, self._seed = examples, window, seed
        self._worst: list[int] = []  # max-heap (negated) of the smallest ranks seen

    def process(self, record: Record) -> Decision:
        before = record["text"]
        if not self._examples:
            text, note = _normalize(before, self.config, None), None
        else:
            changes: dict[str, int] = {}
            text = _normalize(before, self.config, changes)
            note = (changes, self._example(record, before, text)) if changes else None
        if not text:
            return Decision(drop="empty", columns={"text": text}, note=note)
        return Decision(columns={"text": text}, note=note)

    def _example(self, record: Record, before: str, after: str):
        rid = str(record.get("id"))
        rank = sample_rank(rid, self._seed)
        worst = self._worst
        if len(worst) < self._examples:
            heapq.heappush(worst, -rank)
        elif rank <= -worst[0]:  # <= : a record scored twice (batch retry) keeps its example
            heapq.heapreplace(worst, -rank)
        else:
            return None
        start = max(0, first_difference(before, after) - 80)
        end = start + self._window
        return (rank, rid, before[start:end], after[start:end],
                end < len(before) or end < len(after))
