"""Beam pieces of near-duplicate removal (used by ``pipelines/stages/dedup/minhash_dedup.py``).

Pass 1 (``SketchSpill``: records to spill files; with ``shards`` the band entries of the
scale-out path) and routing (``Apply``) serve both modes. Steps 2-4 below are the *one-table*
path that ``mode: lshbloom`` uses (one worker holds every document's sketch); ``mode: lsh``
uses the sharded steps of :mod:`pipelines.stages.dedup.minhash_sharded` instead.

Memory design (see docs/dedup.md): document text never crosses a shuffle, is never grouped
and is never held by the runner. The local runner (FnApiRunner) keeps every PCollection that
crosses a fusion break in memory, so the records go to *spill files* (:mod:`pipelines.core.spill`)
in the first pass and every later pass streams them back; what the runner holds are paths and
compact per-document fingerprints.

1. ``SketchSpill`` (fused with the stages before): records are buffered up to ``SPILL_BYTES``
   of text; the buffer is written to one spill file and gives one compact *sketch* element:
   ids, sources, ``b`` band keys per document (8 bytes each), text length, score, an 8-byte
   content hash and the file id, and, for ``verify: estimated``, the signatures.
   **Record identity**: a record is the document at ``(spill file id, position)`` (its
   *place*), never its user id: records that share an id (two sources both numbering from 0)
   are distinct documents, and nothing is dead-lettered for sharing an id.
2. ``Candidates`` (one worker): :func:`build_table` sorts the documents by (id, source,
   content hash, place) (document index = rank, so "lowest id" is "lowest index"; the place
   only orders records equal in every field, so nothing depends on batching or worker
   count) and
   :func:`filters.lsh.candidate_pairs` turns the band keys into distinct candidate pairs of
   integer indices with numpy sorts. The table and the pairs go to one file (the runner holds
   its path); the positions of the candidate documents, per spill file, go on as a side input.
3. ``verify: exact``: ``CandidateShingles`` streams each spill file back and writes the
   shingle-hash sets of its candidate documents only (``8 * shingles`` bytes each) to a file.
4. ``Decide`` (one worker): reads the table and the shingle files, computes the exact Jaccard
   per candidate pair, components (``scipy.sparse.csgraph``) and representatives -> a
   *decision* map ``file -> position -> (near_dup_of, cluster_size)`` for clustered
   documents only, and the near-duplicate pairs sampled for the report.
5. ``Apply``: streams each spill file back with the decision map as a side input and routes
   every record (kept or removed; dead letters of the first pass leave here too); its outputs
   fuse with the stages after it. Spill files are deleted after a GroupByKey once their last
   reader has committed.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import uuid
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import numpy as np
import xxhash
from apache_beam import pvalue

from filters.components import component_arrays
from filters.lsh import band_hashes, candidate_pairs, has_shingles
from filters.minhash import MinHashConfig, MinHasher, exact_jaccard
from pipelines.core import progress
from pipelines.core.records import dead_letter
from pipelines.core.spill import SizeBuffered, read_spill, slice_refs, write_spill

DEAD, SPILL, NEEDED, CONSUMED = "dead", "spill", "needed", "consumed"
# SketchSpill(shards=S): per shard, (file, the band entries or a slice of the file's entries
# file); documents per file; the entries files (deleted once the candidates are known)
SHARDS, DOCS, SCRATCH = "shards", "docs", "scratch"
INDEX_REP = "lshbloom_index"
SPILL_BYTES = 8 << 20  # text per spill file (several files per worker: later passes spread)
SAMPLED = "sampled"


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


def content_hash(record: dict) -> int:
    """64-bit hash of the whole record (orders records that share an id and a source)."""
    h = hashlib.blake2b(repr(sorted(record.items(), key=lambda kv: str(kv[0]))).encode(
        "utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(h.digest(), "little") >> 1  # fits int64


# --------------------------------------------------------------------------- spill files


def source_name(record: dict) -> str:
    src = record.get("source")
    return "" if src is None else str(src)


def spill_path(folder: str, kind: str, file_id: int) -> str:
    return f"{folder}/{kind}-{file_id:016x}.bin"


def spill_id(path: str) -> int:
    return int(path.rsplit("-", 1)[1][:16], 16)


def new_file_id() -> int:
    return uuid.uuid4().int & 0x7FFFFFFFFFFFFFFF


def write_object(path: str, obj: Any) -> None:
    """One object (numpy arrays inside stay out-of-band pickle buffers) as a spill file."""
    write_spill(path, [obj])


def read_object(path: str) -> Any:
    return next(iter(read_spill(path)))


# --------------------------------------------------------------------------- band entries (scale-out)


def order_key(rid: str, source: str, chash: int) -> int:
    """Deterministic 63-bit order of a document inside a bucket (the star centre of a hot
    bucket is its smallest), independent of which spill file holds it."""
    raw = f"{rid}\x00{source}\x00{chash}".encode("utf-8", "surrogatepass")
    return xxhash.xxh3_64_intdigest(raw) >> 1


ENTRY_DTYPE = np.dtype([("band", "<u2"), ("key", "<u8"), ("okey", "<i8"), ("pos", "<i4")])


def shard_entries(keys: np.ndarray, usable: np.ndarray, okeys: np.ndarray,
                  shards: int) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """One spill file's band entries (``ENTRY_DTYPE``, 22 bytes each) sorted by shard, and
    ``(shard, start, stop)`` for each shard that gets any (documents without shingles have
    none)."""
    rows = np.flatnonzero(usable).astype(np.int32)
    if rows.size == 0:
        return np.zeros(0, ENTRY_DTYPE), []
    b = keys.shape[1]
    key = keys[rows].reshape(-1)
    shard = (key % np.uint64(shards)).astype(np.int64)
    order = np.argsort(shard, kind="stable")
    out = np.empty(key.size, ENTRY_DTYPE)
    out["band"] = np.tile(np.arange(b, dtype=np.uint16), rows.size)[order]
    out["key"] = key[order]
    out["okey"] = np.repeat(okeys[rows], b)[order]
    out["pos"] = np.repeat(rows, b)[order]
    shard = shard[order]
    cuts = np.flatnonzero(np.diff(shard)) + 1
    starts = np.concatenate(([0], cuts))
    stops = np.concatenate((cuts, [shard.size]))
    return out, [(int(shard[a]), int(a), int(z)) for a, z in zip(starts, stops)]


# --------------------------------------------------------------------------- 1. sketches


@beam.typehints.with_output_types(Any)  # tagged outputs mixed in: no inference
class SketchSpill(SizeBuffered):
    """records -> per buffer of ``spill_bytes`` of text: one sketch dict (main) and the path of
    the spill file holding the buffer's valid records and its dead letters (``spill``)."""

    def __init__(self, label: str, cfg: MinHashConfig, bands: int, rows: int,
                 with_sig: bool, score_column: str | None, spill_dir: str,
                 batch_size: int = 512, spill_bytes: int = SPILL_BYTES,
                 shards: int | None = None):
        self._label, self._cfg, self._b, self._r = label, cfg, bands, rows
        self._with_sig, self._score, self._dir = with_sig, score_column, spill_dir
        self._batch, self._limit = batch_size, spill_bytes
        self._shards = shards  # set: emit band entries per candidate shard, not a sketch
        self._mh: MinHasher | None = None

    def setup(self) -> None:
        self._mh = MinHasher(self._cfg)

    def _signatures(self, recs: list[dict]):
        """(records whose signature could be computed, their signatures, dead letters)."""
        assert self._mh is not None
        try:
            return recs, self._mh.signatures([r["text"] for r in recs]), []
        except Exception:  # noqa: BLE001 - isolate failing records one by one
            ok, rows, dead = [], [], []
            for r in recs:
                try:
                    rows.append(self._mh.signatures([r["text"]])[0])
                    ok.append(r)
                except Exception as e:  # noqa: BLE001
                    dead.append(dead_letter(self._label, f"exception: {type(e).__name__}: {e}",
                                            r))
            sigs = np.stack(rows) if rows else np.zeros((0, self._cfg.num_perm), np.uint32)
            return ok, sigs, dead

    def flush_rows(self, rows: list):
        """Dead letters travel in the spill file too (after the records, as ``(DEAD, row)``)
        and leave through ``Apply``: the stage's dead output is one PCollection, not a
        Flatten that the local runner would hold."""
        valid, dead = [], []
        for rec in rows:
            problem = record_problem(rec)
            if problem:
                dead.append(dead_letter(self._label, problem, rec))
            else:
                valid.append(rec)
        good, parts = [], []
        for s in range(0, len(valid), self._batch):
            ok, sigs, failed = self._signatures(valid[s : s + self._batch])
            dead += failed
            good += ok
            parts.append(sigs)
        del valid
        file_id = new_file_id()
        path = spill_path(self._dir, "records", file_id)
        write_spill(path, good + [(DEAD, d) for d in dead])
        progress.counter(self, "sketched").inc(len(rows))
        progress.counter(self, "spill_files").inc()
        if good and self._shards:
            sigs = np.concatenate(parts)
            okeys = np.fromiter((order_key(r["id"], source_name(r), content_hash(r))
                                 for r in good), np.int64, len(good))
            entries, parts = shard_entries(band_hashes(sigs, self._b, self._r),
                                           has_shingles(sigs), okeys, self._shards)
            if parts:  # large slices stay in the entries file; the shuffle carries a reference
                epath = spill_path(self._dir, "entries", file_id)
                refs, written = slice_refs(epath, entries, parts)
                for shard, ref in refs:
                    yield pvalue.TaggedOutput(SHARDS, (shard, (file_id, ref)))
                if written:
                    yield pvalue.TaggedOutput(SCRATCH, epath)
            del entries
            yield pvalue.TaggedOutput(DOCS, len(good))
        elif good:
            sigs = np.concatenate(parts)
            names = sorted({source_name(r) for r in good})
            code = {n: c for c, n in enumerate(names)}
            yield {
                "file": file_id,
                "ids": [r["id"] for r in good],
                "sources": names,  # the distinct sources of this file; "src": codes into it
                "src": np.fromiter((code[source_name(r)] for r in good), np.int32, len(good)),
                "keys": band_hashes(sigs, self._b, self._r),
                "usable": has_shingles(sigs),
                "lens": np.fromiter((len(r["text"]) for r in good), np.int64, len(good)),
                "scores": np.fromiter((score_of(r, self._score) for r in good), np.float64,
                                      len(good)),
                "chash": np.fromiter((content_hash(r) for r in good), np.int64, len(good)),
                "sigs": sigs if self._with_sig else None,
            }
        yield pvalue.TaggedOutput(SPILL, path)


# --------------------------------------------------------------------------- 2. table


@dataclass
class DocTable:
    """All documents' compact fingerprints, one row per record, indexed by the rank of
    (id, source, content hash, place)."""

    ids: list[str]
    keys: np.ndarray  # (n, b) uint64
    usable: np.ndarray  # (n,) bool
    lens: np.ndarray
    scores: np.ndarray
    file: np.ndarray  # (n,) int64: spill file of each document
    pos: np.ndarray  # (n,) int64: its position in that file (file, position: its identity)
    sigs: np.ndarray | None

    @property
    def n(self) -> int:
        return len(self.ids)

    def nbytes(self) -> int:
        arrays = [self.keys, self.usable, self.lens, self.scores, self.file, self.pos]
        if self.sigs is not None:
            arrays.append(self.sigs)
        return int(sum(a.nbytes for a in arrays) + sum(49 + len(s) for s in self.ids))


def build_table(sketches: list[dict], bands: int, num_perm: int) -> DocTable:
    """Concatenate sketches; one row per record (a record is its place: spill file and
    position), rows sorted by (id, source, content hash, place). Records that share an id are
    distinct documents; the place only orders records that are equal in every field, so
    which of two identical records gets the lower index does not change the output."""
    sketches = [s for s in sketches if s["ids"]]
    if not sketches:
        z = np.zeros(0, np.int64)
        return DocTable([], np.zeros((0, bands), np.uint64), np.zeros(0, bool), z,
                        z.astype(np.float64), z, z, None)
    names = sorted({n for s in sketches for n in s["sources"]})
    rank = {n: c for c, n in enumerate(names)}
    src = np.concatenate([np.array([rank[n] for n in s["sources"]], np.int64)[s["src"]]
                          for s in sketches])
    ids = [x for s in sketches for x in s["ids"]]
    chash = np.concatenate([s["chash"] for s in sketches])
    files = np.concatenate([np.full(len(s["ids"]), s["file"], np.int64) for s in sketches])
    pos = np.concatenate([np.arange(len(s["ids"]), dtype=np.int64) for s in sketches])
    arr = np.array(ids, dtype=object)
    del ids
    order = np.lexsort((pos, files, chash, src, arr.astype(str)))  # id, source, hash, place
    del src, chash

    def cat(name):
        return np.concatenate([s[name] for s in sketches])[order]

    sigs = cat("sigs") if sketches[0]["sigs"] is not None else None
    return DocTable(arr[order].tolist(), cat("keys"), cat("usable"), cat("lens"),
                    cat("scores"), files[order], pos[order], sigs)


@dataclass
class Candidates:
    table: DocTable
    i: np.ndarray
    j: np.ndarray
    stats: dict

    def needed(self) -> dict[int, dict[int, int]]:
        """spill file -> {position: document index} of every document in a candidate pair."""
        docs = np.unique(np.concatenate([self.i, self.j]))
        t = self.table
        out: dict[int, dict[int, int]] = {}
        for k, f, p in zip(docs.tolist(), t.file[docs].tolist(), t.pos[docs].tolist()):
            out.setdefault(f, {})[p] = k
        return out


def find_candidates(table: DocTable, max_bucket_size: int, star_only: bool) -> Candidates:
    sub = np.flatnonzero(table.usable)
    i, j, st = candidate_pairs(table.keys[sub], max_bucket_size, star_only)
    st = {**st, "candidate_pairs": int(i.size), "docs": table.n,
          "sketch_bytes": table.nbytes()}
    return Candidates(table, sub[i], sub[j], st)


class FindCandidates(beam.DoFn):
    """All sketches (one list) -> the path of a file holding the :class:`Candidates` (main)
    and, with ``emit_needed``, the candidate documents' places (``needed``)."""

    def __init__(self, bands: int, num_perm: int, max_bucket_size: int, star_only: bool,
                 spill_dir: str, emit_needed: bool):
        self._args = (bands, num_perm, max_bucket_size, star_only)
        self._dir, self._needed = spill_dir, emit_needed

    def process(self, sketches: list):
        b, perm, mbs, star = self._args
        table = build_table(sketches, b, perm)
        del sketches
        cands = find_candidates(table, mbs, star)
        if self._needed:
            yield pvalue.TaggedOutput(NEEDED, cands.needed())
        path = spill_path(self._dir, "candidates", new_file_id())
        write_object(path, cands)
        progress.counter(self, "candidates").inc()
        yield path


# --------------------------------------------------------------------------- 3. shingle sets


class CandidateShingles(beam.DoFn):
    """Spill file of records -> path of a file holding ``(indices, concatenated sorted shingle
    sets, counts)`` of the records the side input names (the candidate documents)."""

    def __init__(self, cfg: MinHashConfig, spill_dir: str):
        self._cfg, self._dir = cfg, spill_dir
        self._mh: MinHasher | None = None

    def setup(self) -> None:
        self._mh = MinHasher(self._cfg)

    def process(self, path: str, needed: dict):
        assert self._mh is not None
        want = needed.get(spill_id(path))
        if not want:
            return
        idx, texts = [], []
        for pos, rec in enumerate(read_spill(path)):
            k = want.get(pos)
            if k is not None:
                idx.append(k)
                texts.append(rec["text"])
        if not texts:
            return
        sets = self._mh.shingle_sets(texts)
        del texts
        counts = np.fromiter((s.size for s in sets), np.int64, len(sets))
        out = spill_path(self._dir, "shingles", new_file_id())
        write_object(out, (np.array(idx, np.int64), np.concatenate(sets), counts))
        progress.counter(self, "fingerprint_files").inc()
        yield out


# --------------------------------------------------------------------------- 4. decisions


def _verify(c: Candidates, verify: str, threshold: float, shingles: list | None):
    """Which candidate pairs pass; ``shingles``: paths of :class:`CandidateShingles` files."""
    i, j = c.i, c.j
    if verify == "none" or i.size == 0:
        return np.ones(i.size, dtype=bool), 0
    if verify == "estimated":
        sigs = c.table.sigs
        ok = np.empty(i.size, dtype=bool)
        for s in range(0, i.size, 65536):
            a, b = sigs[i[s : s + 65536]], sigs[j[s : s + 65536]]
            ok[s : s + 65536] = (a == b).mean(axis=1) >= threshold
        return ok, 0
    sets: dict[int, np.ndarray] = {}
    nbytes = 0
    for path in sorted(shingles or []):
        idx, flat, counts = read_object(path)
        offs = np.concatenate(([0], np.cumsum(counts)))
        for n, k in enumerate(idx.tolist()):
            sets[k] = flat[offs[n] : offs[n + 1]]
        nbytes += flat.nbytes
    ok = np.fromiter(
        (exact_jaccard(sets[a], sets[b]) >= threshold for a, b in zip(i.tolist(), j.tolist())),
        dtype=bool, count=i.size)
    return ok, nbytes


class Decide(beam.DoFn):
    """Path of the candidates file (+ shingle-file paths, index hits) -> the decision map
    (main) and the paths it consumed (``consumed``)."""

    def __init__(self, verify: str, threshold: float, keep: str, mode: str,
                 samples: int = 8, seed: int = 1):
        self._args = (verify, threshold, keep, mode)
        self._sample = (samples, seed)

    def process(self, path: str, shingles=None, hits=None):
        verify, thr, keep, mode = self._args
        k, seed = self._sample
        yield decide(read_object(path), verify, thr, keep, mode, shingles=shingles, hits=hits,
                     samples=k, seed=seed)
        progress.counter(self, "components").inc()
        for p in [path, *(shingles or [])]:
            yield pvalue.TaggedOutput(CONSUMED, p)


def cluster_summary(sizes: np.ndarray, top: int = 10) -> dict:
    hist: dict[int, int] = {}
    for s, cnt in zip(*np.unique(sizes, return_counts=True)):
        hist[int(s)] = int(cnt) // int(s)  # sizes has one entry per member
    clusters = [s for s, c in hist.items() for _ in range(min(c, top))]
    return {
        "clusters": int(sum(hist.values())),
        "docs_in_clusters": int(sum(k * v for k, v in hist.items())),
        "largest_clusters": heapq.nlargest(top, clusters),
        "cluster_size_histogram": {str(k): hist[k] for k in sorted(hist)},
    }


def decide(c: Candidates, verify: str, threshold: float, keep: str, mode: str,
           shingles: list | None = None, hits: list | None = None, samples: int = 8,
           seed: int = 1) -> dict:
    """Candidates (+ shingle-file paths, index hits as places) -> {"assign", "sample",
    "stats"}.

    ``assign``: spill file -> position -> (near_dup_of or None, cluster size) for every
    clustered document (lsh) or every removed one (lshbloom, size None); documents absent from
    it are kept, size 1. ``near_dup_of`` is the user id of the kept document (which may equal
    the removed document's own id when records share an id). ``sample``:
    :func:`sample_pairs`."""
    t = c.table
    ok, set_bytes = _verify(c, verify, threshold, shingles)
    ai, aj = c.i[ok], c.j[ok]
    stats = {"edges": {**c.stats, "accepted_pairs": int(ok.sum()), "edges": int(ok.sum()),
                       "shingle_set_bytes": set_bytes}}
    files, pos = t.file.tolist(), t.pos.tolist()
    assign: dict[int, dict[int, tuple]] = {}
    removed: list[tuple[int, int, int | None]] = []  # (document, its kept document, size)
    if mode == "lshbloom":
        dup_of = np.full(t.n, t.n, dtype=np.int64)
        np.minimum.at(dup_of, aj, ai)
        hit_set = {(int(f), int(p)) for f, p in (hits or [])}
        within = 0
        for k in np.flatnonzero(dup_of < t.n).tolist():
            rep = int(dup_of[k])
            assign.setdefault(files[k], {})[pos[k]] = (t.ids[rep], None)
            within += 1
            if (files[k], pos[k]) not in hit_set:
                removed.append((k, rep, None))
        for f, p in sorted(hit_set):
            assign.setdefault(f, {})[p] = (INDEX_REP, None)
        stats["lshbloom"] = {"removed_by_index": len(hit_set), "removed_within_run": within}
    else:
        comp, size = component_arrays(t.n, ai, aj)
        members = np.flatnonzero(size > 1)
        if keep == "lowest_id":
            rep_of_comp = {int(x): int(x) for x in np.unique(comp[members])}
        else:
            prio = t.lens if keep == "longest" else t.scores
            m = members
            order = np.lexsort((m, -prio[m].astype(np.float64), comp[m]))
            ms, cs = m[order], comp[m][order]
            firsts = np.ones(ms.size, dtype=bool)
            firsts[1:] = cs[1:] != cs[:-1]
            rep_of_comp = dict(zip(cs[firsts].tolist(), ms[firsts].tolist()))
        for k, ck, sk in zip(members.tolist(), comp[members].tolist(), size[members].tolist()):
            rep = rep_of_comp[ck]
            if rep == k:
                assign.setdefault(files[k], {})[pos[k]] = (None, sk)
            else:
                assign.setdefault(files[k], {})[pos[k]] = (t.ids[rep], sk)
                removed.append((k, rep, sk))
        stats["clusters"] = cluster_summary(size[members])
        stats["components"] = {"cc_edges": int(ai.size), "cc_path": "scipy_connected_components"}
    sample = sample_pairs(t.ids, files, pos, removed, samples, seed)
    return {"assign": assign, "sample": sample, "stats": stats}


def sample_pairs(ids: list[str], files: list[int], pos: list[int],
                 removed: list[tuple[int, int, int | None]], k: int, seed: int) -> dict:
    """The ``k`` removed documents with the smallest seeded id hash (then id, then document
    index: deterministic whatever the worker count) among those removed against a document of
    this run (``lshbloom_index`` matches have no partner, they are not in ``removed``), and
    their kept partner. ``removed``: (document index, partner index, cluster size). O(k)
    extra memory. ``pairs``: (removed id, kept id, removed place, kept place); ``places``:
    the places whose records the report needs."""
    import xxhash

    h = xxhash.xxh64_intdigest

    def pool():
        for d, rep, size in removed:
            rid = ids[d]
            yield h(rid.encode("utf-8", "surrogatepass"), seed), rid, d, rep, size

    best = heapq.nsmallest(k, pool())
    pairs, sizes = [], {}
    for _h, rid, d, rep, size in best:
        here, there = (files[d], pos[d]), (files[rep], pos[rep])
        pairs.append((rid, ids[rep], here, there))
        sizes[here] = size
    return {"pairs": pairs, "population": len(removed), "seed": seed, "sizes": sizes,
            "places": {x for p in pairs for x in p[2:]}}


# --------------------------------------------------------------------------- 5. apply


def _annotate(rec: dict, decision: tuple | None, with_sizes: bool):
    near, size = decision or (None, 1)
    out = dict(rec)
    out.update(near_dup_of=near, dup_cluster_size=size if with_sizes else None)
    return out


def sampled_record(mh: MinHasher, rec: dict, text_chars: int) -> dict:
    """What the report's pair sample keeps of a record: the text cut to ``text_chars``, its
    length, its shingle-hash set and its signature."""
    text = rec["text"]
    sigs, sets = mh.signatures_and_shingles([text])
    return {"id": rec["id"], "text": text[:text_chars], "chars": len(text),
            "shingles": sets[0], "sig": sigs[0]}


@beam.typehints.with_output_types(Any)
class Apply(beam.DoFn):
    """Spill file of records + decision map -> kept (main), removed (``removed``), dead
    letters of ``SketchSpill`` (``dead``), the records of the report's pair sample
    (``sampled``: ``(place, sampled_record)``) and the file's path once it has been read
    (``consumed``). Records are looked up by place (spill file, position), never by id."""

    def __init__(self, label: str, reason: str, with_sizes: bool,
                 cfg: MinHashConfig | None = None, text_chars: int = 20_000):
        self._label, self._reason, self._sizes = label, reason, with_sizes
        self._cfg, self._chars = cfg, text_chars
        self._mh: MinHasher | None = None

    def process(self, path: str, dec: dict):
        yield from self.route(path, dec["assign"].get(spill_id(path)) or {},
                              dec["sample"]["places"])

    def route(self, path: str, mine: dict, places):
        """Stream one spill file and route its records; ``mine``: position -> decision of the
        clustered documents of this file; ``places``: the report sample's places."""
        file_id = spill_id(path)
        places = places if self._cfg is not None else ()
        for pos, rec in enumerate(read_spill(path)):
            if isinstance(rec, tuple):  # (DEAD, row): dead-lettered by SketchSpill
                yield pvalue.TaggedOutput(DEAD, rec[1])
                continue
            out = _annotate(rec, mine.get(pos), self._sizes)
            if places and (file_id, pos) in places:
                if self._mh is None:
                    self._mh = MinHasher(self._cfg)
                yield pvalue.TaggedOutput(SAMPLED, ((file_id, pos),
                                                    sampled_record(self._mh, rec, self._chars)))
            if out["near_dup_of"] is not None:
                yield pvalue.TaggedOutput("removed", (self._reason, out))
            else:
                yield out
        progress.counter(self, "route_files").inc()
        yield pvalue.TaggedOutput(CONSUMED, path)


# --------------------------------------------------------------------------- memory estimate

BUCKET_PAIRS_PER_DOC = 25  # assumed LSH bucket pairs per document (see estimate_memory)


def estimate_memory(text_bytes: int, docs: int, bands: int, num_perm: int, verify: str,
                    candidate_fraction: float = 0.25,
                    bucket_pairs_per_doc: float = BUCKET_PAIRS_PER_DOC) -> dict:
    """Peak memory model of the stage on the local runner (bytes -> GB), see docs/dedup.md.

    The records themselves are on disk (spill files, ~1.05 x the text, ``disk_gb``); what is
    in memory grows with the number of documents through their compact fingerprints only:

    * sketches: per document ``8 * bands`` band-key bytes, ~150 bytes of id, length, score,
      hash and place, and (verify: estimated) ``4 * num_perm`` signature bytes. They exist
      up to three times at once on the global worker: the gathered list, the runner's encoded
      copy of it and the table built from it;
    * candidate pairs: the pairs of documents sharing a bucket, 16 bytes each, about three
      times over while they are sorted and made distinct. How many there are is known only
      after LSH; ``bucket_pairs_per_doc`` assumes 25 (measured on the bench corpora with ~12%
      near duplicates and hot clusters of ~1,000 copies: 3.3 at 100k, 21.7 at 1M documents;
      buckets above ``max_bucket_size`` give star pairs, linear in their size);
    * shingle sets (verify: exact): 8 bytes per shingle (~1 per word, ~1 word per 6 bytes)
      for the candidate documents (``candidate_fraction`` of the corpus; measured 0.20 at
      100k and 0.23 at 1M), read by the one worker that decides;
    * buffers: each worker's spill buffer and the frames being read (``SPILL_BYTES`` scale);
    * 0.7 GB for the interpreter, Beam, numpy and the output writer's buffers.

    Checked against the measured peaks of near-dup builds (1.0-1.5x, tests). Not included:
    what other stages of the build hold.
    """
    per_doc = 8 * bands + 150 + (4 * num_perm if verify == "estimated" else 0)
    parts = {
        "sketches": 3.0 * per_doc * docs,
        "candidate_pairs": 3.0 * 16 * bucket_pairs_per_doc * docs,
        "shingle_sets": (8 / 6) * text_bytes * candidate_fraction if verify == "exact" else 0,
        "buffers": 6.0 * SPILL_BYTES,
        "runtime": 0.7e9,
    }
    disk = 1.05 * text_bytes + parts["shingle_sets"]
    return {
        "docs": int(docs),
        "text_bytes": int(text_bytes),
        "parts_gb": {k: round(v / 1e9, 2) for k, v in parts.items()},
        "total_gb": round(sum(parts.values()) / 1e9, 2),
        "disk_gb": round(disk / 1e9, 2),
        "disk_bytes": int(disk),
    }


def free_disk_gb(folder: str) -> float | None:
    """Free space (GB) of the local file system that holds ``folder`` (or its nearest existing
    parent); ``None`` for remote paths (gs://, s3://...) or when it cannot be read."""
    import os
    import shutil

    if "://" in folder:
        return None
    path = os.path.abspath(folder)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent
    try:
        return shutil.disk_usage(path).free / 1e9
    except OSError:
        return None


def machine_memory_gb() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1e6
    except OSError:
        pass
    return None
