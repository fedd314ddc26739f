"""Spread records over the local runner's workers through spill files (issue 11: ``-w 2``).

Beam's local runner (FnApiRunner, ``direct_num_workers`` > 1) splits the *input elements* of
each fused step between its worker processes. The read step's input is the list of input
files, so with one input file the whole read step -- and every record stage fused with it
(normalize, the quality heuristics, language ID, ...) -- ran in one worker while the other
idled: ``-w 2`` gave no speed-up on a single file.

:class:`SpillRedistribute` cuts that step in two without putting records through a shuffle:
the read step writes its records to spill files (:mod:`pipelines.core.spill`, ``SPILL_BYTES`` of
text each) and emits only their paths; after a Reshuffle of the paths, a second step reads the
files back, and the runner splits *that* step's input (the paths) between the workers, so
the stages after it run on all of them. Memory stays bounded (one buffer per worker); text
never crosses a shuffle; the files are deleted after a GroupByKey (a commit point). The order
of records changes, which no output depends on (the sinks sort every shard).

:func:`maybe_redistribute` applies it only where it helps: a local runner with more than one
worker, reading sources (not resuming from a checkpoint), when the first stage does not
already spill and re-read the records itself (``exact_dedup``).
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam import pvalue

from pipelines.core.spill import DeleteFiles, SpillRows, read_spill, spill_folder

SPILL_BYTES = 2 << 20  # text per file: at 20k documents (50 MB) ~26 files to split


@beam.typehints.with_output_types(Any)
class _ReadBack(beam.DoFn):
    def process(self, path: str):
        yield from read_spill(path)
        yield pvalue.TaggedOutput("consumed", path)


class SpillRedistribute(beam.PTransform):
    """records -> the same records, re-read from spill files by whichever worker gets them."""

    def __init__(self, folder: str, spill_bytes: int = SPILL_BYTES):
        super().__init__()
        self._dir, self._limit = folder, spill_bytes

    def expand(self, records):
        read = (records
                | "Spill" >> beam.ParDo(SpillRows(self._dir, self._limit))
                | "Spread" >> beam.Reshuffle()
                | "ReadBack" >> beam.ParDo(_ReadBack()).with_outputs("consumed", main="records"))
        read.consumed | "DeleteSpill" >> DeleteFiles()
        return read.records


def workers(plan: Any) -> int:
    """Local workers of this build (``direct_num_workers``, the ``--direct_num_workers`` Beam
    argument winning), 0 for a non-local runner."""
    from pipelines.core.runner import is_local

    cfg = plan.cfg.runner
    if not is_local(cfg, plan.extra_args):
        return 0
    n = cfg.direct_num_workers
    args = list(cfg.options) + list(plan.extra_args or [])
    for i, a in enumerate(args):
        if a.startswith("--direct_num_workers="):
            n = int(a.split("=", 1)[1])
        elif a == "--direct_num_workers" and i + 1 < len(args):
            n = int(args[i + 1])
    return int(n or 1)


def maybe_redistribute(plan: Any, records: Any) -> Any:
    """``records`` through :class:`SpillRedistribute` when that spreads work (see the module
    docstring), else unchanged."""
    if plan.resume is not None or not plan.stages or workers(plan) < 2:
        return records
    if plan.stages[0].spills_input:
        return records
    return records | "Redistribute" >> SpillRedistribute(_spill_folder(plan))


def _spill_folder(plan: Any) -> str:
    # in this run's spill folder, beside the stages'; DeleteFiles removes the folder with its
    # last file
    return spill_folder(plan.spill_root, plan.out, "redistribute")
