"""What the heuristic quality stages (gopher_quality, gopher_repetition, c4_filter,
fineweb_filter) share: the RecordStage + score-report base and the per-language note. Each
stage's rule parameters are made from the fields of its ``filters`` config dataclass by
:func:`pipelines.stages.base.params_from` (the one place each threshold, its default, bounds
and description are declared).

Each stage wraps the plain-Python scorer of the same name in ``filters/``."""


from __future__ import annotations

import logging

from filters.text_stats import Rule
from pipelines.stages.record_stage import RecordStage
from pipelines.stages.score_stats import ScoreReportMixin

log = logging.getLogger(__name__)

LANGUAGE_COLUMN_DOC = ("Column with each document's language (the language_id stage's "
                       "'language'); when the records have no such column every document is "
                       "treated as default_language, and stats.json says so.")


def language_column(stage) -> str | None:
    """The configured language column if the records entering the stage have it."""
    col = getattr(stage.params, "language_column", None)
    if col and col in stage.ctx.columns:
        return col
    return None


def language_note(stage, default: str | None) -> str:
    col = getattr(stage.params, "language_column", None)
    if language_column(stage):
        return f"per document, from column {col!r}"
    msg = (f"every document treated as {default!r}: no column {col!r} before this stage "
           "(add a language_id stage before it)" if col else
           f"every document treated as {default!r} (language_column: null)")
    return msg


def rules_text(rules: list[Rule]) -> str:
    on = [f"{r.name}: keep {r.describe()}" for r in rules if r.threshold is not None]
    return "Rules (first failure names the drop reason): " + "; ".join(on)


def thresholds(*values: float | None) -> tuple[float, ...]:
    return tuple(float(v) for v in values if v is not None)


class HeuristicStage(ScoreReportMixin, RecordStage):
    def expand(self, records):
        return self.with_score_stats(super().expand(records))

    def static_stats(self) -> dict:
        out = {"rules": {r.name: r.describe() for r in self.make_scorer().rules
                         if r.threshold is not None}}
        if hasattr(self.params, "language_column"):
            out["language"] = language_note(self, getattr(self.params, "default_language", "en"))
        return out

    def rules_text(self) -> str:
        return rules_text(self.make_scorer().rules)
