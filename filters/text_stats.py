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
from itertools import chain, count

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
    return list(filter(None, map(str.strip, text.split("\n"))))


def raw_lines(text: str) -> list[str]:
    """All lines including empty ones, right-stripped (for line-level rewriting)."""
    return [ln.rstrip() for ln in text.split("\n")]


def paragraphs(text: str) -> list[str]:
    """Paragraphs separated by one or more blank lines, stripped, without empty ones."""
    return list(filter(None, map(str.strip, _PARA_SPLIT.split(text))))


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
    # every distinct item's first occurrence is not a duplicate, every other one is: the
    # duplicates are the items (and characters) beyond one copy of each distinct item
    distinct = set(items)
    total_chars = sum(map(len, items))
    dup_items = len(items) - len(distinct)
    dup_chars = total_chars - sum(map(len, distinct))
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


def ngram_fractions_batch(token_lists: Sequence[Sequence[str]], top_ns: Sequence[int],
                          dup_ns: Sequence[int]) -> tuple[dict[int, list[float]],
                                                          dict[int, list[float]]]:
    """:meth:`NgramIndex.top_fraction` and :meth:`NgramIndex.dup_fractions` of many documents.

    Returns ``(top, dup)``: ``top[n][d]`` / ``dup[n][d]`` for document ``d`` of
    ``token_lists``, equal (same float) to ``NgramIndex(token_lists[d]).top_fraction(n)`` /
    ``.dup_fractions(dup_ns)[n]``. The whole batch is done in a few numpy calls per n-gram
    size instead of a dictionary and ``np.unique`` calls per document:

    * the tokens of all documents are concatenated; a window of ``n`` tokens is valid when it
      does not cross the end of its document;
    * level 1 groups equal (document, token) pairs; level ``n`` groups equal windows of
      ``n`` tokens by the key (group of the ``n-1`` window at ``i``, group of the ``n-1``
      window at ``i + 1``), both exact dense ids, so there is no hashing and no collision;
    * a window of ``n`` tokens can repeat only when the windows of ``n-1`` tokens at ``i`` and
      ``i + 1`` both repeat, so level ``n`` sorts only those candidates (every other window
      occurs once) and the sorts shrink fast with ``n``.

    Group ids are numbered in key order and level 1's key starts with the document, so groups
    are sorted by document at every level (segment reductions per document need no sort).
    """
    n_docs = len(token_lists)
    top_ns = list(top_ns)
    dup_ns = list(dup_ns)
    top_num = {n: np.zeros(n_docs, dtype=np.int64) for n in top_ns}
    dup_num = {n: np.zeros(n_docs, dtype=np.int64) for n in dup_ns}
    sizes = np.fromiter(map(len, token_lists), dtype=np.int64, count=n_docs)
    bounds = np.zeros(n_docs + 1, dtype=np.int64)
    np.cumsum(sizes, out=bounds[1:])
    size = int(bounds[-1])
    flat = list(chain.from_iterable(token_lists))
    vocab = dict(zip(dict.fromkeys(flat), count()))
    lens = np.fromiter(map(len, flat), dtype=np.int64, count=size)
    csum = np.zeros(size + 1, dtype=np.int64)
    np.cumsum(lens, out=csum[1:])
    totals = csum[bounds[1:]] - csum[bounds[:-1]]
    levels = max((n for n in chain(top_ns, dup_ns) if n > 0), default=0)
    if size and levels:
        tok = np.fromiter(map(vocab.__getitem__, flat), dtype=np.int64, count=size)
        doc = np.repeat(np.arange(n_docs, dtype=np.int64), sizes)
        end = bounds[1:][doc]  # end of each position's document
        top_set, dup_set = set(top_ns), set(dup_ns)
        code = np.empty(size + 1, dtype=np.int64)  # group of the window at each position
        pos = np.arange(size, dtype=np.int64)  # candidate windows of the current size
        key = doc * len(vocab) + tok
        groups = 0
        for n in range(1, levels + 1):
            if n > 1:
                key = code[pos] * groups + code[pos + 1]
            pos_sorted, new_group = _sorted_groups(key, pos, size)
            starts = np.flatnonzero(new_group)
            groups = len(starts)
            gcount = np.diff(np.append(starts, len(pos)))
            gid = np.cumsum(new_group) - 1
            code[pos_sorted] = gid
            repeated = np.flatnonzero(gcount >= 2)
            if len(repeated) == 0:
                break  # no window of this size repeats: none of a larger size either
            if n in top_set:
                _top_counts(top_num[n], pos_sorted[starts[repeated]], gcount[repeated],
                            doc, csum, n)
            if n in dup_set:
                dup_num[n] = _covered_chars(pos_sorted[~new_group], n, csum, doc, n_docs)
            if n == levels:
                break
            rep = np.zeros(size + 1, dtype=bool)
            rep[pos_sorted[gcount[gid] >= 2]] = True
            pos = np.flatnonzero(rep[:-1] & rep[1:])
            pos = pos[pos + n + 1 <= end[pos]]
            if len(pos) == 0:
                break
    denom = np.maximum(totals, 1).astype(np.float64)
    top = {n: (np.minimum(1.0, top_num[n] / denom) if n > 0 else np.zeros(n_docs)).tolist()
           for n in top_ns}
    dup = {n: ((dup_num[n] / denom) if n > 0 else np.zeros(n_docs)).tolist() for n in dup_ns}
    return top, dup


def _sorted_groups(key: np.ndarray, pos: np.ndarray, size: int):
    """(positions sorted by (key, position), True where a new key starts)."""
    m = len(key)
    if m and (int(key.max()) + 1) * (size + 1) < 2**62:
        both = np.sort(key * (size + 1) + pos)  # unique values: position breaks ties
        pos_sorted = both % (size + 1)
        sk = both // (size + 1)
    else:
        order = np.argsort(key, kind="stable")
        pos_sorted = pos[order]
        sk = key[order]
    new_group = np.empty(m, dtype=bool)
    new_group[:1] = True
    np.not_equal(sk[1:], sk[:-1], out=new_group[1:])
    return pos_sorted, new_group


def _top_counts(out: np.ndarray, first: np.ndarray, gcount: np.ndarray, doc: np.ndarray,
                csum: np.ndarray, n: int) -> None:
    """Per document: top count x most characters among the n-grams with that count.

    ``first``/``gcount``: first position and count of each repeated n-gram, sorted by
    document.
    """
    gdoc = doc[first]
    chars = csum[first + n] - csum[first]
    seg = np.flatnonzero(np.concatenate(([True], gdoc[1:] != gdoc[:-1])))
    top = np.maximum.reduceat(gcount, seg)
    is_top = gcount == np.repeat(top, np.diff(np.append(seg, len(gdoc))))
    out[gdoc[seg]] = top * np.maximum.reduceat(np.where(is_top, chars, 0), seg)


def _covered_chars(dup_starts: np.ndarray, n: int, csum: np.ndarray, doc: np.ndarray,
                   n_docs: int) -> np.ndarray:
    """Per document: characters of the tokens inside any window ``[s, s + n)``, each once.

    With the starts sorted, window ``j`` adds the tokens ``[s_j, min(s_j + n, s_{j+1}))``
    that no later window covers (all windows have the same length and none crosses the end
    of its document), so the union is a sum of disjoint ranges.
    """
    starts = np.sort(dup_starts)
    stops = starts + n
    np.minimum(stops[:-1], starts[1:], out=stops[:-1])
    chars = csum[stops] - csum[starts]
    return np.bincount(doc[starts], weights=chars, minlength=n_docs).astype(np.int64)


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
