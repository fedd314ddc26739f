"""Gathering a finished run's stats: merge the ``_stats/*.json`` files of the staging
directory and of every checkpoint it resumed from, count input/kept, check conservation and
build the ``stats.json`` payload (per-stage runtime comes from :mod:`pipelines.core.metrics`)."""

from __future__ import annotations

from typing import Any

from pipelines.build import accounting as acc
from pipelines.build.breakdown import summarize_breakdown
from pipelines.core.fs import list_files, read_json
from pipelines.build.checkpoint import chain
from pipelines.build.plan import BuildPlan
from pipelines.core.runner import runner_name
from pipelines.stages.base import stat_value


def _load_stats_dir(path: str) -> dict[str, Any]:
    """The ``_stats/*.json`` files of a staging or checkpoint directory, listed literally
    (an output path such as ``out/run[2]`` is never expanded as a glob)."""
    out: dict[str, Any] = {}
    root = f"{path}/_stats"
    for full in list_files(root):
        name = full[len(root):].lstrip("/")
        if "/" in name or not name.endswith(".json"):
            continue
        out[name[: -len(".json")]] = read_json(full)
    return out


def _require(parts: list[tuple[str, dict[str, Any]]], name: str) -> None:
    """Fail loudly when a counting stat is missing: a build whose counts went missing (e.g.
    workers that wrote elsewhere) must never report "balanced"."""
    if not any(part.get(name) is not None for _, part in parts):
        where = ", ".join(f"{d}/_stats" for d, _ in parts)
        raise acc.MissingCountError(
            f"counting stat {name}.json is missing (looked in {where}); the workers did not "
            "write the build's accounting where the driver reads it (a relative or "
            "worker-local output path?), so nothing was promoted")


def _merge_counts(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    return out


def gather_stats(plan: BuildPlan, wall_s: float, metrics: dict[str, Any]) -> dict[str, Any]:
    dirs = [*chain(plan.resume), plan.staging]
    named = [(d, _load_stats_dir(d)) for d in dirs]
    _require(named[-1:], "counts")
    _require(named[-1:], "kept_profile")
    _require(named, "input_profile")
    _require(named, "input_counts")
    raw_parts = [part for _, part in named]
    counts: dict[str, int] = {}
    merged: dict[str, Any] = {}
    for part in raw_parts:
        counts = _merge_counts(counts, part.get("counts") or {})
        for k, v in part.items():
            if k != "counts":
                merged[k] = v
    # input = records counted from the raw data per file (contract C1), not from what the
    # parser managed to read (presence of every counting stat was checked by _require above)
    # in source order, then by path: the gathered list comes in whatever order the workers
    # finished (stats.json is the same for the same inputs, whatever the worker count)
    order = {sp.config.name: i for i, sp in enumerate(plan.sources)}
    input_files = sorted(merged["input_counts"],
                         key=lambda f: (order.get(f.get("source"), len(order)),
                                        str(f.get("source")), str(f.get("path"))))
    counts["input"] = acc.input_total(input_files)
    counts["kept"] = merged["kept_profile"]["count"]
    summary = acc.summarize(counts, plan.labels)
    stages_out: dict[str, Any] = {}
    for i, (stage, label) in enumerate(zip(plan.stages, plan.labels)):
        st = dict(summary["stages"].get(label, {}))
        st["stage"] = stage.name
        st["params"] = plan.cfg.stages[i].model_dump(exclude_none=True)
        st["static"] = stage.static_stats()
        # each _stats file holds a stat PCollection's elements: made plain here, once
        st["stats"] = {k.split(".", 2)[2]: stat_value(v) for k, v in merged.items()
                       if k.startswith(f"stage.{label}.")}
        st["runtime_ms"] = metrics.get(label)
        st["resumed"] = plan.resume is not None and i <= plan.resume.index
        st["index"] = i
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
        "stage_order": list(plan.labels),
        "input_files": input_files,
        "skipped_files": [{"source": sp.config.name, "path": s.path, "reason": s.reason}
                          for sp in plan.sources for s in sp.skipped],  # stats.json sorts keys; this keeps pipeline order
        "columns": plan.columns,
        "input_fields": plan.describe_fields(),  # kept fields, renames (pipelines/input_fields)
        "breakdown": summarize_breakdown(
            merged.get("kept_breakdown"),
            _merge_breakdowns([st["stats"].get("removed_breakdown")
                               for st in stages_out.values()])),
        "input_lengths": merged.get("input_profile"),
        "kept_lengths": merged.get("kept_profile"),
        "raw_counts": counts,
        "runtime_ms": metrics,
    }


def _merge_breakdowns(parts: list[Any]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for part in parts:
        for k, v in (part or {}).items():
            o = out.setdefault(k, [0, 0, 0])
            for i in range(3):
                o[i] += v[i]
    return out
