"""n-gram decontamination of generated problems against benchmark files.

Text is lower-cased and split into word tokens (``\\w+``); a generated problem is contaminated
when it shares at least ``min_overlap`` word n-grams (default n=13, as in GPT-3's
decontamination, Brown et al. 2020) with any benchmark item. Benchmarks with items shorter
than n words are indexed with their whole token sequence so short items still match.
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
        count = 0
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
                self.add(name, i, text)
                count += 1
        return count

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
