"""Exact + near-duplicate removal of generated problems.

Uses the project's MinHash and LSH banding (``filters/minhash.py``, ``filters/lsh.py``, the
near-duplicate work of issue 3) so "near duplicate" means the same thing here as in
``minhash_dedup``: word 5-gram shingles after NFKC + casefold, bands chosen by
``optimal_params`` for the threshold, and every LSH candidate verified by its estimated Jaccard
similarity before a problem is dropped.

Deterministic: problems are processed in id order; the first of a duplicate group is kept.
Problems are few (thousands to ~10^6), so a greedy pass with an in-memory band index suffices.
"""

from __future__ import annotations

import hashlib
import re

from filters.lsh import band_hashes, has_shingles, optimal_params
from filters.minhash import MinHashConfig, MinHasher, estimate_jaccard

_WS = re.compile(r"\s+")


def _norm(text: str) -> str:
    return _WS.sub(" ", text.casefold()).strip()


def dedup(items: list[tuple[str, str]], threshold: float = 0.8, num_perm: int = 128,
          ngram: int = 5) -> tuple[list[str], dict[str, tuple[str, str]]]:
    """``items`` = (id, text). Returns kept ids and {removed id: (reason, duplicate-of id)}.

    Reasons: ``exact_duplicate`` (same text after whitespace/case normalisation) and
    ``near_duplicate`` (estimated Jaccard >= ``threshold`` with an earlier kept problem).
    """
    items = sorted(items)
    kept: list[str] = []
    removed: dict[str, tuple[str, str]] = {}
    if not items:
        return kept, removed
    hasher = MinHasher(MinHashConfig(num_perm=num_perm, ngram=ngram))
    sigs = hasher.signatures([t for _, t in items])
    b, r = optimal_params(threshold, num_perm)
    bands = band_hashes(sigs, b, r)
    usable = has_shingles(sigs)
    exact: dict[str, str] = {}
    index: list[dict[int, list[int]]] = [{} for _ in range(b)]  # band -> key -> kept rows
    for row, (rid, text) in enumerate(items):
        h = hashlib.sha256(_norm(text).encode()).hexdigest()
        if h in exact:
            removed[rid] = ("exact_duplicate", exact[h])
            continue
        exact[h] = rid
        dup_of = None
        if usable[row]:
            cands = sorted({c for i, k in enumerate(bands[row].tolist())
                            for c in index[i].get(k, ())})
            for c in cands:
                if estimate_jaccard(sigs[row], sigs[c]) >= threshold:
                    dup_of = items[c][0]
                    break
        if dup_of is not None:
            removed[rid] = ("near_duplicate", dup_of)
            continue
        kept.append(rid)
        if usable[row]:
            for i, k in enumerate(bands[row].tolist()):
                index[i].setdefault(k, []).append(row)
    return kept, removed


__all__ = ["dedup"]
