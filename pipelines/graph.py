"""Turn a validated BuildConfig into a Beam pipeline, run it, and finalize the outputs.

Output directory layout::

    <out>/data/part-00000-of-00004.parquet   kept records (id, text, source, score columns)
    <out>/jsonl/part-*.jsonl.gz              the same records as JSONL (output.jsonl: true)
    <out>/removed/part-*.jsonl.gz            removed records with stage + reason (write_removed)
    <out>/dead_letter/part-*.jsonl.gz        rows that could not be read or processed
    <out>/stats.json  <out>/report.html  <out>/manifest.json
    <out>/checkpoints/NN-<label>/            records after stage NN (stages with checkpoint: true)

A run writes into ``<out>/_staging/<run id>/`` and moves the files into place only after the
pipeline succeeded and the record accounting balanced, so a failed run never leaves a
half-written output. Resumability is per checkpoint: a rerun whose sources (paths, sizes,
mtimes) and stage configs up to checkpoint NN are unchanged reads the records from the newest
such valid checkpoint and runs only the later stages; a rerun of an unchanged, complete build
does nothing (``--force`` rebuilds).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipelines import accounting as acc
from pipelines.config import (BuildConfig, ConfigError, SourceConfig, stage_fingerprint,
                              stage_labels)
from pipelines.records import BASE_COLUMNS, arrow_schema
from pipelines.runner import make_options, runner_name
from pipelines.sinks import WriteSortedShards, to_output_row
from pipelines.sources import InputFile, ReadSource, SkippedFile, describe_inputs
from pipelines.stage import Stage, StageContext, StageResult, load_stages

MANIFEST_VERSION = 1


@dataclass
class SourcePlan:
    config: SourceConfig
    files: list[InputFile] | None
    n_rows: int
    fingerprint: dict
    skipped: list[SkippedFile] = field(default_factory=list)  # issue 10: found, not read


@dataclass
class Checkpoint:
    index: int
    label: str
    path: str
    manifest: dict


@dataclass
class BuildPlan:
    cfg: BuildConfig
    out: str
    stages: list[Stage]
    labels: list[str]
    stage_columns: list[dict[str, str]]  # columns present after each stage
    sources: list[SourcePlan]
    source_fp: str
    resume: Checkpoint | None
    run_id: str
    extra_args: list[str] = field(default_factory=list)
    partition_by: str | None = None  # output.partition_by, or a stage's route_by

    @property
    def staging(self) -> str:
        return f"{self.out}/_staging/{self.run_id}"

    @property
    def columns(self) -> dict[str, str]:
        return self.stage_columns[-1] if self.stage_columns else {}

    def checkpoint_dir(self, i: int) -> str:
        return f"{self.out}/checkpoints/{i:02d}-{self.labels[i]}"

    def checkpoint_fingerprint(self, i: int) -> str:
        return hashlib.sha256(
            (self.source_fp + stage_fingerprint(self.cfg, i)).encode()
        ).hexdigest()

    def full_fingerprint(self) -> str:
        out = self.cfg.output.model_dump(exclude={"report"})
        payload = self.source_fp + stage_fingerprint(self.cfg, len(self.stages) - 1)
        return hashlib.sha256((payload + json.dumps(out, sort_keys=True)).encode()).hexdigest()


# --------------------------------------------------------------------------- planning


def _exists(path: str) -> bool:
    try:
        return FileSystems.exists(path)
    except Exception:  # noqa: BLE001 - e.g. gs:// without the gcp extra while only planning
        return False


def _read_json(path: str) -> Any:
    with FileSystems.open(path) as fh:
        return json.loads(fh.read().decode("utf-8"))


def _files_valid(files: list[dict]) -> bool:
    """Every listed shard exists and (for Parquet) holds the recorded number of rows."""
    import pyarrow.parquet as pq

    for f in files:
        if not _exists(f["path"]):
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
    if not _exists(mpath) or not _exists(f"{path}/_stats/counts.json"):
        return None
    try:
        manifest = _read_json(mpath)
    except Exception:  # noqa: BLE001
        return None
    if manifest.get("fingerprint") != fingerprint or not _files_valid(manifest.get("files", [])):
        return None
    parent = manifest.get("parent")
    if parent and checkpoint_valid(parent["path"], parent["fingerprint"]) is None:
        return None
    return manifest


def _ensure_demo(src: SourceConfig) -> SourceConfig:
    from pipelines.demo_corpus import ensure_demo_corpus

    ensure_demo_corpus(src.path, n_docs=src.demo_docs)
    return src.model_copy(update={"type": "jsonl", "path": f"{src.path}/*.jsonl*"})


def plan_build(cfg: BuildConfig, extra_args: list[str] | None = None,
               use_checkpoints: bool = True) -> BuildPlan:
    """Resolve inputs, instantiate stages and find a checkpoint to resume from. No data work."""
    registry = load_stages()
    out = cfg.output.dir.rstrip("/")
    labels = stage_labels(cfg.stages)
    sources = []
    for i, src in enumerate(cfg.sources):
        if src.type == "demo_corpus":
            src = _ensure_demo(src)
        files, n_rows, fp, skipped = describe_inputs(src, i)
        sources.append(SourcePlan(src, files, n_rows, fp, skipped))
    source_fp = hashlib.sha256(
        json.dumps([s.fingerprint for s in sources], sort_keys=True).encode()
    ).hexdigest()
    stages: list[Stage] = []
    stage_columns: list[dict[str, str]] = []
    columns: dict[str, str] = {}
    for i, params in enumerate(cfg.stages):
        ctx = StageContext(label=labels[i], index=i, output_dir=out, columns=dict(columns),
                           config=cfg)
        stage = registry[params.stage](params, ctx)
        for name, typ in stage.output_columns().items():
            if name in BASE_COLUMNS and name != "text":
                raise ValueError(f"stage {labels[i]!r} may not redefine column {name!r}")
            if name != "text":
                columns[name] = typ
        stages.append(stage)
        stage_columns.append(dict(columns))
    arrow_schema(columns)  # fail early on unknown column types
    part = cfg.output.partition_by
    if part is None:  # a stage may ask for routed outputs (language_id: route_by_language)
        routes = [st.static_stats().get("route_by") for st in stages]
        part = next((r for r in routes if r), None)
    if part and part not in {**BASE_COLUMNS, **columns}:
        raise ConfigError(
            f"output.partition_by: column {part!r} is not produced by the sources or any stage; "
            f"available: {', '.join([*BASE_COLUMNS, *columns])}")
    plan = BuildPlan(cfg, out, stages, labels, stage_columns, sources, source_fp, None,
                     time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6],
                     list(extra_args or []), part)
    if use_checkpoints:
        for i in reversed(range(len(stages))):
            if cfg.stages[i].checkpoint:
                path = plan.checkpoint_dir(i)
                manifest = checkpoint_valid(path, plan.checkpoint_fingerprint(i))
                if manifest is not None:
                    plan.resume = Checkpoint(i, labels[i], path, manifest)
                    break
    return plan


# --------------------------------------------------------------------------- construction


def _removed_row(label: str):
    def fn(item):
        reason, record = item
        return {"stage": label, "reason": reason, "record": record}

    return fn


def construct(plan: BuildPlan, p: beam.Pipeline) -> None:
    """Add the whole build to pipeline ``p`` (writing into the staging directory)."""
    cfg, staging = plan.cfg, plan.staging
    n_shards = cfg.output.shards
    side_shards = max(1, min(n_shards, 4))
    events: list[Any] = []  # PCollections of event keys for the current segment
    input_profile = None  # count + lengths of parsed input records (first segment only)
    stage_stats: list[tuple[str, Any]] = []  # (stats file name, PCollection) of this segment
    removed_all: list[Any] = []
    dead_all: list[Any] = []
    first = 0

    if plan.resume is None:
        parts, deads, counted = [], [], []
        for i, sp in enumerate(plan.sources):
            res = p | f"Read[{sp.config.name}]" >> ReadSource(sp.config, sp.files, sp.n_rows)
            parts.append(res["records"])
            deads.append(res["dead"])
            counted.append(res["counted"])
        records = parts | "AllSources" >> beam.Flatten()
        read_dead = deads | "AllReadDead" >> beam.Flatten()
        dead_all.append(read_dead)
        # issue 10 (safety-in): a dead row may stand for n unreadable records ("records": n)
        events.append(read_dead | "ReadDeadEvent" >> beam.FlatMap(
            lambda d: itertools.repeat(acc.dead_key("read", d["reason"]), acc.dead_weight(d))))
        # issue 10 (safety-in): per-file input counts taken from the raw data (contract C1)
        input_counts = counted | "AllInputCounts" >> beam.Flatten()
        acc.write_json(input_counts, f"{staging}/_stats/input_counts.json", "InputCountsJson")
        input_profile = records | "InputProfile" >> beam.CombineGlobally(
            acc.RecordProfile(cfg.length_histogram_bins))
        acc.write_json(input_profile, f"{staging}/_stats/input_profile.json", "InputProfileJson",
                       single=True)
    else:
        ck = plan.resume
        first = ck.index + 1
        files = [f["path"] for f in ck.manifest["files"]]
        records = (
            p
            | "CheckpointFiles" >> beam.Create(files)
            | "ReadCheckpoint" >> beam.ParDo(_ReadParquetRows())
        )

    for i in range(first, len(plan.stages)):
        stage, label = plan.stages[i], plan.labels[i]
        outs = _apply_stage(stage, label, records)
        res = StageResult(outs["kept"], outs["removed"], outs["dead"],
                          {k[5:]: v for k, v in outs.items() if k.startswith("stat:")})
        records = res.kept
        events.append(res.removed | f"{label}/RemovedEvent" >> beam.Map(
            lambda it, lab=label: acc.removed_key(lab, it[0])))
        events.append(res.dead | f"{label}/DeadEvent" >> beam.Map(
            lambda d, lab=label: acc.dead_key(lab, d["reason"])))
        removed_all.append(res.removed | f"{label}/RemovedRow" >> beam.Map(_removed_row(label)))
        dead_all.append(res.dead)
        for name, pc in res.stats.items():
            acc.write_json(pc, f"{staging}/_stats/stage.{label}.{name}.json",
                           f"{label}/Stat[{name}]")
            stage_stats.append((f"stage.{label}.{name}", pc))
        if cfg.stages[i].checkpoint:
            _write_checkpoint(plan, i, records, events, removed_all, dead_all,
                              [*stage_stats, *([("input_profile", input_profile),
                                                ("input_counts", input_counts)]
                                               if input_profile is not None else [])], p)

    schema = arrow_schema(plan.columns)
    columns = list(schema.names)
    out_rows = records | "OutputRows" >> beam.Map(to_output_row, columns)
    part = plan.partition_by
    out_rows | "WriteParquet" >> WriteSortedShards(f"{staging}/data", n_shards, "parquet",
                                                   schema=schema, partition_by=part)
    if cfg.output.jsonl:
        out_rows | "WriteJsonl" >> WriteSortedShards(f"{staging}/jsonl", n_shards, "jsonl",
                                                     partition_by=part)
    acc.write_json(records | "KeptProfile" >> beam.CombineGlobally(
        acc.RecordProfile(cfg.length_histogram_bins)),
        f"{staging}/_stats/kept_profile.json", "KeptProfileJson", single=True)
    _write_side_outputs(f"{staging}", removed_all, dead_all, side_shards, cfg.output.write_removed,
                        "Final", p)
    counts = _flatten(events, p, "AllEvents") | "Count" >> acc.CountEvents()
    acc.write_json(counts, f"{staging}/_stats/counts.json", "CountsJson", single=True)


def _flatten(pcolls: list[Any], p: beam.Pipeline, label: str):
    if not pcolls:
        return p | f"{label}Empty" >> beam.Create([])
    return pcolls | label >> beam.Flatten()


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


def _write_side_outputs(prefix, removed_all, dead_all, shards, write_removed, tag, p):
    dead = _flatten(dead_all, p, f"{tag}Dead")
    dead | f"{tag}WriteDead" >> WriteSortedShards(
        f"{prefix}/dead_letter", shards, "jsonl",
        sort_key=lambda d: f"{d['stage']}\x00{d.get('location') or ''}\x00{d.get('id') or ''}")
    if write_removed:
        removed = _flatten(removed_all, p, f"{tag}Removed")
        removed | f"{tag}WriteRemoved" >> WriteSortedShards(
            f"{prefix}/removed", shards, "jsonl",
            sort_key=lambda r: f"{r['record']['id']}\x00{r['stage']}")


class _ReadParquetRows(beam.DoFn):
    def process(self, path: str):
        import pyarrow.parquet as pq

        with FileSystems.open(path) as fh:
            for batch in pq.ParquetFile(fh).iter_batches(batch_size=4096):
                yield from batch.to_pylist()


class _WriteManifest(beam.DoFn):
    def __init__(self, path: str, payload: dict):
        self._path, self._payload = path, payload

    def process(self, files):
        manifest = dict(self._payload)
        manifest["files"] = sorted(files, key=lambda f: f["path"])
        manifest["rows"] = sum(f["rows"] for f in files)
        with FileSystems.create(self._path) as fh:
            fh.write(json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8"))
        yield self._path


def _write_checkpoint(plan: BuildPlan, i: int, records, events, removed_all, dead_all,
                      stats: list[tuple[str, Any]], p):
    """Persist records after stage ``i`` plus everything a resumed run needs to report the
    stages before it: their removed/dead rows, event counts and stats."""
    cfg, label = plan.cfg, plan.labels[i]
    path = plan.checkpoint_dir(i)
    tag = f"Checkpoint[{label}]"
    schema = arrow_schema(plan.stage_columns[i])
    written = records | f"{tag}Write" >> WriteSortedShards(
        f"{path}/data", cfg.output.shards, "parquet", schema=schema)
    counts = _flatten(list(events), p, f"{tag}Events") | f"{tag}Count" >> acc.CountEvents()
    acc.write_json(counts, f"{path}/_stats/counts.json", f"{tag}Counts", single=True)
    for name, pc in stats:
        acc.write_json(pc, f"{path}/_stats/{name}.json", f"{tag}Stat[{name}]",
                       single=name == "input_profile")
    _write_side_outputs(path, list(removed_all), list(dead_all), max(1, min(cfg.output.shards, 4)),
                        cfg.output.write_removed, tag, p)
    parent = None
    if plan.resume is not None:
        parent = {"path": plan.resume.path,
                  "fingerprint": plan.checkpoint_fingerprint(plan.resume.index)}
    payload = {
        "version": MANIFEST_VERSION,
        "fingerprint": plan.checkpoint_fingerprint(i),
        "stage_index": i,
        "label": label,
        "columns": plan.stage_columns[i],
        "parent": parent,
        "run_id": plan.run_id,
    }
    (written
     | f"{tag}Files" >> beam.combiners.ToList()
     | f"{tag}Manifest" >> beam.ParDo(_WriteManifest(f"{path}/manifest.json", payload)))


# --------------------------------------------------------------------------- running


@dataclass
class BuildResult:
    out: str
    stats: dict[str, Any]
    skipped: bool = False


def _load_stats_dir(path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in FileSystems.match([f"{path}/_stats/*.json"])[0].metadata_list:
        name = m.path.rsplit("/", 1)[-1][: -len(".json")]
        out[name] = _read_json(m.path)
    return out


def _merge_counts(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    return out


def _chain(ck: Checkpoint | None) -> list[str]:
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
        manifest = _read_json(f"{path}/manifest.json")
    return list(reversed(paths))


def _gather_stats(plan: BuildPlan, wall_s: float, metrics: dict[str, Any]) -> dict[str, Any]:
    raw_parts = [_load_stats_dir(c) for c in _chain(plan.resume)] + [_load_stats_dir(plan.staging)]
    counts: dict[str, int] = {}
    merged: dict[str, Any] = {}
    for part in raw_parts:
        counts = _merge_counts(counts, part.get("counts") or {})
        for k, v in part.items():
            if k != "counts":
                merged[k] = v
    # issue 10 (safety-in): input = records counted from the raw data per file, not from
    # what the parser managed to read; a missing counting stat fails loudly
    input_files = acc.require_stat(merged, "input_counts", plan.staging)
    acc.require_stat(raw_parts[-1], "counts", plan.staging)
    counts["input"] = acc.input_total(input_files)
    counts["kept"] = acc.require_stat(merged, "kept_profile", plan.staging)["count"]
    summary = acc.summarize(counts, plan.labels)
    stages_out: dict[str, Any] = {}
    for i, (stage, label) in enumerate(zip(plan.stages, plan.labels)):
        st = dict(summary["stages"].get(label, {}))
        st["stage"] = stage.name
        st["params"] = plan.cfg.stages[i].model_dump(exclude_none=True)
        st["static"] = stage.static_stats()
        st["stats"] = {k.split(".", 2)[2]: _unwrap(v) for k, v in merged.items()
                       if k.startswith(f"stage.{label}.")}
        st["runtime_ms"] = metrics.get(label)
        st["resumed"] = plan.resume is not None and i <= plan.resume.index
        stages_out[label] = st
    return {
        "name": plan.cfg.name,
        "run_id": plan.run_id,
        "runner": runner_name(plan.cfg.runner, plan.extra_args),
        "wall_seconds": round(wall_s, 3),
        "docs_per_second": round(summary["input"] / wall_s, 1) if wall_s > 0 else None,
        "resumed_from": plan.resume.label if plan.resume else None,
        "counts": {k: summary[k] for k in ("input", "kept", "removed", "dead_letter")},
        "conservation_ok": summary["ok"],
        "read": summary["stages"]["read"],
        "stages": stages_out,
        "columns": plan.columns,
        "input_files": input_files,  # issue 10 (safety-in)
        "skipped_files": [{"source": sp.config.name, "path": s.path, "reason": s.reason}
                          for sp in plan.sources for s in sp.skipped],
        "input_lengths": merged.get("input_profile"),
        "kept_lengths": merged.get("kept_profile"),
        "raw_counts": counts,
        "runtime_ms": metrics,
    }


def _unwrap(v: Any) -> Any:
    return v[0] if isinstance(v, list) and len(v) == 1 else v


def _stage_metrics(result: Any, labels: list[str]) -> dict[str, float]:
    """Execution time per stage (ms), from the runner's per-transform system metrics.

    Portable runners (the local one, Dataflow, Flink) report ``total_msecs`` for every
    transform; the transforms are grouped by their scope: ``read``, each stage label,
    ``write`` (shards, checkpoints, side outputs) and ``accounting``. Empty where the runner
    reports no such metrics.
    """
    out: dict[str, float] = {}
    try:
        counters = result.monitoring_metrics().query()["counters"]
    except Exception:  # noqa: BLE001 - not every runner result offers system metrics
        return out
    for c in counters:
        if not str(c.key.metric.name).endswith("total_msecs:v1"):
            continue
        step = c.key.step or ""
        top = step.split("/", 1)[0]
        if top.startswith("Read["):
            group = "read"
        elif top in labels:
            group = top
        elif top.startswith(("Write", "Checkpoint[", "Final")):
            group = "write"
        else:
            group = "accounting"
        out[group] = out.get(group, 0.0) + float(c.committed or c.attempted or 0)
    return out


def _list_files(folder: str) -> list[str]:
    """All files below ``folder`` (recursively: partitioned outputs have sub-folders)."""
    if "://" not in folder:
        root = Path(folder)
        return sorted(str(p) for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
    if not _exists(folder):
        return []
    return sorted(m.path for m in FileSystems.match([f"{folder}/**"])[0].metadata_list)


def _move_tree(src_dir: str, dst_dir: str, copy: bool = False, prefix: str = "") -> None:
    src = _list_files(src_dir)
    if not src:
        return
    dst = []
    for path in src:
        rel = path[len(src_dir):].lstrip("/")
        head, _, name = rel.rpartition("/")
        dst.append(f"{dst_dir}/{head + '/' if head else ''}{prefix}{name}")
    if "://" not in dst_dir:
        for d in dst:
            Path(d).parent.mkdir(parents=True, exist_ok=True)
    (FileSystems.copy if copy else FileSystems.rename)(src, dst)


def _promote(plan: BuildPlan) -> list[dict]:
    """Move staged outputs into place (replacing a previous run's) and copy resumed side outputs."""
    import pyarrow.parquet as pq

    out, staging = plan.out, plan.staging
    for sub in ("data", "jsonl", "removed", "dead_letter"):
        if "://" not in out:
            shutil.rmtree(f"{out}/{sub}", ignore_errors=True)
        else:
            old = _list_files(f"{out}/{sub}")
            if old:
                FileSystems.delete(old)
        _move_tree(f"{staging}/{sub}", f"{out}/{sub}")
    for depth, ck in enumerate(_chain(plan.resume)):
        for sub in ("removed", "dead_letter"):
            _move_tree(f"{ck}/{sub}", f"{out}/{sub}", copy=True, prefix=f"resumed{depth}-")
    files = []
    for path in _list_files(f"{out}/data"):
        if path.endswith(".parquet"):
            with FileSystems.open(path) as fh:
                files.append({"path": path, "rows": pq.ParquetFile(fh).metadata.num_rows})
    return files


def _cleanup_staging(plan: BuildPlan) -> None:
    if "://" not in plan.out:
        shutil.rmtree(plan.staging, ignore_errors=True)
        root = Path(plan.out) / "_staging"
        if root.is_dir() and not any(root.iterdir()):
            root.rmdir()
    elif _exists(plan.staging):
        FileSystems.delete([plan.staging])


def existing_complete(plan: BuildPlan) -> dict | None:
    mpath = f"{plan.out}/manifest.json"
    if not _exists(mpath):
        return None
    try:
        manifest = _read_json(mpath)
    except Exception:  # noqa: BLE001
        return None
    if manifest.get("status") != "complete" or manifest.get("fingerprint") != plan.full_fingerprint():
        return None
    if not _files_valid(manifest.get("files", [])) or not _exists(f"{plan.out}/stats.json"):
        return None
    return manifest


def run_build(
    cfg: BuildConfig,
    *,
    extra_args: list[str] | None = None,
    force: bool = False,
    log: Callable[[str], None] = lambda s: None,
) -> BuildResult:
    """Plan, run and finalize a build. Raises ConservationError if records went missing."""
    plan = plan_build(cfg, extra_args, use_checkpoints=not force)
    if not force and existing_complete(plan) is not None:
        log(f"{plan.out} is up to date with this config and these inputs (use --force to rebuild)")
        return BuildResult(plan.out, _read_json(f"{plan.out}/stats.json"), skipped=True)
    if plan.resume is not None:
        log(f"resuming from checkpoint {plan.resume.path} "
            f"({plan.resume.manifest['rows']} records after stage {plan.resume.label!r})")
    for i in range(len(plan.stages)):
        if cfg.stages[i].checkpoint and (plan.resume is None or i > plan.resume.index):
            stale = plan.checkpoint_dir(i)
            if "://" not in stale:
                shutil.rmtree(stale, ignore_errors=True)
            elif _exists(stale):
                FileSystems.delete([stale])
    skipped = [(sp.config.name, s) for sp in plan.sources for s in sp.skipped]  # issue 10
    if skipped:
        log(f"skipping {len(skipped)} file(s) found but not read (listed in stats.json "
            "skipped_files):")
        for name, s in skipped[:20]:
            log(f"  [{name}] {s.path}: {s.reason}")
        if len(skipped) > 20:
            log(f"  ... and {len(skipped) - 20} more")
    runner, options = make_options(cfg.runner, extra_args)
    t0 = time.perf_counter()
    p = beam.Pipeline(runner=runner, options=options)
    construct(plan, p)
    log(f"running {len(plan.stages)} stages on {runner_name(cfg.runner, extra_args)}")
    result = p.run()
    result.wait_until_finish()
    wall = time.perf_counter() - t0
    try:  # issue 10 (safety-in): changed inputs, imbalance, missing stats, dead-letter share
        stats = _gather_stats(plan, wall, _stage_metrics(result, plan.labels))
        acc.check_build(stats, cfg.output.max_dead_letter_fraction)
    except acc.AccountingError:
        _cleanup_staging(plan)
        raise
    files = _promote(plan)
    stats["output_files"] = files
    with FileSystems.create(f"{plan.out}/stats.json") as fh:
        fh.write(json.dumps(stats, indent=2, sort_keys=True, default=str).encode("utf-8"))
    if cfg.output.report:
        from pipelines.report import write_report

        write_report(plan, stats)
    manifest = {
        "version": MANIFEST_VERSION,
        "status": "complete",
        "fingerprint": plan.full_fingerprint(),
        "run_id": plan.run_id,
        "config": cfg.model_dump(mode="json"),
        "sources": [s.fingerprint for s in plan.sources],
        "files": files,
        "rows": sum(f["rows"] for f in files),
    }
    with FileSystems.create(f"{plan.out}/manifest.json") as fh:
        fh.write(json.dumps(manifest, indent=2, sort_keys=True, default=str).encode("utf-8"))
    _cleanup_staging(plan)
    return BuildResult(plan.out, stats)
