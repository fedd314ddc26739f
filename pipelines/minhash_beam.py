"""Beam pieces of near-duplicate removal (used by ``pipelines/stages/minhash_dedup.py``).

Memory design (see docs/dedup.md): document text never crosses a shuffle and is never grouped.

1. ``Sketch``: per batch of records, one compact *sketch* element: ids, ``b`` band keys per
   document (8 bytes each), text length, score, an 8-byte content hash (only used to pick among
   records that share an id) and, for ``verify: estimated``, the signatures.
2. ``AllSketches`` gathers the sketches (``b * 8 + ~100`` bytes per document) on one worker;
   :func:`build_table` sorts the ids (document index = rank of the id, so "lowest id" is
   "lowest index" and nothing depends on batching or worker count) and
   :func:`filters.lsh.candidate_pairs` turns the band keys into distinct candidate pairs of
   integer indices with numpy sorts.
3. ``verify: exact``: a second pass over the records computes the shingle-hash sets of the
   *candidate* documents only (a side input names them), ``8 * shingles`` bytes each; the final
   step computes their exact Jaccard per candidate pair.
4. Components (``scipy.sparse.csgraph``) and representatives -> a *decision* map
   ``id -> (near_dup_of, cluster_size)`` for clustered documents only.
5. ``Apply``: a Map over the held batches with the decision map as a side input. Only records
   whose id occurs twice (a data error) are grouped by id, to dead-letter the extras
   deterministically.

The records are read again after a global step, so the local runner must hold them between
the passes: the stage holds its input *batches*, zstd-compressed (``hold: zstd``, ~3x smaller
than the text), and the raw records PCollection is consumed only inside the first fused step.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import pickle
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam import pvalue

from filters.components import component_arrays
from filters.lsh import band_hashes, candidate_pairs, has_shingles
from filters.minhash import MinHashConfig, MinHasher, exact_jaccard
from pipelines.records import dead_letter

DEAD, DUPID, STATS = "dead", "dupid", "stats"
INDEX_REP = "lshbloom_index"


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
    """64-bit hash of the whole record (picks one record among records sharing an id)."""
    h = hashlib.blake2b(repr(sorted(record.items(), key=lambda kv: str(kv[0]))).encode(
        "utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(h.digest(), "little") >> 1  # fits int64


# --------------------------------------------------------------------------- held batches


def pack(batch: list, level: int = 1) -> bytes:
    """A batch of records as one zstd-compressed pickle: what the runner holds between the first
    pass and the later ones (text compresses ~3x; zstd level 1 runs at several hundred MB/s)."""
    import zstandard

    return zstandard.ZstdCompressor(level=level).compress(
        pickle.dumps(list(batch), protocol=pickle.HIGHEST_PROTOCOL))


def unpack(held) -> list:
    """Inverse of :func:`pack`; a plain list (``hold: plain``) passes through."""
    if isinstance(held, (bytes, bytearray)):
        import zstandard

        return pickle.loads(zstandard.ZstdDecompressor().decompress(held))
    return held


# --------------------------------------------------------------------------- 1. sketches


class Sketch(beam.DoFn):
    """Batch of records -> one sketch dict (main) and dead letters (``dead``)."""

    def __init__(self, label: str, cfg: MinHashConfig, bands: int, rows: int,
                 with_sig: bool, score_column: str | None):
        self._label, self._cfg, self._b, self._r = label, cfg, bands, rows
        self._with_sig, self._score = with_sig, score_column
        self._mh: MinHasher | None = None

    def setup(self) -> None:
        self._mh = MinHasher(self._cfg)

    def process(self, batch: list[dict]):
        assert self._mh is not None
        good, failed = [], []
        for rec in batch:
            problem = record_problem(rec)
            if problem:
                yield pvalue.TaggedOutput(DEAD, dead_letter(self._label, problem, rec))
            else:
                good.append(rec)
        if not good:
            return
        try:
            sigs = self._mh.signatures([r["text"] for r in good])
        except Exception:  # noqa: BLE001 - isolate failing records one by one
            ok, rows = [], []
            for r in good:
                try:
                    rows.append(self._mh.signatures([r["text"]])[0])
                    ok.append(r)
                except Exception as e:  # noqa: BLE001
                    failed.append(r["id"])
                    yield pvalue.TaggedOutput(
                        DEAD, dead_letter(self._label, f"exception: {type(e).__name__}: {e}", r))
            good = ok
            sigs = np.stack(rows) if rows else np.zeros((0, self._cfg.num_perm), np.uint32)
        yield {
            "ids": [r["id"] for r in good],
            "keys": band_hashes(sigs, self._b, self._r) if len(good) else
            np.zeros((0, self._b), np.uint64),
            "usable": has_shingles(sigs) if len(good) else np.zeros(0, bool),
            "lens": np.fromiter((len(r["text"]) for r in good), np.int64, len(good)),
            "scores": np.fromiter((score_of(r, self._score) for r in good), np.float64,
                                  len(good)),
            "chash": np.fromiter((content_hash(r) for r in good), np.int64, len(good)),
            "sigs": sigs if self._with_sig else None,
            "failed": failed,
        }


# --------------------------------------------------------------------------- 2. table


@dataclass
class DocTable:
    """All documents' compact fingerprints, indexed by the rank of their id."""

    ids: list[str]
    keys: np.ndarray  # (n, b) uint64
    usable: np.ndarray  # (n,) bool
    lens: np.ndarray
    scores: np.ndarray
    chash: np.ndarray  # content hash of the record chosen for each id
    sigs: np.ndarray | None
    dup_ids: dict[str, int] = field(default_factory=dict)  # id -> chosen content hash
    failed: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.ids)

    def nbytes(self) -> int:
        arrays = [self.keys, self.usable, self.lens, self.scores, self.chash]
        if self.sigs is not None:
            arrays.append(self.sigs)
        return int(sum(a.nbytes for a in arrays) + sum(49 + len(s) for s in self.ids))


def build_table(sketches: list[dict], bands: int, num_perm: int) -> DocTable:
    """Concatenate sketches; one row per distinct id (the record with the smallest content
    hash when an id repeats), rows sorted by id."""
    sketches = [s for s in sketches if s["ids"]] or []
    failed = sorted(x for s in sketches for x in s["failed"])
    if not sketches:
        z = np.zeros(0, np.int64)
        return DocTable([], np.zeros((0, bands), np.uint64), np.zeros(0, bool), z, z.astype(
            np.float64), z, None, {}, failed)
    ids = [x for s in sketches for x in s["ids"]]
    chash = np.concatenate([s["chash"] for s in sketches])
    arr = np.array(ids, dtype=object)
    order = np.lexsort((chash, arr.astype(str)))  # by id, then content hash
    sorted_ids = arr[order]
    first = np.ones(len(ids), dtype=bool)
    first[1:] = sorted_ids[1:] != sorted_ids[:-1]
    dup_ids = {}
    if not first.all():
        rep = np.flatnonzero(~first)
        for k in rep:
            rid = sorted_ids[k]
            dup_ids[rid] = None
        for k in np.flatnonzero(first):
            rid = sorted_ids[k]
            if rid in dup_ids:
                dup_ids[rid] = int(chash[order[k]])
    sel = order[first]

    def cat(name):
        return np.concatenate([s[name] for s in sketches])[sel]

    sigs = cat("sigs") if sketches[0]["sigs"] is not None else None
    return DocTable(list(sorted_ids[first]), cat("keys"), cat("usable"), cat("lens"),
                    cat("scores"), chash[sel], sigs, dup_ids, failed)


@dataclass
class Candidates:
    table: DocTable
    i: np.ndarray
    j: np.ndarray
    stats: dict

    def needed(self) -> dict[str, tuple[int, int]]:
        """id -> (document index, content hash) of every document in a candidate pair."""
        docs = np.unique(np.concatenate([self.i, self.j]))
        t = self.table
        return {t.ids[k]: (int(k), int(t.chash[k])) for k in docs.tolist()}


def find_candidates(table: DocTable, max_bucket_size: int, star_only: bool) -> Candidates:
    sub = np.flatnonzero(table.usable)
    i, j, st = candidate_pairs(table.keys[sub], max_bucket_size, star_only)
    st = {**st, "candidate_pairs": int(i.size), "docs": table.n,
          "sketch_bytes": table.nbytes()}
    return Candidates(table, sub[i], sub[j], st)


# --------------------------------------------------------------------------- 3. shingle sets


class CandidateShingles(beam.DoFn):
    """Batch of records -> (indices, concatenated sorted shingle sets, counts) for the records
    the side input names (candidate documents; for a repeated id, the chosen record only)."""

    def __init__(self, cfg: MinHashConfig):
        self._cfg = cfg
        self._mh: MinHasher | None = None

    def setup(self) -> None:
        self._mh = MinHasher(self._cfg)

    def process(self, held, needed: dict):
        assert self._mh is not None
        idx, texts = [], []
        for rec in unpack(held):
            if record_problem(rec):
                continue
            hit = needed.get(rec["id"])
            if hit is None:
                continue
            k, ch = hit
            if ch != content_hash(rec):
                continue  # another record with this id was chosen
            idx.append(k)
            texts.append(rec["text"])
        if not texts:
            return
        sets = self._mh.shingle_sets(texts)
        counts = np.fromiter((s.size for s in sets), np.int64, len(sets))
        yield (np.array(idx, np.int64), np.concatenate(sets), counts)


# --------------------------------------------------------------------------- 4. decisions


def _verify(c: Candidates, verify: str, threshold: float, shingles: list | None):
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
    for idx, flat, counts in shingles or []:
        offs = np.concatenate(([0], np.cumsum(counts)))
        for n, k in enumerate(idx.tolist()):
            sets[k] = flat[offs[n] : offs[n + 1]]
        nbytes += flat.nbytes
    ok = np.fromiter(
        (exact_jaccard(sets[a], sets[b]) >= threshold for a, b in zip(i.tolist(), j.tolist())),
        dtype=bool, count=i.size)
    return ok, nbytes


def _cluster_summary(sizes: np.ndarray, top: int = 10) -> dict:
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
           shingles: list | None = None, hits: list[str] | None = None) -> dict:
    """Candidates (+ shingle sets, index hits) -> {"assign", "dup_ids", "failed", "stats"}.

    ``assign``: id -> (near_dup_of or None, cluster size) for every clustered document (lsh)
    or every removed one (lshbloom, size None). Documents absent from it are kept, size 1."""
    t = c.table
    ok, set_bytes = _verify(c, verify, threshold, shingles)
    ai, aj = c.i[ok], c.j[ok]
    stats = {"edges": {**c.stats, "accepted_pairs": int(ok.sum()), "edges": int(ok.sum()),
                       "shingle_set_bytes": set_bytes}}
    assign: dict[str, tuple] = {}
    if mode == "lshbloom":
        dup_of = np.full(t.n, t.n, dtype=np.int64)
        np.minimum.at(dup_of, aj, ai)
        for k in np.flatnonzero(dup_of < t.n).tolist():
            assign[t.ids[k]] = (t.ids[int(dup_of[k])], None)
        within = len(assign)
        hit_set = set(hits or [])
        for rid in hit_set:
            assign[rid] = (INDEX_REP, None)
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
        for k in members.tolist():
            rep = rep_of_comp[int(comp[k])]
            assign[t.ids[k]] = (None if rep == k else t.ids[rep], int(size[k]))
        stats["clusters"] = _cluster_summary(size[members])
        stats["components"] = {"cc_edges": int(ai.size), "cc_path": "scipy_connected_components"}
    return {"assign": assign, "dup_ids": t.dup_ids, "failed": set(t.failed), "stats": stats}


# --------------------------------------------------------------------------- 5. apply


def _annotate(rec: dict, dec: dict, with_sizes: bool):
    near, size = dec["assign"].get(rec["id"], (None, 1))
    out = dict(rec)
    out.update(near_dup_of=near, dup_cluster_size=size if with_sizes else None)
    return out


class Apply(beam.DoFn):
    """Held batches + decision map -> kept (main), removed (``removed``); records of repeated
    ids go to ``dupid`` keyed by id (they are few), invalid records are dropped (dead-lettered
    by ``Sketch``).

    With ``packed`` the kept and removed records of a batch leave as one :func:`pack`-ed
    element each (unpack with ``FlatMap(unpack)``): the stage's kept output is the Flatten of
    this step's and the repeated-id step's, which the local runner holds in memory until both
    are done, so it holds them compressed (~3x smaller) instead of as records."""

    def __init__(self, reason: str, with_sizes: bool, packed: bool = False):
        self._reason, self._sizes, self._packed = reason, with_sizes, packed

    def process(self, held, dec):
        out = _Packer(self._packed)
        for rec in unpack(held):
            if record_problem(rec):
                continue
            rid = rec["id"]
            if rid in dec["dup_ids"]:
                yield pvalue.TaggedOutput(DUPID, (rid, rec))
            elif rid not in dec["failed"]:
                yield from out.add(emit(rec, dec, self._reason, self._sizes))
        yield from out.flush()


class _Packer:
    """Collects kept / ``removed`` outputs and emits each list as one packed element
    (``packed``), or passes them through unchanged."""

    def __init__(self, packed: bool):
        self._packed, self._kept, self._removed = packed, [], []

    def add(self, outputs):
        for o in outputs:
            if not self._packed:
                yield o
            elif isinstance(o, pvalue.TaggedOutput):
                self._removed.append(o.value)
            else:
                self._kept.append(o)

    def flush(self):
        if self._kept:
            yield pack(self._kept)
        if self._removed:
            yield pvalue.TaggedOutput("removed", pack(self._removed))
        self._kept, self._removed = [], []


def emit(rec: dict, dec: dict, reason: str, with_sizes: bool):
    out = _annotate(rec, dec, with_sizes)
    if out["near_dup_of"] is not None:
        yield pvalue.TaggedOutput("removed", (reason, out))
    else:
        yield out


class ApplyDupIds(beam.DoFn):
    """(id, records sharing it) -> the chosen record (decided like the others), dead letters."""

    def __init__(self, label: str, reason: str, with_sizes: bool, packed: bool = False):
        self._label, self._reason, self._sizes = label, reason, with_sizes
        self._packed = packed  # kept / removed as packed one-record lists, like Apply's

    def process(self, kv, dec):
        rid, recs = kv
        chosen = dec["dup_ids"][rid]
        recs = sorted(recs, key=lambda r: (content_hash(r) != chosen, content_hash(r),
                                           repr(sorted(r.items(), key=lambda x: str(x[0])))))
        first = recs[0]
        for extra in recs[1:]:
            yield pvalue.TaggedOutput(DEAD, dead_letter(
                self._label, "duplicate_id: another record has the same id", extra))
        if content_hash(first) == chosen and rid not in dec["failed"]:
            out = _Packer(self._packed)
            yield from out.add(emit(first, dec, self._reason, self._sizes))
            yield from out.flush()


def json_safe(x):
    return json.loads(json.dumps(x, default=str))


# --------------------------------------------------------------------------- memory estimate

_EXPANSION = {".gz": 4.0, ".zst": 5.0, ".bz2": 5.0, ".parquet": 3.0}
_SAMPLE = 4 << 20


def input_size(sources) -> tuple[int | None, int | None]:
    """(uncompressed bytes, documents) of the configured file sources, estimated at planning
    time from file sizes (compressed files: typical ratios) and, for plain JSONL, the line
    density of the first 4 MiB. ``(None, None)`` when a source cannot be sized (hf, remote)."""
    from pipelines.sources import expand_files

    total, docs = 0, 0
    for i, src in enumerate(sources):
        if src.type not in ("jsonl", "parquet", "demo_corpus"):
            return None, None
        try:
            files, _skipped = expand_files(src, i)
        except Exception:  # noqa: BLE001 - sizing is best effort; reading reports real errors
            return None, None
        for f in files:
            ext = next((e for e in _EXPANSION if f.path.endswith(e)), None)
            size = int(f.size * (_EXPANSION[ext] if ext else 1.0))
            total += size
            lines = None
            if ext is None and "://" not in f.path:
                try:
                    with open(f.path, "rb") as fh:
                        head = fh.read(_SAMPLE)
                    if head:
                        lines = max(1, head.count(b"\n")) * f.size / len(head)
                except OSError:
                    pass
            docs += int(lines if lines is not None else size / 1000)
    return total, docs


GLOBAL_STEP_BYTES_PER_DOC = 9_000  # calibrated on measured peaks, see estimate_memory


def estimate_memory(text_bytes: int, docs: int, bands: int, num_perm: int, verify: str,
                    candidate_fraction: float = 0.25, hold: str = "zstd") -> dict:
    """Peak memory model of the stage on the local runner (bytes -> GB), see docs/dedup.md.

    * held batches: the input batches, kept by the runner until the last pass: ~0.4 x the text
      with ``hold: zstd``, ~1.2 x with ``hold: plain``;
    * sketches: per document ``8 * bands`` band-key bytes, ~150 bytes of id/length/score/hash and
      (verify: estimated) ``4 * num_perm`` signature bytes, twice (gathered list + table);
    * shingle sets (verify: exact): 8 bytes per shingle (~1 per word, ~1 word per 6 bytes) for
      the candidate documents (``candidate_fraction`` of the corpus);
    * output: the kept + removed records leave ``Apply`` through a Flatten that the runner
      holds until the step is done, packed like the held batches (same factor);
    * 0.6 GB for the interpreter, Beam and numpy;
    * global steps (``Candidates`` -> ``Decide`` on one worker): *measured, not modelled*:
      ``GLOBAL_STEP_BYTES_PER_DOC`` per document, the smallest round figure at or above the
      residual of the parts above at every size measured (bench/README.md §9: 1.50 GB at 100k,
      4.23 GB at 300k, 11.44 GB at 1M documents of 2.75 KB with ~12% near duplicates and hot
      clusters of ~1,000). It grows with candidate pairs more than with documents, so a corpus
      with more duplication than that can still exceed the estimate.

    Not included: what the rest of the build holds (e.g. the output writer).
    """
    per_doc = 8 * bands + 150 + (4 * num_perm if verify == "estimated" else 0)
    parts = {
        "held_batches": (0.4 if hold == "zstd" else 1.2) * text_bytes,
        "output": (0.4 if hold == "zstd" else 1.2) * text_bytes,
        "sketches": 2.0 * per_doc * docs,
        "shingle_sets": (8 / 6) * text_bytes * candidate_fraction if verify == "exact" else 0,
        "runtime": 0.6e9,
        "global_steps": GLOBAL_STEP_BYTES_PER_DOC * docs,
    }
    return {
        "docs": int(docs),
        "text_bytes": int(text_bytes),
        "parts_gb": {k: round(v / 1e9, 2) for k, v in parts.items()},
        "total_gb": round(sum(parts.values()) / 1e9, 2),
    }


def machine_memory_gb() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1e6
    except OSError:
        pass
    return None
