"""Stage ``gopher_quality``: the Gopher quality rules (Rae et al. 2021), scorer in ``filters/``."""


from __future__ import annotations

from typing import Literal

import apache_beam as beam
from pydantic import Field, field_validator, model_validator

from filters.base import per_language_overrides
from filters.heuristics_gopher import (
    DEFAULT_PER_LANGUAGE,
    THRESHOLD_FIELDS,
    GopherQuality,
    GopherQualityConfig,
)
from pipelines.core.combine import count_parts
from pipelines.stages.filter.heuristic_base import (
    LANGUAGE_COLUMN_DOC,
    HeuristicStage,
    language_column,
    language_note,
    log,
    thresholds,
)
from pipelines.stages.base import params_from
from pipelines.stages.record_stage import RecordStageParams
from pipelines.stages.registry import register_stage
from pipelines.stages.score_stats import HistSpec

# --------------------------------------------------------------------------- gopher quality


class GopherQualityParams(params_from(GopherQualityConfig, RecordStageParams)):
    # thresholds: the fields of GopherQualityConfig, declared once in filters/heuristics_gopher.py
    stage: Literal["gopher_quality"]
    language_column: str | None = Field(default="language", description=LANGUAGE_COLUMN_DOC)
    default_language: str = Field(default="en",
                                  description="Language of documents without a language value.")
    per_language: dict[str, dict[str, float | int | None]] = Field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_PER_LANGUAGE.items()},
        description="Language code -> threshold overrides (FineWeb-2 style), e.g. "
        "{zh: {min_mean_word_length: 1.0}}. Replaces the defaults when given (see "
        "docs/quality.md).")

    @field_validator("per_language")
    @classmethod
    def _overrides(cls, v):
        return per_language_overrides(v, THRESHOLD_FIELDS)

    @model_validator(mode="after")
    def _ranges(self):
        pairs = (("min_words", "max_words"), ("min_mean_word_length", "max_mean_word_length"))
        for lo, hi in pairs:
            a, b = getattr(self, lo), getattr(self, hi)
            if a is not None and b is not None and b < a:
                raise ValueError(f"{hi} ({b}) must be >= {lo} ({a})")
        return self


@register_stage
class GopherQualityStage(HeuristicStage):
    name = "gopher_quality"
    Params = GopherQualityParams
    description = "Gopher quality rules (Rae et al. 2021, A.1.1): word count, word length, " \
                  "symbols, bullets, ellipses, alphabetic words, stop words."

    def make_scorer(self) -> GopherQuality:
        p: GopherQualityParams = self.params  # type: ignore[assignment]
        return GopherQuality(p.scorer_config(),
                             language_column=language_column(self),
                             default_language=p.default_language, per_language=p.per_language)

    def expand(self, records):
        if self.params.language_column and not language_column(self):
            log.warning("stage %s: %s", self.label, language_note(self, self.params.default_language))
        res = super().expand(records)
        # documents per stop-word list used (kept + removed), counted per side: a Flatten of
        # the records would be held in memory (pipelines.core.combine)
        res.stats["stop_lists"] = count_parts([
            res.kept | "StopListOf" >> beam.Map(lambda r: r.get("gopher_stop_list") or "none"),
            res.removed | "StopListOfRemoved" >> beam.Map(
                lambda x: x[1].get("gopher_stop_list") or "none")], "StopList")
        return res

    def hist_specs(self) -> list[HistSpec]:
        p: GopherQualityParams = self.params  # type: ignore[assignment]
        return [
            HistSpec("gopher_n_words", 0, 1_000_000, 40, thresholds(p.min_words, p.max_words), log=True),
            HistSpec("gopher_mean_word_length", 0, 15, 30,
                     thresholds(p.min_mean_word_length, p.max_mean_word_length)),
            HistSpec("gopher_symbol_word_ratio", 0, 0.5, 25, thresholds(p.max_symbol_word_ratio)),
            HistSpec("gopher_bullet_lines_frac", 0, 1, 20, thresholds(p.max_bullet_lines_frac)),
            HistSpec("gopher_ellipsis_lines_frac", 0, 1, 20, thresholds(p.max_ellipsis_lines_frac)),
            HistSpec("gopher_alpha_words_frac", 0, 1, 20, thresholds(p.min_alpha_words_frac)),
            HistSpec("gopher_stop_words", 0, 10_000, 30, thresholds(p.min_stop_words), log=True),
        ]
