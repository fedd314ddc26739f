"""Stage ``minhash_dedup``: near-duplicate removal with MinHash LSH (see docs/dedup.md).

Records go to spill files; their band keys are sharded by key through the runner's shuffle ->
candidate pairs per shard -> verified by exact (default, shingle sets of the candidate
documents only) or estimated Jaccard, per spill file, from disk -> connected components over a
spanning forest of the verified pairs (the one single-worker step; memory grows with the
documents in clusters) -> one representative per component (lowest id, longest text or
highest score); the other members are removed with reason ``near_duplicate`` and column
``near_dup_of`` = the representative's id. Text never crosses a shuffle and waits on disk
between the passes; decisions reach the records joined to their spill file by key. Data flow:
``pipelines/stages/dedup/minhash_passes.py``; memory formulas: docs/scale.md.

A document is its place in a spill file, not its id: records that share an id (two sources
numbering from 0) are distinct documents and are never dead-lettered for it; ids are not
rewritten. Survivors are ranked by (id, source, record hash): docs/dedup.md, "Equal ids".

Hot keys: a bucket with more than ``max_bucket_size`` members gives only the pairs of one
member (the smallest hash of id, source and record hash) with each other member (work linear
in its size).

``mode: lshbloom``: incremental dedup (LSHBloom, Khan et al. 2024) on the same passes. A
document is also a near-duplicate when one of its band keys is in the loaded index
(``index_in``, e.g. last month's crawl). The index is handled band by band: pass 1 sends each
spill file's keys per band, one worker per band reads that band of ``index_in`` alone, queries
the run's keys (the hits are joined to their spill file with the run's decisions) and inserts
them, and the save streams the bands into ``index_out`` one at a time.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from typing import Any, Literal

import apache_beam as beam
import numpy as np
from apache_beam import pvalue
from pydantic import Field, model_validator

from filters.lsh import BloomIndex, check_compatible, lsh_summary, optimal_params
from filters.minhash import MinHashConfig
from pipelines.core import progress
from pipelines.core.combine import combine_parts
from pipelines.stages.dedup import minhash_passes as mb
from pipelines.stages.dedup.minhash_passes import candidate_shards
from pipelines.core.runner import is_local
from pipelines.core.settings import ConfigError
from pipelines.core.spill import (
    DeleteFiles,
    read_object,
    read_slice,
    spill_file,
    spill_file_id,
    write_object,
)
from pipelines.stages.base import (KEPT, Stage, StageResult, check_score_column, params_from,
                                   planned_input_size)
from pipelines.stages.registry import register_stage

_LOG = logging.getLogger(__name__)
REASON = "near_duplicate"


class MinHashDedupParams(params_from(MinHashConfig)):
    stage: Literal["minhash_dedup"]
    threshold: float = Field(default=0.8, gt=0.0, lt=1.0, description="Jaccard threshold.")
    bands: int | None = Field(default=None, ge=1, description="Override the chosen b (with rows).")
    rows: int | None = Field(default=None, ge=1, description="Override the chosen r (with bands).")
    fp_weight: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="(b, r) choice: weight of the false-positive area (datasketch uses 0.5). "
        "Low because verification rejects false candidates.",
    )
    fn_weight: float = Field(
        default=0.9, ge=0.0, le=1.0, description="(b, r) choice: weight of the false-negative area."
    )
    keep: Literal["lowest_id", "longest", "highest_score"] = Field(
        default="lowest_id", description="Which member of a cluster survives."
    )
    score_column: str | None = Field(default=None, description="Column for keep=highest_score.")
    verify: Literal["estimated", "exact", "none"] = Field(
        default="exact",
        description="Check candidate pairs before linking them: Jaccard of the shingle-hash sets "
        "of the candidate documents (exact; 8 bytes per shingle of each candidate document), "
        "signature agreement (estimated; 4 bytes per permutation for every document, less "
        "precise near the threshold) or none.",
    )
    mode: Literal["lsh", "lshbloom"] = "lsh"
    index_in: str | None = Field(default=None, description="lshbloom: index file to dedup against.")
    index_out: str | None = Field(default=None, description="lshbloom: where to write the index.")
    expected_docs: int | None = Field(
        default=None, ge=1, description="lshbloom: documents the new index must hold (sizing)."
    )
    index_fp_rate: float = Field(
        default=1e-6,
        gt=0.0,
        lt=0.1,
        description="lshbloom: false-positive rate of each band filter.",
    )
    max_bucket_size: int = Field(
        default=1000, ge=2, description="Buckets larger than this take the hot-key (star) path."
    )
    max_memory_gb: float | None = Field(
        default=None,
        gt=0,
        description="Fail at planning when the stage's memory estimate exceeds this (default: "
        "the machine's total memory; a warning is logged above half of it).",
    )
    batch_size: int = Field(default=512, ge=1, le=100_000, description="Docs per signature batch.")
    candidate_shards: int | None = Field(
        default=None, ge=1, le=65536,
        description="mode lsh: shards of the band entries (each sorted into buckets by one "
        "worker). Unset: ceil(documents * bands / 2,000,000) from the input size at planning "
        "(16 when it is unknown), so a shard holds ~2M entries (~44 MB) whatever the corpus.")

    @model_validator(mode="before")
    @classmethod
    def _removed_fields(cls, data):
        if isinstance(data, dict) and "hold" in data:
            raise ValueError(
                f"'hold' ({data['hold']!r}) was removed: the stage now writes its input to "
                "spill files under the output folder's _staging/ instead of holding it in "
                "memory, so there is nothing to choose. Fix: delete the 'hold' line.")
        return data

    @model_validator(mode="after")
    def _check(self):
        if (self.bands is None) != (self.rows is None):
            raise ValueError("set both 'bands' and 'rows', or neither (then they are optimized)")
        if self.bands is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(
                f"bands * rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}"
            )
        if self.fp_weight + self.fn_weight <= 0:
            raise ValueError("fp_weight + fn_weight must be > 0")
        if self.keep == "highest_score" and not self.score_column:
            raise ValueError("keep: highest_score needs 'score_column' (the column to maximize)")
        if self.mode == "lshbloom":
            if self.index_in is None and self.expected_docs is None:
                raise ValueError(
                    "mode: lshbloom needs 'expected_docs' to size a new index "
                    "(or 'index_in' to extend an existing one)"
                )
        elif self.index_in or self.index_out:
            raise ValueError("'index_in'/'index_out' are only used with mode: lshbloom")
        return self


def inline_limit(ctx) -> int | None:
    """Slices of band entries, pairs and keys from this size on stay in their files (the
    shuffle carries a reference): 0 on the local runner, which holds whatever crosses a
    shuffle in memory until its consumer runs (and when the build's runner is unknown, as in
    a stage run alone); ``None`` (``slice_refs``'s 64 KB) elsewhere, where many small slices
    move better through the shuffle than through storage."""
    runner = getattr(ctx.config, "runner", None)
    return 0 if runner is None or is_local(runner) else None


def read_index_params(path: str):
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path) as f:
        return BloomIndex.load_params(f)


@beam.typehints.with_output_types(Any)  # tagged outputs mixed in: no inference
class _BandIndex(beam.DoFn):
    """``(band, [(file, band keys or a slice)...])`` -> that band of the index, on its own
    worker: the band's filter of ``index_in`` (read alone, one seek) answers for every
    document of the run (``hits``: ``(file, positions)``), then the run's keys are inserted
    and the band is written to the spill folder -> ``(band, path, documents inserted)``
    (main). Memory: one band's filter, ``bits / 8`` bytes, and one slice of keys at a time."""

    def __init__(self, params, index_in: str | None, folder: str):
        self._params, self._in, self._dir = params, index_in, folder

    def process(self, kv):
        band, refs = kv
        refs = sorted(refs, key=lambda r: r[0])  # by spill file: a fixed order
        one = dataclasses.replace(self._params, bands=1)
        if self._in is not None:
            from apache_beam.io.filesystems import FileSystems

            with FileSystems.open(self._in) as f:
                _, _, row = BloomIndex.load_band(f, band)
            filt = BloomIndex(one, row[None, :])
            for file_id, ref in refs:  # every query before any insert: against index_in only
                part = read_slice(ref)
                hit = filt.contains(part["key"][:, None])[:, 0]
                if hit.any():
                    yield pvalue.TaggedOutput(mb.HITS,
                                              (file_id, part["pos"][hit].astype(np.int64)))
        else:
            filt = BloomIndex(one)
        for _file_id, ref in refs:
            filt.insert(read_slice(ref)["key"][:, None])
        path = spill_file(self._dir, "band", band)
        write_object(path, filt.bits[0])
        progress.counter(self, "index_bands").inc()
        yield band, path, filt.inserted


@beam.typehints.with_output_types(Any)  # tagged outputs mixed in: no inference
class _SaveIndex(beam.DoFn):
    """Every band's ``(band, path, documents inserted)`` (one list of ``bands`` small tuples:
    also the barrier that every band has queried ``index_in``) -> the union with ``index_in``
    written to ``index_out`` (temp file + rename), one band at a time; the index statistics
    (main) and the band files and the band-key files every band has read (side input), now
    consumed (``consumed``). ``index_out`` may be ``index_in``. Memory: one band's filter
    (and its ``index_in`` band)."""

    def __init__(self, params, index_in: str | None, index_out: str | None):
        self._params, self._in, self._out = params, index_in, index_out

    def process(self, bands: list, band_files=()):
        from apache_beam.io.filesystems import FileSystems

        bands = sorted(bands, key=lambda x: x[0])
        width = self._params.bits // 8
        added = bands[0][2] if bands else 0
        before = 0
        if self._in is not None:
            with FileSystems.open(self._in) as f:
                before = BloomIndex.load_header(f)[1]  # the count, not a band
        paths = {band: path for band, path, _ in bands}
        ones = 0

        def rows():
            nonlocal ones
            for band in range(self._params.bands):  # a band no document reached is empty
                row = (read_object(paths[band]) if band in paths
                       else np.zeros(width, np.uint8))
                if self._in is not None:
                    with FileSystems.open(self._in) as f:
                        row = row | BloomIndex.load_band(f, band)[2]
                ones += BloomIndex.ones(row)
                yield row

        if self._out is not None:
            tmp = f"{self._out}.tmp-{uuid.uuid4().hex}"
            with FileSystems.create(tmp) as f:
                BloomIndex.save_bands(f, self._params, before + added, rows())
            if FileSystems.exists(self._out):
                FileSystems.delete([self._out])
            FileSystems.rename([tmp], [self._out])
        else:
            for _ in rows():
                pass
        fill = ones / (self._params.bands * width * 8)
        yield {
            "index_out": self._out,
            "docs_in_index": before + added,
            "docs_added": added,
            "index_bytes": self._params.bands * width,
            "fill_ratio": round(fill, 6),
            "estimated_band_fp_rate": fill ** self._params.probes,
            "expected_docs": self._params.expected_items,
        }
        for path in [*(path for _band, path, _n in bands), *band_files]:
            yield pvalue.TaggedOutput(mb.CONSUMED, path)


@register_stage
class MinHashDedupStage(Stage):
    name = "minhash_dedup"
    Params = MinHashDedupParams
    description = "Near-duplicate removal: MinHash LSH + connected components, or LSHBloom."

    def __init__(self, params, ctx):
        super().__init__(params, ctx)
        p: MinHashDedupParams = self.params  # type: ignore[assignment]
        check_score_column(p, ctx)
        self.mh_config = p.scorer_config()
        if p.bands is not None:
            self.b, self.r = p.bands, p.rows
        else:
            self.b, self.r = optimal_params(p.threshold, p.num_perm, p.fp_weight, p.fn_weight)
        if p.mode == "lshbloom" and p.index_in is not None:
            try:
                self.index_params = read_index_params(p.index_in)
            except (OSError, ValueError) as e:
                raise ValueError(
                    f"index_in: cannot read LSHBloom index {p.index_in!r}: {e}"
                ) from None
            check_compatible(self.index_params, self.mh_config, self.b, self.r)
        elif p.mode == "lshbloom":
            self.index_params = BloomIndex.create(
                self.mh_config, self.b, self.r, p.expected_docs or 1, p.index_fp_rate
            ).params
        self.inline_bytes = inline_limit(ctx)
        size = planned_input_size(ctx)  # (text bytes, documents): reads a sample of the input
        self.shards = p.candidate_shards or candidate_shards(size[1], self.b)
        self.memory = self._check_memory(ctx, *size)

    def _check_memory(self, ctx, text_bytes: int | None,
                      docs: int | None) -> dict[str, Any] | None:
        """Estimate this stage's peak memory from the input size (before any work); fail when
        it exceeds ``max_memory_gb`` (default: the machine's memory), warn above half."""
        p: MinHashDedupParams = self.params  # type: ignore[assignment]
        if text_bytes is None:
            return None
        band_bytes = self.index_params.bits // 8 if p.mode == "lshbloom" else 0
        est = mb.estimate_memory(text_bytes, docs, self.b, p.num_perm, p.verify, self.shards,
                                 index_band_bytes=band_bytes)
        limit_gb = p.max_memory_gb or mb.machine_memory_gb()
        est["limit_gb"] = round(limit_gb, 2) if limit_gb else None
        if limit_gb and est["total_gb"] > limit_gb:
            raise ConfigError(
                f"stages[{ctx.index}] ({ctx.label}): estimated peak memory "
                f"{est['total_gb']:.1f} GB for ~{est['docs']} documents ({text_bytes / 1e9:.2f} "
                f"GB of text) exceeds {limit_gb:.2f} GB (max_memory_gb or this machine). "
                f"Breakdown: {est['parts_gb']}. Fix: split the input, use verify: estimated "
                "(no shingle sets), fewer bands (num_perm/threshold), a smaller LSHBloom index "
                "band (expected_docs, index_fp_rate), or run "
                "on a distributed runner; raise max_memory_gb only if the estimate is wrong."
            )
        if limit_gb and est["total_gb"] > limit_gb / 2:
            _LOG.warning("[%s] memory estimate %.1f GB is more than half of %.1f GB: %s",
                         ctx.label, est["total_gb"], limit_gb, est["parts_gb"])
        free = mb.free_disk_gb(ctx.output_dir)
        est["free_disk_gb"] = None if free is None else round(free, 2)
        if free is not None and est["disk_bytes"] > free * 1e9:
            raise ConfigError(
                f"stages[{ctx.index}] ({ctx.label}): the stage writes its input to spill files "
                f"under the output folder while it runs, ~{est['disk_gb']:.1f} GB for "
                f"~{est['docs']} documents, but only {free:.1f} GB is free at "
                f"{ctx.output_dir!r}. Fix: free disk space, point output.dir at a larger disk, "
                "or split the input.")
        return est

    def output_columns(self) -> dict[str, str]:
        return {"near_dup_of": "string", "dup_cluster_size": "int64"}

    def progress_passes(self) -> list[progress.Pass]:
        """Live progress (pipelines/core/progress.py): sketching and spilling runs with
        reading; the passes after it start when every record is sketched; routing streams
        every spill file back. Files with candidate documents or pairs are some of the spill
        files (``of <=N``)."""
        p: MinHashDedupParams = self.params  # type: ignore[assignment]
        P = progress.Pass
        first = P("sketch", "sketched", "records")
        route = P("route", "route_files", "files", "spill_files")
        index = ([P("index", "index_bands", "bands", self.b, True)] if p.mode == "lshbloom"
                 else [])
        return [first, *index, P("candidates", "shards", "shards", self.shards),
                P("fingerprints", "fingerprint_files", "files", "spill_files", True),
                P("verify", "verify_files", "files", "spill_files", True),
                P("components", "components", "step", 1), route]

    def plan_notes(self) -> list[str]:
        return [f"{self.shards} candidate shard(s) planned"]

    def static_stats(self) -> dict[str, Any]:
        p: MinHashDedupParams = self.params  # type: ignore[assignment]
        s = lsh_summary(p.threshold, p.num_perm, self.b, self.r)
        s.update(
            mode=p.mode,
            verify=p.verify,
            keep=p.keep,
            ngram=p.ngram,
            char_ngrams=p.char_ngrams,
            seed=p.seed,
        )
        out: dict[str, Any] = {"lsh": s}
        if self.memory is not None:
            out["memory_estimate"] = self.memory
        _LOG.info(
            "[%s] LSH bands b=%d rows r=%d: P(candidate | J=%s) = %.3f",
            self.label,
            self.b,
            self.r,
            p.threshold,
            s["p_candidate_at_threshold"],
        )
        return out

    def expand(self, records: Any) -> StageResult:
        """The passes of pipelines/stages/dedup/minhash_passes.py; ``mode: lshbloom`` adds
        the index, one band per worker (``ByBand`` -> ``BandIndex``): its hits are joined to
        their spill file with this run's decisions, and ``SaveIndex`` writes the union of
        ``index_in`` and this run's keys to ``index_out`` band by band."""
        p: MinHashDedupParams = self.params  # type: ignore[assignment]
        bloom = p.mode == "lshbloom"
        folder = self.spill_dir()
        sk = records | "SketchSpill" >> beam.ParDo(
            mb.SketchSpill(self.label, self.mh_config, self.b, self.r, spill_dir=folder,
                           shards=self.shards, batch_size=p.batch_size,
                           spill_bytes=mb.SPILL_BYTES, band_keys=bloom,
                           inline_bytes=self.inline_bytes)
        ).with_outputs(mb.SPILL, mb.SHARDS, mb.DOCS, mb.SCRATCH, mb.BANDS, mb.BAND_FILES,
                       main="unused")
        if bloom:
            index = (sk[mb.BANDS] | "ByBand" >> beam.GroupByKey()
                     | "BandIndex" >> beam.ParDo(progress.for_stage(
                         _BandIndex(self.index_params, p.index_in, folder), self.label))
                     .with_outputs(mb.HITS, main="bands"))
        spilled = sk[mb.SPILL]
        by_file = spilled | "KeyByFile" >> beam.Map(lambda path: (spill_file_id(path), path))
        docs = sk[mb.DOCS] | "CountDocs" >> beam.CombineGlobally(sum)
        cands = (
            sk[mb.SHARDS]
            | "ByShard" >> beam.GroupByKey()
            | "ShardCandidates" >> beam.ParDo(progress.for_stage(
                mb.ShardCandidates(p.max_bucket_size, folder, self.inline_bytes), self.label))
            .with_outputs(mb.NEEDED, mb.STATS, mb.SCRATCH, main="pairs"))
        scratch = ((sk[mb.SCRATCH], cands[mb.SCRATCH]) | "Scratch" >> beam.Flatten())
        cand_files = (
            {"path": by_file, "needed": cands[mb.NEEDED]}
            | "NeededByFile" >> beam.CoGroupByKey()
            | "CandidateSets" >> beam.ParDo(
                progress.for_stage(mb.CandidateSets(self.mh_config, p.verify,
                                                    p.score_column, folder), self.label)))
        edges = (
            cands["pairs"]
            | "PairsByFile" >> beam.GroupByKey()
            | "Verify" >> beam.ParDo(progress.for_stage(mb.VerifyPairs(p.verify, p.threshold),
                                                       self.label),
                                     pvalue.AsList(cand_files))
            .with_outputs(mb.MEMBERS, main="edges"))
        members = (
            edges[mb.MEMBERS]
            | "MembersByFile" >> beam.GroupByKey()
            | "MemberAttrs" >> beam.ParDo(mb.MemberAttrs(), pvalue.AsList(cand_files)))
        comps = (
            edges["edges"]
            | "AllEdges" >> beam.combiners.ToList()
            | "Components" >> beam.ParDo(
                progress.for_stage(mb.Components(p.keep, PAIR_SAMPLES, p.seed), self.label),
                pvalue.AsList(members),
                pvalue.AsList(cand_files),
                pvalue.AsList(cands[mb.STATS]), pvalue.AsSingleton(docs),
                pvalue.AsList(scratch))
            .with_outputs(mb.DECISIONS, mb.CONSUMED, main="summary"))
        summary = comps["summary"]
        sample = summary | "Sample" >> beam.Map(_stat_sample)
        per_file = {"path": by_file, "dec": comps[mb.DECISIONS]}
        if bloom:
            per_file["hits"] = index[mb.HITS]
        applied = (
            per_file
            | "DecisionsByFile" >> beam.CoGroupByKey()
            | "Apply" >> beam.ParDo(
                mb.ApplyFile(self.label, REASON, cfg=self.mh_config,
                             text_chars=PAIR_TEXT_CHARS), pvalue.AsSingleton(sample))
            .with_outputs(mb.DEAD, "removed", mb.SAMPLED, mb.CONSUMED, mb.INDEX_HITS,
                          main=KEPT))
        consumed = [applied[mb.CONSUMED], comps[mb.CONSUMED]]
        stats: dict[str, Any] = {
            name: summary | f"Stat_{name}" >> beam.Map(_stat, name)
            for name in ("edges", "clusters", "components")}
        if bloom:
            saved = (index["bands"] | "AllBands" >> beam.combiners.ToList()
                     | "SaveIndex" >> beam.ParDo(
                         _SaveIndex(self.index_params, p.index_in, p.index_out),
                         pvalue.AsList(sk[mb.BAND_FILES]))
                     .with_outputs(mb.CONSUMED, main="stats"))
            stats["index"] = saved["stats"]
            consumed.append(saved[mb.CONSUMED])
            n_hits = applied[mb.INDEX_HITS] | "CountHits" >> beam.CombineGlobally(sum)
            stats["lshbloom"] = summary | "BloomStat" >> beam.Map(
                _bloom_stat, pvalue.AsSingleton(n_hits))
        tuple(consumed) | "AllConsumed" >> beam.Flatten() | "DeleteSpill" >> DeleteFiles()
        removed = applied["removed"]
        stats["removed"] = combine_parts([removed], _RemovedCount(), "RemovedStat")
        stats["near_dup_pairs"] = (
            applied[mb.SAMPLED]
            | "PairGather" >> beam.combiners.ToList()
            | "PairStats" >> beam.Map(pair_stats, pvalue.AsSingleton(sample)))
        return StageResult(kept=applied[KEPT], removed=removed, dead=applied[mb.DEAD],
                           stats=stats)

    # ------------------------------------------------------------------ report
    def report_section(self, stage_stats: dict[str, Any]) -> str | None:
        """Cluster-size histogram and LSH facts, from the stage's ``stats.json`` entry."""
        import html

        run = stage_stats.get("stats") or {}
        static = stage_stats.get("static") or {}
        clusters = _first(run.get("clusters"))
        lsh = static.get("lsh") or {}
        removed = _first(run.get("removed")) or {}
        parts = []
        if lsh:
            parts.append(
                f"<p>LSH b={lsh.get('bands')}, r={lsh.get('rows')}, "
                f"P(candidate at J={lsh.get('threshold')}) = "
                f"{lsh.get('p_candidate_at_threshold', float('nan')):.3f}; verify: "
                f"{html.escape(str(lsh.get('verify')))}; documents removed: "
                f"{removed.get('docs_removed', 'n/a')}</p>"
            )
        bloom = _first(run.get("lshbloom"))
        if bloom:
            parts.append(
                f"<p>LSHBloom: removed by the loaded index {bloom.get('removed_by_index')}, "
                f"within this run {bloom.get('removed_within_run')}</p>"
            )
        if clusters and clusters.get("cluster_size_histogram"):
            hist = {int(k): v for k, v in clusters["cluster_size_histogram"].items()}
            parts.append(
                f"<p>clusters: {clusters['clusters']}, documents in clusters: "
                f"{clusters['docs_in_clusters']}, largest: {clusters['largest_clusters']}</p>"
            )
            parts.append(_histogram_img(hist))
        pairs = _first(run.get("near_dup_pairs"))
        if pairs and pairs.get("pairs"):
            parts.append(_pairs_html(pairs, lsh.get("threshold")))
        return "\n".join(parts) if parts else None


PAIR_SAMPLES = 8  # near-duplicate pairs shown in the report
PAIR_TEXT_CHARS = 20_000  # characters of a sampled document kept for the side-by-side diff


def pair_stats(picked: list, sample: dict) -> dict:
    """Sampled pairs (``sample``: :func:`minhash_passes.sample_pairs`; ``picked``: ``(place,
    sampled record)`` from ``Apply``) with exact and MinHash-estimated Jaccard and a
    word-level difference. The removed document is chosen among those removed within this
    run by the smallest xxh64 of its id (seed of the stage), ties by id then table rank; its
    <= 2 k records are picked by place while ``Apply`` streams the spill files back."""
    from filters.minhash import exact_jaccard
    from pipelines.report.diff import diff_segments

    docs = dict(picked)
    pairs = []
    for rid, rep, here, there in sample["pairs"]:
        a, b = docs.get(there), docs.get(here)
        if a is None or b is None:  # not reached for records the stage decided on
            continue
        cut = a["chars"] > len(a["text"]) or b["chars"] > len(b["text"])
        pairs.append({
            "kept_id": rep, "removed_id": rid, "cluster_size": sample["sizes"].get(here),
            "kept_chars": a["chars"], "removed_chars": b["chars"],
            "jaccard": round(float(exact_jaccard(a["shingles"], b["shingles"])), 4),
            "jaccard_estimated": round(float((a["sig"] == b["sig"]).mean()), 4),
            "diff": diff_segments(a["text"], b["text"], unit="word", cut=cut),
        })
    return {"pairs": pairs, "removed_within_run": sample["population"],
            "sample": f"smallest xxh64(removed id, seed {sample['seed']})"}


def _pairs_html(st: dict, threshold: Any) -> str:
    import html

    from pipelines.report.diff import side_by_side

    shown = st["pairs"]
    parts = [f"<h3>Near-duplicate pairs, side by side ({len(shown)} of "
             f"{st.get('removed_within_run', len(shown)):,} removed, random with a fixed seed)"
             "</h3><p class=muted>Left: the document kept for the cluster; right: a removed "
             "member. Words only in one of them are marked. Jaccard: exact, of the shingle "
             "(n-gram) sets; MinHash: signature agreement. A member joined through a chain of "
             "pairs can be below the threshold"
             + (f" ({html.escape(str(threshold))})" if threshold is not None else "")
             + " against the kept document.</p>"]
    for pr in shown:
        cap = (f"Jaccard {pr['jaccard']:.3f} (MinHash {pr['jaccard_estimated']:.3f}); "
               f"cluster of {pr.get('cluster_size') or '?'}")
        parts.append(side_by_side(
            pr["diff"], f"kept {pr['kept_id']} ({pr['kept_chars']:,} characters)",
            f"removed {pr['removed_id']} ({pr['removed_chars']:,} characters)", caption=cap))
    return "\n".join(parts)


def _stat(decisions: dict, name: str):
    return decisions["stats"][name]


def _bloom_stat(decisions: dict, hits: int) -> dict:
    """Documents found in the loaded index, and documents removed against another document
    of this run (clustered, not their component's representative); a document can be both."""
    cl = decisions["stats"]["clusters"]
    return {"removed_by_index": int(hits),
            "removed_within_run": int(cl["docs_in_clusters"] - cl["clusters"])}


class _RemovedCount(beam.CombineFn):
    """``{"docs_removed": n}`` (a statistic: pipelines/core/combine.py)."""

    def create_accumulator(self):
        return 0

    def add_input(self, acc, _item):
        return acc + 1

    def merge_accumulators(self, accs):
        return sum(accs)

    def extract_output(self, acc):
        return {"docs_removed": acc}


def _stat_sample(decisions: dict) -> dict:
    return decisions["sample"]


def _first(x):
    # a stat with no element is [] in stats.json (stages.base.stat_value)
    if isinstance(x, list):
        return x[0] if x else None
    return x


def _histogram_img(hist: dict[int, int]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    sizes = sorted(hist)
    ax.bar([str(s) for s in sizes], [hist[s] for s in sizes], color="#4477aa")
    ax.set_xlabel("cluster size (documents)")
    ax.set_ylabel("clusters")
    ax.set_yscale("log")
    ax.set_title("Near-duplicate cluster sizes")
    from pipelines.report.html import figure_html

    return figure_html(fig, "cluster size histogram")
