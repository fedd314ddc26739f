"""Live progress while a build runs: plain lines when stderr is not a terminal, a live table
on a terminal; counts agree with the build's own accounting at the end."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

from pipelines.core import progress
from tests.buildutil import config, stdlib_doc_rows, write_jsonl

ROOT = Path(__file__).resolve().parents[1]


def _setup(tmp_path: Path) -> Path:
    write_jsonl(tmp_path / "a.jsonl", stdlib_doc_rows(("json", "csv", "argparse", "logging"))
                + [b"{not json"])
    cfg = config([{"name": "docs", "type": "jsonl", "path": str(tmp_path / "a.jsonl")}],
                 [{"stage": "normalize"}, {"stage": "length_filter", "min_words": 15}],
                 tmp_path / "out", report=False)
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(cfg))
    return path


def _cli(args: list[str], **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-c", "from pipelines.cli.main import main; main()",
                             *args], env=env, **kw)


def test_plain_progress_lines_when_not_a_terminal(tmp_path):
    cfg = _setup(tmp_path)
    proc = _cli(["build", str(cfg), "--progress-every", "0.5"], stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    lines = [ln for ln in (out + err).splitlines() if ln.startswith("progress ")]
    assert lines, out + err
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    last = lines[-1]
    assert f"read {stats['counts']['input']:,} records" in last
    assert "100%" in last and "MB of" in last
    lf = stats["stages"]["length_filter"]
    assert f"length_filter {lf['in']:,} in/{lf['out']:,} kept/" in last


def test_live_table_on_a_terminal(tmp_path):
    cfg = _setup(tmp_path)
    master, slave = pty.openpty()
    proc = _cli(["build", str(cfg)], stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(master)
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0, screen
    assert "\x1b[" in screen  # a live (redrawn) display, not plain lines
    assert "removed" in screen and "length_filter" in screen
    assert "accounting" in screen and "balanced" in screen


def test_counters_from_several_processes_are_summed(tmp_path, monkeypatch):
    monkeypatch.setenv(progress.ENV, str(tmp_path))
    progress.add("read/s/records", 5)
    progress.flush()
    (tmp_path / "other-worker.json").write_text(json.dumps({"read/s/records": 7,
                                                            "read/s/bytes": 50}))
    (tmp_path / "half-written.json").write_text("{")
    snap = progress.snapshot(str(tmp_path))
    assert snap["read/s/records"] == 12
    s = progress.summary(snap, ["a"], 100, elapsed=10.0)
    assert s["fraction"] == 0.5 and s["eta_seconds"] == 10.0
    assert "50%" in progress.plain_line(s) and "ETA 10s" in progress.plain_line(s)


def test_add_is_a_no_op_without_a_progress_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(progress, "_COUNTERS", None)
    progress.add("x", 1)  # must not raise or write anywhere
    progress.flush()
    assert progress._counters() is None and list(tmp_path.iterdir()) == []
