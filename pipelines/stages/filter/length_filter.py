"""Stage ``length_filter``: drop documents outside character/word bounds."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from filters.length import LengthFilter
from pipelines.stages.record_stage import RecordStage, RecordStageParams
from pipelines.stages.registry import register_stage


class LengthFilterParams(RecordStageParams):
    stage: Literal["length_filter"]
    min_chars: int = Field(default=0, ge=0)
    max_chars: int | None = Field(default=None, ge=1)
    min_words: int = Field(default=0, ge=0)
    max_words: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _bounds(self):
        if self.max_chars is not None and self.max_chars < self.min_chars:
            raise ValueError(f"max_chars ({self.max_chars}) must be >= min_chars ({self.min_chars})")
        if self.max_words is not None and self.max_words < self.min_words:
            raise ValueError(f"max_words ({self.max_words}) must be >= min_words ({self.min_words})")
        return self


@register_stage
class LengthFilterStage(RecordStage):
    name = "length_filter"
    Params = LengthFilterParams
    description = "Drop documents with too few/many characters or words."

    def make_scorer(self) -> LengthFilter:
        p: LengthFilterParams = self.params  # type: ignore[assignment]
        return LengthFilter(p.min_chars, p.max_chars, p.min_words, p.max_words)
