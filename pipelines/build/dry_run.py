"""A dry run (``datamill build CONFIG -- ... --dry_run=True``): plan, translate and prepare the
job, print what a real run would write, and write nothing.

Beam's DataflowRunner honours ``--dry_run`` itself: it translates the graph, pickles every
DoFn and builds the ``--setup_file`` sdist locally, then returns without submitting. datamill
adds what Beam cannot know about: no output lock, no ``_staging/``, no checkpoint, stats or
manifest, and no remote call at all while planning (remote sources are not listed: their files
and sizes are unknown, so stages fall back to their defaults; see :mod:`pipelines.core.remote`).
On any other runner, where Beam would ignore the flag and run the job, the graph is only
built and translated to Beam's portable representation, never run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import apache_beam as beam

from pipelines.build.config import BuildConfig
from pipelines.build.graph import construct
from pipelines.build.output_lock import LOCK_NAME, REMOTE_LOCK_NAME
from pipelines.build.plan import BuildPlan
from pipelines.core import remote
from pipelines.core.fs import is_url
from pipelines.core.runner import make_options, runner_name


def would_write(plan: BuildPlan) -> list[str]:
    """What a real run of ``plan`` writes, in order, one line each."""
    out = plan.out
    lock = f"{out}/{REMOTE_LOCK_NAME}" if is_url(out) else f"{out}/{LOCK_NAME}"
    fmt = "Parquet" + (" + JSONL" if plan.cfg.output.jsonl else "")
    lines = [f"{lock} (the output lock, held while the build runs)",
             f"{plan.staging}/ (the run's outputs: up to {plan.cfg.output.shards} {fmt} "
             "shard(s) of data"
             + (", removed" if plan.cfg.output.write_removed else "")
             + ", dead_letter, _stats)"]
    lines += [f"{plan.checkpoint_dir(i)}/ (checkpoint after stage {plan.labels[i]!r})"
              for i in range(len(plan.stages)) if plan.cfg.stages[i].checkpoint]
    lines.append(f"{out}/ (the staged build promoted: data, stats.json, manifest.json"
                 + (", report.html" if plan.cfg.output.report else "")
                 + (", README.md" if plan.cfg.output.card else "") + ")")
    return lines


def offline_notes(plan: BuildPlan) -> list[str]:
    """What the offline planning of a dry run did not look at."""
    notes = []
    for i, sp in enumerate(plan.sources):
        if remote.is_remote(sp.config.path):
            notes.append(f"sources[{i}] ({sp.config.name}): {sp.config.path} was not listed "
                         "(a dry run makes no remote calls): its files, sizes and fields are "
                         "unknown, so size-dependent settings use their defaults")
    for label, st in zip(plan.labels, plan.stages):
        notes.extend(f"{label}: {line}" for line in st.plan_notes())
    if is_url(plan.out):
        notes.append(f"{plan.out}: not read (no checkpoint looked up, no earlier build checked)")
    return notes


def dry_run_build(plan: BuildPlan, cfg: BuildConfig, extra_args: list[str] | None,
                  log: Callable[[str], None]) -> dict[str, Any]:
    """Translate and prepare the job of ``plan`` without running it or writing anything;
    returns a summary (runner, transforms, would_write, notes)."""
    name = runner_name(cfg.runner, extra_args)
    runner, options = make_options(cfg.runner, extra_args)
    with remote.offline_planning():
        p = beam.Pipeline(runner=runner, options=options)
        construct(plan, p)
        if name == "DataflowRunner":  # Beam's own dry run: translation, pickling, sdist
            p.run().wait_until_finish()
            proto = getattr(p.runner, "proto_pipeline", None) or p.to_runner_api()
            how = "translated and prepared by Beam's DataflowRunner (not submitted)"
        else:  # Beam would run it: only build and translate the graph
            proto = p.to_runner_api()
            how = f"translated for {name} (not run)"
    summary = {"dry_run": True, "runner": name, "transforms": len(proto.components.transforms),
               "would_write": would_write(plan), "notes": offline_notes(plan)}
    for note in summary["notes"]:
        log(f"note: {note}")
    log(f"dry run: the job graph ({summary['transforms']} transforms) was {how}; nothing was "
        "written. A real run writes:")
    for line in summary["would_write"]:
        log(f"  {line}")
    return summary
