"""The one-table passes of ``minhash_dedup`` that only ``mode: lshbloom`` runs (one worker
holds every document's sketch: the LSHBloom index is one object by design). Pass 1
(``SketchSpill``, without ``shards``: one compact sketch per spill file) and routing
(``Apply``) are :mod:`pipelines.stages.dedup.minhash_passes`'s, shared with ``mode: lsh``;
the index itself (query, build, save) is wired in ``minhash_dedup.py``.

Memory design (see docs/dedup.md): document text never crosses a shuffle, is never grouped and
is never held by the runner; what the runner holds are spill-file paths and compact
per-document fingerprints.

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
   per candidate pair and the documents to remove (those with a smaller-id partner in this
   run, or a band key in the loaded index) -> a *decision* map ``file -> position ->
   (near_dup_of, cluster_size)`` for removed documents only, and the near-duplicate pairs
   sampled for the report. (:func:`decide` with ``mode="lsh"`` computes components and
   representatives over the one table instead; the stage never runs it, the one-table
   profile in bench/profile_minhash_memory.py does.)
5. ``Apply`` (:mod:`~pipelines.stages.dedup.minhash_passes`) routes every record of each spill
   file with the decision map as a side input.
"""

from __future__ import annotations

from dataclasses import dataclass

import apache_beam as beam
import numpy as np
from apache_beam import pvalue

from filters.lsh import candidate_pairs, component_arrays
from filters.minhash import MinHashConfig, MinHasher, exact_jaccard
from pipelines.core import progress
from pipelines.core.spill import (
    new_file_id,
    read_object,
    read_spill,
    spill_file,
    spill_file_id,
    write_object,
)
from pipelines.stages.dedup.minhash_passes import (
    CONSUMED,
    NEEDED,
    cluster_summary,
    sample_pairs,
)

INDEX_REP = "lshbloom_index"


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
        path = spill_file(self._dir, "candidates", new_file_id())
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
        want = needed.get(spill_file_id(path))
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
        out = spill_file(self._dir, "shingles", new_file_id())
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


# --------------------------------------------------------------------------- memory estimate

BUCKET_PAIRS_PER_DOC = 25  # assumed LSH bucket pairs per document (see estimate_memory)


def estimate_memory(text_bytes: int, docs: int, bands: int, num_perm: int, verify: str,
                    candidate_fraction: float = 0.25,
                    bucket_pairs_per_doc: float = BUCKET_PAIRS_PER_DOC) -> dict:
    """Peak memory model of ``mode: lshbloom`` on the local runner (bytes -> GB), see
    docs/dedup.md.

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
    from pipelines.stages.dedup.minhash_passes import SPILL_BYTES  # read at call time

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
