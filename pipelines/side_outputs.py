"""Graph pieces shared by the final outputs and checkpoints: flattening lists of
PCollections and writing the removed / dead-letter side outputs."""

from __future__ import annotations

from typing import Any

import apache_beam as beam

from pipelines.sinks import WriteSortedShards


def flatten(pcolls: list[Any], p: beam.Pipeline, label: str):
    if not pcolls:
        return p | f"{label}Empty" >> beam.Create([])
    return pcolls | label >> beam.Flatten()


def write_side_outputs(prefix, removed_all, dead_all, shards, write_removed, tag, p) -> list:
    """Write dead_letter/ (and removed/) shards; returns the PCollections of written files."""
    dead = flatten(dead_all, p, f"{tag}Dead")
    written = [dead | f"{tag}WriteDead" >> WriteSortedShards(
        f"{prefix}/dead_letter", shards, "jsonl",
        sort_key=lambda d: f"{d['stage']}\x00{d.get('location') or ''}\x00{d.get('id') or ''}")]
    if write_removed:
        removed = flatten(removed_all, p, f"{tag}Removed")
        written.append(removed | f"{tag}WriteRemoved" >> WriteSortedShards(
            f"{prefix}/removed", shards, "jsonl",
            sort_key=lambda r: f"{r['record']['id']}\x00{r['stage']}"))
    return written
