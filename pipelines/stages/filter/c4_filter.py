"""Stage ``c4_filter``: the C4 line and page rules (Raffel et al. 2020), scorer in ``filters/``."""


from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from filters.heuristics_c4 import C4Config, C4Filter
from pipelines.stages.filter.heuristic_base import (
    HeuristicStage,
    config_from,
    language_column,
    thresholds,
)
from pipelines.stages.record_stage import RecordStageParams
from pipelines.stages.registry import register_stage
from pipelines.stages.score_stats import HistSpec

# --------------------------------------------------------------------------- C4


def _check_bad_words(v):
    if v is not None and v != "better-profanity":
        if not Path(v).is_file():
            raise ValueError(f"bad_words: file {v!r} does not exist (or use 'better-profanity')")
    if v == "better-profanity":
        try:
            import better_profanity  # noqa: F401
        except ImportError:
            raise ValueError("bad_words 'better-profanity' needs: pip install "
                             "'datamill[web]'") from None
    return v


class C4FilterParams(RecordStageParams):
    stage: Literal["c4_filter"]
    terminal_punctuation: bool = True
    min_words_per_line: int | None = Field(default=3, ge=1)
    drop_javascript_lines: bool = True
    drop_policy_lines: bool = True
    drop_lorem_ipsum: bool = True
    drop_curly_bracket: bool = True
    min_sentences: int | None = Field(default=5, ge=0)
    max_word_length: int | None = Field(
        default=1000, ge=1, description="Drop lines with a longer word (C4 reference cleaner).")
    remove_citations: bool = Field(
        default=True, description="Strip [1], [edit], [citation needed] (C4 reference cleaner).")
    bad_words: str | None = Field(
        default=None,
        description="C4 bad-words page rule: null (off), 'better-profanity' (English list "
        "shipped in that package, MIT) or a path to a word-list file (e.g. LDNOOBW).")
    bad_words_language: str = Field(default="en", description="Language of the bad-word list.")
    language_column: str | None = Field(
        default="language",
        description="Documents whose language (this column) is not bad_words_language are not "
        "checked for bad words; without the column every document is checked.")
    rewrite_lines: bool = Field(
        default=True,
        description="Replace 'text' with the lines that pass the line rules (C4's behaviour). "
        "Never done in annotate_only mode.",
    )

    @field_validator("bad_words")
    @classmethod
    def _bad(cls, v):
        return _check_bad_words(v)


@register_stage
class C4FilterStage(HeuristicStage):
    name = "c4_filter"
    Params = C4FilterParams
    description = "C4 rules (Raffel et al. 2020, 2.2): line cleaning + lorem ipsum, curly " \
                  "brackets, minimum sentences."

    def make_scorer(self) -> C4Filter:
        p: C4FilterParams = self.params  # type: ignore[assignment]
        return C4Filter(config_from(C4Config, p,
                                     rewrite_lines=p.rewrite_lines and not p.annotate_only,
                                     language_column=language_column(self)))

    def hist_specs(self) -> list[HistSpec]:
        p: C4FilterParams = self.params  # type: ignore[assignment]
        return [
            HistSpec("c4_lines_kept_frac", 0, 1, 20, (0.0,)),
            HistSpec("c4_sentences", 0, 10_000, 30, thresholds(p.min_sentences), log=True),
        ]
