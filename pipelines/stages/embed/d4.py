"""Stage ``d4``: SemDeDup, then prototype pruning, as one recipe (Tirumala et al., "D4:
Improving LLM pretraining via document de-duplication and diversification", 2023).

Takes the parameters of both ``semdedup`` and ``prototype_prune``. The prototype step runs on
the records that survive SemDeDup, so ``keep_fraction`` (or ``budget_records``) applies to the
deduplicated count. Both steps use the clusters of the preceding ``cluster`` stage; to
re-cluster after deduplication as the D4 paper does, use ``semdedup`` -> ``cluster`` ->
``prototype_prune`` instead.

Removal reasons: ``semantic_duplicate`` and ``prototype_pruned``. Stats: ``semdedup`` (with the
eps curve), ``prototype`` and ``prototype_per_cluster``.
"""

from __future__ import annotations

from typing import Literal

import apache_beam as beam

from pipelines.stages.base import Stage, StageResult
from pipelines.stages.registry import register_stage
from pipelines.stages.embed.prototype_prune import (
    PrototypeFields,
    expand_prototype,
    prototype_report,
)
from pipelines.stages.embed.semdedup import SemDedupFields, expand_semdedup, semdedup_report


class D4Params(SemDedupFields, PrototypeFields):
    stage: Literal["d4"]


class _Scoped(beam.PTransform):
    def __init__(self, fn, label, params):
        super().__init__()
        self._fn, self._label, self._params = fn, label, params
        self.result: StageResult | None = None

    def expand(self, pcoll):
        self.result = self._fn(pcoll, self._label, self._params)
        r = self.result
        return {"kept": r.kept, "removed": r.removed, "dead": r.dead, **{
            f"stat.{k}": v for k, v in r.stats.items()}}


@register_stage
class D4Stage(Stage):
    name = "d4"
    Params = D4Params
    description = "D4 recipe: SemDeDup within clusters, then prototype pruning."

    def output_columns(self) -> dict[str, str]:
        return {"semdedup_max_sim": "float64", "semdedup_duplicate_of": "string"}

    def expand(self, records) -> StageResult:
        p: D4Params = self.params  # type: ignore[assignment]
        sd = records | "SemDeDup" >> _Scoped(expand_semdedup, self.label, p)
        pp = sd["kept"] | "Prototype" >> _Scoped(expand_prototype, self.label, p)
        # in parts, not flattened: the build consumes each where it is produced
        removed = (sd["removed"], pp["removed"])
        dead = (sd["dead"], pp["dead"])
        stats = {k[len("stat."):]: v for part in (sd, pp) for k, v in part.items()
                 if k.startswith("stat.")}
        return StageResult(kept=pp["kept"], removed=removed, dead=dead, stats=stats)

    def report_section(self, stage_stats: dict) -> str | None:
        parts = [x for x in (semdedup_report(stage_stats), prototype_report(stage_stats)) if x]
        return "\n".join(parts) or None
