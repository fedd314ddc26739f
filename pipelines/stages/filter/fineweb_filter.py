"""Stage ``fineweb_filter``: the FineWeb quality rules (Penedo et al. 2024), scorer in ``filters/``."""


from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from filters.base import per_language_overrides
from filters.heuristics_fineweb import (
    DEFAULT_PER_LANGUAGE,
    THRESHOLD_FIELDS,
    FineWebConfig,
    FineWebFilter,
)
from pipelines.stages.filter.heuristic_base import (
    LANGUAGE_COLUMN_DOC,
    HeuristicStage,
    language_column,
    thresholds,
)
from pipelines.stages.base import params_from
from pipelines.stages.record_stage import RecordStageParams
from pipelines.stages.registry import register_stage
from pipelines.stages.score_stats import HistSpec

# --------------------------------------------------------------------------- FineWeb


_FineWebParams = params_from(FineWebConfig, RecordStageParams, language_column={
    "default": "language", "description": LANGUAGE_COLUMN_DOC})


class FineWebFilterParams(_FineWebParams):
    # thresholds: the fields of FineWebConfig, declared once in filters/heuristics_fineweb.py
    stage: Literal["fineweb_filter"]
    per_language: dict[str, dict[str, float | int | None]] = Field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_PER_LANGUAGE.items()},
        description="Language code -> threshold overrides (FineWeb-2 style), applied by "
        "language_column. Default: the short-line rule off for languages written without "
        "spaces (zh, ja, th, lo, km, my, bo). Replaces the defaults when given (see "
        "docs/quality.md).")

    @field_validator("per_language")
    @classmethod
    def _overrides(cls, v):
        return per_language_overrides(v, THRESHOLD_FIELDS)


@register_stage
class FineWebFilterStage(HeuristicStage):
    name = "fineweb_filter"
    Params = FineWebFilterParams
    description = "FineWeb rules (Penedo et al. 2024, 3.3): line punctuation, duplicated-line " \
                  "characters, short lines, newline ratio."

    def make_scorer(self) -> FineWebFilter:
        p: FineWebFilterParams = self.params  # type: ignore[assignment]
        return FineWebFilter(p.scorer_config(language_column=language_column(self)),
                             per_language=p.per_language)

    def hist_specs(self) -> list[HistSpec]:
        p: FineWebFilterParams = self.params  # type: ignore[assignment]
        return [
            HistSpec("fineweb_line_punct_frac", 0, 1, 20, thresholds(p.min_line_punct_frac)),
            HistSpec("fineweb_dup_line_char_frac", 0, 1, 20, thresholds(p.max_dup_line_char_frac)),
            HistSpec("fineweb_short_line_frac", 0, 1, 20, thresholds(p.max_short_line_frac)),
            HistSpec("fineweb_newline_ratio", 0, 2, 20, thresholds(p.max_newline_ratio)),
        ]
