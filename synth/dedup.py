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
          ngram: int = 5, reference: list[tuple[str, str]] | None = None,
          reference_threshold: float | None = None, seed_items: set[str] | None = None
          ) -> tuple[list[str], dict[str, tuple[str, str]]]:
    """``items`` = (id, text). Returns kept ids and {removed id: (reason, duplicate-of id)}.

    Reasons: ``exact_duplicate`` (same text after whitespace/case normalisation) and
    ``near_duplicate`` (estimated Jaccard >= ``threshold`` with an earlier kept problem).

    ``reference`` (id, text) pairs -- e.g. the seed problems a generator was shown -- are in
    the dedup set but never kept or removed themselves: an item that copies one is removed with
    ``duplicate_of_seed`` (exact, or estimated Jaccard >= ``reference_threshold``, default
    ``threshold``). Reference ids must differ from item ids. ``seed_items``: ids of items
    that are seeds themselves (solved too, e.g. ``keep_seeds``): they are deduplicated like any
    item, and a later non-seed item that copies one is ``duplicate_of_seed`` at
    ``reference_threshold``.
    """
    items = sorted(items)
    refs = sorted(reference or [])
    ref_t = threshold if reference_threshold is None else reference_threshold
    kept: list[str] = []
    removed: dict[str, tuple[str, str]] = {}
    if not items:
        return kept, removed
    hasher = MinHasher(MinHashConfig(num_perm=num_perm, ngram=ngram))
    allx = refs + items  # references first: they are in the index before any item
    sigs = hasher.signatures([t for _, t in allx])
    # bands for the lower threshold catch the pairs of either kind; each is verified below
    b, r = optimal_params(min(threshold, ref_t), num_perm)
    bands = band_hashes(sigs, b, r)
    usable = has_shingles(sigs)
    exact: dict[str, int] = {}
    index: list[dict[int, list[int]]] = [{} for _ in range(b)]  # band -> key -> indexed rows
    n_ref = len(refs)
    seed_items = seed_items or set()
    is_seed = [row < n_ref or allx[row][0] in seed_items for row in range(len(allx))]
    for row, (rid, text) in enumerate(allx):
        h = hashlib.sha256(_norm(text).encode()).hexdigest()
        if row >= n_ref and h in exact:
            of = exact[h]
            removed[rid] = ("duplicate_of_seed" if is_seed[of] and not is_seed[row]
                            else "exact_duplicate", allx[of][0])
            continue
        exact.setdefault(h, row)
        dup_of = None
        if row >= n_ref and usable[row]:
            cands = sorted({c for i, k in enumerate(bands[row].tolist())
                            for c in index[i].get(k, ())})
            for c in cands:
                seed_pair = is_seed[c] and not is_seed[row]
                if estimate_jaccard(sigs[row], sigs[c]) >= (ref_t if seed_pair else threshold):
                    dup_of = c
                    break
        if dup_of is not None:
            removed[rid] = ("duplicate_of_seed" if is_seed[dup_of] and not is_seed[row]
                            else "near_duplicate", allx[dup_of][0])
            continue
        if row < n_ref:
            if usable[row]:
                for i, k in enumerate(bands[row].tolist()):
                    index[i].setdefault(k, []).append(row)
            continue
        kept.append(rid)
        if usable[row]:
            for i, k in enumerate(bands[row].tolist()):
                index[i].setdefault(k, []).append(row)
    return kept, removed


__all__ = ["dedup"]
