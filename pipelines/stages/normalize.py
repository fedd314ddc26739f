"""Stage ``normalize``: Unicode NFC, control characters, whitespace (filters/normalize.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from filters.normalize import Normalizer
from pipelines.stage import RecordStage, RecordStageParams, register_stage


class NormalizeParams(RecordStageParams):
    stage: Literal["normalize"]
    form: Literal["NFC", "NFKC", "NFD", "NFKD", "none"] = "NFC"
    strip_control: bool = True
    collapse_spaces: bool = True
    max_blank_lines: int = Field(default=1, ge=-1, description="-1 keeps blank lines as they are.")


@register_stage
class NormalizeStage(RecordStage):
    name = "normalize"
    Params = NormalizeParams
    description = "Unicode normalization, control-character and whitespace cleanup."

    def make_scorer(self) -> Normalizer:
        p: NormalizeParams = self.params  # type: ignore[assignment]
        return Normalizer(p.form, p.strip_control, p.collapse_spaces, p.max_blank_lines)
