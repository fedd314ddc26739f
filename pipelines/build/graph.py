"""The Beam graph of a build: read sources (or a checkpoint), apply the stages, write the
outputs and the accounting side outputs into the staging directory.

Output directory layout (locally ``data``, ``stats.json``... are links into
``current -> _builds/<run id>``, see :mod:`pipelines.build.promote`)::

    <out>/data/part-00000-of-00004.parquet   kept records (id, text, source, score columns)
    <out>/jsonl/part-*.jsonl.gz              the same records as JSONL (output.jsonl: true)
    <out>/removed/part-*.jsonl.gz            removed records with stage + reason (write_removed)
    <out>/dead_letter/part-*.jsonl.gz        rows that could not be read or processed
    <out>/stats.json  <out>/report.html  <out>/manifest.json
    <out>/checkpoints/NN-<label>/            records after stage NN (stages with checkpoint: true)

The build is split by job: :mod:`pipelines.build.plan` (planning, path checks, checkpoint lookup),
this module (the graph), :mod:`pipelines.build.checkpoint`, :mod:`pipelines.build.stats` (gathering
stats after the run), :mod:`pipelines.build.promote` (moving staged outputs into place) and
:mod:`pipelines.build.run` (``run_build``, the orchestrator).
"""

from __future__ import annotations

import itertools
from typing import Any

import apache_beam as beam

from pipelines.build import accounting as acc
from pipelines.build.breakdown import BreakdownFn
from pipelines.build.events import ProgressKey, RemovedRow, checkpoint_data_files
from pipelines.core.combine import combine_parts
from pipelines.build.checkpoint import ReadParquetRows, write_checkpoint
from pipelines.build.plan import BuildPlan
from pipelines.core.records import arrow_schema, reason_category
from pipelines.build.redistribute import maybe_redistribute
from pipelines.io.side_outputs import write_side_outputs
from pipelines.io.sinks import WriteSortedShards, to_output_row
from pipelines.io.sources import read_sources
from pipelines.stages.record_stage import FusedRecordStages, fusible_runs
from pipelines.stages.base import Stage, StageResult, parts

def construct(plan: BuildPlan, p: beam.Pipeline) -> None:
    """Add the whole build to pipeline ``p`` (writing into the staging directory)."""
    cfg, staging = plan.cfg, plan.staging
    n_shards = cfg.output.shards
    side_shards = max(1, min(n_shards, 4))
    events: list[Any] = []  # PCollections of event keys for the current segment
    input_profile = None  # count + lengths of parsed input records (first segment only)
    stage_stats: list[tuple[str, Any]] = []  # (stats file name, PCollection) of this segment
    json_files: list[acc.JsonFile] = []  # the _stats/*.json files, written in one step
    removed_all: list[Any] = []
    dead_all: list[Any] = []
    first = 0

    input_counts = None  # per-file record counts taken from the raw data (contract C1)
    if plan.resume is None:
        read = read_sources(p, [(sp.config, sp.files, sp.n_rows) for sp in plan.sources])
        records = maybe_redistribute(plan, read["records"])  # -w 2: spread (redistribute.py)
        read_dead = read["dead"]
        dead_all.append(read_dead)
        # a dead row may stand for n unreadable records ("records": n)
        events.append(read_dead | "ReadDeadEvent" >> beam.FlatMap(
            lambda d: itertools.repeat(acc.dead_key("read", d["reason"]), acc.dead_weight(d))))
        input_counts = read["counted"]
        json_files.append(acc.JsonFile(input_counts, f"{staging}/_stats/input_counts.json"))
        input_profile = combine_parts([records], acc.RecordProfile(cfg.length_histogram_bins),
                                      "InputProfile")
        json_files.append(acc.JsonFile(input_profile, f"{staging}/_stats/input_profile.json",
                                       single=True))
    else:
        ck = plan.resume
        first = ck.index + 1
        files = [f["path"] for f in ck.manifest["files"]]
        records = (
            p
            | "CheckpointFiles" >> beam.Create(files)
            | "ReadCheckpoint" >> beam.ParDo(ReadParquetRows())
        )

    # consecutive plain record stages run fused on batches (pipelines.stages.record_stage.FusedRecordStages)
    # (a checkpoint ends its run: the stages after it take the records of its stage)
    runs = fusible_runs(plan.stages[first:], [s.checkpoint for s in cfg.stages[first:]])
    for run in runs:
        idx = [first + j for j in run]
        for i, outs in zip(idx, _apply_run(plan, idx, records)):
            label = plan.labels[i]
            res = StageResult(outs["kept"], outs["removed"], outs["dead"],
                              {k[5:]: v for k, v in outs.items() if k.startswith("stat:")})
            if res.kept is not None:
                records = res.kept
            # removed / dead may come in parts made in different steps: each is consumed where
            # it is produced (a Flatten of records would be held in memory by the local runner)
            removed_parts, breakdown = parts(res.removed), []
            for n, removed in enumerate(removed_parts):
                sfx = "" if n == 0 else str(n)
                events.append(removed | f"{label}/RemovedEvent{sfx}" >> beam.Map(
                    ProgressKey(f"stage/{label}/removed", acc.removed_key, label,
                                  lambda it: it[0])))
                removed_all.append(removed | f"{label}/RemovedRow{sfx}" >> beam.Map(
                    RemovedRow(label)))
                breakdown.append(removed | f"{label}/BreakdownKey{sfx}" >> beam.Map(
                    lambda it, lab=label: (lab, reason_category(it[0]), it[1])))
            # removed per source/language (report, card)
            res.stats["removed_breakdown"] = combine_parts(
                breakdown, BreakdownFn(removed=True), f"{label}/Breakdown")
            for n, dead in enumerate(parts(res.dead)):
                events.append(dead | f"{label}/DeadEvent{'' if n == 0 else n}" >> beam.Map(
                    ProgressKey(f"stage/{label}/dead", acc.dead_key, label,
                                  lambda d: d["reason"])))
                dead_all.append(dead)
            for name, pc in res.stats.items():
                json_files.append(acc.JsonFile(pc, f"{staging}/_stats/stage.{label}.{name}.json"))
                stage_stats.append((f"stage.{label}.{name}", pc))
            if cfg.stages[i].checkpoint:
                done = write_checkpoint(
                    plan.checkpoint_target(i), records, events, removed_all, dead_all,
                    [*stage_stats, *([("input_profile", input_profile),
                                      ("input_counts", input_counts)]
                                     if input_profile is not None else [])], p)
                # the later stages read the checkpoint's data files once its manifest is
                # written: a build interrupted after that point resumes from it, and the
                # records get to the later stages exactly as a resumed run gets them. Only
                # file paths wait (a step holding records until the manifest exists would
                # keep them all in the local runner's memory)
                records = (done
                           | f"AfterCheckpoint[{label}]/Files" >> beam.FlatMap(checkpoint_data_files)
                           | f"AfterCheckpoint[{label}]/Spread" >> beam.Reshuffle()
                           | f"AfterCheckpoint[{label}]/Read" >> beam.ParDo(ReadParquetRows()))

    schema = arrow_schema(plan.columns)
    columns = list(schema.names)
    out_rows = records | "OutputRows" >> beam.Map(to_output_row, columns)
    part = plan.partition_by
    per_shard = cfg.output.partition_rows_per_shard
    out_rows | "WriteParquet" >> WriteSortedShards(f"{staging}/data", n_shards, "parquet",
                                                   schema=schema, partition_by=part,
                                                   rows_per_shard=per_shard)
    if cfg.output.jsonl:
        out_rows | "WriteJsonl" >> WriteSortedShards(f"{staging}/jsonl", n_shards, "jsonl",
                                                     partition_by=part,
                                                     rows_per_shard=per_shard)
    json_files.append(acc.JsonFile(combine_parts([records], BreakdownFn(), "KeptBreakdown"),
                                   f"{staging}/_stats/kept_breakdown.json", single=True))
    json_files.append(acc.JsonFile(
        combine_parts([records], acc.RecordProfile(cfg.length_histogram_bins), "KeptProfile"),
        f"{staging}/_stats/kept_profile.json", single=True))
    write_side_outputs(f"{staging}", removed_all, dead_all, side_shards, cfg.output.write_removed,
                       "Final", p)
    counts = acc.count_events(events, p, "Count")
    json_files.append(acc.JsonFile(counts, f"{staging}/_stats/counts.json", single=True))
    acc.write_json_files(json_files, "Stats", p)


def _apply_run(plan: BuildPlan, idx: list[int], records) -> list[dict[str, Any]]:
    """Apply the stages ``idx`` (one, or a fusible run of record stages) to ``records``."""
    if len(idx) == 1:
        return [_apply_stage(plan.stages[idx[0]], plan.labels[idx[0]], records)]
    name = "+".join(plan.labels[i] for i in idx)  # metrics split this scope by stage timers
    return records | name >> FusedRecordStages([plan.stages[i] for i in idx])


def _apply_stage(stage: Stage, label: str, records) -> dict[str, Any]:
    """Apply one stage inside its own named scope (``<label>/...`` in the Beam graph)."""
    return records | label >> _StageScope(stage)


class _StageScope(beam.PTransform):
    def __init__(self, stage: Stage):
        super().__init__()
        self._stage = stage

    def expand(self, pcoll):
        res = self._stage.expand(pcoll)
        return {"kept": res.kept, "removed": res.removed, "dead": res.dead,
                **{f"stat:{k}": v for k, v in res.stats.items()}}

