"""Planning a build: resolve inputs, instantiate stages, pick a checkpoint. No data work.

Paths are resolved and checked first (:mod:`pipelines.build.paths`): on local and portable
runners relative paths become absolute here, once. A :class:`BuildPlan` holds everything later
steps need: the validated config, the resolved source file lists and fingerprints, the stages
with the columns after each, the run id (and so the staging directory) and the checkpoint to
resume from, if any.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass, field

from pipelines.build.paths import check_output_dir, resolve_build_paths
from pipelines.core import remote
from pipelines.core.fs import confined, is_url
from pipelines.core.spill import spill_root
from pipelines.build.checkpoint import Checkpoint, CheckpointTarget, checkpoint_valid
from pipelines.build.config import BuildConfig, stage_fingerprint
from pipelines.core.settings import ConfigError
from pipelines.io.source_config import SourceConfig
from pipelines.stages.registry import stage_labels
from pipelines.io.input_fields import FieldConfigError, FieldPlan, describe, plan_fields
from pipelines.core.records import BASE_COLUMNS, arrow_schema
from pipelines.io.input_files import InputFile, SkippedFile, printable
from pipelines.io.sources import describe_inputs, field_candidates
from pipelines.stages.base import Stage, StageContext
from pipelines.stages.registry import load_stages


@dataclass
class SourcePlan:
    config: SourceConfig
    files: list[InputFile] | None
    n_rows: int
    fingerprint: dict
    skipped: list[SkippedFile] = field(default_factory=list)  # found, not read (with reason)


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
    source_columns: dict[str, str] = field(default_factory=dict)  # columns sources add
    input_fields: list[FieldPlan] = field(default_factory=list)  # per source, in order

    def describe_fields(self) -> list[str]:
        """Input fields kept per source, renames and the extra_fields rule (validate, stats)."""
        return describe([sp.config for sp in self.sources], self.input_fields)

    @property
    def staging(self) -> str:
        return Target(self.out, self.run_id).staging

    @property
    def spill_root(self) -> str:
        return Target(self.out, self.run_id).spill_root

    @property
    def columns(self) -> dict[str, str]:
        return self.stage_columns[-1] if self.stage_columns else dict(self.source_columns)

    def checkpoint_dir(self, i: int) -> str:
        # a label can never lead outside <out>/checkpoints (contract C2)
        return confined(self.out, "checkpoints", f"{i:02d}-{self.labels[i]}")

    def checkpoint_fingerprint(self, i: int) -> str:
        return hashlib.sha256(
            (self.source_fp + stage_fingerprint(self.cfg, i)).encode()
        ).hexdigest()

    def checkpoint_target(self, i: int) -> CheckpointTarget:
        """Where and what :func:`~pipelines.build.checkpoint.write_checkpoint` writes for stage i."""
        parent = None
        if self.resume is not None:
            parent = {"path": self.resume.path,
                      "fingerprint": self.checkpoint_fingerprint(self.resume.index)}
        return CheckpointTarget(
            index=i, label=self.labels[i], path=self.checkpoint_dir(i),
            fingerprint=self.checkpoint_fingerprint(i), columns=self.stage_columns[i],
            parent=parent, run_id=self.run_id, shards=self.cfg.output.shards,
            write_removed=self.cfg.output.write_removed)

    def full_fingerprint(self) -> str:
        # report-only options: changing them does not make the data out of date
        out = self.cfg.output.model_dump(exclude={"report", "redact_snippets"})
        payload = self.source_fp + stage_fingerprint(self.cfg, len(self.stages) - 1)
        return hashlib.sha256((payload + json.dumps(out, sort_keys=True)).encode()).hexdigest()


def _ensure_demo(src: SourceConfig) -> SourceConfig:
    from pipelines.io.demo_corpus import ensure_demo_corpus

    ensure_demo_corpus(src.path, n_docs=src.demo_docs)
    return src.model_copy(update={"type": "jsonl", "path": f"{src.path}/*.jsonl*"})


def _check_disjoint(sources: list[SourcePlan]) -> None:
    """A file (by its real path: symlinks resolved) listed by two sources would be read twice:
    a config error naming both sources, the file and the fix, before any work."""
    owner: dict[str, tuple[int, InputFile]] = {}
    for i, sp in enumerate(sources):
        for f in sp.files or []:
            key = f.path if is_url(f.path) else os.path.realpath(f.path)
            j, first = owner.setdefault(key, (i, f))
            if j == i:
                continue
            names = (f"sources[{j}] ({sources[j].config.name!r}, as {first.display!r}) and "
                     f"sources[{i}] ({sp.config.name!r}, as {f.display!r})")
            raise ConfigError(
                f"sources[{i}].path: {names} both read the file {printable(key)!r}: its "
                "records would be read twice; narrow a glob or path (or remove a source) so "
                "that each file belongs to one source")


def _plan_stages(cfg: BuildConfig, registry: dict, labels: list[str], out: str,
                 columns: dict[str, str], spill_root: str | None = None,
                 ) -> tuple[list[Stage], list[dict[str, str]], set[str]]:
    """Instantiate the stages in order: the stages, the columns present after each and the
    names of the columns the stages add."""
    columns = dict(columns)
    added: set[str] = set()
    stages: list[Stage] = []
    stage_columns: list[dict[str, str]] = []
    for i, params in enumerate(cfg.stages):
        ctx = StageContext(label=labels[i], index=i, output_dir=out, columns=dict(columns),
                           config=cfg, spill_root=spill_root)
        stage = registry[params.stage](params, ctx)
        for name, typ in stage.output_columns().items():
            if name in BASE_COLUMNS and name != "text":
                raise ValueError(f"stage {labels[i]!r} may not redefine column {name!r}")
            if name != "text":
                columns[name] = typ
                added.add(name)
        stages.append(stage)
        stage_columns.append(dict(columns))
    return stages, stage_columns, added


def plan_build(cfg: BuildConfig, extra_args: list[str] | None = None,
               use_checkpoints: bool = True) -> BuildPlan:
    """Resolve inputs, instantiate stages and find a checkpoint to resume from. No data work.

    Remote calls (listing a ``gs://`` source, reading its sample, a checkpoint's manifest) each
    end within ``DATAMILL_REMOTE_TIMEOUT`` seconds or raise RemoteUnreachable (one line,
    :mod:`pipelines.core.remote`). A dry run (``--dry_run=True``) plans offline: remote sources
    are not listed (unknown sizes: stages use their defaults) and no remote checkpoint is
    looked up."""
    with remote.offline_planning(remote.dry_run([*cfg.runner.options, *(extra_args or [])])):
        return _plan_build(cfg, extra_args, use_checkpoints)


@dataclass(frozen=True)
class Target:
    """What staging and promotion need of a run (:mod:`pipelines.build.promote`): the output
    directory, the run id and the top-level names the run publishes (``entries``: linked from
    ``current`` in the swap layout, refused when something datamill did not write sits
    there). A build's is ``promote.target_of(plan)``; ``datamill synth`` and ``materialize``
    make their own."""

    out: str
    run_id: str
    entries: tuple[str, ...] = ()

    @property
    def staging(self) -> str:
        return f"{self.out}/_staging/{self.run_id}"

    @property
    def spill_root(self) -> str:
        return spill_root(self.out, self.run_id)


def new_run_id() -> str:
    """A run's id: start time and 6 random hex digits (``promote.RUN_ID``)."""
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def _plan_build(cfg: BuildConfig, extra_args: list[str] | None,
                use_checkpoints: bool) -> BuildPlan:
    registry = load_stages()
    cfg = resolve_build_paths(cfg, extra_args)  # absolute paths, or an error naming the path
    check_output_dir(cfg)
    out = cfg.output.dir.rstrip("/")
    labels = stage_labels(cfg.stages)
    run_id = new_run_id()
    sources = []
    for i, src in enumerate(cfg.sources):
        if src.type == "demo_corpus":
            src = _ensure_demo(src)
        files, n_rows, fp, skipped = describe_inputs(src, i)
        sources.append(SourcePlan(src, files, n_rows, fp, skipped))
    _check_disjoint(sources)
    source_fp = hashlib.sha256(
        json.dumps([s.fingerprint for s in sources], sort_keys=True).encode()
    ).hexdigest()
    # columns that sources add: web sources (url, fetch_date...; null for other sources),
    # then the input fields kept as columns (pipelines.io.input_fields), then extra_fields
    from pipelines.io.web_sources import check_web_source, source_columns

    for i, src in enumerate(cfg.sources):
        if src.type in ("warc", "html"):
            check_web_source(src, i)
    web = source_columns(cfg.sources)
    cands = [field_candidates(sp.config, sp.files) for sp in sources]
    reserved = {**BASE_COLUMNS, **web}
    try:
        field_plans, in_cols = plan_fields([sp.config for sp in sources],
                                           [c for c, _ in cands], [s for _, s in cands],
                                           reserved)
        stages, stage_columns, added = _plan_stages(cfg, registry, labels, out,
                                                    {**web, **in_cols}, spill_root(out, run_id))
        if added & set(in_cols):  # an input field named like a stage column: rename it
            field_plans, in_cols = plan_fields([sp.config for sp in sources],
                                               [c for c, _ in cands], [s for _, s in cands],
                                               reserved.keys() | added)
            stages, stage_columns, _ = _plan_stages(cfg, registry, labels, out,
                                                    {**web, **in_cols}, spill_root(out, run_id))
    except FieldConfigError as err:
        raise ConfigError(str(err)) from None
    for sp, fp in zip(sources, field_plans):
        sp.config = sp.config.model_copy()
        sp.config._input_fields = fp  # read by pipelines.io.sources.ReadSource
    src_cols = {**web, **in_cols}
    columns = dict(stage_columns[-1]) if stage_columns else dict(src_cols)
    arrow_schema(columns)  # fail early on unknown column types
    part = cfg.output.partition_by
    if part is None:  # a stage may ask for routed outputs (language_id: route_by_language)
        routes = [st.static_stats().get("route_by") for st in stages]
        part = next((r for r in routes if r), None)
    if part and part not in {**BASE_COLUMNS, **columns}:
        raise ConfigError(
            f"output.partition_by: column {part!r} is not produced by the sources or any stage; "
            f"available: {', '.join([*BASE_COLUMNS, *columns])}")
    plan = BuildPlan(cfg, out, stages, labels, stage_columns, sources, source_fp, None, run_id,
                     list(extra_args or []), part, src_cols, field_plans)
    if use_checkpoints and not (remote.offline() and is_url(out)):
        for i in reversed(range(len(stages))):
            if cfg.stages[i].checkpoint:
                path = plan.checkpoint_dir(i)
                manifest = remote.call(
                    lambda p=path, k=i: checkpoint_valid(p, plan.checkpoint_fingerprint(k)), path,
                    "reading the checkpoint's manifest")
                if manifest is not None:
                    plan.resume = Checkpoint(i, labels[i], path, manifest)
                    break
    return plan
