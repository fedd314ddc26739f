"""Counting every record's fate, and the conservation check.

Each input line/row ends as exactly one of: kept, ``removed/<stage>/<reason>`` or
``dead/<stage>/<reason>``. Removals and dead letters are counted per key; the large streams
(parsed input records, kept records) are counted with one lifted combine each
(:class:`RecordProfile`, which also yields their length histograms). Everything is counted from
the data itself (not only from runner metrics, which some runners drop or approximate), so the
check ``input == kept + removed + dead`` is exact on every runner.
The same counts are also published as Beam Metrics (namespace ``datamill``) for runner UIs.

``input`` itself is not counted from parsed records: it is the sum of the per-file counts the
sources take from the raw data (``_stats/input_counts.json``, contract C1), so a parser that
loses records cannot balance the check. :func:`check_build` turns a finished build's stats into
an :class:`AccountingError` (changed inputs, imbalance, too much dead letter) before anything
is promoted.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipelines.core import fs
from pipelines.core.combine import CountElements, Stat, combine_parts
from pipelines.core.records import reason_category
from pipelines.io.side_outputs import flatten

LOG10_MAX = 7.0  # length histograms cover 1 .. 10^7 characters on a log scale


class AccountingError(RuntimeError):
    """The build ran but its outputs cannot be trusted; nothing is promoted.

    ``exit_code`` is what ``datamill build`` exits with (documented in README)."""

    exit_code = 3


class ConservationError(AccountingError):
    """Records were lost or duplicated between input and outputs (exit code 3)."""


class MissingCountError(ConservationError):
    """A counting stat the conservation check needs was not written (exit code 3)."""


class DeadLetterError(AccountingError):
    """Too many input records went to dead_letter (exit code 4). ``every_record``: all of
    them did, so no rerun of the same sources and stages can succeed."""

    exit_code = 4
    every_record = False


class InputChangedError(AccountingError):
    """An input file changed between planning and reading, or could not be opened or read
    when the build read it (an I/O error, not damaged data) (exit code 5)."""

    exit_code = 5


def removed_key(label: str, reason: str) -> str:
    return f"removed/{label}/{reason_category(reason)}"


def dead_key(label: str, reason: str) -> str:
    return f"dead/{label}/{reason_category(reason)}"


class EventCounts(CountElements):
    """``{event key: count}``; every event also bumps the Beam Metrics counter of its key
    (namespace ``datamill``), for runner UIs."""

    def setup(self, *args, **kwargs):
        self._counters: dict[str, Any] = {}  # per worker: event key -> its Metrics counter

    def add_input(self, acc, key: str):
        c = self._counters.get(key)
        if c is None:
            c = self._counters[key] = Metrics.counter("datamill", key)
        c.inc()
        acc[key] = acc.get(key, 0) + 1
        return acc


def count_events(events: list[Any], p, label: str) -> Stat:
    """The PCollections of event keys -> one :class:`Stat` ``{key: count}``, each part counted
    in the step that produces it (no Flatten of the events themselves)."""
    if not events:
        events = [p | f"{label}Empty" >> beam.Create([])]
    return combine_parts(list(events), EventCounts(), label)


class RecordProfile(beam.CombineFn):
    """Count of records plus a fixed log10-spaced histogram of their text lengths.

    One lifted combine per PCollection: it replaces a per-record event for the (large)
    input and kept streams, and is mergeable across workers.
    """

    def __init__(self, bins: int):
        self.bins = bins

    def create_accumulator(self):
        return [0] * self.bins

    def add_input(self, acc, record: dict):
        x = math.log10(len(record["text"]) + 1)
        acc[min(self.bins - 1, int(x / LOG10_MAX * self.bins))] += 1
        return acc

    def merge_accumulators(self, accs):
        out = [0] * self.bins
        for a in accs:
            for i, v in enumerate(a):
                out[i] += v
        return out

    def extract_output(self, acc):
        edges = [10 ** (LOG10_MAX * i / self.bins) - 1 for i in range(self.bins + 1)]
        return {"count": sum(acc), "edges": edges, "counts": acc}


class JsonFile(NamedTuple):
    """One small statistic to be written as the JSON file ``path``: a PCollection (the list of
    its elements, or with ``single`` its one element, ``null`` when it has none) or a
    :class:`~pipelines.core.combine.Stat` (its value; as a one-element list without
    ``single``, the shape a ``CombineGlobally`` PCollection had)."""

    pcoll: Any
    path: str
    single: bool = False


class _Gather(beam.CombineFn):
    """``(index, element)`` pairs -> ``{index: [elements]}`` for the plain PCollections, and
    ``{index: merged accumulator}`` for the statistics (``fns[index]`` their CombineFn)."""

    def __init__(self, fns: list[beam.CombineFn | None]):
        self._fns = fns

    def setup(self, *args, **kwargs):
        for fn in self._fns:
            if fn is not None:
                fn.setup(*args, **kwargs)

    def create_accumulator(self):
        return {}

    def _put(self, acc: dict[int, Any], i: int, elements: list, partial: Any) -> None:
        """Add plain ``elements`` (file ``i`` is a PCollection) or merge ``partial`` (a
        statistic's accumulator) into ``acc``."""
        fn = self._fns[i]
        if fn is None:
            acc.setdefault(i, []).extend(elements)
        else:
            acc[i] = partial if i not in acc else fn.merge_accumulators([acc[i], partial])

    def add_input(self, acc, item):
        i, v = item
        self._put(acc, i, [v], v)
        return acc

    def merge_accumulators(self, accs):
        out: dict[int, Any] = {}
        for a in accs:
            for i, v in a.items():
                self._put(out, i, v, v)
        return out

    def extract_output(self, acc):
        return acc

    def teardown(self, *args, **kwargs):
        for fn in self._fns:
            if fn is not None:
                fn.teardown(*args, **kwargs)


class _WriteJsonFiles(beam.DoFn):
    def __init__(self, files: list[tuple[str, bool]], fns: list[beam.CombineFn | None]):
        self._files, self._fns = files, fns

    def process(self, gathered: dict[int, Any]):
        for i, (path, single) in enumerate(self._files):
            fn = self._fns[i]
            if fn is None:
                xs = gathered.get(i, [])
                value = (xs[0] if xs else None) if single else xs
            else:  # a statistic that saw nothing has the value of an empty accumulator
                v = fn.extract_output(gathered[i] if i in gathered else fn.create_accumulator())
                value = v if single else [v]
            fs.write_json(path, value, indent=None, default=str)
            yield path


def write_json_files(files: list[JsonFile], label: str, p):
    """Write the build's statistics as JSON files, all in one step; returns the PCollection of
    the written paths (one element per file, once every file is written).

    One gather for all of them, which also merges the statistics' partial accumulators
    (pipelines/core/combine.py): every ``CombineGlobally`` is two fused steps of the local
    runner, and each step costs every worker a bundle (a few ms of set-up, whatever its
    size), which was a large part of a small build's CPU. A PCollection with no elements is
    written as ``[]`` (``null`` with ``single``), as ``ToList`` would give."""
    fns = [f.pcoll.fn if isinstance(f.pcoll, Stat) else None for f in files]
    tagged = [(f.pcoll.partials if isinstance(f.pcoll, Stat) else f.pcoll)
              | f"{label}Tag[{i}]" >> beam.Map(lambda v, i=i: (i, v))
              for i, f in enumerate(files)]
    return (flatten(tagged, p, f"{label}All")
            # with its default ({}): with no element at all, every file is still written
            | f"{label}Gather" >> beam.CombineGlobally(_Gather(fns))
            | f"{label}Write" >> beam.ParDo(_WriteJsonFiles([(f.path, f.single) for f in files],
                                                            fns)))


def summarize(counts: dict[str, int], labels: list[str]) -> dict[str, Any]:
    """Structure raw event counts per stage and check conservation.

    Returns ``{"input", "kept", "removed", "dead_letter", "stages": {label: {...}}, "ok"}``.
    """
    stages: dict[str, dict[str, Any]] = {
        lab: {"removed": {}, "dead_letter": {}} for lab in ["read", *labels]
    }
    removed = dead = 0
    for key, n in counts.items():
        kind, _, rest = key.partition("/")
        if kind not in ("removed", "dead"):
            continue
        label, _, reason = rest.partition("/")
        bucket = stages.setdefault(label, {"removed": {}, "dead_letter": {}})
        field = "removed" if kind == "removed" else "dead_letter"
        bucket[field][reason] = bucket[field].get(reason, 0) + n
        if kind == "removed":
            removed += n
        else:
            dead += n
    n_in, kept = counts.get("input", 0), counts.get("kept", 0)
    # records entering each stage, for the funnel
    remaining = n_in - sum(stages["read"]["dead_letter"].values())
    for lab in labels:
        st = stages[lab]
        st["in"] = remaining
        gone = sum(st["removed"].values()) + sum(st["dead_letter"].values())
        st["out"] = remaining - gone
        remaining = st["out"]
    return {
        "input": n_in,
        "kept": kept,
        "removed": removed,
        "dead_letter": dead,
        "stages": stages,
        "ok": n_in == kept + removed + dead and remaining == kept,
    }


def conservation_error(counts: dict[str, int], stages: dict[str, Any]) -> ConservationError:
    """The error raised when ``input != kept + removed + dead_letter``, with the numbers."""
    total = counts["kept"] + counts["removed"] + counts["dead_letter"]
    per_stage = {k: {"in": v.get("in"), "out": v.get("out")} for k, v in stages.items()}
    return ConservationError(
        f"record accounting does not balance: input={counts['input']} but kept={counts['kept']}"
        f" + removed={counts['removed']} + dead_letter={counts['dead_letter']} = {total}; "
        f"per stage: {per_stage}")


def input_total(counted: list[dict]) -> int:
    """Input records of a build: the sum of the sources' per-file raw counts."""
    return sum(int(row["records"]) for row in counted)


def dead_weight(dead_row: dict) -> int:
    """Input records one dead-letter row stands for (``records`` field, default 1)."""
    return int(dead_row.get("records") or 1)


def check_build(stats: dict[str, Any], max_dead_letter_fraction: float) -> None:
    """Raise the AccountingError a finished build deserves, most specific first."""
    changed = [f for f in stats.get("input_files") or [] if f.get("changed")]
    if changed:
        shown = "; ".join(f"{f['path']}: {f['changed']}" for f in changed[:10])
        more = f" (and {len(changed) - 10} more)" if len(changed) > 10 else ""
        raise InputChangedError(
            f"{len(changed)} input file(s) changed or could not be read while the build ran, so "
            f"their records cannot be accounted for: {shown}{more}. Nothing was promoted; rerun "
            "once the inputs are stable and readable (copy files that are still being written).")
    c = stats["counts"]
    if not stats["conservation_ok"]:
        raise conservation_error(c, stats["stages"])
    n_in, dead = c["input"], c["dead_letter"]
    if n_in and (dead == n_in or dead > max_dead_letter_fraction * n_in):
        reasons = _top_dead_reasons(stats)
        every = "every input record" if dead == n_in else f"{dead / n_in:.1%} of the input"
        err = DeadLetterError(
            f"{every} went to dead_letter ({dead:,} of {n_in:,}; "
            f"output.max_dead_letter_fraction is {max_dead_letter_fraction}); top reasons: "
            f"{reasons}. Nothing was promoted: fix sources[].text_field / id_field or the "
            "input files, or raise output.max_dead_letter_fraction (0..1) to accept this.")
        err.every_record = dead == n_in
        raise err


def _top_dead_reasons(stats: dict[str, Any], n: int = 3) -> str:
    items = []
    for label, st in {"read": stats.get("read") or {}, **(stats.get("stages") or {})}.items():
        for reason, k in (st.get("dead_letter") or {}).items():
            items.append((k, f"{label}/{reason}"))
    items.sort(key=lambda kv: (-kv[0], kv[1]))
    return ", ".join(f"{name}: {k:,}" for k, name in items[:n]) or "none recorded"
