"""Stage ``perplexity``: CCNet-style perplexity under a word n-gram model (Kneser-Ney).

Adds ``column`` (default ``perplexity``; lower = more like the reference corpus). Optional
``max_perplexity`` drops documents above it (``perplexity_too_high``); documents without any
token are dropped as ``perplexity_no_tokens``. For "keep the most fluent q fraction" add a
``score_select`` stage with ``higher_is_better: false``. Train the model with
``datamill train-lm CONFIG.yaml``.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from filters.ngram_lm import MAX_CHARS, PerplexityScorer
from pipelines.stages.score_stats import HistSpec, ScoreReportMixin
from pipelines.stages.record_stage import RecordStage, RecordStageParams
from pipelines.stages.registry import register_stage


class PerplexityParams(RecordStageParams):
    stage: Literal["perplexity"]
    model: str = Field(description="Model file written by `datamill train-lm`.")
    column: str = Field(default="perplexity", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    max_perplexity: float | None = Field(default=None, gt=0)
    max_chars: int = Field(default=MAX_CHARS, ge=100, description="Characters scored per document.")

    @field_validator("model")
    @classmethod
    def _exists(cls, v: str) -> str:
        if not Path(v).is_file():
            raise ValueError(
                f"{v!r} does not exist; train a model with `datamill train-lm CONFIG.yaml` "
                "and point 'model' at its output file"
            )
        return v


@register_stage
class PerplexityStage(ScoreReportMixin, RecordStage):
    name = "perplexity"
    Params = PerplexityParams
    description = "Perplexity under a Kneser-Ney word n-gram model trained on a reference corpus."

    def make_scorer(self) -> PerplexityScorer:
        p: PerplexityParams = self.params  # type: ignore[assignment]
        return PerplexityScorer(p.model, p.column, p.max_perplexity, p.max_chars)

    def hist_specs(self) -> list[HistSpec]:
        p: PerplexityParams = self.params  # type: ignore[assignment]
        thr = (p.max_perplexity,) if p.max_perplexity is not None else ()
        return [HistSpec(p.column, 1, 1_000_000, 40, thr, log=True)]

    def static_stats(self) -> dict:
        """Training facts stored in the model file (held-out perplexity, sizes)."""
        p: PerplexityParams = self.params  # type: ignore[assignment]
        try:
            with gzip.open(p.model, "rt", encoding="utf-8") as fh:
                extra = json.load(fh).get("extra", {})
        except (OSError, ValueError):
            return {}
        return {"language_model": extra.get("training", {})}

    def rules_text(self) -> str:
        info = self.static_stats().get("language_model", {})
        if "heldout_perplexity" not in info:
            return ""
        return (f"{info.get('order')}-gram Kneser-Ney model, vocabulary {info.get('vocab_size')}: "
                f"held-out perplexity {info['heldout_perplexity']:.1f} (same words shuffled: "
                f"{info.get('heldout_shuffled_perplexity', float('nan')):.1f}).")

    def expand(self, records):
        return self.with_score_stats(super().expand(records))
