"""Checkpoints: records after stage NN plus what a resumed run needs to report the stages
before it, in ``<out>/checkpoints/NN-<label>/``; validity checks and the chain of parents."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from pipelines.build import accounting as acc
from pipelines.core.fs import exists, read_json, write_json
from pipelines.core.records import arrow_schema
from pipelines.io.side_outputs import write_side_outputs
from pipelines.io.sinks import WriteSortedShards

MANIFEST_VERSION = 2  # 2: outputs/side_files with sizes
# the files a checkpoint's manifest lists (with sizes; Parquet also with row counts): its
# records, its removed / dead-letter shards and its _stats/*.json (counts and stage stats);
# a manifest without one of these lists (an older datamill's) makes the checkpoint invalid
MANIFEST_KEYS = ("files", "side_files", "stats_files")


@dataclass
class Checkpoint:
    index: int
    label: str
    path: str
    manifest: dict


@dataclass(frozen=True)
class CheckpointTarget:
    """What :func:`write_checkpoint` needs to know about the checkpoint of stage ``index``
    (the plan fills it in; this module does not depend on the plan)."""

    index: int
    label: str
    path: str  # the checkpoint's directory
    fingerprint: str
    columns: dict[str, str]  # columns of the records after the stage
    parent: dict | None  # {"path", "fingerprint"} of the checkpoint this run resumed from
    run_id: str
    shards: int
    write_removed: bool


def file_size(path: str) -> int:
    """Size in bytes of one file, looked up literally (never as a glob)."""
    if "://" not in path:
        return os.path.getsize(path)
    return FileSystems.get_filesystem(path).metadata(path).size_in_bytes


def files_valid(files: list[dict]) -> bool:
    """Every listed file exists with its recorded size (when recorded) and, for Parquet, holds
    the recorded number of rows."""
    import pyarrow.parquet as pq

    for f in files:
        if not exists(f["path"]):
            return False
        if "bytes" in f:
            try:
                if file_size(f["path"]) != f["bytes"]:
                    return False
            except Exception:  # noqa: BLE001 - vanished between the checks
                return False
        if f["path"].endswith(".parquet"):
            try:
                with FileSystems.open(f["path"]) as fh:
                    if pq.ParquetFile(fh).metadata.num_rows != f["rows"]:
                        return False
            except Exception:  # noqa: BLE001 - truncated/corrupt shard
                return False
    return True


def checkpoint_valid(path: str, fingerprint: str) -> dict | None:
    mpath = f"{path}/manifest.json"
    if not exists(mpath) or not exists(f"{path}/_stats/counts.json"):
        return None
    try:
        manifest = read_json(mpath)
    except Exception:  # noqa: BLE001
        return None
    if manifest.get("fingerprint") != fingerprint or any(
            key not in manifest for key in MANIFEST_KEYS):
        return None
    if not all(files_valid(manifest[key]) for key in MANIFEST_KEYS):
        return None
    parent = manifest.get("parent")
    if parent and checkpoint_valid(parent["path"], parent["fingerprint"]) is None:
        return None
    return manifest


def chain(ck: Checkpoint | None) -> list[str]:
    """Checkpoint directories from the oldest ancestor to ``ck``."""
    paths: list[str] = []
    manifest = ck.manifest if ck else None
    path = ck.path if ck else None
    while manifest is not None and path is not None:
        paths.append(path)
        parent = manifest.get("parent")
        if not parent:
            break
        path = parent["path"]
        manifest = read_json(f"{path}/manifest.json")
    return list(reversed(paths))


# A record has no key for a column it has no value for (pipelines/io/input_fields.py), or a
# key with the value None where a stage set one; Parquet stores both as null. A checkpoint's
# data shards carry this extra column, the names of the record's columns that were present
# and None, so that a resumed build gets back the records a clean build has, key for key
# (its removed/ rows, which are whole records, are then the same too).
NULL_COLUMNS = "__datamill_null_columns"


def _checkpoint_row(record: dict) -> dict:
    return {**record, NULL_COLUMNS: [k for k, v in record.items() if v is None]}


class ReadParquetRows(beam.DoFn):
    def process(self, path: str):
        import pyarrow.parquet as pq

        with FileSystems.open(path) as fh:
            for batch in pq.ParquetFile(fh).iter_batches(batch_size=4096):
                for row in batch.to_pylist():
                    nulls = row.pop(NULL_COLUMNS, None)
                    if nulls is None:  # written without the column: as stored
                        yield row
                    else:
                        yield {k: v for k, v in row.items() if v is not None or k in nulls}


class _WriteManifest(beam.DoFn):
    def __init__(self, path: str, payload: dict):
        self._path, self._payload = path, payload

    def process(self, tagged):
        manifest = dict(self._payload)
        for key in MANIFEST_KEYS:
            manifest[key] = sorted(({**f, "bytes": file_size(f["path"])}
                                    for kind, f in tagged if kind == key),
                                   key=lambda f: f["path"])
        manifest["rows"] = sum(f["rows"] for f in manifest["files"])
        write_json(self._path, manifest)
        yield self._path


def write_checkpoint(target: CheckpointTarget, records, events, removed_all, dead_all,
                     stats: list[tuple[str, Any]], p):
    """Persist records after stage ``target.index`` plus everything a resumed run needs to
    report the stages before it: their removed/dead rows, event counts and stats.

    Returns a PCollection of one element, the manifest's path, produced once the manifest is
    written; the manifest is written last, after every file it lists (data and side-output
    shards, counts and stats). The build holds the stages after the checkpoint until then
    (pipelines/build/graph.py), so an interrupted build resumes from it."""
    path, i = target.path, target.index
    tag = f"Checkpoint[{target.label}]"
    if NULL_COLUMNS in target.columns:
        raise ValueError(f"column name {NULL_COLUMNS!r} is reserved for checkpoints")
    schema = arrow_schema(target.columns).append(pa.field(NULL_COLUMNS, pa.list_(pa.string())))
    written = (records
               | f"{tag}Rows" >> beam.Map(_checkpoint_row)
               | f"{tag}Write" >> WriteSortedShards(f"{path}/data", target.shards, "parquet",
                                                   schema=schema))
    counts = acc.count_events(list(events), p, f"{tag}Count")
    stat_paths = acc.write_json_files(
        [acc.JsonFile(counts, f"{path}/_stats/counts.json", single=True),
         *(acc.JsonFile(pc, f"{path}/_stats/{name}.json", single=name == "input_profile")
           for name, pc in stats)], f"{tag}Stats", p)
    side = write_side_outputs(path, list(removed_all), list(dead_all),
                              max(1, min(target.shards, 4)), target.write_removed, tag, p)
    payload = {
        "version": MANIFEST_VERSION,
        "fingerprint": target.fingerprint,
        "stage_index": i,
        "label": target.label,
        "columns": target.columns,
        "parent": target.parent,
        "run_id": target.run_id,
    }
    # the manifest is written last, after every data, side-output and stats file it records
    tagged = [written | f"{tag}DataFiles" >> beam.Map(lambda f: ("files", f))] + [
        pc | f"{tag}SideFiles[{i}]" >> beam.Map(lambda f: ("side_files", f))
        for i, pc in enumerate(side)] + [
        stat_paths | f"{tag}StatsFiles" >> beam.Map(lambda f: ("stats_files", {"path": f}))]
    return (tagged
            | f"{tag}AllFiles" >> beam.Flatten()
            | f"{tag}Files" >> beam.combiners.ToList()
            | f"{tag}Manifest" >> beam.ParDo(_WriteManifest(f"{path}/manifest.json", payload)))
