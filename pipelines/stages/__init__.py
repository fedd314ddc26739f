"""The stage author's API: everything a stage (built in or a plugin) needs, in one import.

    from pipelines.stages import RecordStage, RecordStageParams, register_stage

Built-in stages live in one file each, named after the name written in the config, in a family
folder: ``text/`` (rewrite or annotate text), ``filter/`` (drop records by a per-record score),
``dedup/`` (exact and near duplicates) and ``embed/`` (embeddings and what is computed on them).
See docs/architecture.md.
"""

from pipelines.stages.base import (DEAD, KEPT, REMOVED, Stage, StageContext, StageParams,
                                   StageResult, parts)
from pipelines.stages.record_stage import RecordStage, RecordStageParams
from pipelines.stages.registry import load_stages, register_stage
from pipelines.stages.score_stats import HistSpec, ScoreReportMixin, ScoreStage

__all__ = ["DEAD", "KEPT", "REMOVED", "HistSpec", "RecordStage", "RecordStageParams",
           "ScoreReportMixin", "ScoreStage", "Stage", "StageContext", "StageParams",
           "StageResult", "load_stages", "parts", "register_stage"]
