"""The per-record scorer contract shared by every filter (plain Python, no Beam).

A *record* is a ``dict`` with at least ``id`` (str), ``text`` (str) and ``source`` (str); stages
add score columns to it. A scorer looks at records and, for each one, returns a
:class:`Decision`: the columns to add and, optionally, the named reason to drop it.

Scorers never mutate the records they are given (Beam forbids mutating inputs); the Beam
adapter in ``pipelines/stages/record_stage.py`` merges ``Decision.columns`` into a copy of the record.

``process_batch`` is the hot path: the adapter hands a scorer a few hundred records at a
time, so vectorized scorers (MinHash, embeddings, classifiers) override it. If a batch call
raises, the adapter retries the records one by one and sends only the failing ones to the
dead-letter output, so a scorer does not need to guard against every malformed input itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

Record = dict[str, Any]


@dataclass(frozen=True)
class Decision:
    """What a scorer decided for one record.

    ``drop``: ``None`` keeps the record; a short snake_case reason (``"too_short"``) drops it.
    ``columns``: values to add to the record (must match the scorer's declared ``columns``).
    ``note``: optional small value for the stage's stats (not stored in the record); the stage
    combines the notes with ``RecordStage.note_stats``.
    """

    drop: str | None = None
    columns: Mapping[str, Any] = field(default_factory=dict)
    note: Any = None

    @property
    def kept(self) -> bool:
        return self.drop is None


KEEP = Decision()


class RecordScorer:
    """Base class for per-record stages.

    Subclasses set ``columns`` (name -> Arrow type name: ``string``, ``float64``, ``float32``,
    ``int64``, ``bool``, ``list<float32>``) and implement :meth:`process` or
    :meth:`process_batch`. Expensive resources (models) are created in :meth:`setup`, which
    the Beam adapter calls once per worker (``DoFn.setup``), never per record.
    """

    columns: ClassVar[Mapping[str, str]] = {}

    def setup(self) -> None:
        """Load models or other per-worker state. Called once before any record."""

    def process(self, record: Record) -> Decision:  # pragma: no cover - abstract
        raise NotImplementedError

    def process_batch(self, records: Sequence[Record]) -> list[Decision]:
        return [self.process(r) for r in records]

    def teardown(self) -> None:
        """Release resources. Called once per worker at shutdown when the runner allows."""


def per_language_overrides(per_language: Mapping[str, Mapping[str, Any]],
                           fields: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per-language threshold overrides (``{"zh": {"max_...": 0.5}}``) as plain dicts; a name
    that is not one of ``fields`` (the scorer's threshold fields) is a ValueError naming it."""
    out = {lang: dict(over) for lang, over in per_language.items()}
    for lang, over in out.items():
        bad = sorted(set(over) - set(fields))
        if bad:
            raise ValueError(f"per_language[{lang!r}]: unknown thresholds {bad}; "
                             f"allowed: {list(fields)}")
    return out
