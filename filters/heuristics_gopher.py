"""Gopher quality and repetition heuristics (Rae et al. 2021, "Scaling Language Models:
Methods, Analysis & Insights from Training Gopher", Appendix A.1.1 and Table A1).

Plain Python. Each rule is a :class:`filters.text_stats.Rule` with its own threshold (``None``
disables it); every statistic is returned as a column, and a dropped document carries the
name of the first rule it fails (rules are checked in the order listed below).

Languages: the paper's rules are for English. With a ``language_column`` (set by the
``language_id`` stage) each document is tokenised for its language (``filters.segment``:
dictionary segmentation for Chinese and Thai, characters for other scripts without spaces),
its stop words come from its language's list (``filters.stopwords``: Gopher's eight words for
English, Stopwords ISO otherwise) and ``per_language`` threshold overrides apply. A language
without a stop-word list skips the stop-word rule (column ``gopher_stop_list`` = ``none``);
the English list is never applied to another language.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from filters.base import Decision, Record, RecordScorer, per_language_overrides
from filters.segment import segmenter_name
from filters.segment import words as segment_words
from filters.stopwords import base_language, stop_list
from filters.text_stats import (
    BULLETS,
    ELLIPSES,
    PUNCT,
    NgramIndex,
    Rule,
    duplicate_fraction,
    first_failed,
    has_alpha,
    lines,
    ngram_fractions_batch,
    paragraphs,
    require_text,
)

# --------------------------------------------------------------------------- quality


# Each threshold is declared once, here: its default, its bounds (``ge``/``le``) and its
# description live in the field's metadata, and the ``gopher_quality`` stage derives its config
# parameters from these fields (pipelines/stages/filter/heuristic_base.py). ``None`` turns a
# rule off.


@dataclass(frozen=True)
class GopherQualityConfig:
    min_words: int | None = field(default=50, metadata={
        "ge": 0, "description": "Minimum number of words (Rae et al. 2021, A.1.1); null: off."})
    max_words: int | None = field(default=100_000, metadata={
        "ge": 1, "description": "Maximum number of words (Rae et al. 2021, A.1.1); null: off."})
    min_mean_word_length: float | None = field(default=3.0, metadata={
        "ge": 0, "description": "Minimum mean word length in characters, punctuation "
        "stripped (Rae et al. 2021, A.1.1); null: off."})
    max_mean_word_length: float | None = field(default=10.0, metadata={
        "ge": 0, "description": "Maximum mean word length in characters, punctuation "
        "stripped (Rae et al. 2021, A.1.1); null: off."})
    max_symbol_word_ratio: float | None = field(default=0.1, metadata={
        "ge": 0, "description": "Maximum ratio of '#' symbols to words, and of ellipses to "
        "words (Rae et al. 2021, A.1.1); null: off."})
    max_bullet_lines_frac: float | None = field(default=0.9, metadata={
        "ge": 0, "le": 1, "description": "Maximum fraction of lines starting with a bullet "
        "point (Rae et al. 2021, A.1.1); null: off."})
    max_ellipsis_lines_frac: float | None = field(default=0.3, metadata={
        "ge": 0, "le": 1, "description": "Maximum fraction of lines ending with an ellipsis "
        "(Rae et al. 2021, A.1.1); null: off."})
    min_alpha_words_frac: float | None = field(default=0.8, metadata={
        "ge": 0, "le": 1, "description": "Minimum fraction of words with at least one "
        "alphabetic character (Rae et al. 2021, A.1.1); null: off."})
    # Counted as DISTINCT stop words (A.1.1 asks for two of the eight listed words), as
    # datatrove also does: a text repeating "the" fifty times has one of them.
    # Case-insensitive here (datatrove: exact case).
    min_stop_words: int | None = field(default=2, metadata={
        "ge": 0, "description": "Minimum DISTINCT stop words of the document's language "
        "(Gopher: 'at least two of' the, be, to, of, and, that, have, with; Stopwords ISO for "
        "other languages; skipped for languages without a list)."})


THRESHOLD_FIELDS = tuple(f for f in GopherQualityConfig.__dataclass_fields__)

# datamill defaults, not published values: in languages segmented by a dictionary (zh, th) or
# by characters (ja, ...) a "word" is short, so the paper's 3-character minimum mean word
# length removes ordinary text (measured on the zh_CN / ja man pages installed here: jieba
# mean 2.3-4.7, characters 1.3-1.8). Every other threshold keeps the paper's value. Override
# or extend in the config (``per_language``), FineWeb-2 style.
DEFAULT_PER_LANGUAGE: dict[str, dict[str, float | int | None]] = {
    lang: {"min_mean_word_length": 1.0} for lang in ("zh", "ja", "th", "lo", "km", "my", "bo")
}


def _language_of(record: Record, column: str | None, default: str | None) -> str | None:
    if column:
        value = record.get(column)
        if isinstance(value, str) and value:
            return value
    return default


def _quality_rules(c: GopherQualityConfig) -> list[Rule]:
    return [
        Rule("gopher_too_few_words", "gopher_n_words", "ge", c.min_words),
        Rule("gopher_too_many_words", "gopher_n_words", "le", c.max_words),
        Rule("gopher_short_mean_word_length", "gopher_mean_word_length", "ge",
             c.min_mean_word_length),
        Rule("gopher_long_mean_word_length", "gopher_mean_word_length", "le",
             c.max_mean_word_length),
        Rule("gopher_symbol_word_ratio", "gopher_symbol_word_ratio", "le",
             c.max_symbol_word_ratio),
        Rule("gopher_bullet_lines", "gopher_bullet_lines_frac", "le", c.max_bullet_lines_frac),
        Rule("gopher_ellipsis_lines", "gopher_ellipsis_lines_frac", "le",
             c.max_ellipsis_lines_frac),
        Rule("gopher_alpha_words", "gopher_alpha_words_frac", "ge", c.min_alpha_words_frac),
        Rule("gopher_stop_words", "gopher_stop_words", "ge", c.min_stop_words),
    ]


class GopherQuality(RecordScorer):
    columns: ClassVar[dict[str, str]] = {
        "gopher_n_words": "int64",
        "gopher_mean_word_length": "float64",
        "gopher_symbol_word_ratio": "float64",
        "gopher_bullet_lines_frac": "float64",
        "gopher_ellipsis_lines_frac": "float64",
        "gopher_alpha_words_frac": "float64",
        "gopher_stop_words": "int64",
        "gopher_stop_list": "string",
    }

    def __init__(self, config: GopherQualityConfig | None = None, *,
                 language_column: str | None = None, default_language: str | None = "en",
                 per_language: Mapping[str, Mapping[str, Any]] | None = None):
        c = config or GopherQualityConfig()
        self.config = c
        self.rules = _quality_rules(c)
        self.language_column = language_column
        self.default_language = default_language
        self.per_language = per_language_overrides(
            DEFAULT_PER_LANGUAGE if per_language is None else per_language, THRESHOLD_FIELDS)
        self._lang_rules = {lang: _quality_rules(replace(c, **over))
                            for lang, over in self.per_language.items()}

    def rules_for(self, lang: str | None) -> list[Rule]:
        if lang in self._lang_rules:
            return self._lang_rules[lang]
        return self._lang_rules.get(base_language(lang) or "", self.rules)

    @staticmethod
    def stats(text: str, lang: str | None = "en") -> dict:
        ws = segment_words(text, lang)
        n = len(ws)
        punct = PUNCT
        stripped = [w.strip(punct) for w in ws]
        nonempty = [s for s in stripped if s]
        mean_len = sum(map(len, nonempty)) / len(nonempty) if nonempty else 0.0
        if n:
            hash_ratio = text.count("#") / n
            ell_ratio = (text.count("...") + text.count("…")) / n
            # a stripped word that is all letters is the common case; check others fully
            alpha = sum(1 for w, s in zip(ws, stripped)
                        if s.isalpha() or has_alpha(w)) / n
        else:
            hash_ratio = ell_ratio = alpha = 0.0
        ls = lines(text)
        if ls:
            bullet = sum(1 for ln in ls if ln.startswith(BULLETS)) / len(ls)
            ell_lines = sum(1 for ln in ls if ln.endswith(ELLIPSES)) / len(ls)
        else:
            bullet = ell_lines = 0.0
        list_name, stop_words = stop_list(lang)
        # distinct stop words present (A.1.1 "at least two of the following words")
        stop = (len(stop_words.intersection(s.lower() for s in nonempty))
                if stop_words is not None else None)
        return {
            "gopher_n_words": n,
            "gopher_mean_word_length": mean_len,
            "gopher_symbol_word_ratio": max(hash_ratio, ell_ratio),
            "gopher_bullet_lines_frac": bullet,
            "gopher_ellipsis_lines_frac": ell_lines,
            "gopher_alpha_words_frac": alpha,
            "gopher_stop_words": stop,
            "gopher_stop_list": list_name,
        }

    def process(self, record: Record) -> Decision:
        lang = _language_of(record, self.language_column, self.default_language)
        return self._decide(self.stats(require_text(record), lang), lang)

    def _decide(self, cols: dict, lang: str | None) -> Decision:
        rules = self.rules_for(lang)
        if cols["gopher_stop_words"] is None:  # no stop-word list for this language: skip
            rules = [r for r in rules if r.column != "gopher_stop_words"]
        return Decision(first_failed(rules, cols), cols)

    def process_batch(self, records: Sequence[Record]) -> list[Decision]:
        """The Decisions of :meth:`process` (same reasons, same column values and types).

        The documents tokenised by whitespace are scored together by Arrow and numpy
        (:func:`_quality_stats_batch`); documents of other segmenters (zh, ja, th, ...) and
        texts that are not valid UTF-8 take :meth:`stats`. A record without a string text
        raises the TypeError of :meth:`process`."""
        column, default = self.language_column, self.default_language
        out: list[Decision | None] = [None] * len(records)
        per_lang: dict[Any, tuple] = {}  # language -> (whitespace?, stop list)
        fast: list[int] = []
        texts: list[str] = []
        langs: list[str | None] = []
        for i, record in enumerate(records):
            lang = _language_of(record, column, default)
            text = require_text(record)
            info = per_lang.get(lang)
            if info is None:
                info = per_lang[lang] = (segmenter_name(lang) == "whitespace", stop_list(lang))
            if info[0]:
                fast.append(i)
                texts.append(text)
                langs.append(lang)
            else:
                out[i] = self._decide(self.stats(text, lang), lang)
        if fast:
            infos = [per_lang[lang] for lang in langs]
            stats = _quality_stats_batch(texts, langs, [info[1] for info in infos])
            for i, lang, cols in zip(fast, langs, stats):
                out[i] = self._decide(cols, lang)
        return out  # type: ignore[return-value]


# Python's whitespace (str.split, str.strip) that Arrow's ascii_split_whitespace does not split
# on (it splits on \t \n \v \f \r and space); tests/test_gopher_quality_batch.py checks both
# on every code point.
_OTHER_WHITESPACE = np.array([0x1C, 0x1D, 0x1E, 0x1F, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
                              0x2028, 0x2029, 0x202F, 0x205F, 0x3000], dtype=np.int64)
_OTHER_WHITESPACE_PY = re.compile("[" + "".join(map(chr, _OTHER_WHITESPACE.tolist())) + "]")


def _re2_literals(strings: Sequence[str]) -> str:
    return "(?:" + "|".join("".join(f"\\x{{{ord(c):x}}}" for c in s) for s in strings) + ")"


_BULLET_RE = "^" + _re2_literals(BULLETS)
_ELLIPSIS_RE = _re2_literals(ELLIPSES) + "$"


def _quality_stats_batch(texts: Sequence[str], langs: Sequence[str | None],
                         lists: Sequence[tuple[str, frozenset[str] | None]]) -> list[dict]:
    """:meth:`GopherQuality.stats` of documents tokenised by whitespace (``lists[d]``:
    ``stop_list(langs[d])``): the same values, same types, same floats.

    The batch is one Arrow array; words (:func:`_word_counts`) and lines
    (:func:`_line_counts`) are counted by Arrow and numpy, and the ratios are the same Python
    ``int / int`` divisions as in :meth:`~GopherQuality.stats`. A text that is not valid UTF-8
    (a lone surrogate) or holds whitespace that ``ascii_split_whitespace`` does not split on
    (``_OTHER_WHITESPACE``, rare) is done by :meth:`~GopherQuality.stats` itself.
    """
    try:
        arr = pa.array(texts, type=pa.large_string())
    except UnicodeEncodeError:
        return _python_where(texts, langs, lists, [not _utf8_ok(t) for t in texts])
    words = _word_counts(arr, [stop_words for _, stop_words in lists])
    if words is None:  # whitespace that Arrow does not split on: those texts in Python
        return _python_where(texts, langs, lists,
                             [_OTHER_WHITESPACE_PY.search(t) is not None for t in texts])
    n_lines, bullets, ellipses = _line_counts(arr)
    out = []
    for text, (list_name, _), (n, len_sum, nonempty, alpha_n, stop), ls, bullet, ell in zip(
            texts, lists, words, n_lines, bullets, ellipses):
        if n:
            hash_ratio = text.count("#") / n
            ell_ratio = (text.count("...") + text.count("…")) / n
            alpha = alpha_n / n
        else:
            hash_ratio = ell_ratio = alpha = 0.0
        out.append({
            "gopher_n_words": n,
            "gopher_mean_word_length": len_sum / nonempty if nonempty else 0.0,
            "gopher_symbol_word_ratio": max(hash_ratio, ell_ratio),
            "gopher_bullet_lines_frac": bullet / ls if ls else 0.0,
            "gopher_ellipsis_lines_frac": ell / ls if ls else 0.0,
            "gopher_alpha_words_frac": alpha,
            "gopher_stop_words": stop,
            "gopher_stop_list": list_name,
        })
    return out


def _python_where(texts: Sequence[str], langs: Sequence[str | None],
                  lists: Sequence[tuple[str, frozenset[str] | None]],
                  python: Sequence[bool]) -> list[dict]:
    """:func:`_quality_stats_batch` with the texts where ``python`` is true done by
    :meth:`GopherQuality.stats`."""
    rest = iter(_quality_stats_batch(*([x for x, p in zip(xs, python) if not p]
                                       for xs in (texts, langs, lists))))
    return [GopherQuality.stats(t, lang) if p else next(rest)
            for t, lang, p in zip(texts, langs, python)]


def _utf8_ok(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _segment_sums(values: np.ndarray, starts: np.ndarray) -> list[int]:
    """Sums of ``values`` over the segments that begin at ``starts`` (none of them empty)."""
    return np.add.reduceat(values, starts).tolist() if len(starts) else []


def _list_starts(lists: pa.Array) -> np.ndarray:
    offsets = lists.offsets.to_numpy()
    return offsets[:-1] - offsets[0]


def _line_counts(arr: pa.Array) -> tuple[list[int], list[int], list[int]]:
    """Per text: (non-empty lines, of them starting with a bullet, ending with an ellipsis):
    :func:`filters.text_stats.lines` (``utf8_trim_whitespace`` strips exactly what
    ``str.strip`` strips), ``str.startswith(BULLETS)``, ``str.endswith(ELLIPSES)``."""
    split = pc.split_pattern(arr, "\n")  # every text gives at least one (maybe empty) line
    starts = _list_starts(split)
    stripped = pc.utf8_trim_whitespace(split.flatten())
    flags = [pc.not_equal(pc.binary_length(stripped), 0),
             pc.match_substring_regex(stripped, _BULLET_RE),
             pc.match_substring_regex(stripped, _ELLIPSIS_RE)]
    return tuple(_segment_sums(f.to_numpy(zero_copy_only=False).astype(np.int64), starts)
                 for f in flags)


def _has_other_whitespace(strings: pa.Array) -> bool:
    """Whether a string of ``strings`` holds a character of ``_OTHER_WHITESPACE``, read from
    the UTF-8 bytes: in valid UTF-8 a lead byte starts a character, so decoding at each
    lead byte of a 1-3 byte character finds exactly the characters present."""
    _, offset_buf, data_buf = strings.buffers()  # large_string: int64 offsets
    offsets = np.frombuffer(offset_buf, dtype=np.int64)[strings.offset:]
    begin, end = int(offsets[0]), int(offsets[len(strings)])
    if begin == end:
        return False
    data = np.frombuffer(data_buf, dtype=np.uint8)[begin:end]
    if np.any((data >= 0x1C) & (data <= 0x1F)):
        return True
    b = np.zeros(len(data) + 2, dtype=np.int64)
    b[:len(data)] = data
    two = np.flatnonzero(b == 0xC2)
    three = np.flatnonzero((b >= 0xE1) & (b <= 0xE3))
    chars = np.concatenate((((b[two] & 0x1F) << 6) | (b[two + 1] & 0x3F),
                            ((b[three] & 0x0F) << 12) | ((b[three + 1] & 0x3F) << 6)
                            | (b[three + 2] & 0x3F)))
    return bool(np.isin(chars, _OTHER_WHITESPACE).any())


def _word_counts(arr: pa.Array, stop_sets: Sequence[frozenset[str] | None]
                 ) -> list[tuple[int, int, int, int, int | None]] | None:
    """Per text, over its whitespace tokens ``w`` (``text.split()``) with
    ``s = w.strip(PUNCT)``: (number of tokens, sum of ``len(s)``, number of non-empty ``s``,
    number of ``w`` with an alphabetic character, number of distinct ``s.lower()`` in
    ``stop_sets[d]`` over non-empty ``s`` or ``None`` without a set), all Python ints.

    The texts are split and dictionary-encoded by Arrow; each distinct token's properties
    are computed once and gathered with numpy. Arrow and Python agree on (each checked on
    every code point by tests/test_gopher_quality_batch.py): ``ascii_split_whitespace``
    splits on Python's whitespace less ``_OTHER_WHITESPACE`` (``None`` is returned when a
    token holds one of those; ``utf8_split_whitespace`` is not used: pyarrow 25 mis-splits
    some strings, e.g. ``"\\x80\\u2003"``) and also gives empty tokens at the ends, not
    counted here; ``utf8_trim`` and ``str.strip``
    with a set of characters; ``utf8_length`` and ``len``. Letters and lowercase come from
    Arrow only for ASCII ``s`` (an ASCII string has a letter exactly when its ``ascii_lower``
    and ``ascii_upper`` differ; no character of ``PUNCT`` is a letter, so ``w`` has one
    exactly when ``s`` has); other ``s`` use ``str.isalpha``/``has_alpha`` and ``str.lower``.
    """
    n_docs = len(arr)
    split = pc.ascii_split_whitespace(arr)
    enc = pc.dictionary_encode(split.flatten())
    vocab = enc.dictionary
    if _has_other_whitespace(vocab):
        return None
    starts = _list_starts(split)  # every text gives at least one (maybe empty) token
    ids = enc.indices.to_numpy()
    stripped = pc.utf8_trim(vocab, characters=PUNCT)
    s_len = pc.utf8_length(stripped).to_numpy().astype(np.int64)
    is_token = pc.not_equal(pc.binary_length(vocab), 0).to_numpy(zero_copy_only=False)
    lowered = pc.ascii_lower(stripped)
    alpha = pc.not_equal(lowered, pc.ascii_upper(stripped)).to_numpy(zero_copy_only=False)
    other = np.flatnonzero(~pc.string_is_ascii(stripped).to_numpy(zero_copy_only=False))
    other_lower: list[str] = []
    if len(other):
        alpha = alpha.copy()
        other_alpha = []
        for s in pc.utf8_trim(vocab.take(pa.array(other)), characters=PUNCT).to_pylist():
            other_alpha.append(s.isalpha() or has_alpha(s))
            other_lower.append(s.lower())
        alpha[other] = other_alpha
    sums = zip(_segment_sums(is_token.astype(np.int64)[ids], starts),
               _segment_sums(s_len[ids], starts),
               _segment_sums((s_len > 0).astype(np.int64)[ids], starts),
               _segment_sums(alpha.astype(np.int64)[ids], starts))
    stops: list[int | None] = [None] * n_docs
    groups: dict[frozenset[str], list[int]] = {}
    for d, stop_words in enumerate(stop_sets):
        if stop_words is not None:
            groups.setdefault(stop_words, []).append(d)
    if groups:
        tok_doc = np.repeat(np.arange(n_docs, dtype=np.int64),
                            np.diff(split.offsets.to_numpy()))
        for stop_words, docs in groups.items():
            stops_of = _stop_counts(stop_words, lowered, s_len, other, other_lower, ids,
                                    tok_doc, docs, n_docs)
            for d in docs:
                stops[d] = stops_of[d]
    return [(*counts, stop) for counts, stop in zip(sums, stops)]


def _stop_counts(stop_words: frozenset[str], lowered: pa.Array, s_len: np.ndarray,
                 other: np.ndarray, other_lower: list[str], ids: np.ndarray,
                 tok_doc: np.ndarray, docs: list[int], n_docs: int) -> list[int]:
    """Per document (those of ``docs`` count): distinct stop words among its tokens.
    ``lowered``: each distinct token stripped and ASCII-lowercased (right for ASCII tokens);
    ``other_lower``: ``str.lower`` of the stripped tokens at ``other`` (the others)."""
    values = list(stop_words)
    sid = pc.index_in(lowered, value_set=pa.array(values, type=pa.large_string()))
    sid = sid.fill_null(-1).to_numpy().astype(np.int64)
    sid[s_len == 0] = -1  # an empty stripped token is not a word
    if len(other):
        index = dict(zip(values, range(len(values))))
        sid[other] = [index.get(s, -1) for s in other_lower]
    # number the stop words that occur 0..k-1
    present = np.zeros(len(values) + 1, dtype=np.int64)
    present[sid + 1] = 1
    present[0] = 0
    k = int(present.sum())
    if k == 0:
        return [0] * n_docs
    dense = np.cumsum(present) - 1  # dense[sid + 1]: 0..k-1 for stop words, -1 for others
    tok_sid = dense[sid + 1][ids]
    if len(docs) != n_docs:
        member = np.zeros(n_docs, dtype=bool)
        member[docs] = True
        keep = member[tok_doc]
        tok_sid, tok_doc = tok_sid[keep], tok_doc[keep]
    hit = tok_sid >= 0
    seen = np.bincount(tok_doc[hit] * k + tok_sid[hit], minlength=n_docs * k)
    return np.count_nonzero(seen.reshape(n_docs, k), axis=1).tolist()


# --------------------------------------------------------------------------- repetition

# Rae et al. 2021, Table A1 thresholds (remove when the fraction is above the threshold).
DEFAULT_TOP_NGRAM = {2: 0.20, 3: 0.18, 4: 0.16}
DEFAULT_DUP_NGRAM = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}


@dataclass(frozen=True)
class GopherRepetitionConfig:
    # The stage (gopher_repetition) derives its parameters from these fields; "mapping": the
    # (n, fraction) pairs are written as a mapping n -> fraction in a config.
    max_dup_line_frac: float | None = field(default=0.30, metadata={
        "ge": 0, "le": 1, "description": "Maximum fraction of lines that repeat an earlier "
        "line (Rae et al. 2021, Table A1); null: off."})
    max_dup_para_frac: float | None = field(default=0.30, metadata={
        "ge": 0, "le": 1, "description": "Maximum fraction of paragraphs that repeat an "
        "earlier paragraph (Rae et al. 2021, Table A1); null: off."})
    max_dup_line_char_frac: float | None = field(default=0.20, metadata={
        "ge": 0, "le": 1, "description": "Maximum fraction of characters in lines that repeat "
        "an earlier line (Rae et al. 2021, Table A1); null: off."})
    max_dup_para_char_frac: float | None = field(default=0.20, metadata={
        "ge": 0, "le": 1, "description": "Maximum fraction of characters in paragraphs that "
        "repeat an earlier paragraph (Rae et al. 2021, Table A1); null: off."})
    max_top_ngram_char_frac: tuple[tuple[int, float | None], ...] = field(
        default=tuple(DEFAULT_TOP_NGRAM.items()), metadata={
            "mapping": True, "description": "n -> max fraction of characters in the most "
            "frequent n-gram, null: off (Rae et al. 2021, Table A1)."})
    max_dup_ngram_char_frac: tuple[tuple[int, float | None], ...] = field(
        default=tuple(DEFAULT_DUP_NGRAM.items()), metadata={
            "mapping": True, "description": "n -> max fraction of characters in repeated "
            "n-grams, null: off (Rae et al. 2021, Table A1)."})
    # The n-gram thresholds are for WORD n-grams. Languages written without spaces for which no
    # word segmenter is available (ja, lo, km, my, bo; zh/th without rjieba/pythainlp) are
    # tokenised one character per token (filters/segment.py); a 5-gram is then 5 characters,
    # about two words, and ordinary Japanese prose repeats such n-grams far more than English
    # repeats word 5-grams (docs/quality.md, "Languages").
    char_token_ngrams: Literal["skip", "apply"] = field(default="skip", metadata={
        "description": "For documents tokenised one character per token (languages without "
        "spaces and without a word segmenter: ja, lo, km, my, bo): skip: the top/dup n-gram "
        "rules are not applied (their columns are still written; column gopher_ngram_tokens "
        "says 'characters'), since their thresholds are for word n-grams; apply: apply them "
        "to character n-grams with the same thresholds."})


# Values of column gopher_ngram_tokens (filters/segment.py segmenter names).
CHAR_TOKENS = "characters"


class GopherRepetition(RecordScorer):
    def __init__(self, config: GopherRepetitionConfig | None = None, *,
                 language_column: str | None = None, default_language: str | None = "en"):
        c = config or GopherRepetitionConfig()
        self.config = c
        self.language_column = language_column
        self.default_language = default_language
        self.top_ns = sorted(n for n, _ in c.max_top_ngram_char_frac)
        self.dup_ns = sorted(n for n, _ in c.max_dup_ngram_char_frac)
        top = dict(c.max_top_ngram_char_frac)
        dup = dict(c.max_dup_ngram_char_frac)
        self.rules = [
            Rule("gopher_dup_lines", "gopher_dup_line_frac", "le", c.max_dup_line_frac),
            Rule("gopher_dup_paragraphs", "gopher_dup_para_frac", "le", c.max_dup_para_frac),
            Rule("gopher_dup_line_chars", "gopher_dup_line_char_frac", "le",
                 c.max_dup_line_char_frac),
            Rule("gopher_dup_paragraph_chars", "gopher_dup_para_char_frac", "le",
                 c.max_dup_para_char_frac),
        ]
        self.rules += [
            Rule(f"gopher_top_{n}gram", f"gopher_top_{n}gram_char_frac", "le", top[n])
            for n in self.top_ns
        ]
        self.rules += [
            Rule(f"gopher_dup_{n}gram", f"gopher_dup_{n}gram_char_frac", "le", dup[n])
            for n in self.dup_ns
        ]
        # Instance attribute: the set of columns depends on the configured n.
        self.columns = {
            "gopher_dup_line_frac": "float64",
            "gopher_dup_para_frac": "float64",
            "gopher_dup_line_char_frac": "float64",
            "gopher_dup_para_char_frac": "float64",
            **{f"gopher_top_{n}gram_char_frac": "float64" for n in self.top_ns},
            **{f"gopher_dup_{n}gram_char_frac": "float64" for n in self.dup_ns},
            "gopher_ngram_tokens": "string",
        }
        # rules applied to documents tokenised by characters (char_token_ngrams: skip)
        self.char_rules = [r for r in self.rules if not _is_ngram_rule(r)] \
            if c.char_token_ngrams == "skip" else self.rules

    def stats(self, text: str, lang: str | None = "en") -> dict:
        line_frac, line_chars = duplicate_fraction(lines(text))
        para_frac, para_chars = duplicate_fraction(paragraphs(text))
        ws = [w.lower() for w in segment_words(text, lang)]
        out = {
            "gopher_dup_line_frac": line_frac,
            "gopher_dup_para_frac": para_frac,
            "gopher_dup_line_char_frac": line_chars,
            "gopher_dup_para_char_frac": para_chars,
            "gopher_ngram_tokens": segmenter_name(lang),
        }
        index = NgramIndex(ws)
        for n in self.top_ns:
            out[f"gopher_top_{n}gram_char_frac"] = index.top_fraction(n)
        for n, v in index.dup_fractions(self.dup_ns).items():
            out[f"gopher_dup_{n}gram_char_frac"] = v
        return out

    def process(self, record: Record) -> Decision:
        lang = _language_of(record, self.language_column, self.default_language)
        cols = self.stats(require_text(record), lang)
        rules = self.char_rules if cols["gopher_ngram_tokens"] == CHAR_TOKENS else self.rules
        return Decision(first_failed(rules, cols), cols)

    def process_batch(self, records: Sequence[Record]) -> list[Decision]:
        """The Decisions of :meth:`process` (same values), the n-gram statistics of the whole
        batch computed together (:func:`filters.text_stats.ngram_fractions_batch`)."""
        texts = [require_text(r) for r in records]
        column, default = self.language_column, self.default_language
        langs = [_language_of(r, column, default) for r in records]
        names = [segmenter_name(lang) for lang in langs]
        # whitespace tokens: lowering the text then splitting gives the same tokens as
        # lowering each token (no lowercase mapping adds or removes whitespace, and no
        # whitespace character is cased or case-ignorable, so the final-sigma context stops
        # at whitespace; tests/test_gopher_repetition_batch.py checks every code point)
        token_lists = [text.lower().split() if name == "whitespace"
                       else [w.lower() for w in segment_words(text, lang)]
                       for text, lang, name in zip(texts, langs, names)]
        top, dup = ngram_fractions_batch(token_lists, self.top_ns, self.dup_ns)
        top_cols = [(f"gopher_top_{n}gram_char_frac", top[n]) for n in self.top_ns]
        dup_cols = [(f"gopher_dup_{n}gram_char_frac", dup[n]) for n in self.dup_ns]
        out = []
        for i, (text, name) in enumerate(zip(texts, names)):
            line_frac, line_chars = duplicate_fraction(lines(text))
            para_frac, para_chars = duplicate_fraction(paragraphs(text))
            cols = {
                "gopher_dup_line_frac": line_frac,
                "gopher_dup_para_frac": para_frac,
                "gopher_dup_line_char_frac": line_chars,
                "gopher_dup_para_char_frac": para_chars,
                "gopher_ngram_tokens": name,
            }
            for col, values in top_cols:
                cols[col] = values[i]
            for col, values in dup_cols:
                cols[col] = values[i]
            rules = self.char_rules if name == CHAR_TOKENS else self.rules
            out.append(Decision(first_failed(rules, cols), cols))
        return out


def _is_ngram_rule(rule: Rule) -> bool:
    return rule.name.startswith(("gopher_top_", "gopher_dup_")) and rule.name.endswith("gram")
