"""Stage ``fineweb_filter``: the FineWeb quality rules (Penedo et al. 2024), scorer in ``filters/``."""


from __future__ import annotations

from typing import Literal

from pydantic import Field

from filters.heuristics_fineweb import FineWebConfig, FineWebFilter
from pipelines.stages.filter.heuristic_base import (
    LANGUAGE_COLUMN_DOC,
    Frac,
    HeuristicStage,
    config_from,
    language_column,
    thresholds,
)
from pipelines.stages.record_stage import RecordStageParams
from pipelines.stages.registry import register_stage
from pipelines.stages.score_stats import HistSpec

# --------------------------------------------------------------------------- FineWeb


class FineWebFilterParams(RecordStageParams):
    stage: Literal["fineweb_filter"]
    min_line_punct_frac: Frac = Field(default=0.12, ge=0, le=1)
    max_dup_line_char_frac: Frac = Field(default=0.1, ge=0, le=1)
    max_short_line_frac: Frac = Field(default=0.67, ge=0, le=1)
    short_line_chars: int = Field(default=30, ge=1)
    max_newline_ratio: Frac = Field(default=0.3, ge=0)
    line_end_punctuation: Literal["fineweb", "unicode", "auto"] = Field(
        default="fineweb",
        description="fineweb: . ' \" ! ? (FineWeb); unicode: every Unicode Sentence_Terminal "
        "character too; auto: unicode for documents not in English (by language_column).")
    language_column: str | None = Field(default="language", description=LANGUAGE_COLUMN_DOC)


@register_stage
class FineWebFilterStage(HeuristicStage):
    name = "fineweb_filter"
    Params = FineWebFilterParams
    description = "FineWeb rules (Penedo et al. 2024, 3.3): line punctuation, duplicated-line " \
                  "characters, short lines, newline ratio."

    def make_scorer(self) -> FineWebFilter:
        p: FineWebFilterParams = self.params  # type: ignore[assignment]
        return FineWebFilter(config_from(FineWebConfig, p,
                                          language_column=language_column(self)))

    def hist_specs(self) -> list[HistSpec]:
        p: FineWebFilterParams = self.params  # type: ignore[assignment]
        return [
            HistSpec("fineweb_line_punct_frac", 0, 1, 20, thresholds(p.min_line_punct_frac)),
            HistSpec("fineweb_dup_line_char_frac", 0, 1, 20, thresholds(p.max_dup_line_char_frac)),
            HistSpec("fineweb_short_line_frac", 0, 1, 20, thresholds(p.max_short_line_frac)),
            HistSpec("fineweb_newline_ratio", 0, 2, 20, thresholds(p.max_newline_ratio)),
        ]
