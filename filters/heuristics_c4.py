"""C4 cleaning rules (Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a
Unified Text-to-Text Transformer", Section 2.2), as a plain-Python scorer.

C4 has two kinds of rules:

* line rules remove *lines* from a page: lines without terminal punctuation (a line ending
  in ``...`` has none, as in the reference cleaner), lines with fewer than 3 words, lines
  mentioning "javascript", cookie/policy boilerplate lines, and lines with a word longer than
  1000 characters (reference cleaner); Wikipedia-style citation marks (``[1]``, ``[edit]``,
  ``[citation needed]``) are removed from lines first (reference cleaner);
* page rules remove the whole page: "lorem ipsum", a curly bracket, a bad word (optional,
  see below), fewer than 5 sentences, or nothing left after line removal.

Sentences are counted as the reference cleaner (TFDS ``c4_utils.clean_page``) does: per kept
line, summed; a kept line always ends in an end mark, so it holds at least one sentence.
Within a line, sentences end at ``.!?`` runs (closing quotes or brackets after them) followed
by whitespace, and the text after the last end is one more sentence (:func:`line_sentences`),
an approximation of the NLTK Punkt model the reference uses (Punkt's trained English
parameters are not shipped on PyPI).

Where the page rules look (``page_rules_on``):

* ``"kept_lines"`` (default) follows the reference cleaner that produced the released C4 (TFDS
  ``c4_utils.clean_page``; datatrove's ``C4QualityFilter`` does the same). Per line, in this
  order: a word over 1000 characters drops the line; citations are stripped; no end mark (or
  ``...``) drops the line; too few words drops the line; "lorem ipsum" (lower-cased) drops the
  *page*; "javascript" drops the line; ``{`` drops the *page*; a policy phrase drops the line.
  So "lorem ipsum" counts on a javascript or policy line, ``{`` on a policy line but not on a
  javascript line, and neither on a line an earlier rule removed. Only the opening bracket
  ``{`` counts, as in the reference. Bad words are looked for in the surviving lines (TFDS runs
  its bad-words filter on the cleaned page, after ``clean_page``). When a page fails several
  page rules the reason is the one the reference reports: whichever of lorem ipsum / curly
  bracket is on the earlier line, then too few sentences, then bad words.
* ``"whole_page"`` is the paper's literal reading ("removed any pages that contained a curly
  bracket"): "lorem ipsum", ``{`` or ``}`` and bad words anywhere in the page, whatever the line
  rules removed.

Differences left to the reference: line counts cover every line of a page (the reference
stops at the line that drops the page) and each line rule is counted independently; lines are
split at ``\n`` only (the reference uses ``str.splitlines``); the reference's line
deduplication across pages (before its bad-words filter) is not part of this stage.

Bad words: C4 removed pages containing a word of the LDNOOBW list (CC-BY-4.0), which no PyPI
package ships (datatrove downloads it at run time). ``bad_words="better-profanity"`` uses the
English word list shipped in the ``better-profanity`` package (MIT licence; a different, 900+
entry list, so removal rates differ from C4's); ``bad_words=<path>`` reads any list, e.g. a
local copy of LDNOOBW. Matching follows the reference: on the lower-cased page, a word must
be flanked by non-word characters (for ja/th/zh any occurrence matches). Only documents in
``bad_words_language`` (by ``language_column``, default English when absent) are checked.

With ``rewrite_lines=True`` (C4's behaviour) the scorer replaces ``text`` with the surviving
lines; with ``False`` (and always in annotate-only mode) the text is left untouched and only
the per-rule line counts are recorded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import regex

from filters.base import Decision, Record, RecordScorer
from filters.segment import SPACELESS, sentence_terminals
from filters.segment import words as segment_words
from filters.stopwords import base_language
from filters.text_stats import Rule, first_failed, require_text

# Raffel et al. 2020, 2.2: "We only retained lines that ended in a terminal punctuation mark
# (i.e. a period, exclamation mark, question mark, or end quotation mark)."
# The reference cleaner's end marks are . ? ! " ; the paper's "end quotation mark" also
# covers the typographic closing quote, kept here.
TERMINAL_PUNCT = (".", "!", "?", '"', "”")
ELLIPSIS = "..."
PAGE_RULES_ON = ("kept_lines", "whole_page")
# Reference cleaner: lines with a word longer than this are dropped.
MAX_WORD_LENGTH = 1000
CITATION = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]", re.IGNORECASE)
# TF Datasets' C4 implementation (c4_utils) drops lines containing these phrases.
POLICY_SUBSTRINGS = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)


@dataclass(frozen=True)
class C4Config:
    # Each rule parameter is declared once, here (default, bounds, description); the c4_filter
    # stage derives its config parameters from these fields.
    terminal_punctuation: bool = field(default=True, metadata={
        "description": "Drop lines that do not end in a terminal punctuation mark, or that end "
        "in '...' (Raffel et al. 2020, 2.2; C4 reference cleaner)."})
    line_end_punctuation: Literal["c4", "unicode", "auto"] = field(default="auto", metadata={
        "description": "Which marks end a line and a sentence. c4: . ! ? \" \u201d (the "
        "reference, English); unicode: every Unicode Sentence_Terminal character too (\u3002 "
        "\uff01 \uff1f \u0964 ...), a CJK full stop ending a sentence without a space after "
        "it; auto: unicode for documents whose language_column value is not English, c4 for "
        "English and for every document when there is no language column."})
    min_words_per_line: int | None = field(default=3, metadata={
        "ge": 1, "description": "Drop lines with fewer words (Raffel et al. 2020, 2.2); "
        "words of languages written without spaces (zh, ja, th, ...) come from "
        "filters.segment; null: off."})
    drop_javascript_lines: bool = field(default=True, metadata={
        "description": "Drop lines that mention 'javascript' (Raffel et al. 2020, 2.2)."})
    drop_policy_lines: bool = field(default=True, metadata={
        "description": "Drop cookie, privacy-policy and terms-of-use boilerplate lines (C4 "
        "reference cleaner, TFDS c4_utils)."})
    drop_lorem_ipsum: bool = field(default=True, metadata={
        "description": "Remove pages containing 'lorem ipsum' (Raffel et al. 2020, 2.2), where "
        "page_rules_on says."})
    drop_curly_bracket: bool = field(default=True, metadata={
        "description": "Remove pages containing a curly bracket (Raffel et al. 2020, 2.2): '{' "
        "on a kept line (page_rules_on: kept_lines), '{' or '}' anywhere (whole_page)."})
    page_rules_on: Literal["kept_lines", "whole_page"] = field(default="kept_lines", metadata={
        "description": "Where the lorem-ipsum, curly-bracket and bad-words page rules look. "
        "kept_lines: only lines the line rules keep, checked in the reference cleaner's order "
        "(TFDS c4_utils.clean_page, which made the released C4; datatrove does the same); "
        "whole_page: the whole page, the paper's literal reading (Raffel et al. 2020, 2.2)."})
    min_sentences: int | None = field(default=5, metadata={
        "ge": 0, "description": "Remove pages with fewer sentences in their kept lines "
        "(Raffel et al. 2020, 2.2); null: off."})
    max_word_length: int | None = field(default=MAX_WORD_LENGTH, metadata={
        "ge": 1, "description": "Drop lines with a longer word (C4 reference cleaner)."})
    remove_citations: bool = field(default=True, metadata={
        "description": "Strip [1], [edit], [citation needed] (C4 reference cleaner)."})
    # Raffel et al. 2020, 2.2: pages with a word of the LDNOOBW list were removed
    bad_words: str | None = field(default=None, metadata={
        "description": "C4 bad-words page rule: null (off), 'better-profanity' (English list "
        "shipped in that package, MIT) or a path to a word-list file (e.g. LDNOOBW)."})
    bad_words_language: str = field(default="en", metadata={
        "description": "Language of the bad-word list."})
    language_column: str | None = None
    rewrite_lines: bool = field(default=True, metadata={
        "description": "Replace 'text' with the lines that pass the line rules (C4's "
        "behaviour). Never done in annotate_only mode."})


# A sentence end inside a line: end marks, closing quotes or brackets, then space or the end.
_SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s|$)")
# unicode: any Sentence_Terminal run the same way, and a CJK full stop / mark anywhere (those
# scripts put no space after a sentence)
_CJK_ENDS = "\u3002\uff01\uff1f\uff61\ufe12"  # 。！？｡︒
_SENTENCE_END_UNICODE = regex.compile(
    rf"[{_CJK_ENDS}]+[\"'”’)\]\u300d\u300f\uff09\u3011]*"
    rf"|\p{{Sentence_Terminal}}+[\"'”’)\]\u300d\u300f\uff09\u3011]*(?=\s|$)")


def line_sentences(line: str, unicode: bool = False) -> int:
    """Sentences of one kept line, as the reference's NLTK Punkt counts them: the sentence ends
    inside the line, plus the text after the last one (``Fixed. Note that "x"`` is two
    sentences; a kept line may end in a bare closing quote). At least 1. ``unicode``: every
    Sentence_Terminal mark ends a sentence, CJK marks without a space after them."""
    ends = list((_SENTENCE_END_UNICODE if unicode else _SENTENCE_END).finditer(line))
    return len(ends) + (not ends or ends[-1].end() < len(line.rstrip()))


def load_bad_words(spec: str) -> list[str]:
    """Words of a bad-word list: ``better-profanity`` (the package's list) or a file path."""
    if spec == "better-profanity":
        from importlib.resources import files

        text = files("better_profanity").joinpath("profanity_wordlist.txt").read_text("utf-8")
    else:
        text = Path(spec).read_text(encoding="utf-8")
    words = sorted({w.strip().lower() for w in text.splitlines() if w.strip()})
    if not words:
        raise ValueError(f"bad-word list {spec!r} is empty")
    return words


def bad_words_regex(words: list[str], language: str) -> re.Pattern:
    alternation = "|".join(re.escape(w) for w in sorted(words, key=lambda w: (-len(w), w)))
    if base_language(language) in ("ja", "th", "zh"):
        return re.compile(alternation)
    return re.compile(rf"(?:\W|^)(?:{alternation})(?:\W|$)")


class C4Filter(RecordScorer):
    columns: ClassVar[dict[str, str]] = {
        "c4_lines": "int64",
        "c4_lines_no_terminal_punct": "int64",
        "c4_lines_too_few_words": "int64",
        "c4_lines_javascript": "int64",
        "c4_lines_policy": "int64",
        "c4_lines_too_long_word": "int64",
        "c4_lines_kept_frac": "float64",
        "c4_lorem_ipsum": "bool",
        "c4_curly_bracket": "bool",
        "c4_bad_words": "bool",
        "c4_sentences": "int64",
    }

    def __init__(self, config: C4Config | None = None):
        c = config or C4Config()
        if c.page_rules_on not in PAGE_RULES_ON:
            raise ValueError("page_rules_on must be kept_lines or whole_page, got "
                             f"{c.page_rules_on!r}")
        if c.line_end_punctuation not in ("c4", "unicode", "auto"):
            raise ValueError("line_end_punctuation must be c4, unicode or auto, got "
                             f"{c.line_end_punctuation!r}")
        self.config = c
        self._unicode_ends = (tuple(sorted(set(sentence_terminals()) | set(TERMINAL_PUNCT)))
                              if c.line_end_punctuation != "c4" else TERMINAL_PUNCT)
        self._bad = (bad_words_regex(load_bad_words(c.bad_words), c.bad_words_language)
                     if c.bad_words else None)
        lorem = Rule("c4_lorem_ipsum", "c4_lorem_ipsum", "le", 0 if c.drop_lorem_ipsum else None)
        curly = Rule("c4_curly_bracket", "c4_curly_bracket", "le",
                     0 if c.drop_curly_bracket else None)
        bad = Rule("c4_bad_words", "c4_bad_words", "le", 0 if c.bad_words else None)
        # Always on: a page whose every line was removed has nothing left.
        page = [Rule("c4_no_lines_left", "c4_lines_kept_frac", "gt", 0.0),
                Rule("c4_too_few_sentences", "c4_sentences", "ge", c.min_sentences)]
        # kept_lines: the reference's order (bad words are filtered after clean_page)
        self.rules = ([lorem, curly, *page, bad] if c.page_rules_on == "kept_lines"
                      else [lorem, curly, bad, *page])
        # the reference stops at the first page-dropping line: curly bracket first if earlier
        self._curly_first = [curly, lorem, *self.rules[2:]]

    def scan(self, text: str, language: str | None = None) -> tuple[dict, list[str]]:
        """Per-rule line counts and page flags; also the surviving lines."""
        cols, kept, _ = self._scan(text, language)
        return cols, kept

    def _scan(self, text: str, language: str | None) -> tuple[dict, list[str], bool]:
        """:meth:`scan`, and whether a curly bracket is on an earlier kept line than "lorem
        ipsum" (which of the two the reference cleaner reports)."""
        c = self.config
        on_kept = c.page_rules_on == "kept_lines"
        lang = base_language(language)
        unicode = c.line_end_punctuation == "unicode" or (
            c.line_end_punctuation == "auto" and lang not in (None, "en"))
        ends = self._unicode_ends if unicode else TERMINAL_PUNCT
        spaceless = lang in SPACELESS
        n_lines = n_punct = n_words = n_js = n_policy = n_long = 0
        n_sentences = 0
        kept: list[str] = []
        lorem_at = curly_at = None  # kept_lines: index of the first line with each
        for raw in text.split("\n"):
            line = raw.strip()
            if not line:
                continue
            n_lines += 1
            drop = False
            # Counts are per rule and independent: one line may fail several rules.
            tokens = line.split()
            if c.max_word_length is not None and any(len(w) > c.max_word_length for w in tokens):
                n_long += 1
                drop = True
            if c.remove_citations and "[" in line:
                line = CITATION.sub("", line)
                tokens = line.split()
            low = line.lower()
            if c.terminal_punctuation and (not line.endswith(ends)
                                           or line.endswith(ELLIPSIS)):
                n_punct += 1
                drop = True
            n_words_line = len(segment_words(line, language)) if spaceless else len(tokens)
            if c.min_words_per_line is not None and n_words_line < c.min_words_per_line:
                n_words += 1
                drop = True
            # reference order: the page rules see a line only if the rules above kept it
            if on_kept and not drop and lorem_at is None and "lorem ipsum" in low:
                lorem_at = n_lines
            js = c.drop_javascript_lines and "javascript" in low
            if on_kept and not drop and not js and curly_at is None and "{" in line:
                curly_at = n_lines
            if js:
                n_js += 1
                drop = True
            if c.drop_policy_lines and any(p in low for p in POLICY_SUBSTRINGS):
                n_policy += 1
                drop = True
            if not drop:
                kept.append(line)
                # reference: sentences of each kept line, summed (>= 1 per kept line)
                n_sentences += line_sentences(line, unicode)
        low_text = text.lower()
        bad = None
        if self._bad is not None:
            lang = base_language(language or c.bad_words_language)
            if lang == base_language(c.bad_words_language):
                where = "\n".join(kept).lower() if on_kept else low_text
                bad = self._bad.search(where) is not None
        if on_kept:
            lorem, curly = lorem_at is not None, curly_at is not None
        else:
            lorem, curly = "lorem ipsum" in low_text, "{" in text or "}" in text
        cols = {
            "c4_lines": n_lines,
            "c4_lines_no_terminal_punct": n_punct,
            "c4_lines_too_few_words": n_words,
            "c4_lines_javascript": n_js,
            "c4_lines_policy": n_policy,
            "c4_lines_too_long_word": n_long,
            "c4_lines_kept_frac": len(kept) / n_lines if n_lines else 0.0,
            "c4_lorem_ipsum": lorem,
            "c4_curly_bracket": curly,
            "c4_bad_words": bad,
            "c4_sentences": n_sentences,
        }
        curly_first = curly and (not lorem or curly_at < lorem_at) if on_kept else False
        return cols, kept, curly_first

    def process(self, record: Record) -> Decision:
        text = require_text(record)
        lang = record.get(self.config.language_column) if self.config.language_column else None
        cols, kept, curly_first = self._scan(text, lang if isinstance(lang, str) and lang
                                             else None)
        rules = self._curly_first if curly_first else self.rules
        if cols["c4_bad_words"] is None:
            rules = [r for r in rules if r.column != "c4_bad_words"]
        reason = first_failed(rules, cols)
        if self.config.rewrite_lines and reason is None:
            new_text = "\n".join(kept)
            if new_text != text:
                return Decision(None, {**cols, "text": new_text})
        return Decision(reason, cols)
