"""The scale-out passes of ``minhash_dedup`` (``mode: lsh``): no step holds state that
grows with the number of input documents on one worker (memory formulas: docs/scale.md).

The records are in spill files (pass 1,
:class:`~pipelines.stages.dedup.minhash_passes.SketchSpill`);
every later pass moves paths, integer places and small arrays through the runner's shuffle,
never text. A document is its *place* ``(spill file id, position)``.

1. ``SketchSpill(shards=S)``: per spill file, its documents' band entries ``(band, key,
   position, order key)`` split by ``key % S`` -> ``(shard, entries)`` (22 bytes an entry).
2. :class:`ShardCandidates` (GroupByKey on the shard): the shard's entries sorted by
   (band, key, order key, place) form the LSH buckets; pairs as in
   :func:`filters.lsh.candidate_pairs` (all pairs of a bucket, or the star of its first member
   for hot and two-member buckets), oriented by place and made distinct; grouped by the
   spill file of their first document (``pairs``) and the positions each file must describe
   (``needed``).
3. :class:`CandidateSets` (CoGroupByKey of each spill file's path with its needed positions):
   the file is streamed back once and one *candidate file* is written with the needed
   documents' fingerprints (shingle-hash sets for ``verify: exact``, signatures for
   ``estimated``) and what ranks them (id, source, record hash, length, score).
4. :class:`VerifyPairs` (GroupByKey on the first document's file): reads that file's
   candidate file and, one after the other, those of the partner files (from disk, not
   through the shuffle) and keeps the pairs at or above the threshold: verified edges, with
   both documents' ranking attributes.
5. :class:`Components` (one worker; memory O(verified edges), like datatrove's cluster step):
   connected components over the verified edges, one representative per component, the
   decisions grouped by spill file, the report's pair sample and the stats.
6. :class:`ApplyFile` (CoGroupByKey of each spill file's path with its own decisions): the
   file is streamed back and every record routed (kept, removed, dead letter of pass 1).

The *order key* (64-bit hash of id, source and record hash) makes the star centre of a hot
bucket independent of batching and worker count. ``mode: lshbloom`` keeps the one-table path
of :mod:`~pipelines.stages.dedup.minhash_passes` (its index is one object by design).
"""

from __future__ import annotations

import math
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam import pvalue

from filters.components import component_arrays
from filters.lsh import bucket_pairs
from filters.minhash import MinHashConfig, MinHasher, exact_jaccard
from pipelines.core.spill import read_spill
from pipelines.stages.dedup.minhash_passes import (
    CONSUMED, Apply, cluster_summary, content_hash, read_object, sample_pairs, score_of,
    source_name, spill_id, spill_path, write_object)

NEEDED, STATS, DECISIONS = "needed", "stats", "decisions"
ENTRY_BYTES = 22  # key 8 + order key 8 + position 4 + band 2
ENTRIES_PER_SHARD = 2_000_000  # ~44 MB of entries, ~4x that while a shard is sorted
MAX_SHARDS = 65536
UNSIZED_SHARDS = 16  # when the input size is unknown at planning (hf or remote sources)


def candidate_shards(docs: int | None, bands: int) -> int:
    """Number of candidate shards: ``ceil(docs * bands / ENTRIES_PER_SHARD)`` (at least 1,
    at most ``MAX_SHARDS``), so a shard holds ~2M band entries whatever the corpus."""
    if not docs:
        return UNSIZED_SHARDS
    return int(min(MAX_SHARDS, max(1, math.ceil(docs * bands / ENTRIES_PER_SHARD))))


# --------------------------------------------------------------------------- 2. candidates


@beam.typehints.with_output_types(Any)  # tagged outputs mixed in: no inference
class ShardCandidates(beam.DoFn):
    """``(shard, [entries...])`` -> per spill file of a pair's first document:
    ``(file, int64 array of rows (position, partner file, partner position))`` (main), the
    positions each spill file must describe (``needed``: ``(file, positions)``) and the
    shard's bucket stats (``stats``)."""

    def __init__(self, max_bucket_size: int):
        self._max = max_bucket_size

    def process(self, kv):
        _shard, parts = kv
        parts = list(parts)
        band = np.concatenate([p["band"] for p in parts])
        key = np.concatenate([p["key"] for p in parts])
        okey = np.concatenate([p["okey"] for p in parts])
        pos = np.concatenate([p["pos"] for p in parts]).astype(np.int64)
        file = np.concatenate([np.full(p["pos"].size, p["file"], np.int64) for p in parts])
        del parts
        order = np.lexsort((pos, file, okey, key, band))
        band, key, okey, pos, file = band[order], key[order], okey[order], pos[order], file[order]
        del order
        n = key.size
        stats = {"hot_buckets": 0, "hot_bucket_pairs": 0, "bucket_pairs": 0, "entries": int(n)}
        if n < 2:
            yield pvalue.TaggedOutput(STATS, stats)
            return
        new = np.empty(n, dtype=bool)
        new[0] = True
        new[1:] = (key[1:] != key[:-1]) | (band[1:] != band[:-1])
        starts = np.flatnonzero(new)
        sizes = np.diff(np.append(starts, n))
        multi = sizes >= 2
        a, b, st = bucket_pairs(starts[multi], sizes[multi], self._max)
        stats.update(st)
        yield pvalue.TaggedOutput(STATS, stats)
        if a.size == 0:
            return
        fa, pa, fb, pb = file[a], pos[a], file[b], pos[b]
        swap = (fb < fa) | ((fb == fa) & (pb < pa))
        f1, p1 = np.where(swap, fb, fa), np.where(swap, pb, pa)
        f2, p2 = np.where(swap, fa, fb), np.where(swap, pa, pb)
        pairs = np.unique(np.stack([f1, p1, f2, p2], axis=1), axis=0)  # sorted by f1
        del fa, pa, fb, pb, f1, p1, f2, p2
        files, starts = np.unique(pairs[:, 0], return_index=True)
        for f, rows in zip(files.tolist(), np.split(pairs[:, 1:], starts[1:])):
            yield f, rows
        ends = np.unique(np.concatenate([pairs[:, :2], pairs[:, 2:]]), axis=0)
        files, starts = np.unique(ends[:, 0], return_index=True)
        for f, positions in zip(files.tolist(), np.split(ends[:, 1], starts[1:])):
            yield pvalue.TaggedOutput(NEEDED, (f, positions))


# --------------------------------------------------------------------------- 3. fingerprints


class CandidateSets(beam.DoFn):
    """``(file, {"path": [spill path], "needed": [positions...]})`` -> the path of the file's
    candidate file: the needed documents' positions (sorted), ids, sources, record hashes,
    lengths, scores and fingerprints (``verify: exact``: shingle-hash sets; ``estimated``:
    signatures; ``none``: none)."""

    def __init__(self, cfg: MinHashConfig, verify: str, score_column: str | None, folder: str):
        self._cfg, self._verify, self._score, self._dir = cfg, verify, score_column, folder
        self._mh: MinHasher | None = None

    def setup(self) -> None:
        self._mh = MinHasher(self._cfg)

    def process(self, kv):
        assert self._mh is not None
        file_id, grouped = kv
        paths, needed = list(grouped["path"]), list(grouped["needed"])
        if not paths or not needed:
            return
        want = np.unique(np.concatenate(needed))
        wanted = set(want.tolist())
        ids, srcs, hashes, lens, scores, texts = [], [], [], [], [], []
        for pos, rec in enumerate(read_spill(paths[0])):
            if pos in wanted and not isinstance(rec, tuple):
                ids.append(rec["id"])
                srcs.append(source_name(rec))
                hashes.append(content_hash(rec))
                lens.append(len(rec["text"]))
                scores.append(score_of(rec, self._score))
                texts.append(rec["text"])
        if len(ids) != want.size:
            raise RuntimeError(f"spill file {paths[0]}: {want.size - len(ids)} candidate "
                               "document(s) missing (the file changed while the stage ran)")
        entry: dict[str, Any] = {
            "pos": want.astype(np.int64), "ids": ids, "src": srcs,
            "chash": np.array(hashes, np.int64), "lens": np.array(lens, np.int64),
            "scores": np.array(scores, np.float64)}
        if self._verify == "exact":
            sets = self._mh.shingle_sets(texts)
            entry["counts"] = np.fromiter((s.size for s in sets), np.int64, len(sets))
            entry["flat"] = np.concatenate(sets) if sets else np.zeros(0, np.uint64)
        elif self._verify == "estimated":
            entry["sigs"] = self._mh.signatures(texts)
        del texts
        out = spill_path(self._dir, "cand", file_id)
        write_object(out, entry)
        yield out


# --------------------------------------------------------------------------- 4. verification


ATTRS = ("ids", "src", "chash", "lens", "scores")


def _take(entry: dict, rows: np.ndarray) -> dict:
    out = {}
    for name in ATTRS:
        v = entry[name]
        out[name] = [v[k] for k in rows.tolist()] if isinstance(v, list) else v[rows]
    return out


class VerifyPairs(beam.DoFn):
    """``(file, [pair rows...])`` + all candidate-file paths (side input: also the barrier
    that every candidate file is written) -> one batch ``{"f", "p": the places of the
    documents in verified pairs, their ranking attributes ("ids", "src", "chash", "lens",
    "scores"), "ei", "ej": a spanning forest of the verified pairs (indices into the
    places), "candidates", "accepted"}``. The forest has the components of the
    verified pairs with at most one edge per document, so what the one components worker
    receives grows with the documents in clusters, not with the pairs."""

    def __init__(self, verify: str, threshold: float):
        self._verify, self._thr = verify, threshold
        self._paths: dict[int, str] | None = None

    def _load(self, f: int, paths: list[str]) -> dict:
        if self._paths is None:
            self._paths = {spill_id(p): p for p in paths}
        return read_object(self._paths[f])

    def _ok(self, A: dict, ra: np.ndarray, B: dict, rb: np.ndarray) -> np.ndarray:
        if self._verify == "none":
            return np.ones(ra.size, dtype=bool)
        if self._verify == "estimated":
            return (A["sigs"][ra] == B["sigs"][rb]).mean(axis=1) >= self._thr
        oa = np.concatenate(([0], np.cumsum(A["counts"])))
        ob = oa if B is A else np.concatenate(([0], np.cumsum(B["counts"])))
        fa, fb = A["flat"], B["flat"]
        return np.fromiter(
            (exact_jaccard(fa[oa[x]:oa[x + 1]], fb[ob[y]:ob[y + 1]]) >= self._thr
             for x, y in zip(ra.tolist(), rb.tolist())), dtype=bool, count=ra.size)

    def process(self, kv, cand_paths):
        f1, batches = kv
        rows = np.unique(np.concatenate(list(batches)), axis=0)  # (p1, f2, p2), distinct
        rows = rows[np.argsort(rows[:, 1], kind="stable")]
        A = self._load(f1, cand_paths)
        ends: list[np.ndarray] = []  # per partner file: (f, p) of both documents
        attrs: list[dict] = []  # the same rows' attributes
        files, starts = np.unique(rows[:, 1], return_index=True)
        for f2, part in zip(files.tolist(), np.split(rows, starts[1:])):
            B = A if f2 == f1 else self._load(f2, cand_paths)
            ra = np.searchsorted(A["pos"], part[:, 0])
            rb = np.searchsorted(B["pos"], part[:, 2])
            ok = self._ok(A, ra, B, rb)
            if ok.any():
                k = int(ok.sum())
                ends.append(np.stack([np.full(k, f1, np.int64), part[ok, 0]], axis=1))
                ends.append(np.stack([part[ok, 1], part[ok, 2]], axis=1))
                attrs += [_take(A, ra[ok]), _take(B, rb[ok])]
            del B
        accepted = sum(e.shape[0] for e in ends) // 2
        out: dict[str, Any] = {"candidates": int(rows.shape[0]), "accepted": int(accepted)}
        if not accepted:
            z = np.zeros(0, np.int64)
            yield {**out, "f": z, "p": z, "ei": z, "ej": z,
                   **{name: ([] if name in ("ids", "src") else z) for name in ATTRS}}
            return
        # the pairs' documents, once each, and a spanning forest of the verified pairs
        both = np.concatenate(ends)  # [a-side rows of batch 0, b-side of batch 0, a..., b...]
        half = [e.shape[0] for e in ends]
        ai = np.concatenate([np.arange(sum(half[:2 * m]), sum(half[:2 * m]) + half[2 * m])
                             for m in range(len(half) // 2)])
        aj = np.concatenate([np.arange(sum(half[:2 * m + 1]), sum(half[:2 * m + 1])
                                       + half[2 * m + 1]) for m in range(len(half) // 2)])
        places, first, inv = np.unique(both, axis=0, return_index=True, return_inverse=True)
        inv = inv.reshape(-1)
        comp, _ = component_arrays(places.shape[0], inv[ai], inv[aj])
        tree = np.flatnonzero(comp != np.arange(comp.size))
        flat = {name: ([x for a in attrs for x in a[name]] if name in ("ids", "src")
                       else np.concatenate([a[name] for a in attrs])) for name in ATTRS}
        picked = {name: ([flat[name][k] for k in first.tolist()] if name in ("ids", "src")
                         else flat[name][first]) for name in ATTRS}
        yield {**out, "f": places[:, 0], "p": places[:, 1], "ei": tree, "ej": comp[tree],
               **picked}


# --------------------------------------------------------------------------- 5. components


def _sum_stats(parts: list[dict]) -> dict:
    out: dict[str, int] = {}
    for st in parts:
        for k, v in st.items():
            out[k] = out.get(k, 0) + int(v)
    return out


@beam.typehints.with_output_types(Any)  # tagged outputs mixed in: no inference
class Components(beam.DoFn):
    """All verified-pair batches (one list: O(documents in clusters), each batch a forest) +
    candidate-file paths +
    shard stats + document count -> decisions per spill file (``decisions``: ``(file,
    {position: (near_dup_of or None, cluster size)})``), the summary ``{"sample", "stats"}``
    (main) and the candidate files, now consumed (``consumed``)."""

    def __init__(self, keep: str, samples: int, seed: int):
        self._keep, self._k, self._seed = keep, samples, seed

    def process(self, batches, cand_paths, shard_stats, docs):
        candidates = sum(b["candidates"] for b in batches)
        accepted = sum(b["accepted"] for b in batches)
        batches = [b for b in batches if b["f"].size]
        z = np.zeros(0, np.int64)
        files = np.concatenate([b["f"] for b in batches]) if batches else z
        poss = np.concatenate([b["p"] for b in batches]) if batches else z
        offs = np.cumsum([0] + [b["f"].size for b in batches])
        ei = np.concatenate([b["ei"] + o for b, o in zip(batches, offs)]) if batches else z
        ej = np.concatenate([b["ej"] + o for b, o in zip(batches, offs)]) if batches else z
        places, first, inv = np.unique(np.stack([files, poss], axis=1), axis=0,
                                       return_index=True, return_inverse=True)
        inv = inv.reshape(-1)
        n = places.shape[0]
        sel = first.tolist()
        ids = [x for b in batches for x in b["ids"]]
        ids = [ids[k] for k in sel]
        src = [x for b in batches for x in b["src"]]
        src = np.array([src[k] for k in sel], dtype=object).astype(str) if n else np.zeros(0, str)
        chash, lens, scores = (
            np.concatenate([b[name] for b in batches]).astype(dtype)[first] if batches
            else np.zeros(0, dtype)
            for name, dtype in (("chash", np.int64), ("lens", np.int64), ("scores", np.float64)))
        ai, aj = inv[ei], inv[ej]
        del files, poss, batches
        pf, pp = places[:, 0], places[:, 1]
        comp, size = component_arrays(n, ai, aj)
        # rank: (id, source, record hash, place), as the one-table path orders documents
        rank_order = np.lexsort((pp, pf, chash, src, np.array(ids, dtype=object).astype(str)))
        rank = np.empty(n, np.int64)
        rank[rank_order] = np.arange(n, dtype=np.int64)
        if self._keep == "lowest_id":
            order = np.lexsort((rank, comp))
        else:
            prio = lens if self._keep == "longest" else scores
            order = np.lexsort((rank, -prio.astype(np.float64), comp))
        cs = comp[order]
        firsts = np.ones(n, dtype=bool)
        firsts[1:] = cs[1:] != cs[:-1]
        rep_of = dict(zip(cs[firsts].tolist(), order[firsts].tolist()))
        assign: dict[int, dict[int, tuple]] = {}
        removed: list[tuple[int, int, int]] = []
        for k, (f, p, c, s) in enumerate(zip(pf.tolist(), pp.tolist(), comp.tolist(),
                                              size.tolist())):
            rep = rep_of[c]
            if rep == k:
                assign.setdefault(f, {})[p] = (None, s)
            else:
                assign.setdefault(f, {})[p] = (ids[rep], s)
                removed.append((k, rep, s))
        buckets = _sum_stats(shard_stats)
        stats = {
            "edges": {"hot_buckets": buckets.get("hot_buckets", 0),
                      "hot_bucket_pairs": buckets.get("hot_bucket_pairs", 0),
                      "bucket_pairs": buckets.get("bucket_pairs", 0),
                      "band_entries": buckets.get("entries", 0),
                      "candidate_pairs": int(candidates), "accepted_pairs": int(accepted),
                      "edges": int(accepted),
                      "docs": int(docs), "candidate_shards": len(shard_stats)},
            "clusters": cluster_summary(size),
            # the components step sees a spanning forest of each verification group (its
            # size depends on how documents fell into spill files: not reported)
            "components": {"cc_edges": int(accepted), "cc_path": "scipy_connected_components",
                           "cc_nodes": int(n)},
        }
        sample = sample_pairs(ids, pf.tolist(), pp.tolist(), removed, self._k, self._seed)
        for f in sorted(assign):
            yield pvalue.TaggedOutput(DECISIONS, (f, assign[f]))
        yield {"sample": sample, "stats": stats}
        for path in cand_paths:
            yield pvalue.TaggedOutput(CONSUMED, path)


# --------------------------------------------------------------------------- 6. apply


@beam.typehints.with_output_types(Any)  # tagged outputs mixed in: no inference
class ApplyFile(Apply):
    """``(file, {"path": [spill path], "dec": [its decisions]})`` + the report's sample ->
    the records of that spill file routed as :class:`Apply` does."""

    def process(self, kv, sample):  # type: ignore[override]
        file_id, grouped = kv
        paths, decs = list(grouped["path"]), list(grouped["dec"])
        if not paths:
            return
        yield from self.route(paths[0], decs[0] if decs else {}, sample["places"])


# --------------------------------------------------------------------------- memory model

PAIRS_PER_DOC = 25.0  # distinct candidate pairs per document assumed at planning (see below)
NODE_BYTES = 400  # a clustered document on the components worker (place, attributes, forest)
CLUSTERED_FRACTION = 0.2  # documents in clusters assumed at planning


def estimate_memory(text_bytes: int, docs: int, bands: int, num_perm: int, verify: str,
                    shards: int, pairs_per_doc: float = PAIRS_PER_DOC,
                    clustered_fraction: float = CLUSTERED_FRACTION) -> dict:
    """Peak memory of ``mode: lsh`` on the local runner, where every step runs in one
    process and the runner holds what crosses a shuffle (bytes -> GB; docs/scale.md gives
    the per-worker formulas of a distributed run).

    * band entries: ``22 * bands`` bytes per document through the shard shuffle, held twice
      (encoded by the runner and decoded into the shard's arrays);
    * the largest shard while sorted: 4 copies of its ``22 * bands * docs / shards`` bytes;
    * candidate pairs and the positions to describe: 40 bytes a pair through the shuffle,
      ``pairs_per_doc`` of them per document (the bench corpora, with hot clusters of up to
      ~1,000 copies: 3.3 at 100k, ~22 at 1M), 1.5 times on average (encoded by the runner,
      decoded by the step that reads them; not all alive at once);
    * the components worker: ``NODE_BYTES`` per clustered document;
    * fingerprints: two candidate files at a time (``8 / 6`` of a spill file's text);
    * buffers and runtime as :func:`~pipelines.stages.dedup.minhash_passes.estimate_memory`.

    Nothing in it grows with the text per document: the records are in spill files (disk).
    """
    from pipelines.stages.dedup.minhash_passes import SPILL_BYTES

    entries = ENTRY_BYTES * bands * docs
    parts = {
        "band_entries": 2.0 * entries,
        "shard_sort": 4.0 * entries / max(1, shards),
        "candidate_pairs": 1.5 * 40 * pairs_per_doc * docs,
        "components": NODE_BYTES * clustered_fraction * docs,
        "fingerprints": 2 * (8 / 6) * SPILL_BYTES if verify == "exact" else (
            2 * 4 * num_perm * SPILL_BYTES / 2000 if verify == "estimated" else 0),
        "buffers": 6.0 * SPILL_BYTES,
        "runtime": 0.7e9,
    }
    disk = 1.05 * text_bytes + (8 / 6) * text_bytes * clustered_fraction * (
        1 if verify == "exact" else 0)
    return {
        "docs": int(docs), "text_bytes": int(text_bytes), "shards": int(shards),
        "parts_gb": {k: round(v / 1e9, 2) for k, v in parts.items()},
        "total_gb": round(sum(parts.values()) / 1e9, 2),
        "disk_gb": round(disk / 1e9, 2),
        "disk_bytes": int(disk),
    }
