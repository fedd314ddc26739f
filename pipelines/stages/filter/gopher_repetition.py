"""Stage ``gopher_repetition``: the Gopher repetition rules (Rae et al. 2021), scorer in ``filters/``."""


from __future__ import annotations

from typing import Literal

import apache_beam as beam
from pydantic import Field, model_validator

from filters.heuristics_gopher import GopherRepetition, GopherRepetitionConfig
from pipelines.core.combine import count_parts
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

# --------------------------------------------------------------------------- gopher repetition


class GopherRepetitionParams(params_from(GopherRepetitionConfig, RecordStageParams)):
    # thresholds: GopherRepetitionConfig's fields, declared once in filters/heuristics_gopher.py
    stage: Literal["gopher_repetition"]
    language_column: str | None = Field(default="language", description=LANGUAGE_COLUMN_DOC)
    default_language: str = Field(default="en",
                                  description="Language of documents without a language value.")

    @model_validator(mode="after")
    def _ns(self):
        for name in ("max_top_ngram_char_frac", "max_dup_ngram_char_frac"):
            for n, v in getattr(self, name).items():
                if not 1 <= n <= 20:
                    raise ValueError(f"{name}: n-gram size {n} must be between 1 and 20")
                if v is not None and not 0 <= v <= 1:
                    raise ValueError(f"{name}[{n}]: fraction {v} must be between 0 and 1")
        return self


@register_stage
class GopherRepetitionStage(HeuristicStage):
    name = "gopher_repetition"
    Params = GopherRepetitionParams
    description = "Gopher repetition rules (Rae et al. 2021, Table A1): duplicate lines, " \
                  "paragraphs and n-grams."

    def make_scorer(self) -> GopherRepetition:
        p: GopherRepetitionParams = self.params  # type: ignore[assignment]
        return GopherRepetition(p.scorer_config(), language_column=language_column(self),
                                default_language=p.default_language)

    def expand(self, records):
        res = super().expand(records)
        # documents per n-gram token kind (whitespace, jieba, characters, ...), kept + removed:
        # says how many documents had the word n-gram rules skipped (char_token_ngrams: skip)
        res.stats["ngram_tokens"] = count_parts([
            res.kept | "NgramTokensOf" >> beam.Map(
                lambda r: r.get("gopher_ngram_tokens") or "none"),
            res.removed | "NgramTokensOfRemoved" >> beam.Map(
                lambda x: x[1].get("gopher_ngram_tokens") or "none")], "NgramTokens")
        return res

    def static_stats(self) -> dict:
        out = super().static_stats()
        p: GopherRepetitionParams = self.params  # type: ignore[assignment]
        out["char_token_ngrams"] = (
            "n-gram rules skipped for documents tokenised by characters (no word segmenter for "
            "their language: ja, lo, km, my, bo); counts in stats 'ngram_tokens'"
            if p.char_token_ngrams == "skip" else
            "n-gram rules applied to character n-grams for documents tokenised by characters")
        return out

    def hist_specs(self) -> list[HistSpec]:
        return [HistSpec(r.column, 0, 1, 20, thresholds(r.threshold)) for r in self.make_scorer().rules]
