"""Stage ``c4_filter``: the C4 line and page rules (Raffel et al. 2020), scorer in ``filters/``."""


from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import field_validator

from filters.heuristics_c4 import C4Config, C4Filter
from pipelines.stages.filter.heuristic_base import (
    HeuristicStage,
    language_column,
    thresholds,
)
from pipelines.stages.base import params_from
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


_C4Params = params_from(C4Config, RecordStageParams, language_column={
    "default": "language",
    "description": "Documents whose language (this column) is not bad_words_language are not "
    "checked for bad words; without the column every document is checked."})


class C4FilterParams(_C4Params):
    # rule parameters: the fields of C4Config, declared once in filters/heuristics_c4.py
    stage: Literal["c4_filter"]

    @field_validator("bad_words")
    @classmethod
    def _bad(cls, v):
        return _check_bad_words(v)


@register_stage
class C4FilterStage(HeuristicStage):
    name = "c4_filter"
    Params = C4FilterParams
    description = "C4 rules (Raffel et al. 2020, 2.2): line cleaning + lorem ipsum, curly " \
                  "brackets, minimum sentences; page rules on the kept lines in the reference " \
                  "cleaner's order by default (page_rules_on)."

    def make_scorer(self) -> C4Filter:
        p: C4FilterParams = self.params  # type: ignore[assignment]
        return C4Filter(p.scorer_config(rewrite_lines=p.rewrite_lines and not p.annotate_only,
                                        language_column=language_column(self)))

    def hist_specs(self) -> list[HistSpec]:
        p: C4FilterParams = self.params  # type: ignore[assignment]
        return [
            HistSpec("c4_lines_kept_frac", 0, 1, 20, (0.0,)),
            HistSpec("c4_sentences", 0, 10_000, 30, thresholds(p.min_sentences), log=True),
        ]
