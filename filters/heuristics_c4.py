"""C4 cleaning rules (Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a
Unified Text-to-Text Transformer", Section 2.2), as a plain-Python scorer.

C4 has two kinds of rules:

* line rules remove *lines* from a page: lines without terminal punctuation, lines with
  fewer than 3 words, lines mentioning "javascript", cookie/policy boilerplate lines;
* page rules remove the whole page: "lorem ipsum", a curly bracket, fewer than 5 sentences
  (counted after line removal), or nothing left after line removal.

With ``rewrite_lines=True`` (C4's behaviour) the scorer replaces ``text`` with the surviving
lines; with ``False`` (and always in annotate-only mode) the text is left untouched and only
the per-rule line counts are recorded. The "bad words" page rule of C4 is not implemented
(it needs an external word list).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from filters.base import Decision, Record, RecordScorer
from filters.text_stats import Rule, count_sentences, first_failed, require_text

# Raffel et al. 2020, 2.2: "We only retained lines that ended in a terminal punctuation mark
# (i.e. a period, exclamation mark, question mark, or end quotation mark)."
TERMINAL_PUNCT = (".", "!", "?", '"', "”")
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
    # 2.2: "only retained lines that ended in a terminal punctuation mark"
    terminal_punctuation: bool = True
    # 2.2: "only retained lines that contained at least 3 words"
    min_words_per_line: int | None = 3
    # 2.2: "removed any line with the word Javascript"
    drop_javascript_lines: bool = True
    # TFDS c4_utils: cookie / privacy-policy boilerplate lines
    drop_policy_lines: bool = True
    # 2.2: "If a page contained the placeholder 'lorem ipsum' text, we removed it"
    drop_lorem_ipsum: bool = True
    # 2.2: "removed any pages that contained a curly bracket"
    drop_curly_bracket: bool = True
    # 2.2: "We discarded any page with fewer than 5 sentences"
    min_sentences: int | None = 5
    rewrite_lines: bool = True


class C4Filter(RecordScorer):
    columns: ClassVar[dict[str, str]] = {
        "c4_lines": "int64",
        "c4_lines_no_terminal_punct": "int64",
        "c4_lines_too_few_words": "int64",
        "c4_lines_javascript": "int64",
        "c4_lines_policy": "int64",
        "c4_lines_kept_frac": "float64",
        "c4_lorem_ipsum": "bool",
        "c4_curly_bracket": "bool",
        "c4_sentences": "int64",
    }

    def __init__(self, config: C4Config | None = None):
        c = config or C4Config()
        self.config = c
        self.rules = [
            Rule("c4_lorem_ipsum", "c4_lorem_ipsum", "le", 0 if c.drop_lorem_ipsum else None),
            Rule("c4_curly_bracket", "c4_curly_bracket", "le", 0 if c.drop_curly_bracket else None),
            # Always on: a page whose every line was removed has nothing left.
            Rule("c4_no_lines_left", "c4_lines_kept_frac", "gt", 0.0),
            Rule("c4_too_few_sentences", "c4_sentences", "ge", c.min_sentences),
        ]

    def scan(self, text: str) -> tuple[dict, list[str]]:
        """Per-rule line counts and page flags; also the surviving lines."""
        c = self.config
        n_lines = n_punct = n_words = n_js = n_policy = 0
        kept: list[str] = []
        for raw in text.split("\n"):
            line = raw.strip()
            if not line:
                continue
            n_lines += 1
            low = line.lower()
            drop = False
            # Counts are per rule and independent: one line may fail several rules.
            if c.terminal_punctuation and not line.endswith(TERMINAL_PUNCT):
                n_punct += 1
                drop = True
            if c.min_words_per_line is not None and len(line.split()) < c.min_words_per_line:
                n_words += 1
                drop = True
            if c.drop_javascript_lines and "javascript" in low:
                n_js += 1
                drop = True
            if c.drop_policy_lines and any(p in low for p in POLICY_SUBSTRINGS):
                n_policy += 1
                drop = True
            if not drop:
                kept.append(line)
        low_text = text.lower()
        cols = {
            "c4_lines": n_lines,
            "c4_lines_no_terminal_punct": n_punct,
            "c4_lines_too_few_words": n_words,
            "c4_lines_javascript": n_js,
            "c4_lines_policy": n_policy,
            "c4_lines_kept_frac": len(kept) / n_lines if n_lines else 0.0,
            "c4_lorem_ipsum": "lorem ipsum" in low_text,
            "c4_curly_bracket": "{" in text or "}" in text,
            "c4_sentences": count_sentences("\n".join(kept)),
        }
        return cols, kept

    def process(self, record: Record) -> Decision:
        text = require_text(record)
        cols, kept = self.scan(text)
        reason = first_failed(self.rules, cols)
        if self.config.rewrite_lines and reason is None:
            new_text = "\n".join(kept)
            if new_text != text:
                return Decision(None, {**cols, "text": new_text})
        return Decision(reason, cols)
