"""Word n-gram language model with interpolated Kneser-Ney smoothing, for perplexity scoring.

CCNet (Wenzek et al. 2020) ranks web documents by the perplexity of a 5-gram KenLM model
trained on Wikipedia. KenLM's Python package only *queries* models; training needs the
``lmplz`` binary, which pip does not ship, and there are no pretrained models on PyPI. So
datamill trains its own small model in plain Python:

* tokens: lower-cased words (``\\w+`` runs) and single punctuation marks; each non-empty line
  is a sentence wrapped in ``<s>`` ... ``</s>``; words seen fewer than ``min_count`` times in
  training become ``<unk>``;
* smoothing: interpolated Kneser-Ney (Chen & Goodman 1998, "An Empirical Study of Smoothing
  Techniques for Language Modeling", eq. for interpolated KN) with one absolute discount per
  order, ``D = n1 / (n1 + 2 n2)`` (Ney et al. 1994); the highest order uses raw counts, lower
  orders continuation counts; the unigram level interpolates with the uniform distribution
  over the vocabulary, so every token has a non-zero probability;
* perplexity of a document: ``exp(-mean log p)`` over all its tokens including ``</s>``.

Model size grows with the distinct n-grams of the training corpus; it is meant for reference
corpora of up to a few million words. The artifact is a gzip'd JSON file (no pickle).
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from filters.base import Decision, Record, RecordScorer

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
_TOKEN = re.compile(r"\w+|[^\w\s]")
_SEP = "\x1f"
FORMAT = "datamill-kn-lm/1"


def tokenize_line(line: str) -> list[str]:
    return _TOKEN.findall(line.lower())


def sentences(text: str) -> list[list[str]]:
    return [t for t in (tokenize_line(ln) for ln in text.split("\n")) if t]


class KneserNeyLM:
    def __init__(self, order: int = 3):
        if not 1 <= order <= 6:
            raise ValueError(f"order must be between 1 and 6, got {order}")
        self.order = order
        self.vocab: set[str] = set()
        # counts[k][ngram tuple of length k+1]: raw counts for the top order, continuation
        # counts (distinct left contexts) for lower orders.
        self.counts: list[dict[tuple[str, ...], int]] = [{} for _ in range(order)]
        self.discounts: list[float] = [0.75] * order
        self._ctx_total: list[dict[tuple[str, ...], int]] = []
        self._ctx_types: list[dict[tuple[str, ...], int]] = []
        self.n_train_tokens = 0
        self.extra: dict = {}

    # -- training ----------------------------------------------------------------------------

    @classmethod
    def train(cls, texts: Iterable[str], order: int = 3, min_count: int = 1) -> KneserNeyLM:
        lm = cls(order)
        sents = [s for t in texts for s in sentences(t)]
        freq = Counter(w for s in sents for w in s)
        lm.vocab = {w for w, c in freq.items() if c >= min_count} | {EOS, UNK}
        top: Counter = Counter()
        for s in sents:
            toks = [BOS] * (order - 1) + [w if w in lm.vocab else UNK for w in s] + [EOS]
            lm.n_train_tokens += len(s) + 1
            for i in range(order - 1, len(toks)):
                top[tuple(toks[i - order + 1 : i + 1])] += 1
        lm.counts[order - 1] = dict(top)
        # Continuation counts for lower orders: number of distinct words preceding the n-gram.
        for k in range(order - 2, -1, -1):
            cont: Counter = Counter()
            for gram in lm.counts[k + 1]:
                cont[gram[1:]] += 1
            lm.counts[k] = dict(cont)
        lm._estimate_discounts()
        lm._index()
        return lm

    def _estimate_discounts(self) -> None:
        for k in range(self.order):
            c = Counter(self.counts[k].values())
            n1, n2 = c.get(1, 0), c.get(2, 0)
            self.discounts[k] = n1 / (n1 + 2 * n2) if n1 + 2 * n2 > 0 else 0.75
            self.discounts[k] = min(max(self.discounts[k], 0.05), 0.95)

    def _index(self) -> None:
        self._ctx_total = [defaultdict(int) for _ in range(self.order)]
        self._ctx_types = [defaultdict(int) for _ in range(self.order)]
        for k in range(self.order):
            tot, typ = self._ctx_total[k], self._ctx_types[k]
            for gram, c in self.counts[k].items():
                h = gram[:-1]
                tot[h] += c
                typ[h] += 1
        self._ctx_total = [dict(d) for d in self._ctx_total]
        self._ctx_types = [dict(d) for d in self._ctx_types]

    # -- scoring -----------------------------------------------------------------------------

    def prob(self, word: str, history: Sequence[str]) -> float:
        """P(word | last ``order - 1`` words of history), interpolated Kneser-Ney."""
        if word not in self.vocab:
            word = UNK
        hist = tuple(history[-(self.order - 1) :]) if self.order > 1 else ()
        # Unigram level: discounted continuation counts interpolated with uniform.
        c0, tot0, typ0, d0 = self.counts[0], self._ctx_total[0].get((), 0), \
            self._ctx_types[0].get((), 0), self.discounts[0]
        uniform = 1.0 / len(self.vocab)
        if tot0:
            p = max(c0.get((word,), 0) - d0, 0.0) / tot0 + d0 * typ0 / tot0 * uniform
        else:
            p = uniform
        for k in range(1, self.order):
            if len(hist) < k:
                break
            h = hist[len(hist) - k :]
            tot = self._ctx_total[k].get(h, 0)
            if not tot:
                continue  # unseen context: keep the lower-order estimate
            d = self.discounts[k]
            c = self.counts[k].get(h + (word,), 0)
            p = max(c - d, 0.0) / tot + d * self._ctx_types[k][h] / tot * p
        return p

    def log_prob_tokens(self, text: str) -> tuple[float, int]:
        """(sum of natural-log probabilities, number of predicted tokens) over ``text``."""
        total, n = 0.0, 0
        pad = [BOS] * (self.order - 1)
        for s in sentences(text):
            hist = list(pad)
            for w in s + [EOS]:
                total += math.log(self.prob(w, hist))
                hist.append(w if w in self.vocab else UNK)
                n += 1
        return total, n

    def perplexity(self, text: str) -> float:
        """``exp(-mean log p)``; ``inf`` for a text with no tokens."""
        lp, n = self.log_prob_tokens(text)
        return math.exp(-lp / n) if n else math.inf

    # -- persistence -------------------------------------------------------------------------

    def to_bytes(self, extra: dict | None = None) -> bytes:
        """The model file's bytes (gzipped JSON) that :meth:`load` reads; ``datamill
        train-lm`` writes them atomically (``pipelines.cli.train_lm.save_lm``)."""
        data = {
            "format": FORMAT,
            "order": self.order,
            "vocab": sorted(self.vocab),
            "discounts": self.discounts,
            "n_train_tokens": self.n_train_tokens,
            "counts": [{_SEP.join(g): c for g, c in sorted(d.items())} for d in self.counts],
            "extra": extra or {},
        }
        return gzip.compress(json.dumps(data, ensure_ascii=False).encode("utf-8"), mtime=0)

    @classmethod
    def load(cls, path: str | Path) -> KneserNeyLM:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(
                f"language model {str(p)!r} not found; train one with "
                "`datamill train-lm CONFIG.yaml`"
            )
        with gzip.open(p, "rt", encoding="utf-8") as fh:
            data = json.load(fh)
        if data.get("format") != FORMAT:
            raise ValueError(f"{p}: not a datamill n-gram model (format {data.get('format')!r})")
        lm = cls(int(data["order"]))
        lm.vocab = set(data["vocab"])
        lm.discounts = [float(x) for x in data["discounts"]]
        lm.n_train_tokens = int(data.get("n_train_tokens", 0))
        lm.counts = [{tuple(k.split(_SEP)): int(v) for k, v in d.items()} for d in data["counts"]]
        lm.extra = data.get("extra", {})
        lm._index()
        return lm


def corpus_perplexity(lm: KneserNeyLM, texts: Iterable[str]) -> float:
    total, n = 0.0, 0
    for t in texts:
        lp, k = lm.log_prob_tokens(t)
        total += lp
        n += k
    return math.exp(-total / n) if n else math.inf


MAX_CHARS = 20_000  # characters of a document scored


class PerplexityScorer(RecordScorer):
    """Adds ``column`` = perplexity; drops above ``max_perplexity`` (``perplexity_too_high``).

    A document with no tokens (empty, whitespace only) gets no finite perplexity: it is
    dropped with reason ``perplexity_no_tokens`` and the column holds ``None``.
    """

    def __init__(self, model_path: str, column: str = "perplexity",
                 max_perplexity: float | None = None, max_chars: int = MAX_CHARS):
        self.model_path = model_path
        self.column = column
        self.max_perplexity = max_perplexity
        self.max_chars = max_chars
        self.columns = {column: "float64"}
        self._lm: KneserNeyLM | None = None

    def setup(self) -> None:
        self._lm = KneserNeyLM.load(self.model_path)

    def process(self, record: Record) -> Decision:
        if self._lm is None:
            self.setup()
        text = record.get("text")
        if not isinstance(text, str):
            raise TypeError(f"field 'text' must be a string, got {type(text).__name__}")
        ppl = self._lm.perplexity(text[: self.max_chars])  # type: ignore[union-attr]
        if math.isinf(ppl):
            return Decision("perplexity_no_tokens", {self.column: None})
        cols = {self.column: ppl}
        if self.max_perplexity is not None and ppl > self.max_perplexity:
            return Decision("perplexity_too_high", cols)
        return Decision(None, cols)
