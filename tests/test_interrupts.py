"""Ctrl-C / SIGTERM on the real CLI (issue 26 item 1): a signal to the build's process group
(what a terminal sends) stops the build promptly at any phase, on ``-w 1`` and ``-w 2``,
prints one line, exits 130 (143 for SIGTERM), promotes nothing and leaves no staging."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.buildutil import stdlib_doc_rows

CLI = str(Path(sys.executable).with_name("datamill"))
MODULES = ("os", "json", "collections", "typing", "pathlib", "re", "subprocess", "inspect",
           "argparse", "logging")


def _config(path: Path, src: Path, out: Path) -> Path:
    path.write_text(f"""name: interrupts
sources:
  - name: docs
    type: jsonl
    path: {src}
stages:
  - stage: normalize
  - stage: length_filter
    min_words: 5
  - stage: gopher_repetition
  - stage: exact_dedup
output:
  dir: {out}
  shards: 2
""")
    return path


def _corpus(path: Path, n: int) -> Path:
    base = stdlib_doc_rows(MODULES)
    with path.open("w") as fh:
        for i in range(n):
            text = base[i % len(base)]["text"] + (f" variant {i}" if i % 3 else "")
            fh.write(json.dumps({"id": f"d{i}", "text": text}) + "\n")
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("interrupts")
    out = tmp / "out"
    small = _config(tmp / "small.yaml", _corpus(tmp / "small.jsonl", 300), out)
    big = _config(tmp / "big.yaml", _corpus(tmp / "big.jsonl", 30000), out)
    done = subprocess.run([CLI, "build", str(small), "--progress-every", "0"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return big, out


def _snapshot(out: Path) -> dict:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns
            for p in sorted(out.rglob("*")) if p.is_file() and p.name != ".datamill.lock"}


def _interrupt(config: Path, workers: int, when, sig=signal.SIGINT):
    """Run the build; send ``sig`` to its process group when ``when(line)`` first holds for
    a stderr line. Returns (exit code, lines printed after the signal, seconds to exit)."""
    proc = subprocess.Popen(
        [CLI, "build", str(config), "-w", str(workers), "--force", "--progress-every", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={**os.environ, "COLUMNS": "200"})
    before: list[str] = []
    after: list[str] = []
    sent: list[float] = []

    def watchdog():
        time.sleep(90)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)

    threading.Thread(target=watchdog, daemon=True).start()
    for line in proc.stdout:
        if sent:
            after.append(line.rstrip("\n"))
        else:
            before.append(line.rstrip("\n"))
            if when(line):
                os.killpg(proc.pid, sig)
                sent.append(time.monotonic())
    proc.wait()
    assert sent, f"the build finished before the signal was sent:\n" + "\n".join(before)
    return proc.returncode, after, time.monotonic() - sent[0], before


def _reading(line: str) -> bool:
    return line.startswith("progress") and "100%)" not in line and "records (" in line


def _global(line: str) -> bool:  # reading and the per-record stages are done: exact_dedup
    return line.startswith("progress") and "100%)" in line


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("phase", ["reading", "global"])
def test_ctrl_c_stops_the_build(setup, workers, phase):
    config, out = setup
    before = _snapshot(out)
    code, after, seconds, log = _interrupt(config, workers,
                                           _reading if phase == "reading" else _global)
    assert code == 130, "\n".join(log + after)
    assert len(after) <= 3, "\n".join(after)
    assert not any("Traceback" in line for line in after), "\n".join(after)
    assert [line for line in after if "interrupted by SIGINT" in line] == [after[-1]], after
    assert seconds < 15, seconds
    assert _snapshot(out) == before  # nothing promoted, the previous build intact
    assert not (out / "_staging").exists()


def test_sigterm_exits_143(setup):
    config, out = setup
    before = _snapshot(out)
    code, after, _, log = _interrupt(config, 1, _reading, signal.SIGTERM)
    assert code == 143, "\n".join(log + after)
    assert not any("Traceback" in line for line in after), "\n".join(after)
    assert _snapshot(out) == before
    assert not (out / "_staging").exists()


def test_ctrl_c_while_loading_the_config_is_one_line(tmp_path, monkeypatch):
    """Ctrl-C before the build starts (importing Beam, reading the config): exit 130 and the
    one line, not typer's silent exit."""
    from typer.testing import CliRunner

    import pipelines.build.config as build_config
    from pipelines.cli.main import app

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(build_config, "load_build_config", interrupted)
    res = CliRunner().invoke(app, ["build", str(tmp_path / "any.yaml")])
    assert res.exit_code == 130
    assert res.output.strip() == "error: interrupted by SIGINT: nothing was started"


def test_ctrl_c_after_publishing_exits_zero_saying_so(tmp_path, monkeypatch):
    """Ctrl-C while the summary prints, after the build was published: exit 0 (a non-zero
    exit always means nothing new was published) and a line saying where it is."""
    from typer.testing import CliRunner

    import pipelines.cli.main as cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    out = tmp_path / "out"
    config = _config(tmp_path / "c.yaml", _corpus(tmp_path / "in.jsonl", 40), out)
    monkeypatch.setattr(cli, "_print_summary", interrupted)
    res = CliRunner().invoke(cli.app, ["build", str(config), "--progress-every", "0"])
    assert res.exit_code == 0, res.output
    assert "interrupted while printing the summary: the build is published" in res.output
    assert (out / "current").is_symlink() and (out / "data").exists()
