"""``run_build``: plan, run the Beam graph, check the accounting and promote the outputs.

A run writes into ``<out>/_staging/<run id>/`` and moves the files into place only after the
pipeline succeeded and the record accounting balanced, so a failed run never leaves a
half-written output. Resumability is per checkpoint: a rerun whose sources (paths, sizes,
mtimes) and stage configs up to checkpoint NN are unchanged reads the records from the newest
such valid checkpoint and runs only the later stages; a rerun of an unchanged, complete build
does nothing (``--force`` rebuilds).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from typing import Any, Callable

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipelines import accounting as acc
from pipelines.build_stats import gather_stats, stage_metrics
from pipelines.buildfs import exists, read_json
from pipelines.checkpoint import MANIFEST_VERSION
from pipelines.config import BuildConfig
from pipelines.graph import construct
from pipelines.plan import plan_build
from pipelines.promote import cleanup_staging, existing_complete, promote
from pipelines.runner import make_options, runner_name


@dataclass
class BuildResult:
    out: str
    stats: dict[str, Any]
    skipped: bool = False


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
        return BuildResult(plan.out, read_json(f"{plan.out}/stats.json"), skipped=True)
    if plan.resume is not None:
        log(f"resuming from checkpoint {plan.resume.path} "
            f"({plan.resume.manifest['rows']} records after stage {plan.resume.label!r})")
    for i in range(len(plan.stages)):
        if cfg.stages[i].checkpoint and (plan.resume is None or i > plan.resume.index):
            stale = plan.checkpoint_dir(i)
            if "://" not in stale:
                shutil.rmtree(stale, ignore_errors=True)
            elif exists(stale):
                FileSystems.delete([stale])
    runner, options = make_options(cfg.runner, extra_args)
    t0 = time.perf_counter()
    p = beam.Pipeline(runner=runner, options=options)
    construct(plan, p)
    log(f"running {len(plan.stages)} stages on {runner_name(cfg.runner, extra_args)}")
    result = p.run()
    result.wait_until_finish()
    wall = time.perf_counter() - t0
    stats = gather_stats(plan, wall, stage_metrics(result, plan.labels))
    if not stats["conservation_ok"]:
        cleanup_staging(plan)
        raise acc.conservation_error(stats["counts"], stats["stages"])
    files = promote(plan)
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
    cleanup_staging(plan)
    return BuildResult(plan.out, stats)
