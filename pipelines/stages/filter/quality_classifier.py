"""Stage ``quality_classifier``: score documents with a trained classifier artifact.

Adds ``column`` (default ``quality_prob``) = P(positive class). Keep by ``threshold``
(drop reason ``quality_below_threshold``) and/or keep the global ``top_fraction`` by that
score (drop reason ``below_top_fraction``, selected with an approximate quantile computed in
Beam -- see the ``score_select`` stage). Train an artifact with
``datamill train-classifier CONFIG.yaml``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from filters.quality_classifier import META_FILE, QualityClassifierScorer
from pipelines.stages.score_stats import HistSpec, ScoreReportMixin
from pipelines.stages.record_stage import RecordStage, RecordStageParams
from pipelines.stages.base import StageResult
from pipelines.stages.registry import register_stage


class QualityClassifierParams(RecordStageParams):
    stage: Literal["quality_classifier"]
    artifact: str = Field(description="Directory written by `datamill train-classifier`.")
    column: str = Field(default="quality_prob", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    threshold: float | None = Field(default=None, ge=0, le=1,
                                    description="Drop documents with probability below this.")
    top_fraction: float | None = Field(default=None, gt=0, le=1,
                                       description="Keep only this fraction with the highest "
                                       "probability (global, approximate quantile).")
    quantile_epsilon: float = Field(default=1e-4, gt=0, le=0.1)
    batch_size: int = Field(default=512, ge=1, le=100_000)

    @field_validator("artifact")
    @classmethod
    def _exists(cls, v: str) -> str:
        if not (Path(v) / META_FILE).is_file():
            raise ValueError(
                f"{v!r} is not a classifier artifact (no {META_FILE}); train one with "
                "`datamill train-classifier CONFIG.yaml` and point 'artifact' at its output"
            )
        return v


@register_stage
class QualityClassifierStage(ScoreReportMixin, RecordStage):
    name = "quality_classifier"
    Params = QualityClassifierParams
    description = "Model-based quality score (hashed n-grams or embeddings + logistic regression)."

    def make_scorer(self) -> QualityClassifierScorer:
        p: QualityClassifierParams = self.params  # type: ignore[assignment]
        return QualityClassifierScorer(p.artifact, p.column, p.threshold)

    def hist_specs(self) -> list[HistSpec]:
        p: QualityClassifierParams = self.params  # type: ignore[assignment]
        return [HistSpec(p.column, 0, 1, 40, (p.threshold,) if p.threshold is not None else ())]

    def static_stats(self) -> dict:
        """The artifact's training facts (held-out accuracy/AUC, sizes, features)."""
        p: QualityClassifierParams = self.params  # type: ignore[assignment]
        try:
            meta = json.loads((Path(p.artifact) / META_FILE).read_text())
        except (OSError, ValueError):
            return {}
        keys = ("metrics", "n_train", "n_test", "n_positive", "n_negative", "settings")
        return {"classifier": {k: meta[k] for k in keys if k in meta}}

    def rules_text(self) -> str:
        info = self.static_stats().get("classifier", {})
        m = info.get("metrics", {})
        if not m:
            return ""
        feat = info.get("settings", {}).get("feature", "?")
        return (f"Classifier ({feat}): held-out accuracy {m.get('accuracy', float('nan')):.3f}, "
                f"ROC AUC {m.get('auc', float('nan')):.3f} on {info.get('n_test')} documents.")

    def expand(self, records) -> StageResult:
        p: QualityClassifierParams = self.params  # type: ignore[assignment]
        res = super().expand(records)
        if p.top_fraction is not None and not p.annotate_only:
            from pipelines.stages.filter.score_select import select_top_fraction

            kept, removed, cutoff = select_top_fraction(
                res.kept, p.column, p.top_fraction, p.quantile_epsilon, "TopFraction",
                spill_dir=self.spill_dir())
            # two parts (below the threshold, below the top fraction), not a Flatten
            res = StageResult(kept=kept, removed=(res.removed, removed), dead=res.dead,
                              stats={**res.stats, "cutoff": cutoff})
        return self.with_score_stats(res)
