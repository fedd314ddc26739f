"""Per-stage runtime of a build, from Beam metrics, on every runner.

Two sources, in order of preference:

* ``transform`` - the local runner (FnApiRunner) returns per-transform system metrics
  (``beam:metric:pardo_execution_time:total_msecs:v1`` and friends) through
  ``result.monitoring_metrics()``; they cover every transform, so they are grouped by scope into
  ``read``, each stage label, ``write`` (shards, checkpoints, side outputs) and ``accounting``.
* ``user`` - every other runner (PortableRunner, Flink, Spark, Dataflow) returns only *user*
  metrics through ``result.metrics()``. Stage DoFns time their own work with
  :class:`StageTimer`, which adds the elapsed microseconds to a Beam ``Distribution`` named after
  the stage label in namespace :data:`NAMESPACE`; its sum is the stage's processing time summed
  over workers. It covers the timed DoFns only (the record-stage adapter in ``pipelines.stages.record_stage``
  and stage DoFns that use the timer), not reading, shuffles or writing.

:func:`stage_runtime` returns ``({group: milliseconds}, source)``; ``source`` is ``"transform"``,
``"user"`` or ``"none"`` and goes into stats.json as ``runtime_source``.
"""

from __future__ import annotations

import time
from typing import Any

from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter

NAMESPACE = "datamill.stage_usecs"


class StageTimer:
    """``with timer: ...`` adds the block's wall time (µs) to the stage's runtime distribution.

    Create it in a DoFn's ``__init__`` (it pickles: the Beam metric object is made lazily on the
    worker) and time only the DoFn's own computation, not the ``yield`` of its outputs (with
    fusion, a yield runs the downstream transforms inline)."""

    def __init__(self, group: str):
        self._group = group
        self._dist = None
        self._t0 = 0.0

    def __getstate__(self) -> dict:
        return {"_group": self._group, "_dist": None, "_t0": 0.0}

    def __enter__(self) -> StageTimer:
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._dist is None:
            self._dist = Metrics.distribution(NAMESPACE, self._group)
        self._dist.update(int((time.perf_counter() - self._t0) * 1e6))


def _value(result: Any) -> Any:
    return result.committed if result.committed is not None else result.attempted


def transform_msecs(result: Any, labels: list[str]) -> dict[str, float]:
    """Execution time per group (ms) from per-transform system metrics; {} where the runner
    reports none."""
    out: dict[str, float] = {}
    try:
        counters = result.monitoring_metrics().query()["counters"]
    except Exception:  # noqa: BLE001 - only the local runner's result offers system metrics
        return out
    for c in counters:
        if not str(c.key.metric.name).endswith("total_msecs:v1"):
            continue
        top = (c.key.step or "").split("/", 1)[0]
        if top.startswith("Read["):
            group = "read"
        elif top in labels or (top and all(part in labels for part in top.split("+"))):
            group = top  # a stage, or a fused run of stages ("normalize+length_filter")
        elif top.startswith(("Write", "Checkpoint[", "Final")):
            group = "write"
        else:
            group = "accounting"
        out[group] = out.get(group, 0.0) + float(_value(c) or 0)
    return out


def _split_fused(groups: dict[str, float], timers: dict[str, float]) -> dict[str, float]:
    """Share the time of a fused run ("a+b") among its stages in proportion to their own
    stage timers (equally when they have none)."""
    out: dict[str, float] = {}
    for group, ms in groups.items():
        parts = group.split("+")
        if len(parts) == 1:
            out[group] = out.get(group, 0.0) + ms
            continue
        weights = [timers.get(p, 0.0) for p in parts]
        total = sum(weights)
        for p, w in zip(parts, weights):
            share = w / total if total > 0 else 1 / len(parts)
            out[p] = out.get(p, 0.0) + ms * share
    return out


def user_msecs(result: Any) -> dict[str, float]:
    """Processing time per stage label (ms) from :class:`StageTimer` distributions; {} where the
    runner returns no metrics (e.g. Beam's DaskRunner raises NotImplementedError)."""
    try:
        dists = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["distributions"]
    except Exception:  # noqa: BLE001 - a runner without metrics support
        return {}
    usecs: dict[str, int] = {}
    for d in dists:
        v = _value(d)
        if v is None:
            continue
        usecs[d.key.metric.name] = usecs.get(d.key.metric.name, 0) + int(v.sum)
    return {k: round(v / 1000.0, 3) for k, v in usecs.items()}


def stage_runtime(result: Any, labels: list[str]) -> tuple[dict[str, float], str]:
    """``({group: ms}, source)``: per-transform timings where the runner has them, else the
    stages' own timers (user metrics, reported by every runner with metrics)."""
    out = transform_msecs(result, labels)
    if out:
        return _split_fused(out, user_msecs(result)), "transform"
    out = user_msecs(result)
    return (out, "user") if out else ({}, "none")
