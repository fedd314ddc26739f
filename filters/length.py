"""Length filter: bounds on characters and whitespace-separated words."""

from __future__ import annotations

from filters.base import Decision, Record, RecordScorer


class LengthFilter(RecordScorer):
    columns = {"n_chars": "int64", "n_words": "int64"}

    def __init__(self, min_chars: int = 0, max_chars: int | None = None,
                 min_words: int = 0, max_words: int | None = None):
        self.min_chars, self.max_chars = min_chars, max_chars
        self.min_words, self.max_words = min_words, max_words

    def process(self, record: Record) -> Decision:
        text = record["text"]
        n_chars = len(text)
        n_words = len(text.split())
        cols = {"n_chars": n_chars, "n_words": n_words}
        if n_chars < self.min_chars:
            return Decision("too_few_chars", cols)
        if self.max_chars is not None and n_chars > self.max_chars:
            return Decision("too_many_chars", cols)
        if n_words < self.min_words:
            return Decision("too_few_words", cols)
        if self.max_words is not None and n_words > self.max_words:
            return Decision("too_many_words", cols)
        return Decision(columns=cols)
