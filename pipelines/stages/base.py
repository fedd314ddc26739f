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

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import apache_beam as beam
from pydantic import BaseModel, ConfigDict, Field

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
        import uuid

        root = self.ctx.spill_root or f"{self.ctx.output_dir.rstrip('/')}/_staging/spill"
        return f"{root}/{self.label}-{uuid.uuid4().hex}"

    def output_columns(self) -> dict[str, str]:
        """Columns this stage adds: name -> type name (see ``pipelines.core.records``)."""
        return {}

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


def empty_pcollection(pipeline: Any, label: str) -> Any:
    """An empty PCollection (for stages that never remove or dead-letter)."""
    return pipeline | label >> beam.Create([])
