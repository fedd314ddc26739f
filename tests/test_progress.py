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


def test_a_late_timer_never_recreates_a_removed_progress_folder(tmp_path, monkeypatch):
    """The pending flush of a worker's counters can fire after the run removed the progress
    folder (which lives in the run's spill folder): it writes nothing and creates no folder,
    so a finished build leaves no _staging behind."""
    folder = tmp_path / "run.spill" / "tmp" / "datamill-progress-x"
    folder.mkdir(parents=True)
    monkeypatch.setenv(progress.ENV, str(folder))
    monkeypatch.setattr(progress, "_COUNTERS", None)
    progress.add("read/s/records", 1)
    progress.add("read/s/records", 1)  # within FLUSH_SECONDS: a timer is pending
    assert progress._counters().pending is not None
    import shutil
    import time

    shutil.rmtree(tmp_path / "run.spill")  # the run is over
    time.sleep(progress.FLUSH_SECONDS + 0.5)
    progress.flush()
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- global passes


def _dedup_setup(tmp_path: Path) -> Path:
    rows = stdlib_doc_rows(("json", "csv", "argparse", "logging"))
    copies = [dict(r, id=r["id"] + "-copy") for r in rows[:40]]
    near = [dict(r, id=r["id"] + "-near", text=r["text"] + " see also") for r in rows[40:80]]
    write_jsonl(tmp_path / "a.jsonl", rows + copies + near)
    cfg = config([{"name": "docs", "type": "jsonl", "path": str(tmp_path / "a.jsonl")}],
                 [{"stage": "normalize"}, {"stage": "exact_dedup"},
                  {"stage": "minhash_dedup", "threshold": 0.7},
                  {"stage": "length_filter", "min_words": 5}],
                 tmp_path / "out", report=False)
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(cfg))
    return path


def test_dedup_passes_are_counted_and_shown(tmp_path):
    """A real build: every pass of exact_dedup and minhash_dedup reports its work (Beam user
    counters, also written to the live progress files); the piped lines name the dedup stages
    with their counts, which agree with the build's accounting."""
    from pipelines.build.config import build_config_from_dict
    from pipelines.build.run import run_build

    cfg = build_config_from_dict(json.loads(_dedup_setup(tmp_path).read_text()))
    seen: list[dict] = []
    res = run_build(cfg, on_progress=seen.append, progress_interval=0.2)
    stats = res.stats
    final = seen[-1]
    ex, mh = final["stages"]["exact_dedup"], final["stages"]["minhash_dedup"]
    assert ex["done"] and mh["done"]
    passes = {(lab, r["name"]): r for lab in ("exact_dedup", "minhash_dedup")
              for r in final["stages"][lab]["passes"]}
    assert [r["name"] for r in mh["passes"]] == ["sketch", "candidates", "fingerprints",
                                                  "verify", "components", "route"]
    assert passes["exact_dedup", "key"]["count"] == stats["stages"]["exact_dedup"]["in"]
    assert passes["exact_dedup", "merge"]["count"] > 0
    route = passes["exact_dedup", "route"]
    assert route["count"] == route["total"] > 0  # every spill file routed
    assert passes["minhash_dedup", "sketch"]["count"] == \
        stats["stages"]["minhash_dedup"]["in"]
    assert passes["minhash_dedup", "candidates"]["count"] >= 1
    assert passes["minhash_dedup", "verify"]["count"] >= 1  # the near copies make pairs
    assert passes["minhash_dedup", "components"]["count"] == 1
    route = passes["minhash_dedup", "route"]
    assert route["count"] == route["total"] > 0
    for lab, v in (("exact_dedup", ex), ("minhash_dedup", mh)):
        st = stats["stages"][lab]
        removed = sum(st["removed"].values())
        assert (v["in"], v["kept"], v["removed"]) == (st["in"], st["out"], removed), lab
        assert removed > 0
    assert final["overall"] == 1.0 and final["phases"]["total"] == 1 + 2 + 5
    line = progress.plain_line(final)
    assert "phase 8/8 (all passes done)" in line
    st = stats["stages"]["minhash_dedup"]
    assert (f"minhash_dedup {st['in']:,} in/{st['out']:,} kept/"
            f"{sum(st['removed'].values()):,} removed") in line


def test_piped_progress_lines_name_the_dedup_stages(tmp_path):
    cfg = _dedup_setup(tmp_path)
    proc = _cli(["build", str(cfg), "--progress-every", "0.2"], stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    lines = [ln for ln in (out + err).splitlines() if ln.startswith("progress ")]
    assert lines, out + err
    assert all("exact_dedup" in ln and "minhash_dedup" in ln for ln in lines), lines
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    ex = stats["stages"]["exact_dedup"]
    assert (f"exact_dedup {ex['in']:,} in/{ex['out']:,} kept/"
            f"{sum(ex['removed'].values()):,} removed") in lines[-1]
    assert "100%" in lines[-1] and "ETA" not in lines[-1]


# recorded snapshots of a build (normalize, exact_dedup, minhash_dedup) at three moments
_KINDS = {
    "normalize": "record",
    "exact_dedup": [progress.Pass("key", "keyed", "records"),
                    progress.Pass("merge", "buckets", "buckets"),
                    progress.Pass("route", "route_files", "files", "spill_files")],
    "minhash_dedup": [progress.Pass("sketch", "sketched", "records"),
                      progress.Pass("candidates", "shards", "shards", 4),
                      progress.Pass("fingerprints", "fingerprint_files", "files",
                                    "spill_files", True),
                      progress.Pass("verify", "verify_files", "files", "spill_files", True),
                      progress.Pass("components", "components", "step", 1),
                      progress.Pass("route", "route_files", "files", "spill_files")],
}
_READING = {"read/docs/records": 5000, "read/docs/bytes": 25_000_000,
            "stage/normalize/in": 5000, "pass/exact_dedup/keyed": 4000,
            "pass/exact_dedup/spill_files": 2}
_DONE_READING = {"read/docs/records": 20000, "read/docs/bytes": 100_000_000,
                 "stage/normalize/in": 20000, "pass/exact_dedup/keyed": 20000,
                 "pass/exact_dedup/spill_files": 9, "pass/exact_dedup/buckets": 64,
                 "pass/exact_dedup/route_files": 9, "pass/exact_dedup/kept": 18000,
                 "stage/exact_dedup/removed": 2000, "pass/minhash_dedup/sketched": 18000,
                 "pass/minhash_dedup/spill_files": 37, "pass/minhash_dedup/shards": 4,
                 "pass/minhash_dedup/fingerprint_files": 30,
                 "pass/minhash_dedup/verify_files": 12}


def _at(snap: dict, elapsed: float) -> dict:
    return progress.summary(snap, list(_KINDS), 100_000_000, elapsed, _KINDS)


def test_bar_is_not_full_while_a_global_pass_runs():
    """From recorded snapshots: after reading, the bar counts phases (reading + each later
    pass), so it is not at 100% while minhash_dedup verifies; the ETA is a read ETA only."""
    s = _at(_READING, 10.0)
    assert s["fraction"] == 0.25 and 0 < s["overall"] < 0.25
    line = progress.plain_line(s)
    assert "25%" in line and "read ETA 30s" in line and "phase 1/8 (read)" in line
    assert "exact_dedup: key 4,000 records (pass 1/3)" in line
    assert "minhash_dedup: waiting" in line

    s = _at(_DONE_READING, 60.0)
    assert s["fraction"] == 1.0
    # read, exact merge, exact route, candidates, fingerprints done; verify runs
    assert s["phases"] == {"done": 5, "total": 8, "running": "minhash_dedup verify"}
    assert s["overall"] == 5 / 8
    line = progress.plain_line(s)
    assert "100%" in line and "ETA" not in line
    assert "phase 6/8 (minhash_dedup verify)" in line
    assert "exact_dedup 20,000 in/18,000 kept/2,000 removed" in line
    assert "minhash_dedup: verify 12 files (of <=37) (pass 4/6)" in line

    # routing: the fraction of the running pass is known (files routed of spill files)
    snap = {**_DONE_READING, "pass/minhash_dedup/components": 1,
            "pass/minhash_dedup/route_files": 10, "stage/minhash_dedup/removed": 300}
    s = _at(snap, 70.0)
    assert s["overall"] == (7 + 10 / 37) / 8
    assert "minhash_dedup: route 10/37 files (pass 6/6), 18,000 in/? kept/300 removed" \
        in progress.plain_line(s)
    assert _at(snap, 80.0)["stages"]["minhash_dedup"]["done"] is False

    # the terminal bar follows the phases, not the bytes read
    from rich.console import Console

    console = Console(width=120, record=True, color_system=None)
    console.print(progress.rich_table(_at(_DONE_READING, 60.0)))
    text = console.export_text()
    assert "verify 12 files (of <=37) (pass 4/6)" in text and "━" in text


def test_note_instead_of_a_frozen_bar_where_workers_cannot_report(tmp_path):
    """Runners whose workers are not threads or children of this process get one line at the
    start and no progress renders (a bar would stay at 0)."""
    assert progress.live_unavailable("DirectRunner", None) is None
    assert progress.live_unavailable("PortableRunner", "LOOPBACK") is None
    assert "worker pool" in progress.live_unavailable("PortableRunner", "EXTERNAL")
    assert "worker pool" in progress.live_unavailable("DirectRunner", "EXTERNAL")
    assert "Dataflow" in progress.live_unavailable("DataflowRunner", None)
    assert progress.live_unavailable("FlinkRunner", "DOCKER")

    from pipelines.build.config import build_config_from_dict
    from pipelines.build.run import run_build
    from tests.poolutil import worker_pool

    cfg = build_config_from_dict(json.loads(_setup(tmp_path).read_text()))
    logged, shown = [], []
    with worker_pool(tmp_path) as (port, _log):
        res = run_build(cfg, extra_args=["--runner", "portable", "--job_endpoint=embed",
                                         "--environment_type=EXTERNAL",
                                         f"--environment_config=localhost:{port}"],
                        log=logged.append, on_progress=shown.append, progress_interval=0.2)
    assert res.stats["counts"]["kept"] > 0
    notes = [m for m in logged if m.startswith("progress:")]
    assert notes == [progress.NO_LIVE_NOTE.format(
        why="its SDK workers are processes of a separate worker pool")], logged
    assert "reports no metrics while the job runs" in notes[0] and "at the end" in notes[0]
    assert shown == []
