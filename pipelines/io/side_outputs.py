"""Graph pieces shared by the final outputs and checkpoints: flattening lists of
PCollections and writing the removed / dead-letter side outputs.

The side outputs come from many steps (every stage's removed and dead rows). They are never
flattened as rows: the local runner materializes a multi-input Flatten in memory until its
last producer is done, which held every removed record's text for the whole build. Each
input is spilled to sorted runs in its own step; only run paths are flattened."""

from __future__ import annotations

from typing import Any

import apache_beam as beam

from pipelines.io.sinks import WriteSortedShards


def flatten(pcolls: list[Any], p: beam.Pipeline, label: str):
    if not pcolls:
        return p | f"{label}Empty" >> beam.Create([])
    return pcolls | label >> beam.Flatten()


def spill_inputs(pcolls: list[Any], p: beam.Pipeline, label: str) -> tuple:
    """The inputs of a multi-input :class:`WriteSortedShards`: the PCollections themselves
    (each is spilled inside the step that produces it; never a Flatten of rows, which the
    local runner would hold in memory), or one empty PCollection when there are none."""
    # a tuple: Beam treats a list on the left of ``|`` as eager values, not PCollections
    return tuple(pcolls) if pcolls else (p | f"{label}Empty" >> beam.Create([]),)


def write_side_outputs(prefix, removed_all, dead_all, shards, write_removed, tag, p) -> list:
    """Write dead_letter/ (and removed/) shards; returns the PCollections of written files."""
    dead = spill_inputs(dead_all, p, f"{tag}Dead")
    written = [dead | f"{tag}WriteDead" >> WriteSortedShards(
        f"{prefix}/dead_letter", shards, "jsonl",
        sort_key=lambda d: f"{d['stage']}\x00{d.get('location') or ''}\x00{d.get('id') or ''}")]
    if write_removed:
        removed = spill_inputs(removed_all, p, f"{tag}Removed")
        written.append(removed | f"{tag}WriteRemoved" >> WriteSortedShards(
            f"{prefix}/removed", shards, "jsonl",
            sort_key=lambda r: f"{r['record']['id']}\x00{r['stage']}"))
    return written
