"""Resume after a crash or Ctrl-C (issue 26 item 2): a checkpoint is complete (manifest
written, last) as soon as its stage's records, side outputs, counts and stats are, before the
stages after it run; a build killed after that point (SIGKILL or SIGINT to its process
group) resumes from it, and the resumed output equals a clean build's.

The stage after the checkpoint is a plugin defined here that sleeps per record while
``RESUME_TEST_SLOW_MS`` is set (an environment variable, not part of the config, so the
checkpoint's fingerprint is the same with and without it): the killed builds cannot finish
before the kill, whatever the machine's speed; the resumed and the clean builds run at full
speed."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.build.checkpoint import checkpoint_valid
from pipelines.core.fs import write_json
from tests.buildutil import stdlib_doc_rows

CLI = str(Path(sys.executable).with_name("datamill"))
MODULES = ("os", "json", "collections", "typing", "pathlib", "re", "argparse", "logging")
CHECKPOINT = "checkpoints/02-exact_dedup"

PLUGIN = '''
import os
import time
from typing import Literal

from filters.base import Decision, RecordScorer
from pipelines.stages import RecordStage, RecordStageParams, ScoreStage, register_stage


class _Slow(RecordScorer):
    columns = {"text_chars": "int64"}

    def process(self, record):
        time.sleep(float(os.environ.get("RESUME_TEST_SLOW_MS", "0")) / 1000)
        return Decision(None, {"text_chars": len(record["text"])})


class SlowParams(RecordStageParams):
    stage: Literal["resume_test_slow"]


@register_stage
class SlowStage(ScoreStage, RecordStage):
    name, Params = "resume_test_slow", SlowParams
    description = "Text length; sleeps per record while RESUME_TEST_SLOW_MS is set (tests)."

    def make_scorer(self):
        return _Slow()
'''


def _config(tmp: Path, src: Path, out: Path) -> Path:
    path = tmp / f"{out.name}.yaml"
    path.write_text(f"""name: resume
plugins: [resume_test_plugin]
sources:
  - name: docs
    type: jsonl
    path: {src}
stages:
  - stage: normalize
  - stage: length_filter
    min_words: 5
  - stage: exact_dedup
    checkpoint: true
  - stage: resume_test_slow
  - stage: gopher_repetition
output:
  dir: {out}
  shards: 2
  write_removed: true
""")
    return path


def _env(tmp: Path, slow_ms: float = 0) -> dict:
    env = {**os.environ, "COLUMNS": "200",
           "PYTHONPATH": os.pathsep.join(
               [str(tmp / "plugin"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    env.pop("RESUME_TEST_SLOW_MS", None)
    if slow_ms:
        env["RESUME_TEST_SLOW_MS"] = str(slow_ms)
    return env


def _build(tmp: Path, config: Path, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    done = subprocess.run([CLI, "build", str(config), "--progress-every", "0", *args],
                          capture_output=True, text=True, timeout=120, env=_env(tmp))
    assert done.returncode == 0, done.stdout + done.stderr
    return done, time.monotonic() - t0


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    (tmp / "plugin").mkdir()
    (tmp / "plugin" / "resume_test_plugin.py").write_text(PLUGIN)
    base = stdlib_doc_rows(MODULES)
    src = tmp / "docs.jsonl"
    with src.open("w") as fh:  # every third document repeats one before it: exact duplicates
        for i in range(2000):
            text = base[i % len(base)]["text"] + (f" variant {i}" if i % 3 else "")
            fh.write(json.dumps({"id": f"d{i}", "text": text}) + "\n")
    clean = tmp / "clean"
    done, seconds = _build(tmp, _config(tmp, src, clean))
    return tmp, src, clean, seconds


def _kill_after_checkpoint(tmp: Path, config: Path, out: Path, sig: int, workers: int):
    """Run the build with a slow stage after the checkpoint; send ``sig`` to its process group
    once the checkpoint's manifest exists. Returns (exit code, output)."""
    proc = subprocess.Popen(
        [CLI, "build", str(config), "-w", str(workers), "--progress-every", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env=_env(tmp, slow_ms=200))  # 200 ms x ~1,300 records: never done before the kill
    manifest = out / CHECKPOINT / "manifest.json"
    try:
        deadline = time.monotonic() + 60
        while not manifest.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        seen = manifest.exists()
        still_running = proc.poll() is None
        os.killpg(proc.pid, sig)
        log, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert seen, f"no checkpoint manifest while the later stages ran:\n{log}"
    assert still_running, f"the build ended before the kill:\n{log}"
    assert not (out / "current").exists()  # nothing published: the build was interrupted
    return proc.returncode, log


def _rows(folder: Path) -> list[str]:
    """The JSON lines of a removed/ or dead_letter/ folder, sorted (a resumed build names the
    checkpoint's shards ``resumed0-...``: the rows are compared, not the file names)."""
    return sorted(line for f in folder.glob("*.jsonl.gz")
                  for line in gzip.decompress(f.read_bytes()).decode().splitlines())


def _same_output(resumed: Path, clean: Path) -> None:
    names = sorted(p.name for p in (clean / "data").iterdir())
    assert names and names == sorted(p.name for p in (resumed / "data").iterdir())
    for name in names:  # the kept records: byte for byte
        assert (resumed / "data" / name).read_bytes() == (clean / "data" / name).read_bytes()
    for sub in ("removed", "dead_letter"):
        assert _rows(resumed / sub) == _rows(clean / sub), sub
    assert _rows(clean / "removed")  # the comparison covers removed rows of both segments
    a, b = (json.loads((d / "stats.json").read_text()) for d in (resumed, clean))
    assert a["counts"] == b["counts"] and a["conservation_ok"]
    assert a["resumed_from"] == "exact_dedup" and b["resumed_from"] is None
    for label, st in b["stages"].items():
        assert a["stages"][label]["stats"] == st["stats"], label
        assert a["stages"][label]["removed"] == st["removed"], label
        assert a["stages"][label]["resumed"] == (st["index"] <= 2), label
    assert a["input_lengths"] == b["input_lengths"]


@pytest.mark.parametrize(("sig", "workers", "code"),
                         [(signal.SIGKILL, 1, -signal.SIGKILL), (signal.SIGINT, 2, 130)],
                         ids=["sigkill-w1", "sigint-w2"])
def test_interrupted_build_resumes_from_its_finished_checkpoint(setup, sig, workers, code):
    tmp, src, clean, clean_s = setup
    out = tmp / f"out-{sig.name}"
    config = _config(tmp, src, out)
    status, log = _kill_after_checkpoint(tmp, config, out, sig, workers)
    assert status == code, log
    if sig == signal.SIGINT:  # Ctrl-C keeps the finished checkpoint, removes only staging
        assert "interrupted by SIGINT" in log and not (out / "_staging").exists()
    assert checkpoint_valid(str(out / CHECKPOINT),
                            json.loads((out / CHECKPOINT / "manifest.json").read_text())
                            ["fingerprint"]) is not None

    done, resumed_s = _build(tmp, config)
    assert "resuming from checkpoint" in done.stdout + done.stderr
    _same_output(out, clean)
    print(f"clean build {clean_s:.1f} s, resumed after {sig.name} {resumed_s:.1f} s")


def test_incomplete_checkpoint_is_never_used(setup, tmp_path):
    """Manifest last: a checkpoint whose manifest lacks a list of its files (an older or
    interrupted writer), or whose recorded stats, side or data files are missing or changed,
    is not resumed from."""
    _, _, clean, _ = setup
    ck = clean / CHECKPOINT
    manifest = json.loads((ck / "manifest.json").read_text())
    fp = manifest["fingerprint"]
    assert checkpoint_valid(str(ck), fp) is not None
    listed = {key: [f["path"] for f in manifest[key]]
              for key in ("files", "side_files", "stats_files")}
    assert any(p.endswith("/_stats/counts.json") for p in listed["stats_files"])
    assert any("/_stats/stage.exact_dedup." in p for p in listed["stats_files"])
    assert all(Path(p).is_relative_to(ck) for ps in listed.values() for p in ps)

    def damaged(edit) -> bool:
        copy = tmp_path / "ck"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(ck, copy)
        m = json.loads((copy / "manifest.json").read_text().replace(str(ck), str(copy)))
        write_json(str(copy / "manifest.json"), m)
        assert checkpoint_valid(str(copy), fp) is not None
        edit(copy, m)
        return checkpoint_valid(str(copy), fp) is None

    def without(key):
        def edit(copy, m):
            del m[key]
            write_json(str(copy / "manifest.json"), m)
        return edit

    def remove(pattern):
        return lambda copy, m: next(copy.glob(pattern)).unlink()

    def grow(pattern):
        return lambda copy, m: next(copy.glob(pattern)).write_bytes(
            next(copy.glob(pattern)).read_bytes() + b" ")

    assert damaged(without("stats_files"))
    assert damaged(without("side_files"))
    assert damaged(remove("manifest.json"))
    assert damaged(remove("_stats/stage.exact_dedup.groups.json"))
    assert damaged(grow("_stats/stage.exact_dedup.groups.json"))
    assert damaged(remove("removed/*.jsonl.gz"))
    assert damaged(remove("data/*.parquet"))


def test_sorted_runs_left_in_an_unfinished_checkpoint_are_datamills(tmp_path):
    """A checkpoint interrupted before its writers merged their sorted runs leaves
    ``<kind>-runs/run-*.bin``: datamill wrote them, so the next run removes them instead of
    keeping them as a user's files (found in the README walkthrough of issue 26)."""
    from pipelines.build.run import _checkpoint_files

    ck = tmp_path / "checkpoints" / "04-minhash_dedup"
    for rel in ("removed-runs/run-0-33037742aa.bin", "data-runs/run-1-ff.bin",
                "data/part-00000-of-00002.parquet", "notes/mine.txt"):
        (ck / rel).parent.mkdir(parents=True, exist_ok=True)
        (ck / rel).write_bytes(b"x")
    ours, others = _checkpoint_files(str(ck))
    assert sorted(p.rsplit("04-minhash_dedup/", 1)[1] for p in ours) == [
        "data-runs/run-1-ff.bin", "data/part-00000-of-00002.parquet",
        "removed-runs/run-0-33037742aa.bin"]
    assert [p.rsplit("/", 1)[1] for p in others] == ["mine.txt"]
