"""Live progress of a build: records read (and bytes of the total input), and records in / kept /
removed per stage, with an ETA, while the pipeline runs.

Workers (threads or processes of the local runners) bump cheap in-memory counters
(:func:`add`) and, at most twice a second and at the end of every bundle, write their
cumulative totals to one small JSON file per process in the run's progress folder, named by the
``DATAMILL_PROGRESS_DIR`` environment variable that the build sets before the pipeline starts
(worker processes inherit it). :class:`Watcher` sums those files on a thread of the driver and
hands snapshots to a renderer: a rich live table in a terminal, a plain log line every
``interval`` seconds otherwise. Without the variable (e.g. Dataflow workers, whose own UI shows
the Beam counters) :func:`add` does nothing. Counts are progress, not accounting: the record
accounting comes from the data (pipelines/build/accounting.py).
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

from pipelines.core.fs import write_json

ENV = "DATAMILL_PROGRESS_DIR"
FLUSH_SECONDS = 0.5


class _Counters:
    def __init__(self, folder: str):
        self.folder = folder
        self.path = os.path.join(folder, f"{os.getpid()}-{uuid.uuid4().hex[:8]}.json")
        self.counts: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()
        self.last = 0.0

    def add(self, key: str, n: int) -> None:
        with self.lock:
            self.counts[key] += n
        if time.monotonic() - self.last > FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        with self.lock:
            self.last = time.monotonic()
            payload = dict(self.counts)
        try:
            write_json(str(self.path), payload, indent=None, sort_keys=False,
                       durable=False)
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


def summary(snap: dict[str, int], labels: list[str], total_bytes: int,
            elapsed: float) -> dict[str, Any]:
    """Structured progress: read records/bytes, fraction, ETA and per-stage counts."""
    read = sum(v for k, v in snap.items() if k.startswith("read/") and k.endswith("/records"))
    done = sum(v for k, v in snap.items() if k.startswith("read/") and k.endswith("/bytes"))
    frac = min(1.0, done / total_bytes) if total_bytes else None
    eta = elapsed * (1 - frac) / frac if frac else None
    stages = {}
    for lab in labels:
        v = {k: snap.get(f"stage/{lab}/{k}", 0) for k in ("in", "removed", "dead")}
        # record stages count what goes in; kept is what went in and did not leave
        v["kept"] = max(0, v["in"] - v["removed"] - v["dead"])
        stages[lab] = v
    return {"read": read, "bytes": done, "total_bytes": total_bytes, "fraction": frac,
            "eta_seconds": eta, "elapsed": elapsed, "stages": stages}


def plain_line(s: dict[str, Any]) -> str:
    """One log line (for logs and pipes)."""
    head = f"progress {_duration(s['elapsed'])}: read {s['read']:,} records"
    if s["total_bytes"]:
        head += f" ({_mb(s['bytes'])} of {_mb(s['total_bytes'])}"
        if s["fraction"] is not None:
            head += f", {100 * s['fraction']:.0f}%"
        head += ")"
    if s["eta_seconds"] is not None and s["fraction"] and s["fraction"] < 1:
        head += f", ETA {_duration(s['eta_seconds'])}"
    parts = [f"{lab} {v['in']:,} in/{v['kept']:,} kept/{v['removed']:,} removed"
             for lab, v in s["stages"].items() if v["in"]]
    return head + ("; " + "; ".join(parts) if parts else "")


def rich_table(s: dict[str, Any]):
    """A rich renderable (bar + per-stage table) for a terminal."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    head = Text(plain_line({**s, "stages": {}}))
    table = Table(box=None, pad_edge=False)
    for col in ("stage", "in", "kept", "removed", "dead-letter"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for lab, v in s["stages"].items():
        table.add_row(lab, f"{v['in']:,}", f"{v['kept']:,}", f"{v['removed']:,}",
                      f"{v['dead']:,}")
    bar = ProgressBar(total=100, completed=100 * (s["fraction"] or 0), width=60)
    return Group(head, bar, table)


class Watcher:
    """Polls the progress folder on a thread and calls ``render(summary)`` every ``interval``
    seconds (and once at the end)."""

    def __init__(self, folder: str, labels: list[str], total_bytes: int,
                 render: Callable[[dict[str, Any]], None], interval: float = 10.0):
        self.folder, self.labels, self.total_bytes = folder, labels, total_bytes
        self.render, self.interval = render, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="datamill-progress", daemon=True)
        self._t0 = time.monotonic()

    def current(self) -> dict[str, Any]:
        return summary(snapshot(self.folder), self.labels, self.total_bytes,
                       time.monotonic() - self._t0)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.render(self.current())
            except Exception:  # noqa: BLE001 - a display problem must not stop the build
                pass

    def __enter__(self) -> "Watcher":
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        self._old = os.environ.get(ENV)
        os.environ[ENV] = self.folder
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        flush()  # counters of work that ran in this process (in-memory runner)
        if self._old is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = self._old
        try:
            self.render(self.current())
        except Exception:  # noqa: BLE001
            pass
