"""A custom datamill stage: drop documents that are mostly digits (tables, logs, IDs)."""
from typing import Literal

from filters.base import Decision, RecordScorer
from pipelines.stages import RecordStage, RecordStageParams, ScoreStage, register_stage


class DigitRatio(RecordScorer):
    columns = {"digit_ratio": "float64"}

    def __init__(self, max_ratio: float):
        self.max_ratio = max_ratio

    def process(self, record):
        text = record["text"]
        ratio = sum(c.isdigit() for c in text) / max(1, len(text))
        return Decision("too_many_digits" if ratio > self.max_ratio else None,
                        {"digit_ratio": ratio})


class DigitRatioParams(RecordStageParams):
    stage: Literal["digit_ratio"]
    max_digit_ratio: float = 0.3


@register_stage
class DigitRatioStage(ScoreStage, RecordStage):
    name, Params = "digit_ratio", DigitRatioParams
    description = "Drop documents whose characters are mostly digits."

    def make_scorer(self):
        return DigitRatio(self.params.max_digit_ratio)
