"""FineWeb custom quality rules (Penedo et al. 2024, "The FineWeb Datasets: Decanting the Web
for the Finest Text Data at Scale", Section 3.3 "Developing additional heuristic filters").

Plain Python. Rules are checked in the order below; the first failure names the drop reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from filters.base import Decision, Record, RecordScorer
from filters.text_stats import Rule, first_failed, lines, require_text, words

# Line-ending punctuation: Latin terminal marks, closing quotes/brackets after them, and the
# CJK full-width stops. (datatrove uses a longer Unicode list; this is a documented subset.)
LINE_END_PUNCT = (".", "!", "?", "…", '"', "'", "”", "’", ")", "。", "！", "？", "．", ";", ":")


@dataclass(frozen=True)
class FineWebConfig:
    # Penedo et al. 2024, 3.3: "Remove documents where the fraction of lines ending with
    # punctuation <= 0.12"  (keep when the fraction is > 0.12)
    min_line_punct_frac: float | None = 0.12
    # 3.3: "Remove documents where the fraction of characters in duplicated lines >= 0.1"
    max_dup_line_char_frac: float | None = 0.1
    # 3.3: "Remove documents where the fraction of lines shorter than 30 characters >= 0.67"
    max_short_line_frac: float | None = 0.67
    short_line_chars: int = 30
    # datatrove FineWebQualityFilter default new_line_ratio=0.3: newlines per word > 0.3 removes
    max_newline_ratio: float | None = 0.3


class FineWebFilter(RecordScorer):
    columns: ClassVar[dict[str, str]] = {
        "fineweb_line_punct_frac": "float64",
        "fineweb_dup_line_char_frac": "float64",
        "fineweb_short_line_frac": "float64",
        "fineweb_newline_ratio": "float64",
    }

    def __init__(self, config: FineWebConfig | None = None):
        c = config or FineWebConfig()
        self.config = c
        self.rules = [
            Rule("fineweb_line_punct", "fineweb_line_punct_frac", "gt", c.min_line_punct_frac),
            Rule("fineweb_dup_line_chars", "fineweb_dup_line_char_frac", "lt",
                 c.max_dup_line_char_frac),
            Rule("fineweb_short_lines", "fineweb_short_line_frac", "lt", c.max_short_line_frac),
            Rule("fineweb_newline_ratio", "fineweb_newline_ratio", "le", c.max_newline_ratio),
        ]

    def stats(self, text: str) -> dict:
        ls = lines(text)
        n = len(ls)
        if n:
            punct = sum(1 for ln in ls if ln.endswith(LINE_END_PUNCT)) / n
            short = sum(1 for ln in ls if len(ln) < self.config.short_line_chars) / n
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
        n_words = len(words(text))
        newline = text.count("\n") / n_words if n_words else float(text.count("\n") > 0)
        return {
            "fineweb_line_punct_frac": punct,
            "fineweb_dup_line_char_frac": dup,
            "fineweb_short_line_frac": short,
            "fineweb_newline_ratio": newline,
        }

    def process(self, record: Record) -> Decision:
        cols = self.stats(require_text(record))
        return Decision(first_failed(self.rules, cols), cols)
