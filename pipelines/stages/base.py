"""The stage interface: how a configured stage becomes Beam transforms.

Every stage is a :class:`Stage` subclass registered under a config name with
:func:`register_stage`. Its ``Params`` pydantic model validates the stage's block in the
config (``- stage: length_filter`` plus parameters). At build time the graph builder
instantiates the stage and calls :meth:`Stage.expand` on the PCollection of records that
survived the previous stage. ``expand`` returns a :class:`StageResult`:

* ``kept``: records that go on (with the stage's score columns added);
* ``removed``: ``(reason, record)`` pairs the stage dropped, counted per reason;
* ``dead``: dead-letter rows (``pipelines.core.records.dead_letter``) for records it could not process;
* ``stats``: optional named PCollections of small JSON-able values, merged into ``stats.json``.

Per-record stages need not write Beam code: subclass :class:`RecordStage` and return a
``filters.base.RecordScorer`` from :meth:`RecordStage.make_scorer`; the adapter batches records,
isolates failing records into the dead-letter output and supports annotate-only mode.

Stage modules live in ``pipelines/stages/`` and are discovered automatically; they must not
import heavy optional dependencies (torch, faiss) at module import time.
"""


from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import apache_beam as beam
from pydantic import BaseModel, ConfigDict, Field, create_model

from pipelines.core.records import BASE_COLUMNS
from pipelines.core.settings import ConfigError

KEPT, REMOVED, DEAD, FLAGGED = "kept", "removed", "dead", "flagged"
NOTES = "notes"  # per batch: the list of the scorer's Decision.note values (note_stats)


class StageParams(BaseModel):
    """Parameters every stage accepts. Subclasses add their own and narrow ``stage``."""

    model_config = ConfigDict(extra="forbid")

    stage: str
    label: str | None = Field(
        default=None,
        description="Unique name of this stage in the build (defaults to the stage name; "
        "required when the same stage appears twice).",
    )
    checkpoint: bool = Field(
        default=False,
        description="Write the records that survive this stage to checkpoints/ so that a rerun "
        "with the same inputs and the same stages up to here resumes from them.",
    )


class ConfigBacked:
    """What :func:`params_from` adds to a stage's Params: ``config_class``, the ``filters``
    dataclass its fields come from, and :meth:`scorer_config`."""

    config_class: ClassVar[type]

    def scorer_config(self, **given: Any) -> Any:
        """The ``config_class`` instance with these params' values (``given`` replaces some)."""
        values = {}
        for f in dataclasses.fields(self.config_class):
            if f.name not in given:
                value = getattr(self, f.name)
                if f.metadata.get("mapping"):
                    value = tuple(sorted(value.items()))
                values[f.name] = value
        return self.config_class(**values, **given)


def params_from(config_class: type, base: type[StageParams] = StageParams,
                **stage_fields: dict[str, Any]) -> type:
    """A base for a stage's Params (subclass of ``base`` and :class:`ConfigBacked`) with one
    field per field of the plain-Python ``config_class`` dataclass, in its order, taking type,
    default, bounds and description from it: the dataclass is the only declaration of each
    threshold or setting. A field's metadata holds pydantic ``Field`` arguments (``ge``,
    ``le``, ``description``) and ``mapping: True`` for a tuple of (key, value) pairs that a
    config writes as a mapping. ``stage_fields`` gives a field other ``Field`` arguments in
    the stage (e.g. ``language_column``: the stage's default column)."""
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
    made = create_model(f"{config_class.__name__}Params", __base__=(base, ConfigBacked),
                        __module__=__name__, **defs)
    made.config_class = config_class
    return made


@dataclass
class StageContext:
    """What a stage may know about the build it is part of."""

    label: str
    index: int
    output_dir: str
    columns: Mapping[str, str]  # columns present on records entering this stage
    config: Any = None  # the whole validated BuildConfig
    spill_root: str | None = None  # this run's spill folder (the build's <staging>.spill)


@dataclass
class StageResult:
    """A stage's outputs. ``removed`` and ``dead`` may each be a tuple of PCollections (parts
    made in different steps): the build consumes every part where it is produced, whereas a
    Flatten of them would be held in memory whole by the local runner."""

    kept: Any
    removed: Any
    dead: Any
    stats: dict[str, Any] = field(default_factory=dict)


def parts(outputs: Any) -> tuple:
    """``StageResult.removed`` / ``dead`` as a tuple of PCollections."""
    return tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)


class Stage:
    """Base class of all stages. See the module docstring for the contract."""

    name: ClassVar[str] = ""
    Params: ClassVar[type[StageParams]] = StageParams
    description: ClassVar[str] = ""
    # the stage's first step writes its input records to spill files and reads them back, so
    # the build need not spread them over the local workers first (build/redistribute.py)
    spills_input: ClassVar[bool] = False

    def __init__(self, params: StageParams, ctx: StageContext):
        self.params = params
        self.ctx = ctx

    @property
    def label(self) -> str:
        return self.ctx.label

    def spill_dir(self) -> str:
        """A new folder for this stage's spill files (:mod:`pipelines.core.spill`), in this run's
        spill folder (``<out>/_staging/<run id>.spill/``, any Beam filesystem): the files are
        removed as they are consumed, and the folder with the run's staging (on failure, after
        promotion, and by the next run's recovery after a kill)."""
        from pipelines.core.spill import spill_folder

        return spill_folder(self.ctx.spill_root, self.ctx.output_dir, self.label)

    def output_columns(self) -> dict[str, str]:
        """Columns this stage adds: name -> type name (see ``pipelines.core.records``)."""
        return {}

    def plan_notes(self) -> list[str]:
        """Lines about what was planned for this stage (e.g. shards chosen from the input
        size), printed by a dry run."""
        return []

    def static_stats(self) -> dict[str, Any]:
        """Facts known at graph-construction time (e.g. chosen LSH bands), put in stats.json."""
        return {}

    def expand(self, records: Any) -> StageResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def report_section(self, stage_stats: dict[str, Any]) -> str | None:
        """Optional HTML fragment for report.html (use ``pipelines.report.html.figure_html``).

        ``stage_stats`` is the stage's entry of ``stats.json``, always in one shape:
        ``{"stats": {name: value}, "static": static_stats(), "params": {...}, "in": n,
        "out": n, "removed": {reason: n}, ...}``, each ``value`` plain, as :func:`stat_value`
        made it (``run_stage`` returns the same shape as ``"entry"``)."""
        return None


def stat_value(elements: list[Any]) -> Any:
    """What one of ``StageResult.stats`` is worth in ``stats.json`` and to ``report_section``:
    the PCollection's single element, or the list of its elements when it has none or
    several. Applied once, where the elements are gathered (``build/stats.py`` from the
    ``_stats/*.json`` files, ``stages/testing.run_stage``); never apply it to a value again."""
    return elements[0] if isinstance(elements, list) and len(elements) == 1 else elements


def planned_input_size(ctx: StageContext) -> tuple[int | None, int | None]:
    """(uncompressed bytes, documents) of the file sources of the build a stage is planned in,
    estimated from file sizes (:func:`pipelines.io.sizing.input_size`); ``(None, None)``
    without a build or when a source cannot be sized."""
    from pipelines.io.sizing import input_size

    cfg = getattr(ctx, "config", None)
    if cfg is None or not getattr(cfg, "sources", None):
        return None, None
    return input_size(cfg.sources)


def check_score_column(params: Any, ctx: StageContext) -> None:
    """``keep: highest_score`` with a ``score_column`` that the records entering the stage do
    not have is a planning error (it would silently rank every record as "no score")."""
    if getattr(params, "keep", None) != "highest_score":
        return
    known = {**BASE_COLUMNS, **dict(ctx.columns)}
    if params.score_column not in known:
        raise ConfigError(
            f"stages[{ctx.index}] ({ctx.label}).score_column: {params.score_column!r} is not "
            f"a column of the records entering this stage; columns that exist here: "
            f"{', '.join(sorted(known))}. Fix: name one of them, or add the stage that "
            "produces it earlier in 'stages'.")


def empty_pcollection(pipeline: Any, label: str) -> Any:
    """An empty PCollection (for stages that never remove or dead-letter)."""
    return pipeline | label >> beam.Create([])
