"""What the heuristic quality stages (gopher_quality, gopher_repetition, c4_filter,
fineweb_filter) share: the RecordStage + score-report base, the per-language note, and
``threshold_params``, which makes each stage's rule parameters from the fields of its
``filters`` config dataclass (the one place each threshold, its default, bounds and
description are declared).

Each stage wraps the plain-Python scorer of the same name in ``filters/``."""


from __future__ import annotations

import dataclasses
import functools
import logging
import typing
from typing import Any, ClassVar

from pydantic import Field, create_model

from filters.text_stats import Rule
from pipelines.stages.record_stage import RecordStage, RecordStageParams
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


class ThresholdParams(RecordStageParams):
    """Stage params whose rule parameters are the fields of a ``filters`` config dataclass.

    Made by :func:`threshold_params`; ``config_class`` is that dataclass."""

    config_class: ClassVar[type]

    def scorer_config(self, **given: Any) -> Any:
        """The scorer's config with these params' values (``given`` replaces some)."""
        values = {}
        for f in dataclasses.fields(self.config_class):
            if f.name not in given:
                value = getattr(self, f.name)
                if f.metadata.get("mapping"):
                    value = tuple(sorted(value.items()))
                values[f.name] = value
        return self.config_class(**values, **given)


def threshold_params(config_class: type, **stage_fields: dict[str, Any]) -> type[ThresholdParams]:
    """A base for a stage's Params with one field per field of the ``filters`` dataclass
    ``config_class``, in its order, taking type, default, bounds and description from it: the
    dataclass is the only declaration of each threshold. A field's metadata holds pydantic
    ``Field`` arguments (``ge``, ``le``, ``description``) and ``mapping: True`` for a tuple of
    (key, value) pairs that a config writes as a mapping. ``stage_fields`` gives a field other
    ``Field`` arguments in the stage (e.g. ``language_column``: the stage's default column)."""
    hints = typing.get_type_hints(config_class)
    unknown = sorted(set(stage_fields) - {f.name for f in dataclasses.fields(config_class)})
    if unknown:
        raise TypeError(f"{config_class.__name__} has no fields {unknown}")
    defs: dict[str, Any] = {}
    for f in dataclasses.fields(config_class):
        kw = {k: v for k, v in f.metadata.items() if k != "mapping"}
        annotation = hints[f.name]
        if f.metadata.get("mapping"):
            key, value = typing.get_args(typing.get_args(annotation)[0])
            annotation = dict[key, value]  # type: ignore[valid-type]
            kw["default_factory"] = functools.partial(dict, f.default)
        else:
            kw["default"] = f.default
        kw.update(stage_fields.get(f.name, {}))
        defs[f.name] = (annotation, Field(**kw))
    base = create_model(f"{config_class.__name__}Params", __base__=ThresholdParams,
                        __module__=__name__, **defs)
    base.config_class = config_class
    return base


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
