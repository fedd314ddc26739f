"""Beam pieces of near-duplicate removal: signatures, LSH buckets, hot keys, connected components.

Used by ``pipelines/stages/minhash_dedup.py``; the per-document logic lives in ``filters/``.

Data shapes (all plain tuples, picklable, deterministic):

* doc info ``(id, sig_bytes, shingles_bytes | None, length, score)``
* bucket entry ``((band, band_hash), (id, sig_bytes, shingles_bytes | None))``
* edge ``(u, v)`` with ``u < v``
"""

from __future__ import annotations

import heapq
import json
import math
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam import pvalue

from filters.components import large_star, small_star, star_label, union_find_labels
from filters.lsh import band_hashes, has_shingles
from filters.minhash import MinHashConfig, MinHasher, estimate_jaccard, exact_jaccard
from pipelines.records import dead_letter

DEAD, INFO, ENTRIES, HOT, STATS, KEYS = "dead", "info", "entries", "hot", "stats", "keys"


# --------------------------------------------------------------------------- validation


def record_problem(record: Any) -> str | None:
    if not isinstance(record, dict):
        return f"bad_record: expected a dict, got {type(record).__name__}"
    rid = record.get("id")
    if not isinstance(rid, str) or not rid:
        return "bad_record: 'id' must be a non-empty string"
    if not isinstance(record.get("text"), str):
        return f"bad_record: 'text' must be a string (got {type(record.get('text')).__name__})"
    return None


def score_of(record: dict, column: str | None) -> float:
    """Quality score for keep=highest_score; missing or non-numeric scores rank lowest."""
    if column is None:
        return 0.0
    v = record.get(column)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
        return float("-inf")
    return float(v)


# --------------------------------------------------------------------------- signatures


class SignatureBatches(beam.DoFn):
    """Batch of records -> doc info (main), bucket entries (``entries``), dead letters."""

    def __init__(
        self,
        label: str,
        cfg: MinHashConfig,
        bands: int,
        rows: int,
        with_shingles: bool,
        with_sig: bool,
        score_column: str | None,
        with_keys: bool = False,
    ):
        self._label, self._cfg, self._b, self._r = label, cfg, bands, rows
        self._with_sh, self._with_sig, self._score = with_shingles, with_sig, score_column
        self._with_keys = with_keys
        self._mh: MinHasher | None = None

    def setup(self) -> None:
        self._mh = MinHasher(self._cfg)

    def _compute(self, texts: list[str]):
        assert self._mh is not None
        if self._with_sh:
            return self._mh.signatures_and_shingles(texts)
        return self._mh.signatures(texts), None

    def process(self, batch: list[dict]):
        good = []
        for rec in batch:
            problem = record_problem(rec)
            if problem:
                yield pvalue.TaggedOutput(DEAD, dead_letter(self._label, problem, rec))
            else:
                good.append(rec)
        if not good:
            return
        try:
            sigs, sets = self._compute([r["text"] for r in good])
            rows = [(r, sigs[i], None if sets is None else sets[i]) for i, r in enumerate(good)]
        except Exception:  # noqa: BLE001 - isolate failing records one by one
            rows = []
            for r in good:
                try:
                    s, sh = self._compute([r["text"]])
                    rows.append((r, s[0], None if sh is None else sh[0]))
                except Exception as e:  # noqa: BLE001
                    yield pvalue.TaggedOutput(
                        DEAD, dead_letter(self._label, f"exception: {type(e).__name__}: {e}", r)
                    )
        if not rows:
            return
        sig_arr = np.stack([s for _, s, _ in rows])
        keys = band_hashes(sig_arr, self._b, self._r)
        usable = has_shingles(sig_arr)
        for i, (rec, sig, sh) in enumerate(rows):
            rid = rec["id"]
            sig_b = sig.tobytes() if self._with_sig else b""
            sh_b = sh.tobytes() if sh is not None else None
            yield (rid, len(rec["text"]), score_of(rec, self._score))
            if usable[i]:
                if self._with_keys:
                    yield pvalue.TaggedOutput(KEYS, (rid, keys[i].tobytes()))
                for band in range(self._b):
                    yield pvalue.TaggedOutput(
                        ENTRIES, ((band, int(keys[i, band])), (rid, sig_b, sh_b))
                    )


# --------------------------------------------------------------------------- buckets


class _Center(beam.CombineFn):
    """Per bucket: member count and the smallest-id member (with its signature/shingles)."""

    def create_accumulator(self):
        return (0, None)

    def add_input(self, acc, member):
        n, best = acc
        # whole-tuple order: smallest id first; equal ids (a duplicate-id input) still decide
        # deterministically by signature bytes
        return (n + 1, member if best is None or member < best else best)

    def merge_accumulators(self, accs):
        n, best = 0, None
        for c, b in accs:
            n += c
            if b is not None and (best is None or b < best):
                best = b
        return (n, best)

    def extract_output(self, acc):
        return acc


class Verifier:
    """Accept a candidate pair by estimated Jaccard, exact Jaccard of shingles, or always."""

    def __init__(self, mode: str, threshold: float):
        self.mode, self.threshold = mode, threshold

    def similarity(self, a: tuple, b: tuple) -> float | None:
        if self.mode == "none":
            return None
        if self.mode == "exact":
            return exact_jaccard(np.frombuffer(a[2], np.uint64), np.frombuffer(b[2], np.uint64))
        return estimate_jaccard(np.frombuffer(a[1], np.uint32), np.frombuffer(b[1], np.uint32))

    def accept(self, a: tuple, b: tuple) -> bool:
        s = self.similarity(a, b)
        return s is None or s >= self.threshold


def _edge(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


class BucketPairs(beam.DoFn):
    """A normal (small) bucket: verify all pairs, emit accepted edges; count work in STATS."""

    def __init__(self, verify: str, threshold: float, star_only: bool = False):
        self._v = Verifier(verify, threshold)
        self._star = star_only

    def process(self, kv):
        _, members = kv
        uniq: dict = {}
        for m in members:
            if m[0] not in uniq or m < uniq[m[0]]:
                uniq[m[0]] = m  # deterministic even for duplicate ids
        ms = [uniq[k] for k in sorted(uniq)]
        cand = acc = 0
        for i in range(1 if self._star else len(ms)):
            for j in range(i + 1, len(ms)):
                cand += 1
                if self._v.accept(ms[i], ms[j]):
                    acc += 1
                    yield (ms[i][0], ms[j][0])
        if cand:
            yield pvalue.TaggedOutput(STATS, (cand, acc, 0))


class SplitHot(beam.DoFn):
    """Route bucket entries: hot buckets (side input) link each member to the bucket's
    smallest-id member after verification (star edges, O(1) work per member, no grouping);
    other entries go on to a GroupByKey (at most ``max_bucket_size`` members each)."""

    def __init__(self, verify: str, threshold: float):
        self._v = Verifier(verify, threshold)

    def process(self, entry, hot: dict):
        key, member = entry
        center = hot.get(key)
        if center is None:
            yield entry
            return
        if member[0] == center[0]:
            return
        ok = self._v.accept(center, member)
        yield pvalue.TaggedOutput(STATS, (1, int(ok), 1))
        if ok:
            yield pvalue.TaggedOutput(HOT, _edge(center[0], member[0]))


def _sum3(rows):
    c = a = h = 0
    for x, y, z in rows:
        c, a, h = c + x, a + y, h + z
    return (c, a, h)


def candidate_edges(
    entries, verify: str, threshold: float, max_bucket_size: int, star_only: bool = False
):
    """Bucket entries -> (distinct verified edges, stats PCollection of one dict).

    ``star_only``: small buckets too emit only (smallest id, member) pairs (lshbloom mode)."""
    centers = entries | "BucketCenters" >> beam.CombinePerKey(_Center())
    hot = centers | "HotBuckets" >> beam.Filter(lambda kv: kv[1][0] > max_bucket_size)
    hot_map = hot | "HotCenter" >> beam.Map(lambda kv: (kv[0], kv[1][1]))
    routed = entries | "SplitHot" >> beam.ParDo(
        SplitHot(verify, threshold), pvalue.AsDict(hot_map)
    ).with_outputs(HOT, STATS, main="normal")
    pairs = (
        routed["normal"]
        | "GroupBucket" >> beam.GroupByKey()
        | "BucketPairs"
        >> beam.ParDo(BucketPairs(verify, threshold, star_only)).with_outputs(STATS, main="e")
    )
    edges = (
        (pairs["e"], routed[HOT])
        | "AllEdges" >> beam.Flatten()
        | "DistinctEdges" >> beam.Distinct()
    )
    work = (
        (pairs[STATS], routed[STATS])
        | "WorkStats" >> beam.Flatten()
        | "SumWork" >> beam.CombineGlobally(_sum3)
    )
    n_hot = hot | "CountHot" >> beam.combiners.Count.Globally()
    n_edges = edges | "CountEdges" >> beam.combiners.Count.Globally()
    stats = work | "EdgeStats" >> beam.Map(
        lambda w, nh, ne: {
            "candidate_pairs": w[0],
            "accepted_pairs": w[1],
            "hot_bucket_pairs": w[2],
            "hot_buckets": nh,
            "edges": ne,
        },
        pvalue.AsSingleton(n_hot),
        pvalue.AsSingleton(n_edges),
    )
    return edges, stats


# --------------------------------------------------------------------------- components


def _both_directions(e):
    yield e
    yield (e[1], e[0])


def _apply_both_directions(kv, op):
    """Run a star operation at one node; emit its new edges in both directions (for the next
    group-by-node). Duplicates are harmless: the next step takes neighbour *sets*."""
    for a, b in op(kv[0], kv[1]):
        if a != b:
            yield (a, b)
            yield (b, a)


def _star_step(directed, name: str, op):
    return (
        directed
        | f"{name}Group" >> beam.GroupByKey()
        | f"{name}Op" >> beam.FlatMap(_apply_both_directions, op)
    )


def _uf_labels(edge_lists):
    edges = [e for lst in edge_lists for e in lst]
    return sorted(union_find_labels(edges).items())


def component_labels(edges, max_rounds: int, small_threshold: int):
    """Edges -> ((node, root) for every node with an edge, stats PCollection of one dict).

    Runtime branch on the number of edges: up to ``small_threshold`` edges go to one worker's
    union-find (small-data path); otherwise ``max_rounds`` large-star + small-star rounds are
    unrolled in the graph (a converged round is a no-op), then each node takes the smallest id
    among itself and its neighbours. ``cc_unconverged_nodes`` > 0 means rounds ran out: labels
    then split some components (never merge unrelated ones), so fewer duplicates are removed.
    """
    n = edges | "CountCCEdges" >> beam.combiners.Count.Globally()
    n_si = pvalue.AsSingleton(n)
    small = edges | "SmallEdges" >> beam.Filter(lambda e, c: c <= small_threshold, n_si)
    large = edges | "LargeEdges" >> beam.Filter(lambda e, c: c > small_threshold, n_si)
    small_labels = (
        small
        | "ToList" >> beam.combiners.ToList()
        | "UnionFind" >> beam.FlatMap(lambda lst: _uf_labels([lst]))
    )
    cur = large | "BothDirections" >> beam.FlatMap(_both_directions)
    for i in range(max_rounds):
        cur = _star_step(cur, f"LargeStar{i}", large_star)
        cur = _star_step(cur, f"SmallStar{i}", small_star)
    labelled = (
        cur
        | "FinalGroup" >> beam.GroupByKey()
        | "FinalLabel" >> beam.Map(lambda kv: (kv[0], star_label(kv[0], kv[1])))
    )
    large_labels = labelled | "LabelOnly" >> beam.Map(lambda x: (x[0], x[1][0]))
    unconverged = (
        labelled
        | "Unconverged" >> beam.Map(lambda x: 0 if x[1][1] else 1)
        | "SumUnconverged" >> beam.CombineGlobally(sum)
    )
    labels = (small_labels, large_labels) | "Labels" >> beam.Flatten()
    stats = unconverged | "CCStats" >> beam.Map(
        lambda u, c: {
            "cc_edges": c,
            "cc_path": "union_find" if c <= small_threshold else "star_rounds",
            "cc_max_rounds": max_rounds,
            "cc_unconverged_nodes": u,
        },
        n_si,
    )
    return labels, stats


# --------------------------------------------------------------------------- representatives


def _priority(keep: str, length: int, score: float) -> float:
    return float(length) if keep == "longest" else score


class _BestMember(beam.CombineFn):
    """(priority, id) -> member with the highest priority, ties to the smallest id; plus size."""

    def create_accumulator(self):
        return (0, None)

    def add_input(self, acc, x):
        n, best = acc
        return (n + 1, x if best is None or (-x[0], x[1]) < (-best[0], best[1]) else best)

    def merge_accumulators(self, accs):
        n, best = 0, None
        for c, b in accs:
            n += c
            if b is not None and (best is None or (-b[0], b[1]) < (-best[0], best[1])):
                best = b
        return (n, best)

    def extract_output(self, acc):
        return (acc[0], acc[1][1] if acc[1] else None)


def assign_representatives(labels, info, keep: str):
    """(node, root) + doc info -> (node, (representative, cluster_size)) for clustered nodes."""
    if keep == "lowest_id":
        sizes = labels | "RootOf" >> beam.Map(lambda x: (x[1], x[0]))
        best = (
            sizes
            | "CompSize" >> beam.combiners.Count.PerKey()
            | "RepIsRoot" >> beam.Map(lambda kv: (kv[0], (kv[1], kv[0])))
        )
    else:
        joined = (
            {"label": labels, "info": info | "InfoById" >> beam.Map(lambda d: (d[0], (d[1], d[2])))}
            | "JoinInfo" >> beam.CoGroupByKey()
            | "Prioritize" >> beam.FlatMap(_prioritize, keep)
        )
        sizes = joined | "MemberOf" >> beam.Map(lambda x: (x[0], x[1][1]))
        best = joined | "BestMember" >> beam.CombinePerKey(_BestMember())
    return (
        {"best": best, "member": sizes}
        | "JoinRep" >> beam.CoGroupByKey()
        | "Assign" >> beam.FlatMap(_assign)
    )


def _prioritize(kv, keep):
    node, g = kv
    labs, infos = list(g["label"]), list(g["info"])
    if not labs:
        return
    length, score = max(infos) if infos else (0, float("-inf"))
    yield (labs[0], (_priority(keep, length, score), node))


def _assign(kv):
    _, g = kv
    best = list(g["best"])
    if not best:
        return
    size, rep = best[0]
    for node in g["member"]:
        yield (node, (rep, size))


# --------------------------------------------------------------------------- stats helpers


class _ClusterSummary(beam.CombineFn):
    """Cluster sizes -> clusters, docs in clusters, largest sizes, size histogram (bounded state)."""

    def __init__(self, top: int = 10):
        self._top = top

    def create_accumulator(self):
        return ({}, [])

    def add_input(self, acc, size):
        hist, top = acc
        hist[size] = hist.get(size, 0) + 1
        top.append(size)
        if len(top) > 4 * self._top:
            top[:] = heapq.nlargest(self._top, top)
        return acc

    def merge_accumulators(self, accs):
        hist: dict[int, int] = {}
        top: list[int] = []
        for h, t in accs:
            for k, v in h.items():
                hist[k] = hist.get(k, 0) + v
            top.extend(t)
        return (hist, heapq.nlargest(self._top, top))

    def extract_output(self, acc):
        hist, top = acc
        return {
            "clusters": int(sum(hist.values())),
            "docs_in_clusters": int(sum(k * v for k, v in hist.items())),
            "largest_clusters": heapq.nlargest(self._top, top),
            "cluster_size_histogram": {str(k): hist[k] for k in sorted(hist)},
        }


def cluster_stats(assignments, top: int = 10):
    """Assignments -> one dict: clusters, docs in clusters, largest sizes, size histogram."""
    return (
        assignments
        | "RepSizes" >> beam.Map(lambda x: (x[1][0], x[1][1]))
        | "OnePerRep" >> beam.Distinct()
        | "SizesOnly" >> beam.Map(lambda x: x[1])
        | "Summarize" >> beam.CombineGlobally(_ClusterSummary(top))
    )


def json_safe(x):
    return json.loads(json.dumps(x, default=str))
