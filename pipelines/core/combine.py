"""Combining several PCollections as if they were flattened, without flattening them.

The local runner (FnApiRunner) materializes every multi-input ``Flatten`` in memory until its
last producer is done (``translations.sink_flattens`` always writes the inputs to one buffer
and reads it back in a new step). A ``Flatten`` of records followed by a combine therefore
held every record of a stage (kept + removed) just to count or histogram them. Here each input
is combined where it is produced (a lifted combine, fused into the producer's step) and only
the partial results, one per input and worker, are flattened and merged.

``combine_parts(pcolls, fn)`` == ``pcolls | Flatten() | CombineGlobally(fn)`` for any
``CombineFn`` whose ``merge_accumulators`` is correct (Beam requires it anyway);
``count_parts(pcolls)`` == ``pcolls | Flatten() | Count.PerElement() | ToDict()``.
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam


class _Wrapped(beam.CombineFn):
    """Delegates accumulator creation, merging and the life cycle to ``fn``."""

    def __init__(self, fn: beam.CombineFn):
        self._fn = fn

    def setup(self, *args, **kwargs):
        self._fn.setup(*args, **kwargs)

    def create_accumulator(self):
        return self._fn.create_accumulator()

    def merge_accumulators(self, accs):
        return self._fn.merge_accumulators(accs)

    def teardown(self, *args, **kwargs):
        self._fn.teardown(*args, **kwargs)


class _Partial(_Wrapped):
    """``fn`` whose output is its accumulator (to be merged with other parts)."""

    def add_input(self, acc, element):
        return self._fn.add_input(acc, element)

    def compact(self, acc):
        return self._fn.compact(acc)

    def extract_output(self, acc):
        return acc


class _Merge(_Wrapped):
    """Merges the accumulators made by :class:`_Partial` and extracts ``fn``'s output."""

    def add_input(self, acc, part):
        return self._fn.merge_accumulators([acc, part])

    def extract_output(self, acc):
        return self._fn.extract_output(acc)


def combine_parts(pcolls: list[Any], fn: beam.CombineFn, label: str):
    """One element: ``fn`` combined over all elements of ``pcolls`` (see the module doc)."""
    # without defaults: an empty part adds nothing to the merge (an empty accumulator merges
    # as a no-op), and a default costs the local runner one more step per part
    parts = [pc | f"{label}Part{i}" >> beam.CombineGlobally(_Partial(fn)).without_defaults()
             for i, pc in enumerate(pcolls)]
    return (tuple(parts) | f"{label}Parts" >> beam.Flatten()
            | f"{label}Merge" >> beam.CombineGlobally(_Merge(fn)))


def count_parts(pcolls: list[Any], label: str):
    """One dict ``{element: count}`` over all elements of ``pcolls`` (see the module doc)."""
    counts = [pc | f"{label}Count{i}" >> beam.combiners.Count.PerElement()
              for i, pc in enumerate(pcolls)]
    return (tuple(counts) | f"{label}Counts" >> beam.Flatten()
            | f"{label}Sum" >> beam.CombinePerKey(sum)
            | f"{label}Dict" >> beam.combiners.ToDict())


def combine_per_key_parts(pcolls: list[Any], fn: beam.CombineFn, label: str):
    """``(key, value)`` elements of ``pcolls`` -> ``(key, fn over that key's values)``, as
    ``Flatten() | CombinePerKey(fn)`` would give, combining each part where it is produced."""
    if len(pcolls) == 1:
        return pcolls[0] | f"{label}" >> beam.CombinePerKey(fn)
    partial = [pc | f"{label}Part{i}" >> beam.CombinePerKey(_Partial(fn))
               for i, pc in enumerate(pcolls)]
    return (tuple(partial) | f"{label}Parts" >> beam.Flatten()
            | f"{label}Merge" >> beam.CombinePerKey(_Merge(fn)))
