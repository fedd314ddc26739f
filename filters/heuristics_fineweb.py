"""FineWeb custom quality rules (Penedo et al. 2024, "The FineWeb Datasets: Decanting the Web
for the Finest Text Data at Scale", Section 3.3 "Developing additional heuristic filters").

Plain Python. Rules are checked in the order below; the first failure names the drop reason.

Line-ending punctuation is FineWeb's set ``. ' " ! ?`` (the ``stop_chars`` of the FineWeb
quality filter in datatrove as released with FineWeb). ``line_end_punctuation="unicode"``
uses every Unicode ``Sentence_Terminal`` character (``. ! ? 。 ！ ？ । ။ ...``, from the
``regex`` module's Unicode database) plus FineWeb's quotes -- the kind of set FineWeb-2 uses
for non-Latin scripts; ``"auto"`` (the default) picks ``unicode`` for documents whose
``language_column`` says a language other than English, and FineWeb's set for English and for
every document when there is no language column (so English results are FineWeb's).

Languages written without spaces (zh, ja, th, lo, km, my, bo): ``per_language`` threshold
overrides apply (default: the short-line rule is off for them, as FineWeb-2 turns it off for
every language: a 30-character line of Han or kana holds about as much text as a 60-90
character English line), and their word tokens for the newline ratio come from
``filters.segment`` (dictionary or per-character segmentation, as FineWeb-2 uses a word
tokenizer per language) instead of runs of word characters, which make a whole CJK sentence
one "word".

The newline ratio is FineWeb's: newlines / words, with words counted as a word tokenizer
counts them (NLTK's ``word_tokenize`` in FineWeb, where punctuation marks are tokens of their
own). Here a word token is a run of word characters or a run of other non-space characters
(:func:`word_token_count`), which matches Treebank tokenization except for contractions and
abbreviations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, ClassVar, Literal

import regex

from filters.base import Decision, Record, RecordScorer, per_language_overrides
from filters.segment import SPACELESS, sentence_terminals
from filters.segment import words as segment_words
from filters.stopwords import base_language
from filters.text_stats import Rule, first_failed, lines, require_text

# FineWeb's line-ending punctuation (datatrove FineWebQualityFilter stop_chars).
LINE_END_PUNCT = (".", "'", '"', "!", "?")
_WORD_TOKEN = regex.compile(r"\w+|[^\w\s]+")


@lru_cache(maxsize=1)
def unicode_line_end_punct() -> tuple[str, ...]:
    """Every Unicode Sentence_Terminal character, plus FineWeb's set."""
    return tuple(sorted(set(sentence_terminals()) | set(LINE_END_PUNCT)))


def word_token_count(text: str) -> int:
    """Word tokens as a Treebank-style tokenizer counts them (punctuation runs are tokens)."""
    return sum(1 for _ in _WORD_TOKEN.finditer(text))


def newline_ratio_tokens(text: str, language: str | None = None) -> int:
    """Word tokens for the newline ratio: :func:`word_token_count`, except for languages
    written without spaces, whose words come from ``filters.segment`` (each segment counted
    as word_token_count counts it, so attached punctuation is still a token)."""
    if base_language(language) in SPACELESS:
        return sum(word_token_count(w) for w in segment_words(text, language))
    return word_token_count(text)


@dataclass(frozen=True)
class FineWebConfig:
    # Each threshold is declared once, here (default, bounds, description); the fineweb_filter
    # stage derives its config parameters from these fields. None turns a rule off.
    min_line_punct_frac: float | None = field(default=0.12, metadata={
        "ge": 0, "le": 1, "description": "Keep a document only if more than this fraction of "
        "its lines end with line-end punctuation (Penedo et al. 2024, 3.3); null: off."})
    max_dup_line_char_frac: float | None = field(default=0.1, metadata={
        "ge": 0, "le": 1, "description": "Keep a document only if less than this fraction of "
        "its characters are in duplicated lines (Penedo et al. 2024, 3.3); null: off."})
    max_short_line_frac: float | None = field(default=0.67, metadata={
        "ge": 0, "le": 1, "description": "Keep a document only if less than this fraction of "
        "its lines are shorter than short_line_chars (Penedo et al. 2024, 3.3); null: off."})
    short_line_chars: int = field(default=30, metadata={
        "ge": 1, "description": "A line with fewer characters than this is short (Penedo et "
        "al. 2024, 3.3)."})
    max_newline_ratio: float | None = field(default=0.3, metadata={
        "ge": 0, "description": "Maximum newlines per word token (datatrove's "
        "FineWebQualityFilter new_line_ratio, as released with FineWeb); null: off."})
    line_end_punctuation: Literal["fineweb", "unicode", "auto"] = field(
        default="auto", metadata={
            "description": "fineweb: . ' \" ! ? (FineWeb); unicode: every Unicode "
            "Sentence_Terminal character too (。！？ ...); auto: unicode for documents whose "
            "language_column value is not English, fineweb for English and for every document "
            "when there is no language column."})
    language_column: str | None = None


# Fields a per_language override may set.
THRESHOLD_FIELDS = ("min_line_punct_frac", "max_dup_line_char_frac", "max_short_line_frac",
                    "short_line_chars", "max_newline_ratio")

# datamill defaults, not published values: for languages written without spaces the
# short-line rule is off (FineWeb-2 turns it off for all its languages, short_line_thr=999 in
# its pipeline; here only where the 30-character line is clearly wrong, so that results for
# languages written with spaces stay FineWeb's). Override or extend in the config
# (``per_language``).
DEFAULT_PER_LANGUAGE: dict[str, dict[str, float | int | None]] = {
    lang: {"max_short_line_frac": None} for lang in sorted(SPACELESS)
}


def _rules(c: FineWebConfig) -> list[Rule]:
    return [
        Rule("fineweb_line_punct", "fineweb_line_punct_frac", "gt", c.min_line_punct_frac),
        Rule("fineweb_dup_line_chars", "fineweb_dup_line_char_frac", "lt",
             c.max_dup_line_char_frac),
        Rule("fineweb_short_lines", "fineweb_short_line_frac", "lt", c.max_short_line_frac),
        Rule("fineweb_newline_ratio", "fineweb_newline_ratio", "le", c.max_newline_ratio),
    ]


class FineWebFilter(RecordScorer):
    columns: ClassVar[dict[str, str]] = {
        "fineweb_line_punct_frac": "float64",
        "fineweb_dup_line_char_frac": "float64",
        "fineweb_short_line_frac": "float64",
        "fineweb_newline_ratio": "float64",
    }

    def __init__(self, config: FineWebConfig | None = None, *,
                 per_language: Mapping[str, Mapping[str, Any]] | None = None):
        c = config or FineWebConfig()
        if c.line_end_punctuation not in ("fineweb", "unicode", "auto"):
            raise ValueError("line_end_punctuation must be fineweb, unicode or auto, got "
                             f"{c.line_end_punctuation!r}")
        self.config = c
        self._fineweb = LINE_END_PUNCT
        self._unicode = unicode_line_end_punct() if c.line_end_punctuation != "fineweb" else ()
        self.rules = _rules(c)
        self.per_language = per_language_overrides(
            DEFAULT_PER_LANGUAGE if per_language is None else per_language, THRESHOLD_FIELDS)
        self._lang = {lang: (replace(c, **over), _rules(replace(c, **over)))
                      for lang, over in self.per_language.items()}

    def _for(self, lang: str | None) -> tuple[FineWebConfig, list[Rule]]:
        """(config, rules) for a document language: its override, its base language's, or
        the defaults."""
        if lang is None:
            return self.config, self.rules
        if lang in self._lang:
            return self._lang[lang]
        return self._lang.get(base_language(lang) or "", (self.config, self.rules))

    def rules_for(self, lang: str | None) -> list[Rule]:
        return self._for(lang)[1]

    def punctuation_for(self, language: str | None) -> tuple[str, ...]:
        mode = self.config.line_end_punctuation
        if mode == "unicode" or (mode == "auto" and base_language(language) not in (None, "en")):
            return self._unicode
        return self._fineweb

    def stats(self, text: str, language: str | None = None) -> dict:
        ls = lines(text)
        n = len(ls)
        end_punct = self.punctuation_for(language)
        short_chars = self._for(language)[0].short_line_chars
        if n:
            punct = sum(1 for ln in ls if ln.endswith(end_punct)) / n
            short = sum(1 for ln in ls if len(ln) < short_chars) / n
            # Characters of every line whose text occurs more than once (all copies after the
            # first), over all non-empty line characters -- as in datatrove's FineWeb filter.
            seen: set[str] = set()
            dup_chars = 0
            total = 0
            for ln in ls:
                total += len(ln)
                if ln in seen:
                    dup_chars += len(ln)
                else:
                    seen.add(ln)
            dup = dup_chars / total if total else 0.0
        else:
            punct = short = dup = 0.0
        n_words = newline_ratio_tokens(text, language)
        newline = text.count("\n") / n_words if n_words else float(text.count("\n") > 0)
        return {
            "fineweb_line_punct_frac": punct,
            "fineweb_dup_line_char_frac": dup,
            "fineweb_short_line_frac": short,
            "fineweb_newline_ratio": newline,
        }

    def process(self, record: Record) -> Decision:
        col = self.config.language_column
        lang = record.get(col) if col else None
        lang = lang if isinstance(lang, str) and lang else None
        cols = self.stats(require_text(record), lang)
        return Decision(first_failed(self.rules_for(lang), cols), cols)
