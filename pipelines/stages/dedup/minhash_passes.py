"""The Beam passes of ``minhash_dedup`` (both modes; ``mode: lshbloom`` adds its index: queried
in pass 1, built and saved in ``minhash_dedup.py``, which wires the passes).

No step holds state that grows with the number of input documents on one
worker (memory formulas: docs/scale.md). Document text never crosses a shuffle, is never
grouped and is never held by the runner: the local runner (FnApiRunner) keeps every
PCollection that crosses a fusion break in memory, so the records go to *spill files*
(:mod:`pipelines.core.spill`) in the first pass and every later pass streams them back; every
later pass moves paths, integer places and small arrays through the runner's shuffle, never
text. A document is its *place* ``(spill file id, position)``.

1. ``SketchSpill`` (fused with the stages before): records are buffered up to ``SPILL_BYTES``
   of text; the buffer is written to one spill file. **Record identity**: a record is the
   document at ``(spill file id, position)`` (its *place*), never its user id: records that
   share an id (two sources both numbering from 0) are distinct documents, and nothing is
   dead-lettered for sharing an id.
   Per spill file, its documents' band entries ``(band, key, position, order key)`` (22
   bytes an entry), sorted by shard ``key % S`` into one entries file -> ``(shard, (file,
   entries file, start, stop))``. ``mode: lshbloom``: also the file's band keys per band,
   for the index step in ``minhash_dedup.py`` (one band per worker: queried, then built).
2. :class:`ShardCandidates` (GroupByKey on the shard): the shard's slices of every entries
   file, sorted by (band, key, order key, place), form the LSH buckets; pairs as in
   :func:`filters.lsh.bucket_pairs` (all pairs of a bucket, or the star of its first member
   for hot and two-member buckets), oriented by place and made distinct, written to the
   shard's pairs file (sorted by the spill file of their first document) and the positions
   each spill file must describe to its needed file; out go slices of those files, keyed by
   spill file (``pairs``, ``needed``).

Large arrays never cross a shuffle: the local runner holds everything shuffled in memory until
the consumer runs, so there every slice of band entries, candidate pairs, needed positions
and (``mode: lshbloom``) band keys stays in its file and the shuffle carries a ``(path,
start, stop)`` reference (``inline_bytes`` 0); on a distributed runner a slice under 64 KB
(:func:`~pipelines.core.spill.slice_refs`'s default: many shards, 100M+ documents) travels
through the shuffle itself, which moves many small records better than storage does. The
entries, pairs and needed files are deleted after step 5.
3. :class:`CandidateSets` (CoGroupByKey of each spill file's path with its needed positions):
   the file is streamed back once and one *candidate file* is written with the needed
   documents' fingerprints (shingle-hash sets for ``verify: exact``, signatures for
   ``estimated``) and what ranks them (id, source, record hash, length, score).
4. :class:`VerifyPairs` (GroupByKey on the first document's file): reads that file's
   candidate file and, one after the other, those of the partner files (from disk, not
   through the shuffle) and keeps the pairs at or above the threshold: a spanning forest of
   the verified edges (places only), and the positions of the documents in them per spill
   file; :class:`MemberAttrs` (GroupByKey on that file) reads each clustered document's
   ranking attributes once, from its own file's candidate file.
5. :class:`Components` (one worker; memory O(verified edges), like datatrove's cluster step):
   connected components over the verified edges, one representative per component, the
   decisions grouped by spill file, the report's pair sample and the stats.
6. :class:`ApplyFile` (CoGroupByKey of each spill file's path with its own decisions and,
   ``mode: lshbloom``, its index hits): the file is streamed back and every record routed
   (kept, removed, dead letter of pass 1); its outputs fuse with the stages after it. Spill
   files are deleted after a GroupByKey once their last reader has committed.

The *order key* (64-bit hash of id, source and record hash) makes the star centre of a hot
bucket independent of batching and worker count.
"""

from __future__ import annotations

import heapq
import math
from typing import Any

import apache_beam as beam
import numpy as np
import xxhash
from apache_beam import pvalue

from filters.lsh import band_hashes, bucket_pairs, component_arrays, has_shingles
from filters.minhash import MinHashConfig, MinHasher, exact_jaccard
from pipelines.core import progress
from pipelines.core.records import dead_letter
from pipelines.core.spill import (
    SizeBuffered,
    new_file_id,
    read_object,
    read_slice,
    read_spill,
    slice_refs,
    spill_file,
    spill_file_id,
    write_object,
    write_spill,
)

DEAD, SPILL, NEEDED, CONSUMED = "dead", "spill", "needed", "consumed"
# SketchSpill(shards=S): per shard, (file, the band entries or a slice of the file's entries
# file); documents per file; the entries files (deleted once the candidates are known)
SHARDS, DOCS, SCRATCH = "shards", "docs", "scratch"
# mode lshbloom: each spill file's band keys per band (``(band, (file, keys or a slice))``);
# (file, positions) of documents found in the loaded index; index hits per spill file
BANDS, BAND_FILES, HITS, INDEX_HITS = "bands", "band_files", "hits", "index_hits"
BAND_KEY_DTYPE = np.dtype([("key", "<u8"), ("pos", "<i4")])
INDEX_REP = "lshbloom_index"  # near_dup_of of a document found in the loaded index
SPILL_BYTES = 8 << 20  # text per spill file (several files per worker: later passes spread)
SAMPLED = "sampled"
STATS, DECISIONS, MEMBERS = "stats", "decisions", "members"
ENTRY_BYTES = 22  # key 8 + order key 8 + position 4 + band 2
ENTRIES_PER_SHARD = 2_000_000  # ~44 MB of entries, ~4x that while a shard is sorted
MAX_SHARDS = 65536
UNSIZED_SHARDS = 16  # when the input size is unknown at planning (hf or remote sources)


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
    """63-bit hash of the whole record (orders records that share an id and a source): xxh3
    over each field's name and value in name order, strings as UTF-8 (``s``), other values
    by ``repr`` (``r``), so ``"1"`` and ``1`` differ. ~5 us for a 2.6 KB record (a blake2b of
    the record's ``repr`` took ~37 us: 13% of near-dup's CPU at 100k documents)."""
    h = xxhash.xxh3_64()
    for key in sorted(record, key=str):
        value = record[key]
        h.update(str(key).encode("utf-8", "surrogatepass"))
        if isinstance(value, str):
            h.update(b"\x00s")
            h.update(value.encode("utf-8", "surrogatepass"))
        else:
            h.update(b"\x00r")
            h.update(repr(value).encode("utf-8", "surrogatepass"))
        h.update(b"\x01")
    return h.intdigest() >> 1  # fits int64


def source_name(record: dict) -> str:
    src = record.get("source")
    return "" if src is None else str(src)

# --------------------------------------------------------------------------- band entries


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
    """records -> per buffer of ``spill_bytes`` of text: the path of the spill file holding
    the buffer's valid records and its dead letters (``spill``), the file's band entries per
    candidate shard (``shards``: ``(shard, (file, entries or a slice of the entries file))``),
    its document count (``docs``) and the entries file (``scratch``).

    ``band_keys`` (``mode: lshbloom``): also the file's band keys, one slice per band
    (``bands``: ``(band, (file, (key, position) rows or a reference to the file's band-keys
    file))``; the files written: ``band_files``), for the index step that queries and builds
    each band on its own worker. ``inline_bytes``: the slice size from which entries and
    band keys stay in their file (``slice_refs``'s default; 0 on the local runner, which
    would hold every inline slice in memory until its consumer runs: ``22 x bands`` bytes of
    entries per document of the corpus once the shards are many, from ~3M documents)."""

    def __init__(self, label: str, cfg: MinHashConfig, bands: int, rows: int,
                 spill_dir: str, shards: int, batch_size: int = 512,
                 spill_bytes: int = SPILL_BYTES, band_keys: bool = False,
                 inline_bytes: int | None = None):
        self._label, self._cfg, self._b, self._r = label, cfg, bands, rows
        self._dir, self._shards = spill_dir, shards
        self._batch, self._limit = batch_size, spill_bytes
        self._band_keys, self._inline = band_keys, inline_bytes
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
        and leave through ``ApplyFile``: the stage's dead output is one PCollection, not a
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
        path = spill_file(self._dir, "records", file_id)
        write_spill(path, good + [(DEAD, d) for d in dead])
        progress.counter(self, "sketched").inc(len(rows))
        progress.counter(self, "spill_files").inc()
        if good:
            sigs = np.concatenate(parts)
            keys, usable = band_hashes(sigs, self._b, self._r), has_shingles(sigs)
            okeys = np.fromiter((order_key(r["id"], source_name(r), content_hash(r))
                                 for r in good), np.int64, len(good))
            entries, parts = shard_entries(keys, usable, okeys, self._shards)
            if parts:  # large slices stay in the entries file; the shuffle carries a reference
                epath = spill_file(self._dir, "entries", file_id)
                refs, written = slice_refs(epath, entries, parts, self._inline)
                for shard, ref in refs:
                    yield pvalue.TaggedOutput(SHARDS, (shard, (file_id, ref)))
                if written:
                    yield pvalue.TaggedOutput(SCRATCH, epath)
            del entries
            yield pvalue.TaggedOutput(DOCS, len(good))
            use = np.flatnonzero(usable)
            if self._band_keys and use.size:
                bk = np.empty((self._b, use.size), BAND_KEY_DTYPE)  # band after band
                bk["key"] = keys[use].T
                bk["pos"] = use
                n = use.size
                refs, written = slice_refs(
                    spill_file(self._dir, "bandkeys", file_id), bk.reshape(-1),
                    [(band, band * n, (band + 1) * n) for band in range(self._b)],
                    self._inline)
                for band, ref in refs:
                    yield pvalue.TaggedOutput(BANDS, (band, (file_id, ref)))
                if written:  # deleted once every band has read it (after the index is saved)
                    yield pvalue.TaggedOutput(BAND_FILES, spill_file(self._dir, "bandkeys",
                                                                     file_id))
        yield pvalue.TaggedOutput(SPILL, path)


def candidate_shards(docs: int | None, bands: int) -> int:
    """Number of candidate shards: ``ceil(docs * bands / ENTRIES_PER_SHARD)`` (at least 1,
    at most ``MAX_SHARDS``), so a shard holds ~2M band entries whatever the corpus."""
    if not docs:
        return UNSIZED_SHARDS
    return int(min(MAX_SHARDS, max(1, math.ceil(docs * bands / ENTRIES_PER_SHARD))))



# --------------------------------------------------------------------------- 2. candidates


@beam.typehints.with_output_types(Any)  # tagged outputs mixed in: no inference
class ShardCandidates(beam.DoFn):
    """``(shard, [(file, entries file, start, stop)...])`` -> per spill file of a pair's
    first document: ``(file, (pairs file, start, stop))``, a slice of rows (position, partner
    file, partner position) (main); the positions each spill file must describe (``needed``:
    ``(file, (needed file, start, stop))``); the shard's bucket stats (``stats``); the files
    it wrote (``scratch``)."""

    def __init__(self, max_bucket_size: int, folder: str, inline_bytes: int | None = None):
        self._max, self._dir, self._inline = max_bucket_size, folder, inline_bytes

    def process(self, kv):
        shard, refs = kv
        refs = sorted(refs, key=lambda r: r[0])  # (file, entries or a slice): a fixed order
        parts = [read_slice(ref) for _f, ref in refs]
        ent = np.concatenate(parts) if parts else np.zeros(0, ENTRY_DTYPE)
        file = np.concatenate([np.full(len(part), f, np.int64)
                               for (f, _r), part in zip(refs, parts)])
        del parts
        band, key, okey = ent["band"], ent["key"], ent["okey"]
        pos = ent["pos"].astype(np.int64)
        del ent
        order = np.lexsort((pos, file, okey, key, band))
        band, key, okey, pos, file = band[order], key[order], okey[order], pos[order], file[order]
        del order
        n = key.size
        stats = {"hot_buckets": 0, "hot_bucket_pairs": 0, "bucket_pairs": 0, "entries": int(n)}
        if n < 2:
            progress.counter(self, "shards").inc()
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
        progress.counter(self, "shards").inc()
        yield pvalue.TaggedOutput(STATS, stats)
        if a.size == 0:
            return
        fa, pa, fb, pb = file[a], pos[a], file[b], pos[b]
        swap = (fb < fa) | ((fb == fa) & (pb < pa))
        f1, p1 = np.where(swap, fb, fa), np.where(swap, pb, pa)
        f2, p2 = np.where(swap, fa, fb), np.where(swap, pa, pb)
        pairs = np.unique(np.stack([f1, p1, f2, p2], axis=1), axis=0)  # sorted by f1
        del fa, pa, fb, pb, f1, p1, f2, p2
        # pairs and needed positions stay in this shard's files; the shuffles carry slices
        ppath = spill_file(self._dir, "pairs", shard)
        files, starts = np.unique(pairs[:, 0], return_index=True)
        stops = np.append(starts[1:], pairs.shape[0])
        refs, written = slice_refs(ppath, np.ascontiguousarray(pairs[:, 1:]),
                                   list(zip(files.tolist(), starts.tolist(), stops.tolist())),
                                   self._inline)
        yield from refs
        if written:
            yield pvalue.TaggedOutput(SCRATCH, ppath)
        ends = np.unique(np.concatenate([pairs[:, :2], pairs[:, 2:]]), axis=0)
        del pairs, refs
        npath = spill_file(self._dir, "needed", shard)
        files, starts = np.unique(ends[:, 0], return_index=True)
        stops = np.append(starts[1:], ends.shape[0])
        refs, written = slice_refs(npath, np.ascontiguousarray(ends[:, 1]),
                                   list(zip(files.tolist(), starts.tolist(), stops.tolist())),
                                   self._inline)
        for f, ref in refs:
            yield pvalue.TaggedOutput(NEEDED, (f, ref))
        if written:
            yield pvalue.TaggedOutput(SCRATCH, npath)


# --------------------------------------------------------------------------- 3. fingerprints


class CandidateSets(beam.DoFn):
    """``(file, {"path": [spill path], "needed": [(needed file, start, stop)...]})`` -> the
    path of the file's candidate file: the needed documents' positions (sorted), ids, sources, record hashes,
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
        want = np.unique(np.concatenate([read_slice(ref) for ref in needed]))
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
        out = spill_file(self._dir, "cand", file_id)
        write_object(out, entry)
        progress.counter(self, "fingerprint_files").inc()
        yield out


# --------------------------------------------------------------------------- 4. verification


ATTRS = ("ids", "src", "chash", "lens", "scores")


def _take(entry: dict, rows: np.ndarray) -> dict:
    out = {}
    for name in ATTRS:
        v = entry[name]
        out[name] = [v[k] for k in rows.tolist()] if isinstance(v, list) else v[rows]
    return out


@beam.typehints.with_output_types(Any)  # tagged outputs mixed in: no inference
class VerifyPairs(beam.DoFn):
    """``(file, [(pairs file, start, stop)...])`` + all candidate-file paths (side input:
    also the barrier that every candidate file is written) -> one batch ``{"fa", "pa", "fb",
    "pb": a spanning forest of the verified pairs, as places; "candidates", "accepted"}``
    (main) and, per spill file, the positions of its documents in verified pairs
    (``members``: ``(file, positions)``). The forest has the components of the verified
    pairs with at most one edge per document, and no document attributes travel with it
    (a document's attributes are read once, from its own file: :class:`MemberAttrs`), so
    what the one components worker receives grows with the documents in clusters, not with
    the pairs."""

    def __init__(self, verify: str, threshold: float):
        self._verify, self._thr = verify, threshold
        self._paths: dict[int, str] | None = None

    def _load(self, f: int, paths: list[str]) -> dict:
        if self._paths is None:
            self._paths = {spill_file_id(p): p for p in paths}
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
        f1, refs = kv
        rows = np.unique(np.concatenate([read_slice(ref) for ref in refs]),
                         axis=0)  # (p1, f2, p2), distinct
        rows = rows[np.argsort(rows[:, 1], kind="stable")]
        A = self._load(f1, cand_paths)
        ends: list[np.ndarray] = []  # per partner file: (f, p) of both documents
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
            del B
        accepted = sum(e.shape[0] for e in ends) // 2
        out: dict[str, Any] = {"candidates": int(rows.shape[0]), "accepted": int(accepted)}
        z = np.zeros(0, np.int64)
        if not accepted:
            progress.counter(self, "verify_files").inc()
            yield {**out, "fa": z, "pa": z, "fb": z, "pb": z}
            return
        # the pairs' documents, once each, and a spanning forest of the verified pairs
        a_side = np.concatenate(ends[0::2])
        b_side = np.concatenate(ends[1::2])
        places, inv = np.unique(np.concatenate([a_side, b_side]), axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        m = a_side.shape[0]
        comp, _ = component_arrays(places.shape[0], inv[:m], inv[m:])
        tree = np.flatnonzero(comp != np.arange(comp.size))
        progress.counter(self, "verify_files").inc()
        yield {**out, "fa": places[tree, 0], "pa": places[tree, 1],
               "fb": places[comp[tree], 0], "pb": places[comp[tree], 1]}
        files, starts = np.unique(places[:, 0], return_index=True)
        for f, positions in zip(files.tolist(), np.split(places[:, 1], starts[1:])):
            yield pvalue.TaggedOutput(MEMBERS, (f, positions))


class MemberAttrs(beam.DoFn):
    """``(file, [positions...])`` (documents of that spill file in verified pairs, from any
    verification group) + all candidate-file paths -> their ranking attributes, once each:
    ``{"f", "p" (sorted), "ids", "src", "chash", "lens", "scores"}``, read from the file's own
    candidate file."""

    def __init__(self):
        self._paths: dict[int, str] | None = None

    def process(self, kv, cand_paths):
        f, parts = kv
        pos = np.unique(np.concatenate(list(parts)))
        if self._paths is None:  # once per DoFn instance, not once per file (O(F^2))
            self._paths = {spill_file_id(p): p for p in cand_paths}
        entry = read_object(self._paths[f])
        rows = np.searchsorted(entry["pos"], pos)
        yield {"f": f, "p": pos, **_take(entry, rows)}


# --------------------------------------------------------------------------- 5. components


def _sum_stats(parts: list[dict]) -> dict:
    out: dict[str, int] = {}
    for st in parts:
        for k, v in st.items():
            out[k] = out.get(k, 0) + int(v)
    return out


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



@beam.typehints.with_output_types(Any)  # tagged outputs mixed in: no inference
class Components(beam.DoFn):
    """All verified-pair batches (one list of spanning forests over places: O(documents in
    clusters) edges per verification group) + the clustered documents' attributes (one entry
    per spill file, each document once) + candidate-file paths + shard stats + document count
    -> decisions per spill file (``decisions``: ``(file,
    {position: (near_dup_of or None, cluster size)})``), the summary ``{"sample", "stats"}``
    (main) and the candidate files, now consumed (``consumed``)."""

    def __init__(self, keep: str, samples: int, seed: int):
        self._keep, self._k, self._seed = keep, samples, seed

    def process(self, batches, members, cand_paths, shard_stats, docs, scratch=()):
        candidates = sum(b["candidates"] for b in batches)
        accepted = sum(b["accepted"] for b in batches)
        z = np.zeros(0, np.int64)
        members = sorted(members, key=lambda m: m["f"])  # one entry per spill file
        pf = np.concatenate([np.full(m["p"].size, m["f"], np.int64) for m in members]) \
            if members else z
        pp = np.concatenate([m["p"] for m in members]) if members else z
        places = np.stack([pf, pp], axis=1)  # sorted by (file, position), each once
        n = places.shape[0]
        ids = [x for m in members for x in m["ids"]]
        src = (np.array([x for m in members for x in m["src"]], dtype=object).astype(str)
               if n else np.zeros(0, str))
        chash, lens, scores = (
            np.concatenate([m[name] for m in members]).astype(dtype) if members
            else np.zeros(0, dtype)
            for name, dtype in (("chash", np.int64), ("lens", np.int64), ("scores", np.float64)))
        del members
        ends = [np.concatenate([b[k] for b in batches]) if batches else z
                for k in ("fa", "pa", "fb", "pb")]
        del batches
        # edge ends -> indices into the places (every end is a member of its file)
        _, inv = np.unique(np.concatenate([places, np.stack(ends[:2], axis=1),
                                           np.stack(ends[2:], axis=1)]),
                           axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        m = ends[0].size
        ai, aj = inv[n:n + m], inv[n + m:]
        del ends, inv
        comp, size = component_arrays(n, ai, aj)
        # rank: (id, source, record hash, place): "lowest id" is the lowest rank
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
        progress.counter(self, "components").inc()
        yield {"sample": sample, "stats": stats}
        for path in [*cand_paths, *scratch]:
            yield pvalue.TaggedOutput(CONSUMED, path)


# --------------------------------------------------------------------------- 6. apply


def sampled_record(mh: MinHasher, rec: dict, text_chars: int) -> dict:
    """What the report's pair sample keeps of a record: the text cut to ``text_chars``, its
    length, its shingle-hash set and its signature."""
    text = rec["text"]
    sigs, sets = mh.signatures_and_shingles([text])
    return {"id": rec["id"], "text": text[:text_chars], "chars": len(text),
            "shingles": sets[0], "sig": sigs[0]}


@beam.typehints.with_output_types(Any)  # tagged outputs mixed in: no inference
class ApplyFile(beam.DoFn):
    """``(file, {"path": [spill path], "dec": [its decisions], "hits": [positions...]})``
    + the report's sample -> the records of that spill file: kept (main), removed
    (``removed``), dead letters of ``SketchSpill`` (``dead``), the records of the report's
    pair sample (``sampled``: ``(place, sampled_record)``) and the file's path once it has
    been read (``consumed``). Records are looked up by place (spill file, position), never by
    id. ``hits`` (``mode: lshbloom``, one array per band that found any): documents found in
    the loaded index are removed with ``near_dup_of`` = ``lshbloom_index``, whatever this run
    decided for them; their number per file goes to ``index_hits``."""

    def __init__(self, label: str, reason: str, cfg: MinHashConfig | None = None,
                 text_chars: int = 20_000):
        self._label, self._reason = label, reason
        self._cfg, self._chars = cfg, text_chars
        self._mh: MinHasher | None = None

    def process(self, kv, sample):
        file_id, grouped = kv
        paths, decs = list(grouped["path"]), list(grouped["dec"])
        if not paths:
            return
        mine = dict(decs[0]) if decs else {}
        hits = grouped.get("hits", ())
        if hits:  # from each band that found some of the file's documents in the index
            found = np.unique(np.concatenate(list(hits))).tolist()
            for pos in found:
                mine[pos] = (INDEX_REP, (mine.get(pos) or (None, 1))[1])
            yield pvalue.TaggedOutput(INDEX_HITS, len(found))
        yield from self.route(paths[0], mine, sample["places"])

    def route(self, path: str, mine: dict, places):
        """Stream one spill file and route its records; ``mine``: position -> decision
        ``(near_dup_of or None, cluster size)`` of the clustered documents of this file;
        ``places``: the report sample's places."""
        file_id = spill_file_id(path)
        places = places if self._cfg is not None else ()
        for pos, rec in enumerate(read_spill(path)):
            if isinstance(rec, tuple):  # (DEAD, row): dead-lettered by SketchSpill
                yield pvalue.TaggedOutput(DEAD, rec[1])
                continue
            near, size = mine.get(pos) or (None, 1)
            out = dict(rec)
            out.update(near_dup_of=near, dup_cluster_size=size)
            if places and (file_id, pos) in places:
                if self._mh is None:
                    self._mh = MinHasher(self._cfg)
                yield pvalue.TaggedOutput(SAMPLED, ((file_id, pos),
                                                    sampled_record(self._mh, rec, self._chars)))
            if near is not None:
                yield pvalue.TaggedOutput("removed", (self._reason, out))
            else:
                yield out
        progress.counter(self, "route_files").inc()
        yield pvalue.TaggedOutput(CONSUMED, path)


# --------------------------------------------------------------------------- memory model

PAIRS_PER_DOC = 25.0  # LSH bucket pairs per document assumed at planning (see below)
PAIR_BYTES = 140  # a bucket pair while a shard orients and dedupes them (ends, places, copies)
NODE_BYTES = 400  # a clustered document on the components worker (place, attributes, forest)
CLUSTERED_FRACTION = 0.2  # documents in clusters assumed at planning
RUNTIME_BYTES = 0.37e9  # a worker process with Beam, numpy and pyarrow loaded (measured)


def estimate_memory(text_bytes: int, docs: int, bands: int, num_perm: int, verify: str,
                    shards: int, pairs_per_doc: float = PAIRS_PER_DOC,
                    clustered_fraction: float = CLUSTERED_FRACTION,
                    index_band_bytes: int = 0) -> dict:
    """Peak memory of ``minhash_dedup`` on the local runner, where every step runs in one
    process one after the other (bytes -> GB; docs/scale.md gives the per-worker formulas of
    a distributed run). The band entries and candidate pairs stay in files (only
    ``(path, start, stop)`` slices are shuffled), so the peak is the process's runtime plus
    the largest of its phases, each one shard's, file's or group's share:

    * ``shard``: the largest shard while sorted (4 copies of ``22 * bands * docs / shards``
      bytes) and its LSH bucket pairs, ``pairs_per_doc`` per document before they are made
      distinct (the bench corpora, with hot clusters of up to ~1,000 copies: 3.3 at 100k,
      ~22 at 1M), ``PAIR_BYTES`` each;
    * ``verify``: two candidate files at a time (``8 / 6`` of a spill file's text);
    * ``components``: ``NODE_BYTES`` per clustered document (the attributes of each once,
      and spanning-forest edges);
    * ``route_write``: the sink's sort buffer (64 MB of pickled rows with their keys, and the
      allocator's slack: ~1.5x) and one Parquet row group being written (~3x
      ``ROW_GROUP_BYTES`` of text: Arrow table, encoded pages, one batch of rows), calibrated on
      the 100k near-dup build (0.56 GB peak, docs/scale.md);

    plus read/spill buffers, and for ``mode: lshbloom`` one band of the index
    (``index_band_bytes``: ``bits / 8``, sized by ``expected_docs``, not by this run) twice:
    each band is queried and built on its own (one band in memory), and the save merges one
    band of ``index_in`` with one band of this run's at a time. Nothing grows with the text
    per document, and only the ``shard`` and ``components`` phases grow with the corpus (per
    shard: fixed by the shard count; clustered documents: one worker). The text, entries and
    pairs are on disk (``disk_gb``).
    """
    from pipelines.io.sinks import ROW_GROUP_BYTES, SPILL_BYTES as SINK_BYTES

    entries = ENTRY_BYTES * bands * docs
    pairs = pairs_per_doc * docs
    phases = {
        "shard": 4.0 * entries / max(1, shards) + PAIR_BYTES * pairs / max(1, shards),
        "verify": 2 * (8 / 6) * SPILL_BYTES if verify == "exact" else (
            2 * 4 * num_perm * SPILL_BYTES / 2000 if verify == "estimated" else 0),
        "components": NODE_BYTES * clustered_fraction * docs,
        "route_write": 1.5 * SINK_BYTES + 3.0 * ROW_GROUP_BYTES,
    }
    parts = {
        "largest_phase": max(phases.values()),
        "buffers": 6.0 * SPILL_BYTES,
        "runtime": RUNTIME_BYTES,
    }
    if index_band_bytes:
        parts["index"] = 2.0 * index_band_bytes
    disk = 1.05 * text_bytes + entries + 32 * pairs + (8 / 6) * text_bytes * \
        clustered_fraction * (1 if verify == "exact" else 0)
    return {
        "docs": int(docs), "text_bytes": int(text_bytes), "shards": int(shards),
        "phases_gb": {k: round(v / 1e9, 2) for k, v in phases.items()},
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
