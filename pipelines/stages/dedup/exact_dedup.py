"""Stage ``exact_dedup``: keep one record per identical (canonicalized) text.

Text never crosses a shuffle and memory does not grow with the corpus:

1. ``KeySpill`` (one pass, fused with the stages before): records are buffered up to
   ``SPILL_BYTES`` of text; then, for the whole buffer at once, every record gets its content
   key (128-bit xxh3 of the canonical text, :func:`filters.text_hash.content_digests`) and
   the buffer is written to a spill file (:mod:`pipelines.core.spill`). What goes on is compact
   and already combined per file: for each of the stage's key buckets one element
   ``(bucket, [(key, candidate, copies in this file), ...])``, where the candidate is
   ``(representative rank, tie, spill file id, position)``. A shuffle therefore carries a
   few hundred elements per spill file instead of one per record;
2. ``Duplicated``: per bucket, the candidates of every file are merged (smallest candidate
   and number of copies per key); only keys with more than one copy go on: the decision
   ``(key, winner position, count, winner source)`` is sent to each spill file that holds a
   copy of the key (keyed by the file's id), never broadcast: a worker sees the decisions of
   the file it routes, at most one per record of that file;
3. ``Decide``: each spill file is joined with its decisions (``CoGroupByKey`` on the file id)
   and streamed back; a record is kept when its key has no duplicate or its position is the
   winner's; the others are removed with reason ``duplicate``. Spill files are deleted after
   a GroupByKey (once ``Decide`` has committed).

Key buckets: the reducer of one bucket (``Duplicated``) holds the candidates of the keys in
it, ~``BYTES_PER_KEY`` (500) bytes per distinct key at most. The number of buckets follows the
input size known at planning (:func:`pipelines.io.sizing.input_size`:
documents estimated from file sizes and line density) so that a bucket holds about
``DOCS_PER_BUCKET`` (200,000) documents, i.e. <= ~100 MB::

    buckets = min(MAX_BUCKETS, max(MIN_BUCKETS, ceil(documents / DOCS_PER_BUCKET)))

with ``MIN_BUCKETS = 64`` (parallelism for small inputs) and ``MAX_BUCKETS = 65536``; 64 when
the input cannot be sized (hf or remote sources). ``buckets:`` overrides it. A key's bucket is
``little-endian 64-bit prefix of the key mod buckets``: the bucket only decides which reducer
merges a key's candidates, never which copy wins, so the output does not depend on it
(tested: same output for 1 and 64 buckets).

Which copy survives is fixed by ``keep`` (``filters.text_hash.representative_key``: a total
order whose last field is the id), then by the tie ``(xxh3-64 of the text, source, xxh3-64 of
the record's other fields)``. Copies equal on all of these are the same record (same id, text,
source and fields), so the position only picks which of identical copies is written: the
output does not depend on worker count or order. Records are identified by their place
(spill file, position), never by their id: records that share an id but not their text are
distinct documents and are all kept; equal ids and equal texts are one duplicate group
whose survivor is chosen as above (the source breaks the id tie). ``dup_count`` on the survivor says how many
copies the group had.

Stats (``stats.json`` and the report section): ``groups`` (number of duplicate groups, copies
removed, group-size distribution, the largest groups and a seeded random sample of groups
with the kept copy's text and the ids of removed copies) and ``by_source`` (per source: copies
removed, kept copies that had duplicates, and removed copies per source of the kept copy).
"""

from __future__ import annotations

import heapq
import html
import math
import pickle
from collections import Counter
from typing import Any, Literal

import apache_beam as beam
import xxhash
from apache_beam import pvalue
from apache_beam.transforms.window import GlobalWindows
from pydantic import Field, model_validator

from filters.text_hash import content_digests, representative_key
from pipelines.core import progress
from pipelines.core.combine import combine_parts
from pipelines.core.records import dead_letter
from pipelines.stages.score_stats import snippet
from pipelines.core.spill import (
    DeleteFiles, SizeBuffered, new_file_id, read_spill, spill_file, spill_file_id, write_spill)
from pipelines.stages.base import (Stage, StageParams, StageResult, check_score_column,
                                   planned_input_size)
from pipelines.stages.registry import register_stage

SPILL_BYTES = 8 << 20  # text per spill file: several files per worker, so reading them back
# is spread over workers (the local runner splits a step's input evenly by element count)
MIN_BUCKETS = 64  # key buckets of the candidate shuffle, at least (parallelism)
MAX_BUCKETS = 1 << 16
DOCS_PER_BUCKET = 200_000  # target documents per bucket: <= ~100 MB in its reducer
BYTES_PER_KEY = 500  # a distinct key's candidate in the reducer (key, rank, tie, place), at most
_CORE_FIELDS = ("id", "text", "source")
TOP_GROUPS = 10  # largest duplicate groups shown in the stats / report
SAMPLE_GROUPS = 5  # further groups drawn at random (fixed seed)
REMOVED_IDS_SHOWN = 10  # ids of removed copies listed per shown group (a seeded sample)
SEED = 0


class ExactDedupParams(StageParams):
    stage: Literal["exact_dedup"]
    canonicalize: Literal["none", "whitespace", "lower"] = Field(
        default="whitespace", description="Text canonicalization before hashing.")
    keep: Literal["lowest_id", "longest", "highest_score"] = "lowest_id"
    score_column: str | None = Field(default=None, description="Column for keep: highest_score.")
    buckets: int | None = Field(
        default=None, ge=1, le=MAX_BUCKETS,
        description="Key buckets of the duplicate shuffle (default: follows the input size, "
        f"one per {DOCS_PER_BUCKET:,} documents, at least {MIN_BUCKETS}). Does not change "
        "the output.")

    @model_validator(mode="after")
    def _score(self):
        if self.keep == "highest_score" and not self.score_column:
            raise ValueError("keep: highest_score needs score_column (the column to maximize)")
        return self


def _tie(r: dict, utf8: bytes) -> tuple:
    """Orders copies with the same rank: text, source, then every other field."""
    rest = 0
    if len(r) > 3 or any(k not in r for k in _CORE_FIELDS):
        other = {k: v for k, v in r.items() if k not in _CORE_FIELDS}
        rest = xxhash.xxh3_64_intdigest(pickle.dumps(sorted(other.items(), key=lambda kv: kv[0]),
                                                     protocol=5))
    return (xxhash.xxh3_64_intdigest(utf8), str(r.get("source")), rest)


@beam.typehints.with_output_types(Any)  # tagged outputs mixed in: no inference
class _KeySpill(SizeBuffered):
    """records -> ``(bucket, [(key, candidate, copies), ...])`` per spill file; the records go
    to the spill files (tag ``spill``: paths); records that cannot be keyed to ``dead``."""

    def __init__(self, p: ExactDedupParams, label: str, spill_dir: str,
                 spill_bytes: int = SPILL_BYTES, buckets: int = MIN_BUCKETS):
        self._p, self._label, self._dir, self._limit = p, label, spill_dir, spill_bytes
        self._buckets = buckets

    def _dead(self, r: Any, e: Exception) -> pvalue.TaggedOutput:
        return pvalue.TaggedOutput("dead", dead_letter(
            self._label, f"exception: {type(e).__name__}: {e}", r))

    def flush_rows(self, rows: list):
        p = self._p
        file_id = new_file_id()  # 63 bits: a shuffle key (Beam's int coder is signed)
        good, utf8, ranks = [], [], []
        for r in rows:
            try:
                text = r["text"]
                if not isinstance(text, str):
                    raise TypeError(f"text must be a str, not {type(text).__name__}")
                b = text.encode("utf-8")
                rank = (representative_key(r, p.keep, p.score_column), _tie(r, b))
            except Exception as e:  # noqa: BLE001 - this record only
                yield self._dead(r, e)
                continue
            good.append(r)
            utf8.append(b)
            ranks.append(rank)
        keys = content_digests(utf8, p.canonicalize)
        del utf8
        best: dict[bytes, list] = {}
        for pos, (key, (rank, tie)) in enumerate(zip(keys, ranks)):
            cand = (rank, tie, file_id, pos)
            cur = best.get(key)
            if cur is None:
                best[key] = [cand, 1]
            else:
                if cand < cur[0]:
                    cur[0] = cand
                cur[1] += 1
        path = spill_file(self._dir, "spill", file_id)
        write_spill(path, list(zip(keys, good)))
        progress.counter(self, "keyed").inc(len(rows))
        progress.counter(self, "spill_files").inc()
        buckets: dict[int, list] = {}
        for key, (cand, n) in best.items():
            buckets.setdefault(bucket_of(key, self._buckets), []).append((key, cand, n))
        for b in sorted(buckets):
            yield (b, buckets[b])
        yield pvalue.TaggedOutput("spill", path)


def bucket_of(key: bytes, buckets: int) -> int:
    return int.from_bytes(key[:8], "little") % buckets


def planned_buckets(docs: int | None) -> int:
    """Key buckets for an input of ``docs`` documents (None: unknown): one per
    ``DOCS_PER_BUCKET`` documents, clamped to [``MIN_BUCKETS``, ``MAX_BUCKETS``]."""
    if not docs:
        return MIN_BUCKETS
    return min(MAX_BUCKETS, max(MIN_BUCKETS, math.ceil(docs / DOCS_PER_BUCKET)))


def _duplicated(item, label: str = "exact_dedup"):
    """``(bucket, [per-file candidate lists])`` -> for every key of the bucket with more than
    one copy: ``(key, winner)`` (main output, for the statistics) and, for each spill file that
    holds a copy, ``(file id, (key, winner))`` (tag ``route``), where ``winner`` is
    ``(file id, position, copies, source)`` of the surviving copy."""
    progress.counter(label, "buckets").inc()
    _bucket, lists = item
    merged: dict[bytes, list] = {}
    for lst in lists:
        for key, cand, n in lst:  # one list per spill file: cand is that file's best copy
            cur = merged.get(key)
            if cur is None:
                merged[key] = [cand, n, [cand[2]]]
            else:
                if cand < cur[0]:
                    cur[0] = cand
                cur[1] += n
                cur[2].append(cand[2])
    for key in sorted(merged):
        cand, n, files = merged[key]
        if n > 1:
            _rank, tie, file_id, pos = cand
            winner = (file_id, pos, n, tie[1])
            yield key, winner
            for f in sorted(set(files)):
                yield pvalue.TaggedOutput("route", (f, (key, winner)))


# --------------------------------------------------------------------------- decide


@beam.typehints.with_output_types(Any)
class _Decide(beam.DoFn):
    """``(spill file id, {"path": [path], "dec": [(key, winner), ...]})`` -> kept records
    (with ``dup_count``) and removed duplicates; for the groups in ``shown`` one ``example``
    per copy; per bundle a ``by_source`` counter. A file receives the decisions of the
    duplicated keys it holds and no others, so memory is bounded by the spill file."""

    def __init__(self, label: str = "exact_dedup"):
        self._label = label

    def start_bundle(self) -> None:
        self._counts: Counter = Counter()

    def process(self, item, shown):
        file_id, parts = item
        paths = list(parts["path"])
        if len(paths) != 1:  # decisions without their spill file: an engine error, never silent
            raise RuntimeError(f"exact_dedup: spill file id {file_id:x} has {len(paths)} "
                               "paths (expected exactly one)")
        path = paths[0]
        dups = dict(parts["dec"])
        counts = self._counts
        n_kept = 0
        for pos, (key, r) in enumerate(read_spill(path)):
            winner = dups.get(key)
            if winner is None:
                out = dict(r)
                out["dup_count"] = 1
                n_kept += 1
                yield out
                continue
            source = str(r.get("source"))
            won = winner[0] == file_id and winner[1] == pos
            if won:
                out = dict(r)
                out["dup_count"] = winner[2]
                counts[("kept_with_copies", source, "")] += 1
                n_kept += 1
                yield out
            else:
                counts[("removed", source, "")] += 1
                counts[("removed_by_kept_source", source, winner[3])] += 1
                yield pvalue.TaggedOutput("removed", ("duplicate", r))
            if key in shown:
                yield pvalue.TaggedOutput("example", _example(key, won, r))
        progress.counter(self, "kept").inc(n_kept)
        progress.counter(self, "route_files").inc()
        yield pvalue.TaggedOutput("consumed", path)

    def finish_bundle(self):
        if self._counts:
            yield pvalue.TaggedOutput("by_source", GlobalWindows.windowed_value(
                sorted(self._counts.items())))
            self._counts = Counter()


def _example(key: bytes, won: bool, r: dict) -> tuple:
    rid = str(r.get("id"))
    return (key.hex(), (won, rid, str(r.get("source")), snippet(r.get("text")) if won else None))


# --------------------------------------------------------------------------- stats


def _size_bin(n: int) -> str:
    """Group sizes in powers of two: 2, 3-4, 5-8, 9-16, ..."""
    if n <= 2:
        return "2"
    hi = 1 << (n - 1).bit_length()
    return f"{hi // 2 + 1}-{hi}"


class _GroupStatsFn(beam.CombineFn):
    """dups -> ``{"groups", "copies_removed", "docs_in_groups", "size_bins", "largest",
    "shown"}``; ``shown``: hex keys of the largest ``TOP_GROUPS`` groups (ties: key) and of
    ``SAMPLE_GROUPS`` more drawn at random with a fixed seed."""

    def create_accumulator(self):
        return (0, 0, Counter(), [], [])

    def add_input(self, acc, item):
        groups, docs, bins, top, sample = acc
        key, (_f, _p, n, _s) = item
        bins[_size_bin(n)] += 1
        entry = (n, key.hex())
        if len(top) < TOP_GROUPS:
            heapq.heappush(top, entry)
        elif entry > top[0]:
            heapq.heapreplace(top, entry)
        s = (-xxhash.xxh64_intdigest(key, seed=SEED), key.hex(), n)  # max-heap on the hash
        if len(sample) < SAMPLE_GROUPS + TOP_GROUPS:
            heapq.heappush(sample, s)
        elif s > sample[0]:
            heapq.heapreplace(sample, s)
        return (groups + 1, docs + n, bins, top, sample)

    def merge_accumulators(self, accs):
        groups, docs, bins, top, sample = 0, 0, Counter(), [], []
        for g, d, b, t, s in accs:
            groups, docs = groups + g, docs + d
            bins.update(b)
            top.extend(t)
            sample.extend(s)
        top = heapq.nlargest(TOP_GROUPS, top)
        sample = heapq.nlargest(SAMPLE_GROUPS + TOP_GROUPS, sample)
        heapq.heapify(top)
        heapq.heapify(sample)
        return (groups, docs, bins, top, sample)

    def extract_output(self, acc):
        groups, docs, bins, top, sample = acc
        largest = sorted(top, key=lambda e: (-e[0], e[1]))
        top_keys = {k for _, k in largest}
        drawn = [(k, n) for _h, k, n in sorted(sample, reverse=True) if k not in top_keys]
        drawn = drawn[:SAMPLE_GROUPS]
        order = sorted(bins, key=lambda b: int(b.split("-")[0]))
        return {"groups": groups, "docs_in_groups": docs, "copies_removed": docs - groups,
                "size_bins": {b: bins[b] for b in order},
                "largest": [{"key": k, "copies": n} for n, k in largest],
                "random": [{"key": k, "copies": n} for k, n in drawn],
                "shown": sorted(top_keys | {k for k, _ in drawn})}


def _shown_keys(stats: dict) -> frozenset:
    return frozenset(bytes.fromhex(k) for k in stats["shown"])


class _ExamplesFn(beam.CombineFn):
    """Per group key: the kept copy and a seeded sample of the removed copies' ids."""

    def create_accumulator(self):
        return (None, 0, [])

    def add_input(self, acc, item):
        kept, n, removed = acc
        won, rid, source, snip = item
        if won:
            return ((rid, source, snip), n, removed)
        removed = heapq.nsmallest(REMOVED_IDS_SHOWN, removed + [
            (xxhash.xxh64_intdigest(rid.encode("utf-8", "surrogatepass"), seed=SEED), rid,
             source)])
        return (kept, n + 1, removed)

    def merge_accumulators(self, accs):
        kept, n, removed = None, 0, []
        for k, c, r in accs:
            kept = kept or k
            n += c
            removed.extend(r)
        return (kept, n, heapq.nsmallest(REMOVED_IDS_SHOWN, removed))

    def extract_output(self, acc):
        kept, n, removed = acc
        return {"kept": None if kept is None else {"id": kept[0], "source": kept[1],
                                                    "text": kept[2]},
                "removed": n, "removed_ids": [[rid, src] for _h, rid, src in removed]}


def _with_examples(groups: dict, examples: dict) -> dict:
    out = {k: v for k, v in groups.items() if k != "shown"}
    for part in ("largest", "random"):
        out[part] = [{**g, **examples.get(g["key"], {})} for g in groups[part]]
    return out


class _SourceCountsFn(beam.CombineFn):
    """The bundles' ``by_source`` counters -> per source: removed, kept_with_copies and
    removed_by_kept_source (a statistic: pipelines/core/combine.py)."""

    def create_accumulator(self):
        return Counter()

    def add_input(self, acc, items):
        for k, n in items:
            acc[tuple(k)] += n
        return acc

    def merge_accumulators(self, accs):
        out: Counter = Counter()
        for a in accs:
            out.update(a)
        return out

    def extract_output(self, acc):
        return _by_source(acc)


def _by_source(total: Counter) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for (kind, source, other), n in sorted(total.items()):
        entry = out.setdefault(source, {"removed": 0, "kept_with_copies": 0,
                                        "removed_by_kept_source": {}})
        if kind == "removed_by_kept_source":
            entry[kind][other] = n
        else:
            entry[kind] = n
    return out


# --------------------------------------------------------------------------- stage


@register_stage
class ExactDedupStage(Stage):
    name = "exact_dedup"
    Params = ExactDedupParams
    description = "Remove exact duplicates (after canonicalization), keeping one per group."
    spills_input = True  # its key pass spills the records (redistribute would spill twice)

    def __init__(self, params, ctx):
        super().__init__(params, ctx)
        p: ExactDedupParams = self.params  # type: ignore[assignment]
        check_score_column(p, ctx)
        self.docs_estimate = planned_input_size(ctx)[1] if p.buckets is None else None
        self.buckets = p.buckets or planned_buckets(self.docs_estimate)

    def output_columns(self) -> dict[str, str]:
        return {"dup_count": "int64"}

    def progress_passes(self) -> list[progress.Pass]:
        """Live progress (pipelines/core/progress.py): keying and spilling runs with reading;
        merging the key buckets starts when every record is keyed; routing streams every
        spill file back."""
        return [progress.Pass("key", "keyed", "records"),
                progress.Pass("merge", "buckets", "buckets"),
                progress.Pass("route", "route_files", "files", "spill_files")]

    def static_stats(self) -> dict[str, Any]:
        return {"buckets": {"buckets": self.buckets, "docs_estimate": self.docs_estimate,
                            "docs_per_bucket_target": DOCS_PER_BUCKET}}

    def expand(self, records) -> StageResult:
        p: ExactDedupParams = self.params  # type: ignore[assignment]
        keyed = records | "KeySpill" >> beam.ParDo(
            _KeySpill(p, self.label, self.spill_dir(), SPILL_BYTES, self.buckets)).with_outputs(
                "dead", "spill", main="kv")
        dup = (
            keyed.kv
            | "GroupBuckets" >> beam.GroupByKey()
            | "Duplicated" >> beam.FlatMap(_duplicated, self.label).with_outputs(
                "route", main="dups")
        )
        groups = dup.dups | "GroupStats" >> beam.CombineGlobally(_GroupStatsFn())
        shown = groups | "ShownKeys" >> beam.Map(_shown_keys)
        by_file = keyed.spill | "KeyByFile" >> beam.Map(lambda path: (spill_file_id(path), path))
        decided = (
            {"path": by_file, "dec": dup.route}
            | "DecisionsByFile" >> beam.CoGroupByKey()
            | "Decide" >> beam.ParDo(_Decide(self.label), beam.pvalue.AsSingleton(shown))
            .with_outputs("removed", "consumed", "example", "by_source", main="kept")
        )
        decided.consumed | "DeleteSpill" >> DeleteFiles()
        examples = (decided.example
                    | "GroupExamples" >> beam.CombinePerKey(_ExamplesFn())
                    | "ExamplesDict" >> beam.combiners.ToDict())
        stats = {
            "groups": groups | "WithExamples" >> beam.Map(
                _with_examples, beam.pvalue.AsSingleton(examples)),
            "by_source": combine_parts([decided.by_source], _SourceCountsFn(), "BySource"),
        }
        return StageResult(kept=decided.kept, removed=decided.removed, dead=keyed.dead,
                           stats=stats)

    # ------------------------------------------------------------------ report
    def report_section(self, stage_stats: dict[str, Any]) -> str | None:
        from pipelines.report.html import table_html

        st = stage_stats.get("stats") or {}
        groups = st.get("groups")
        by_source = st.get("by_source") or {}
        if not isinstance(groups, dict):
            return None
        p = stage_stats.get("params") or {}
        parts = [
            f"<p>{groups['groups']:,} duplicate groups of {groups['docs_in_groups']:,} records; "
            f"{groups['copies_removed']:,} copies removed, one kept per group (keep: "
            f"<code>{html.escape(str(p.get('keep', 'lowest_id')))}</code>, canonicalize: "
            f"<code>{html.escape(str(p.get('canonicalize', 'whitespace')))}</code>).</p>"]
        if groups["groups"]:
            bins = groups.get("size_bins") or {}
            parts.append("<h3>Group sizes (copies per group)</h3>" + table_html(
                ["copies", "groups"], [[b, bins[b]] for b in sorted(bins, key=_bin_order)]))
        if by_source:
            rows = [[src, v.get("removed", 0), v.get("kept_with_copies", 0),
                     ", ".join(f"{k}: {n:,}" for k, n in
                               sorted(v.get("removed_by_kept_source", {}).items(),
                                      key=lambda kv: (-kv[1], kv[0])))]
                    for src, v in sorted(by_source.items(), key=lambda kv: (-kv[1].get(
                        "removed", 0), kv[0]))]
            parts.append("<h3>Per source</h3>" + table_html(
                ["source", "copies removed", "kept copies with duplicates",
                 "removed copies by source of the kept copy"], rows))
        for part, title in (("largest", "Largest groups"),
                            ("random", "Groups drawn at random (fixed seed)")):
            shown = groups.get(part) or []
            if shown:
                parts.append(f"<h3>{title}</h3>" + _groups_table(shown))
        return "\n".join(parts)


def _bin_order(name: str) -> tuple:
    """Numeric order of size bins (``2``, ``3-4``, ..., ``17-32``): stats.json is written with
    sorted keys, which puts ``17-32`` before ``2``."""
    head = str(name).split("-")[0]
    return (0, int(head), name) if head.isdigit() else (1, 0, str(name))


def _groups_table(groups: list[dict]) -> str:
    rows = []
    for g in groups:
        kept = g.get("kept") or {}
        ids = ", ".join(html.escape(str(rid)) for rid, _src in g.get("removed_ids", []))
        more = g.get("removed", 0) - len(g.get("removed_ids", []))
        if more > 0:
            ids += f" <span class=muted>(+{more:,} more)</span>"
        rows.append(
            f"<tr><td>{g['copies']:,}</td><td>{html.escape(str(kept.get('id', '')))}"
            f"<br><span class=muted>{html.escape(str(kept.get('source', '')))}</span></td>"
            f"<td><div class=snip>{html.escape(kept.get('text') or '')}</div></td>"
            f"<td>{ids}</td></tr>")
    # page-wide with fixed column widths; long ids and unbroken tokens wrap inside their
    # column (class wrap, pipelines/report/render.py) instead of widening the page
    return ("<table class=wrap><colgroup><col style='width:5.5em'><col style='width:24%'><col>"
            "<col style='width:28%'></colgroup><tr><th>copies</th><th>kept</th><th>kept text</th>"
            "<th>removed copies (ids, a random sample)</th></tr>" + "".join(rows) + "</table>")
