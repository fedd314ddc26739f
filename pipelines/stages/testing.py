"""Run one stage on in-memory records (for tests and notebooks), on the in-process runner."""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.core.combine import Stat
from pipelines.stages.registry import parse_stages
from pipelines.stages.base import StageContext, stat_value
from pipelines.stages.registry import load_stages

_SINKS: dict[str, list[Any]] = defaultdict(list)
_LOCK = threading.Lock()


class _Collect(beam.DoFn):
    def __init__(self, key: str):
        self._key = key

    def process(self, element: Any):
        with _LOCK:
            _SINKS[self._key].append(element)


def local_pipeline(num_workers: int = 1, mode: str = "in_memory") -> beam.Pipeline:
    """A pipeline on the in-process Python runner (skips the Prism download attempt)."""
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    opts = PipelineOptions(direct_num_workers=num_workers, direct_running_mode=mode)
    return beam.Pipeline(runner=FnApiRunner(), options=opts)


def collect(pcoll: Any, name: str) -> str:
    """Attach an in-memory sink to ``pcoll`` (a statistic: to its value); read it after the run
    with :func:`collected`."""
    key = f"{name}-{uuid.uuid4().hex}"
    _SINKS[key] = []
    if isinstance(pcoll, Stat):
        pcoll = pcoll.final(f"Final{name}")
    pcoll | f"Collect{name}" >> beam.ParDo(_Collect(key))
    return key


def collected(key: str) -> list[Any]:
    with _LOCK:
        return list(_SINKS.pop(key, []))


def _one(outputs: Any, name: str) -> Any:
    """A stage output given in parts (``StageResult.removed``/``dead``) as one PCollection."""
    from pipelines.stages.base import parts

    got = parts(outputs)
    return got[0] if len(got) == 1 else got | f"All{name}Parts" >> beam.Flatten()


def run_stage(
    params: dict[str, Any],
    records: list[dict[str, Any]],
    *,
    columns: dict[str, str] | None = None,
    output_dir: str = "/tmp/datamill-test",
) -> dict[str, Any]:
    """Run a single configured stage; returns kept, removed, dead (sorted), stats and entry.

    ``params`` is the stage's config block, e.g. ``{"stage": "length_filter", "min_words": 3}``.
    ``stats`` maps each stat to the list of its PCollection's elements; ``entry`` is the
    stage's entry as a build writes it to ``stats.json`` (plain values, ``stat_value``), the
    one shape ``report_section`` takes: ``stage.report_section(out["entry"])``.
    """
    (sp,) = parse_stages([params])
    cls = load_stages()[sp.stage]
    stage = cls(sp, StageContext(label=sp.label or sp.stage, index=0, output_dir=output_dir,
                                 columns=dict(columns or {})))
    p = local_pipeline()
    res = stage.expand(p | "Create" >> beam.Create(records))
    keys = {
        "kept": collect(res.kept, "kept"),
        "removed": collect(_one(res.removed, "removed"), "removed"),
        "dead": collect(_one(res.dead, "dead"), "dead"),
    }
    stat_keys = {name: collect(pc, f"stat_{name}") for name, pc in res.stats.items()}
    p.run().wait_until_finish()
    out: dict[str, Any] = {
        "kept": sorted(collected(keys["kept"]), key=lambda r: r["id"]),
        "removed": sorted(collected(keys["removed"]), key=lambda x: (x[1]["id"], x[0])),
        "dead": sorted(collected(keys["dead"]), key=lambda d: (str(d.get("id")), d["reason"])),
        "stats": {name: collected(k) for name, k in stat_keys.items()},
        "stage": stage,
    }
    out["entry"] = {"stage": stage.name, "params": sp.model_dump(exclude_none=True),
                    "static": stage.static_stats(), "in": len(records),
                    "out": len(out["kept"]),
                    "stats": {name: stat_value(v) for name, v in out["stats"].items()}}
    return out
