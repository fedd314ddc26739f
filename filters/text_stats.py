"""Shared text helpers for the heuristic quality filters: words, lines, paragraphs, n-grams.

Plain Python, no Beam. Every helper is total: empty strings, whitespace-only strings and
strings without newlines give well-defined results (empty lists, zero counts), never errors.

Tokenisation is deliberately simple and language-agnostic: a *word* is a maximal run of
non-whitespace characters (``str.split()``), as in the Gopher rules (Rae et al. 2021,
Appendix A.1.1, which split on whitespace). Published pipelines use various word tokenizers
(datatrove uses NLTK/spaCy-style tokenizers), so ratios computed here can differ slightly
from other implementations at the margins; the thresholds are the published ones.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

import numpy as np

# Gopher stop words: "the, be, to, of, and, that, have, with" (Rae et al. 2021, A.1.1).
GOPHER_STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})

# Bullet markers at the start of a line (Gopher A.1.1 "lines starting with a bullet point").
BULLETS = ("•", "●", "○", "◦", "▪", "▫", "■", "□", "‣", "⁃", "∙", "- ", "* ", "– ", "— ")
ELLIPSES = ("...", "…")

PUNCT = string.punctuation + "“”‘’«»…–—"
_PARA_SPLIT = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"[.!?]+(?:[\"')\]]*)(?=\s|$)")


def words(text: str) -> list[str]:
    """Whitespace-separated tokens."""
    return text.split()


def strip_punct(word: str) -> str:
    return word.strip(PUNCT)


def lines(text: str) -> list[str]:
    """Lines of ``text`` (split on ``\\n``), stripped, without empty lines."""
    return [s for s in (ln.strip() for ln in text.split("\n")) if s]


def raw_lines(text: str) -> list[str]:
    """All lines including empty ones, right-stripped (for line-level rewriting)."""
    return [ln.rstrip() for ln in text.split("\n")]


def paragraphs(text: str) -> list[str]:
    """Paragraphs separated by one or more blank lines, stripped, without empty ones."""
    return [s for s in (p.strip() for p in _PARA_SPLIT.split(text)) if s]


def count_sentences(text: str) -> int:
    """Approximate sentence count: runs of ``.!?`` followed by whitespace or the end.

    C4 used a real sentence tokenizer; this regex is a cheap, documented approximation.
    """
    return len(_SENTENCE_END.findall(text))


def has_alpha(word: str) -> bool:
    return any(c.isalpha() for c in word)


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    if n <= 0 or len(tokens) < n:
        return []
    return list(zip(*(tokens[i:] for i in range(n))))


def duplicate_fraction(items: Sequence[str]) -> tuple[float, float]:
    """(fraction of items that repeat an earlier item, fraction of their characters).

    The first occurrence of each distinct item is not a duplicate; every later copy is.
    Returns (0.0, 0.0) for an empty sequence.
    """
    if not items:
        return 0.0, 0.0
    seen: set[str] = set()
    dup_items = 0
    dup_chars = 0
    total_chars = 0
    for it in items:
        total_chars += len(it)
        if it in seen:
            dup_items += 1
            dup_chars += len(it)
        else:
            seen.add(it)
    return dup_items / len(items), (dup_chars / total_chars if total_chars else 0.0)


class NgramIndex:
    """Word n-gram statistics of one token list, computed exactly with numpy.

    Tokens are mapped to integer ids. The n-grams of size k get exact dense ids from those of
    size k-1: ``id_k[i] = rank(id_{k-1}[i] * V + tok[i + k - 1])`` (``V`` = vocabulary size,
    so the key is unique and below ``len(tokens) * V``), ranked with a 1-D ``np.unique``. No
    hashing, no collisions, and the per-document cost stays in C.
    """

    def __init__(self, tokens: Sequence[str]):
        vocab: dict[str, int] = {}
        self.n_tokens = len(tokens)
        setdefault = vocab.setdefault
        self.ids = np.array([setdefault(t, len(vocab)) for t in tokens], dtype=np.int64)
        self.vocab_size = max(1, len(vocab))
        self.lens = np.fromiter(map(len, tokens), dtype=np.int64, count=self.n_tokens)
        self.total = int(self.lens.sum())
        self.all_distinct = len(vocab) == self.n_tokens
        self._ranks = {1: self.ids}
        self._stats: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _unique(self, n: int):
        """(first position, count) of each distinct n-gram (1 <= n <= n_tokens)."""
        if n == 1 and 1 not in self._stats:
            _, first, counts = np.unique(self.ids, return_index=True, return_counts=True)
            self._stats[1] = (first, counts)
        k = max(self._ranks)
        while k < n:
            key = self._ranks[k][:-1] * self.vocab_size + self.ids[k:]
            _, first, inverse, counts = np.unique(key, return_index=True, return_inverse=True,
                                                  return_counts=True)
            k += 1
            self._ranks[k] = inverse.astype(np.int64, copy=False)
            self._stats[k] = (first, counts)
        return self._stats[n]

    def top_fraction(self, n: int) -> float:
        """See :func:`top_ngram_char_fraction`."""
        if n <= 0 or self.n_tokens < n + 1 or self.total == 0 or self.all_distinct:
            return 0.0
        first, counts = self._unique(n)
        top = int(counts.max())
        if top < 2:
            return 0.0
        csum = np.concatenate(([0], np.cumsum(self.lens)))
        chars = int((csum[first + n] - csum[first])[counts == top].max())
        return min(1.0, top * chars / self.total)

    def dup_fractions(self, ns: Sequence[int]) -> dict[int, float]:
        """See :func:`duplicate_ngram_char_fractions`."""
        out: dict[int, float] = {}
        none_repeat = self.all_distinct
        size = self.n_tokens
        for n in sorted(ns):
            m = size - n + 1
            if none_repeat or self.total == 0 or n <= 0 or m <= 1:
                out[n] = 0.0
                continue
            first, _ = self._unique(n)
            if len(first) == m:
                # no repeated n-gram of this size -> none of any larger size either
                none_repeat = True
                out[n] = 0.0
                continue
            dup = np.ones(m, dtype=bool)
            dup[first] = False
            starts = np.flatnonzero(dup)
            diff = np.bincount(starts, minlength=size + 1) - np.bincount(starts + n,
                                                                        minlength=size + 1)
            covered = np.cumsum(diff[:size]) > 0
            out[n] = float(self.lens[covered].sum()) / self.total
        return out


def top_ngram_char_fraction(tokens: Sequence[str], n: int) -> float:
    """Characters covered by the most frequent n-gram (count x its characters) / all word chars.

    Gopher (Rae et al. 2021, A.1.1): "the fraction of characters contained within the most
    frequent n-gram". An n-gram seen only once is not repetition, so the result is 0.0 unless
    the top n-gram occurs at least twice. Among equally frequent n-grams the one with the most
    characters counts, so the result does not depend on iteration order.
    """
    return NgramIndex(tokens).top_fraction(n)


def duplicate_ngram_char_fractions(tokens: Sequence[str], ns: Sequence[int]) -> dict[int, float]:
    """Fraction of word characters inside repeated occurrences of n-grams, for each n.

    Gopher (A.1.1) counts "the fraction of characters contained within all duplicate n-grams,
    taking care not to count overlapping n-grams more than once". Here every occurrence of an
    n-gram after its first marks its ``n`` words as duplicated; each word is counted once.
    If no n-gram of size n repeats, no larger one can, so larger sizes are 0.0 at no cost.
    """
    return NgramIndex(tokens).dup_fractions(ns)


def duplicate_ngram_char_fraction(tokens: Sequence[str], n: int) -> float:
    return duplicate_ngram_char_fractions(tokens, [n])[n]


# --------------------------------------------------------------------------- rule suites

_OPS = {
    "ge": (lambda v, t: v >= t, ">="),
    "le": (lambda v, t: v <= t, "<="),
    "gt": (lambda v, t: v > t, ">"),
    "lt": (lambda v, t: v < t, "<"),
}


class Rule:
    """One document-level rule: keep the document while ``column <op> threshold`` holds.

    ``name`` is the drop reason. ``threshold=None`` disables the rule (the score column is
    still computed, so annotate-only runs and reports can show it).
    """

    __slots__ = ("column", "name", "op", "threshold")

    def __init__(self, name: str, column: str, op: str, threshold: float | None):
        if op not in _OPS:
            raise ValueError(f"rule {name}: op must be one of {sorted(_OPS)}, got {op!r}")
        self.name, self.column, self.op, self.threshold = name, column, op, threshold

    def keeps(self, value: float) -> bool:
        if self.threshold is None:
            return True
        return _OPS[self.op][0](value, self.threshold)

    def describe(self) -> str:
        """Human-readable keep condition, e.g. ``gopher_n_words >= 50``."""
        return f"{self.column} {_OPS[self.op][1]} {self.threshold}"

    def __repr__(self) -> str:
        return f"Rule({self.name!r}, {self.describe()!r})"


def first_failed(rules: Sequence[Rule], values: dict) -> str | None:
    """Name of the first rule (in suite order) that ``values`` violates, else ``None``."""
    for r in rules:
        if not r.keeps(values[r.column]):
            return r.name
    return None


def require_text(record: dict) -> str:
    """The record's text; a non-string text is an error (the adapter dead-letters it)."""
    text = record.get("text")
    if not isinstance(text, str):
        raise TypeError(f"field 'text' must be a string, got {type(text).__name__}")
    return text
