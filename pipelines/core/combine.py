"""Statistics as partial accumulators, merged once where the build writes its stats.

A build computes ~10 small statistics per stage (score histograms, removal counts and
samples, per-source breakdowns, profiles). As one ``CombineGlobally`` each, every statistic
was a shuffle plus, for its default value, an ``Impulse`` root: on the local runner each of
those is a step that costs every worker a bundle (set-up of its operations, a few ms to tens
of ms, whatever the data size), and a five-stage build carried ~500 leaf transforms, ~70
shuffles and ~120 bundles, most of its fixed CPU.

Here a statistic is a :class:`Stat`: the PCollection of partial accumulators of a
``CombineFn`` (:class:`_BundleCombine`: one accumulator per bundle, emitted when the bundle
finishes, fused into the step that produces the elements) and the ``CombineFn`` itself. The
partials of every statistic of the build are merged in the one gather that writes the
``_stats/*.json`` files (:func:`pipelines.build.accounting.write_json_files`), where
``extract_output`` gives the value (``extract_output(create_accumulator())`` for a statistic
that saw no element: the default a ``CombineGlobally`` would give). Per-worker state is one
accumulator per statistic and bundle; the gather holds one per statistic.

The result is the one ``pcolls | Flatten() | CombineGlobally(fn)`` gives, for any
``CombineFn`` whose ``merge_accumulators`` is correct (Beam requires it anyway) and whose
result does not depend on the merge order (every statistic here: counts, exact sums, samples
ranked by a seeded hash). No ``Flatten`` of records either: the local runner (FnApiRunner)
materializes every multi-input ``Flatten`` in memory until its last producer is done
(``translations.sink_flattens``), so only partials, a few per bundle, are flattened.
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

_GLOBAL = (GlobalWindow(),)
_END_OF_GLOBAL = GlobalWindow().max_timestamp()


class Stat:
    """A statistic: ``partials`` (a PCollection of ``fn`` accumulators) and ``fn``.

    Not a tuple (Beam would look for PCollections inside it when a composite transform
    returns it among its outputs). :meth:`final` gives a PCollection of the one value where a
    consumer needs it as a PCollection (e.g. tests)."""

    __slots__ = ("fn", "partials")

    def __init__(self, partials: Any, fn: beam.CombineFn):
        self.partials, self.fn = partials, fn

    def final(self, label: str):
        """One element: ``fn``'s output over everything the statistic saw."""
        return self.partials | label >> beam.CombineGlobally(_Merge(self.fn))


class _Merge(beam.CombineFn):
    """Merges partial accumulators of ``fn`` and extracts ``fn``'s output."""

    def __init__(self, fn: beam.CombineFn):
        self._fn = fn

    def setup(self, *args, **kwargs):
        self._fn.setup(*args, **kwargs)

    def create_accumulator(self):
        return self._fn.create_accumulator()

    def add_input(self, acc, part):
        return self._fn.merge_accumulators([acc, part])

    def merge_accumulators(self, accs):
        return self._fn.merge_accumulators(accs)

    def extract_output(self, acc):
        return self._fn.extract_output(acc)

    def teardown(self, *args, **kwargs):
        self._fn.teardown(*args, **kwargs)


class _BundleCombine(beam.DoFn):
    """Adds a bundle's elements to one accumulator of ``fn`` and emits it (compacted) when the
    bundle finishes; a bundle without elements emits nothing."""

    def __init__(self, fn: beam.CombineFn):
        self._fn = fn
        self._acc: Any = None
        self._seen = False

    def setup(self):
        self._fn.setup()

    def start_bundle(self):
        self._acc, self._seen = None, False

    def process(self, element):
        if not self._seen:
            self._acc, self._seen = self._fn.create_accumulator(), True
        self._acc = self._fn.add_input(self._acc, element)

    def finish_bundle(self):
        if self._seen:
            acc, self._acc, self._seen = self._fn.compact(self._acc), None, False
            yield WindowedValue(acc, _END_OF_GLOBAL, _GLOBAL)

    def teardown(self):
        self._fn.teardown()


def combine_parts(pcolls: list[Any], fn: beam.CombineFn, label: str) -> Stat:
    """``fn`` over all elements of ``pcolls`` (non-empty), as a :class:`Stat` (module doc)."""
    parts = [pc | (f"{label}Part{i}" if len(pcolls) > 1 else label)
             >> beam.ParDo(_BundleCombine(fn)) for i, pc in enumerate(pcolls)]
    partials = parts[0] if len(parts) == 1 else tuple(parts) | f"{label}Parts" >> beam.Flatten()
    return Stat(partials, fn)


class CountElements(beam.CombineFn):
    """``{element: count}`` (what ``Count.PerElement() | ToDict()`` gives)."""

    def create_accumulator(self):
        return {}

    def add_input(self, acc, element):
        acc[element] = acc.get(element, 0) + 1
        return acc

    def merge_accumulators(self, accs):
        accs = iter(accs)
        out = dict(next(accs, {}))
        for a in accs:
            for k, v in a.items():
                out[k] = out.get(k, 0) + v
        return out

    def extract_output(self, acc):
        return acc


def count_parts(pcolls: list[Any], label: str) -> Stat:
    """``{element: count}`` over all elements of ``pcolls``, as a :class:`Stat`."""
    return combine_parts(pcolls, CountElements(), label)


class PerKey(beam.CombineFn):
    """``(key, value)`` elements -> ``{key: fn over that key's values}`` (what
    ``CombinePerKey(fn) | ToDict()`` gives); its state is one accumulator of ``fn`` per key."""

    def __init__(self, fn: beam.CombineFn):
        self._fn = fn

    def setup(self, *args, **kwargs):
        self._fn.setup(*args, **kwargs)

    def create_accumulator(self):
        return {}

    def add_input(self, acc, element):
        key, value = element
        a = acc.get(key)
        acc[key] = self._fn.add_input(self._fn.create_accumulator() if a is None else a, value)
        return acc

    def merge_accumulators(self, accs):
        out: dict = {}
        for a in accs:
            for k, v in a.items():
                out[k] = v if k not in out else self._fn.merge_accumulators([out[k], v])
        return out

    def compact(self, acc):
        return {k: self._fn.compact(v) for k, v in acc.items()}

    def extract_output(self, acc):
        return {k: self._fn.extract_output(v) for k, v in acc.items()}

    def teardown(self, *args, **kwargs):
        self._fn.teardown(*args, **kwargs)


def combine_per_key_parts(pcolls: list[Any], fn: beam.CombineFn, label: str) -> Stat:
    """``{key: fn over that key's values}`` over the ``(key, value)`` elements of ``pcolls``,
    as a :class:`Stat`."""
    return combine_parts(pcolls, PerKey(fn), label)
