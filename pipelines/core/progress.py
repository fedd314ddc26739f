"""Live progress of a build: records read (and bytes of the total input), records in / kept /
removed per stage, and the passes of the stages that work on the whole input (the dedup stages),
while the pipeline runs.

Workers (threads or processes of the local runners) bump cheap in-memory counters
(:func:`add`) and, at most twice a second and at the end of every bundle, write their
cumulative totals to one small JSON file per process in the run's progress folder, named by the
``DATAMILL_PROGRESS_DIR`` environment variable that the build sets before the pipeline starts
(worker processes inherit it). :class:`Watcher` sums those files on a thread of the driver and
hands snapshots to a renderer: a rich live table in a terminal, a plain log line every
``interval`` seconds otherwise. Without the variable (e.g. Dataflow workers, whose own UI shows
the Beam counters) :func:`add` does nothing. Counts are progress, not accounting: the record
accounting comes from the data (pipelines/build/accounting.py).

Why a side channel and not Beam metrics: neither of the runners a laptop uses can be asked for
metrics while the job runs. The local runner (FnApiRunner) returns its result, metrics included,
only when the whole pipeline has finished (``Pipeline.run`` blocks), and the PortableRunner's
embedded job server answers ``GetJobMetrics`` with nothing until the job is done (its result
object even caches that empty answer). So workers that share this machine write files, and a
runner whose workers cannot (separate worker processes started by a worker pool, Docker,
Flink/Spark task managers, Dataflow) gets one line at the start instead of a bar frozen at 0
(:func:`live_unavailable`).

**Passes.** A stage that works on the whole input (``exact_dedup``, ``minhash_dedup``) reads
its input in a first pass fused with reading, then runs passes that start only when the whole
input is read (merging key buckets, candidate shards, verification, one components step) and a
last pass that routes every record. Its DoFns count their work with :func:`counter` (``counter(
self, "verify_files").inc()``): each increment goes to a Beam user counter (namespace
:data:`PASS_NAMESPACE`, name ``<label>/<counter>``: the runner's UI shows them while the job
runs, every runner reports them at the end) and to the live files. The stage says what its
passes are (``progress_passes()``: name, counter, unit, total), and :func:`summary` shows, per
stage, the pass that runs (``minhash_dedup: verify 12 files (of <=37)``).

**Overall progress** is counted in *phases*, not time: reading (with everything fused with it,
including each global stage's first pass) is one phase and every later pass of a global stage is
one more. The bar is ``(phases done + fraction of the running phase) / phases``, where the
fraction of a running pass is known only when its total is (files to route, planned shards);
otherwise it counts 0 until the pass is done. An ETA is shown only while reading, labelled
``read ETA`` when later passes remain (their duration is not predictable from what is counted).
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, NamedTuple

from pipelines.core.fs import write_json
from pipelines.core.runner import environment

ENV = "DATAMILL_PROGRESS_DIR"
FLUSH_SECONDS = 0.5
PASS_NAMESPACE = "datamill.progress"
NO_LIVE_NOTE = ("progress: this runner reports no metrics while the job runs ({why}); counts "
                "appear at the end")


class _Counters:
    def __init__(self, folder: str):
        self.folder = folder
        self.path = os.path.join(folder, f"{os.getpid()}-{uuid.uuid4().hex[:8]}.json")
        self.counts: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()
        self.last = 0.0
        self.pending: threading.Timer | None = None

    def add(self, key: str, n: int) -> None:
        with self.lock:
            self.counts[key] += n
        if time.monotonic() - self.last > FLUSH_SECONDS:
            self.flush()
        elif self.pending is None:
            # what was added since the last write is written within FLUSH_SECONDS even when
            # nothing follows (the last files of a pass), never more often than that
            timer = threading.Timer(FLUSH_SECONDS, self.flush)
            timer.daemon = True
            self.pending = timer
            timer.start()

    def flush(self) -> None:
        with self.lock:
            self.last = time.monotonic()
            self.pending = None
            payload = dict(self.counts)
        try:  # never into a folder the watcher removed (a timer that fires after the run)
            write_json(str(self.path), payload, indent=None, sort_keys=False,
                       durable=False, parents=False)
        except OSError:  # progress is best effort: never fail the build over it
            pass


_COUNTERS: _Counters | None = None
_PID = -1


def _counters() -> _Counters | None:
    global _COUNTERS, _PID
    folder = os.environ.get(ENV)
    if not folder:
        return None
    if _COUNTERS is None or _PID != os.getpid() or _COUNTERS.folder != folder:
        _COUNTERS, _PID = _Counters(folder), os.getpid()  # a forked worker gets its own file
    return _COUNTERS


def add(key: str, n: int = 1) -> None:
    """Bump a progress counter (``read/<source>/records``, ``stage/<label>/kept``...)."""
    c = _counters()
    if c is not None and n:
        c.add(key, n)


def flush() -> None:
    """Write this process's totals now (end of a bundle)."""
    c = _counters()
    if c is not None:
        c.flush()


# --------------------------------------------------------------------------- passes

LABEL_ATTR = "_progress_label"


class Pass(NamedTuple):
    """One pass of a global stage as the live progress shows it.

    ``counter``: what the pass's DoFns count with :func:`counter`; ``unit``: what it counts;
    ``total``: an int known at planning, the name of another counter of the same stage (known
    once an earlier pass is done, e.g. the spill files every record goes to), or None;
    ``bound``: the total is only an upper bound (files that hold candidate pairs are some of the
    spill files), so it is shown as ``of <=N`` and never used as a fraction."""

    name: str
    counter: str
    unit: str
    total: int | str | None = None
    bound: bool = False


class _PassCounter:
    """A Beam user counter that also feeds the live progress files."""

    def __init__(self, label: str, name: str):
        from apache_beam.metrics import Metrics

        self._beam = Metrics.counter(PASS_NAMESPACE, f"{label}/{name}")
        self._key = f"pass/{label}/{name}"

    def inc(self, n: int = 1) -> None:
        if n:
            self._beam.inc(n)  # a no-op outside a running DoFn
            add(self._key, n)


_PASS_COUNTERS: dict[tuple[str, str], _PassCounter] = {}


def counter(owner: Any, name: str) -> _PassCounter:
    """``counter(self, "verify_files").inc()`` in a DoFn of a global stage: counts one unit of
    one of its passes (:class:`Pass`). ``owner`` is the stage label or the DoFn: its label is
    the attribute set by :func:`for_stage`, else its ``_label``."""
    label = owner if isinstance(owner, str) else (
        getattr(owner, LABEL_ATTR, None) or getattr(owner, "_label", None) or "unlabelled")
    c = _PASS_COUNTERS.get((label, name))
    if c is None:
        c = _PASS_COUNTERS[(label, name)] = _PassCounter(label, name)
    return c


def for_stage(dofn: Any, label: str) -> Any:
    """``dofn``, its pass counters named after stage ``label`` (it pickles with the DoFn)."""
    setattr(dofn, LABEL_ATTR, label)
    return dofn


def live_unavailable(runner: str, environment_type: str | None) -> str | None:
    """Why the live progress cannot be shown for this runner (None: it can): its workers must
    be threads or child processes of this process to write the progress files."""
    env = (environment_type or "").upper()
    if env == "LOOPBACK":
        return None  # SDK workers run inside this process
    if runner in ("DirectRunner", "FnApiRunner") and not env:
        return None  # threads, or child processes with -w N
    if runner == "DataflowRunner":
        return ("Dataflow workers run remotely; the Dataflow console shows the counters of "
                f"namespace {PASS_NAMESPACE} and the stage timers while it runs")
    if env == "EXTERNAL":
        return "its SDK workers are processes of a separate worker pool"
    if env == "DOCKER" or not env:
        return "its SDK workers run in containers"
    return f"its SDK workers are started by the runner ({runner}, {env})"


def snapshot(folder: str) -> dict[str, int]:
    """Sum of every worker's totals in ``folder``."""
    out: dict[str, int] = defaultdict(int)
    for p in Path(folder).glob("*.json"):
        try:
            part = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # being replaced right now: the next poll reads it
        for k, v in part.items():
            out[k] += int(v)
    return dict(out)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def _pass_states(snap: dict[str, int], label: str, passes: list[Pass],
                 finished: bool = False) -> list[dict]:
    """Counts, totals and state (``waiting`` / ``running`` / ``done``) of a stage's passes: a
    pass is done once a later pass has started, the last one once it has done its total (every
    pass once the pipeline has ``finished``)."""
    rows = []
    for ps in passes:
        total = ps.total
        if isinstance(total, str):
            total = snap.get(f"pass/{label}/{total}") or None
        rows.append({"name": ps.name, "unit": ps.unit, "count": snap.get(
            f"pass/{label}/{ps.counter}", 0), "total": total, "bound": ps.bound})
    started = [i for i, r in enumerate(rows) if r["count"]]
    last = started[-1] if started else -1
    for i, r in enumerate(rows):
        r["state"] = "done" if i < last or finished else "running" if i == last else "waiting"
    if rows and rows[-1]["state"] == "running" and rows[-1]["total"] and not rows[-1]["bound"] \
            and rows[-1]["count"] >= rows[-1]["total"]:
        rows[-1]["state"] = "done"
    return rows


def summary(snap: dict[str, int], labels: list[str], total_bytes: int,
            elapsed: float, kinds: dict[str, Any] | None = None,
            finished: bool = False) -> dict[str, Any]:
    """Structured progress: read records/bytes and fraction, per-stage counts and passes, the
    phases (reading, then every later pass of a global stage; module docstring) with the overall
    fraction, and an ETA while reading. ``kinds``: ``pipelines.build.run.stage_kinds``
    (default: every stage a record stage); ``finished``: the pipeline has finished (every pass is done)."""
    kinds = kinds or {}
    read = sum(v for k, v in snap.items() if k.startswith("read/") and k.endswith("/records"))
    done = sum(v for k, v in snap.items() if k.startswith("read/") and k.endswith("/bytes"))
    frac = min(1.0, done / total_bytes) if total_bytes else None
    stages = {}
    phases: list[tuple[str, dict]] = []  # (label, pass row) of the passes after reading
    for lab in labels:
        kind = kinds.get(lab, "record")
        v: dict[str, Any] = {k: snap.get(f"stage/{lab}/{k}", 0) for k in ("in", "removed", "dead")}
        v["kind"] = "record" if kind == "record" else "passes" if kind else "other"
        if isinstance(kind, list):
            v["passes"] = _pass_states(snap, lab, kind, finished)
            v["in"] = v["passes"][0]["count"]  # the first pass takes every record in
            v["done"] = v["passes"][-1]["state"] == "done"
            # kept: counted by the routing pass where it does, else known once it is done
            v["kept"] = snap[f"pass/{lab}/kept"] if f"pass/{lab}/kept" in snap else (
                max(0, v["in"] - v["removed"] - v["dead"]) if v["done"] else None)
            phases += [(lab, r) for r in v["passes"][1:]]
        else:
            # record stages count what goes in; kept is what went in and did not leave
            v["kept"] = max(0, v["in"] - v["removed"] - v["dead"])
        stages[lab] = v
    # reading is done when all bytes are read or a later pass has started
    read_done = finished or (frac is not None and frac >= 1) or any(
        r["state"] != "waiting" for _l, r in phases)
    n_phases = 1 + len(phases)
    done_phases = 1 if read_done else 0
    running = None if read_done else ("read", None)
    partial = 0.0 if read_done else (frac or 0.0)
    for lab, r in phases:
        if r["state"] == "done":
            done_phases += 1
        elif running is None:
            running = (lab, r)
            if r["state"] == "running" and r["total"] and not r["bound"]:
                partial = min(1.0, r["count"] / r["total"])
    overall = min(1.0, (done_phases + partial) / n_phases) if (frac is not None or phases) \
        else None
    reading = running is not None and running[0] == "read"
    eta = elapsed * (1 - frac) / frac if reading and frac else None
    return {"read": read, "bytes": done, "total_bytes": total_bytes, "fraction": frac,
            "eta_seconds": eta, "eta_reading_only": n_phases > 1, "elapsed": elapsed,
            "stages": stages, "phases": {"done": done_phases, "total": n_phases,
                                         "running": None if running is None else
                                         (running[0] if running[1] is None
                                          else f"{running[0]} {running[1]['name']}")},
            "overall": overall}


def _count(r: dict) -> str:
    n = f"{r['count']:,}"
    if r["total"] and r["bound"]:
        return f"{n} {r['unit']} (of <={r['total']:,})"
    if r["total"]:
        return f"{n}/{r['total']:,} {r['unit']}"
    return f"{n} {r['unit']}"


def stage_text(lab: str, v: dict[str, Any]) -> str | None:
    """One stage's progress in words (None: nothing to say yet about a record stage)."""
    kept = "?" if v["kept"] is None else f"{v['kept']:,}"
    counts = f"{v['in']:,} in/{kept} kept/{v['removed']:,} removed"
    if v["kind"] == "record":
        return f"{lab} {counts}" if v["in"] else None
    if v["kind"] == "other":
        return (f"{lab}: {v['removed']:,} removed so far (its other counts come at the end)"
                if v["removed"] else f"{lab}: no live counts (they come at the end)")
    if v["done"]:
        return f"{lab} {counts}"
    rows = v["passes"]
    run = next((r for r in rows if r["state"] == "running"), None)
    if run is None:
        return f"{lab}: waiting"
    k = rows.index(run) + 1
    text = f"{lab}: {run['name']} {_count(run)} (pass {k}/{len(rows)})"
    if k == len(rows):
        text += f", {counts}"
    return text


def plain_line(s: dict[str, Any]) -> str:
    """One log line (for logs and pipes)."""
    head = f"progress {_duration(s['elapsed'])}: read {s['read']:,} records"
    if s["total_bytes"]:
        head += f" ({_mb(s['bytes'])} of {_mb(s['total_bytes'])}"
        if s["fraction"] is not None:
            head += f", {100 * s['fraction']:.0f}%"
        head += ")"
    if s["eta_seconds"] is not None and s["fraction"] and s["fraction"] < 1:
        head += f", {'read ETA' if s.get('eta_reading_only') else 'ETA'} " \
                f"{_duration(s['eta_seconds'])}"
    ph = s.get("phases")
    if ph and ph["total"] > 1:
        head += (f", phase {min(ph['done'] + 1, ph['total'])}/{ph['total']}"
                 + (f" ({ph['running']})" if ph["running"] else " (all passes done)"))
    parts = [t for lab, v in s["stages"].items() if (t := stage_text(lab, v))]
    return head + ("; " + "; ".join(parts) if parts else "")


def rich_table(s: dict[str, Any]):
    """A rich renderable (bar + per-stage table) for a terminal."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    head = Text(plain_line({**s, "stages": {}}))
    table = Table(box=None, pad_edge=False)
    for col in ("stage", "in", "kept", "removed", "dead-letter", "pass"):
        table.add_column(col, justify="left" if col in ("stage", "pass") else "right")
    for lab, v in s["stages"].items():
        if v["kind"] == "record" or v.get("done"):
            cells = [f"{v['in']:,}", f"{v['kept'] or 0:,}", f"{v['removed']:,}", f"{v['dead']:,}",
                     "done" if v.get("done") else ""]
        elif v["kind"] == "other":
            cells = ["-", "-", f"{v['removed']:,}", f"{v['dead']:,}", "counts at the end"]
        else:
            text = stage_text(lab, v) or ""
            last = v["passes"][-1]["state"] != "waiting"
            cells = [f"{v['in']:,}", f"{v['kept']:,}" if last and v["kept"] is not None
                     else "-", f"{v['removed']:,}",
                     f"{v['dead']:,}", text.split(": ", 1)[-1].split(", ")[0]]
        table.add_row(lab, *cells)
    done = s.get("overall")
    if done is None:
        done = s["fraction"] or 0
    bar = Table.grid(padding=(0, 1))
    ph = s.get("phases") or {}
    bar.add_row(ProgressBar(total=100, completed=100 * done, width=60),
                Text(f"{100 * done:.0f}%" + (" of the phases" if ph.get("total", 1) > 1 else "")))
    return Group(head, bar, table)


class Watcher:
    """Polls the progress folder on a thread and calls ``render(summary)`` every ``interval``
    seconds (and once at the end)."""

    def __init__(self, folder: str, labels: list[str], total_bytes: int,
                 render: Callable[[dict[str, Any]], None], interval: float = 10.0,
                 kinds: dict[str, Any] | None = None):
        self.folder, self.labels, self.total_bytes = folder, labels, total_bytes
        self.kinds = kinds
        self.render, self.interval = render, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="datamill-progress", daemon=True)
        self._t0 = time.monotonic()

    def current(self, finished: bool = False) -> dict[str, Any]:
        return summary(snapshot(self.folder), self.labels, self.total_bytes,
                       time.monotonic() - self._t0, self.kinds, finished)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.render(self.current())
            except Exception:  # noqa: BLE001 - a display problem must not stop the build
                pass

    def __enter__(self) -> "Watcher":
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        self._env = environment(**{ENV: self.folder})
        self._env.__enter__()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        flush()  # counters of work that ran in this process (in-memory runner)
        self._env.__exit__(None, None, None)
        try:
            self.render(self.current(finished=exc[0] is None))
        except Exception:  # noqa: BLE001
            pass
