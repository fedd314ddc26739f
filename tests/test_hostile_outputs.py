"""Hostile output paths and faults (issue 10 output side, issue 12 paths): a build never
deletes what it did not write, never publishes a mix of two builds, and fails clearly.

Every case builds real files in tmp_path (records: docstrings of stdlib modules)."""

from __future__ import annotations

import errno
import json
import os
import signal
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.build import promote
from pipelines.build.accounting import AccountingError
from pipelines.build.errors import BuildInterrupted, DiskFull, OutputLocked
from pipelines.core.settings import ConfigError
from pipelines.build.config import build_config_from_dict
from pipelines.build.output_lock import OutputLock
from pipelines.build.plan import plan_build
from tests.buildutil import build, config, stdlib_doc_rows, write_jsonl

REPO = Path(__file__).resolve().parents[1]


def _rows(n: int = 24) -> list[dict]:
    return [{"text": r["text"]} for r in stdlib_doc_rows(("json", "shutil"))[:n]]


def _src(path: Path) -> list[dict]:
    return [{"name": "s", "type": "jsonl", "path": str(path)}]


@pytest.fixture
def corpus(tmp_path) -> Path:
    (tmp_path / "in").mkdir()
    return write_jsonl(tmp_path / "in" / "docs.jsonl", _rows())


def _cfg(src, out, min_words=1, **kw):
    return config(_src(src), [{"stage": "length_filter", "min_words": min_words}], out, **kw)


def one_complete_build(out: Path) -> str | None:
    """What a reader of ``out`` sees: the run id of one complete build (its manifest, stats and
    files all agree), or None when the manifest says no complete build is there. Fails on a
    mix of two builds."""
    manifest = json.loads((out / "manifest.json").read_text())
    if manifest["status"] == "promoting":
        return None
    assert manifest["status"] == "complete"
    stats = json.loads((out / "stats.json").read_text())
    assert stats["run_id"] == manifest["run_id"]
    data = sorted(str(p) for p in (out / "data").rglob("*.parquet"))
    assert data == sorted(f["path"] for f in manifest["files"])
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in data)
    assert rows == manifest["rows"] == stats["counts"]["kept"]
    for sub in ("removed", "dead_letter"):
        listed = sorted(o["path"] for o in manifest["outputs"] if o["path"].startswith(sub + "/"))
        found = sorted(p.relative_to(out).as_posix() for p in (out / sub).rglob("*")
                       if p.is_file()) if (out / sub).exists() else []
        assert found == listed, sub
    return manifest["run_id"]


# ----------------------------------------------------------------- refused before any work


def test_dangerous_output_dirs_are_refused_before_any_work(tmp_path, corpus, monkeypatch):
    def refused(out, src=corpus, match=None):
        with pytest.raises(ConfigError, match=match or "output.dir"):
            plan_build(build_config_from_dict(_cfg(src, out)))

    refused("")
    refused("/")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    refused(str(home), match="home directory")
    refused(str(corpus.parent), match="contains sources")             # output = input dir
    refused(str(corpus), match="contains sources")                    # output = input file
    refused(str(tmp_path), match="contains sources")                  # input below the output
    refused(str(corpus.parent / "out"), src=corpus.parent, match="inside the directory")
    # a glob that would read the build's own dead letters / shards back on the next run
    refused(str(tmp_path / "out"), src=tmp_path / "**" / "*.jsonl*", match="matches files")
    # the `datamill build configs/demo.yaml -o .` case, with the demo corpus below the cwd
    monkeypatch.chdir(tmp_path)
    demo = {"name": "d", "type": "demo_corpus", "path": "data/demo_corpus", "demo_docs": 50}
    with pytest.raises(ConfigError, match="contains sources"):
        plan_build(build_config_from_dict(config([demo], [], Path("."))))
    assert not (tmp_path / "data").exists()  # refused before even generating the corpus
    # a narrower glob beside the output is fine
    plan_build(build_config_from_dict(_cfg(corpus.parent / "*.jsonl", tmp_path / "out")))


def test_files_in_the_output_dir_that_datamill_did_not_write_are_never_deleted(tmp_path, corpus):
    out = tmp_path / "out"
    (out / "data").mkdir(parents=True)
    mine = out / "data" / "precious.parquet"
    mine.write_bytes(b"a user's file")
    with pytest.raises(ConfigError, match="not written by a datamill build"):
        build(_cfg(corpus, out))
    assert mine.read_bytes() == b"a user's file"
    assert not (out / "_staging").exists() and not (out / "_builds").exists()

    out2 = tmp_path / "out2"
    first = build(_cfg(corpus, out2))
    note = out2 / "data" / "notes.txt"  # written through the link into the visible build
    note.write_text("keep me")
    build(_cfg(corpus, out2, min_words=2))
    build(_cfg(corpus, out2, min_words=3))  # supersedes the first build: its files go ...
    kept = out2 / "_builds" / first.stats["run_id"] / "data" / "notes.txt"
    assert kept.read_text() == "keep me"  # ... except the file no manifest records
    assert not list((out2 / "_builds" / first.stats["run_id"]).rglob("*.parquet"))
    assert one_complete_build(out2)


def test_glob_characters_in_the_output_path_are_literal(tmp_path, corpus):
    out = tmp_path / "run[2]"
    res = build(_cfg(corpus, out))
    n = len(_rows())
    assert res.stats["counts"]["input"] == n and res.stats["conservation_ok"]
    assert res.stats["counts"]["kept"] + res.stats["counts"]["removed"] == n
    assert one_complete_build(out) == res.stats["run_id"]
    assert build(_cfg(corpus, out)).skipped


def test_a_label_cannot_lead_outside_the_output_dir(tmp_path, corpus):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "f.txt").write_text("x")
    cfg = config(_src(corpus), [{"stage": "length_filter", "label": "x/../../../victim",
                                 "checkpoint": True}], tmp_path / "o" / "out")
    with pytest.raises(ConfigError):  # the config check or the path confinement, before work
        build(cfg, force=True)
    assert (victim / "f.txt").read_text() == "x"
    plan = plan_build(build_config_from_dict(_cfg(corpus, tmp_path / "out")))
    plan.labels[0] = ".."
    with pytest.raises(ConfigError, match="could leave the output directory"):
        plan.checkpoint_dir(0)


# ----------------------------------------------------------------- paths on runners (issue 12)


def test_relative_paths_resolved_once_on_local_runners(tmp_path, corpus, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for args in ([], ["--runner=PortableRunner", "--job_endpoint=embed"]):
        plan = plan_build(build_config_from_dict(_cfg(Path("in/docs.jsonl"), Path("out"))),
                          args)
        assert plan.out == str(tmp_path / "out")
        assert plan.cfg.sources[0].path == str(corpus)
        assert plan.sources[0].files[0].path == str(corpus)


def test_remote_runners_need_absolute_paths_or_urls(tmp_path, corpus, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["--runner=FlinkRunner"]
    with pytest.raises(ConfigError, match=r"sources\[0\].path: 'in/docs.jsonl' is a relative"):
        plan_build(build_config_from_dict(_cfg(Path("in/docs.jsonl"), tmp_path / "o")), args)
    with pytest.raises(ConfigError, match="output.dir: 'out' is a relative path"):
        plan_build(build_config_from_dict(_cfg(corpus, Path("out"))), args)
    with pytest.raises(ConfigError, match="unknown filesystem scheme 'ftp'"):
        plan_build(build_config_from_dict(_cfg(corpus, "ftp://host/out")), args)
    plan = plan_build(build_config_from_dict(_cfg(corpus, "gs://bucket/out")), args)
    assert plan.out == "gs://bucket/out"
    with pytest.raises(ConfigError, match="bucket root"):
        plan_build(build_config_from_dict(_cfg(corpus, "gs://bucket")), args)


# ----------------------------------------------------------------- accounting never fooled


def test_missing_counting_stats_or_output_shards_fail_the_build(tmp_path, corpus, monkeypatch):
    import pipelines.build.run as b

    real = b.gather_stats
    out = tmp_path / "out"

    def lose_stat(plan, *a):
        os.unlink(f"{plan.staging}/_stats/kept_profile.json")
        return real(plan, *a)

    monkeypatch.setattr(b, "gather_stats", lose_stat)
    with pytest.raises(AccountingError, match="kept_profile.json is missing"):
        build(_cfg(corpus, out))

    def lose_shard(plan, *a):
        stats = real(plan, *a)
        os.unlink(sorted(Path(plan.staging, "data").glob("*.parquet"))[0])
        return stats

    monkeypatch.setattr(b, "gather_stats", lose_shard)
    with pytest.raises(AccountingError, match="1 data file"):
        build(_cfg(corpus, out))
    assert not (out / "manifest.json").exists() and not (out / "_staging").exists()


def test_checkpoint_validity_covers_removed_and_dead_letter_shards(tmp_path, corpus):
    write_jsonl(corpus.parent / "bad.jsonl", [b"not json", {"text": "two words"}])
    stages = [{"stage": "length_filter", "min_words": 3, "checkpoint": True}]
    out = tmp_path / "out"
    build(config(_src(corpus.parent), stages, out))
    later = stages + [{"stage": "length_filter", "min_words": 4, "label": "four"}]
    ck = out / "checkpoints" / "00-length_filter"
    dead = sorted((ck / "dead_letter").glob("*.jsonl.gz"))
    assert dead and sorted((ck / "removed").glob("*.jsonl.gz"))
    victim = next(p for p in dead if p.stat().st_size > 30)  # the shard with the dead row
    victim.unlink()
    res = build(config(_src(corpus.parent), later, out))
    assert res.stats["resumed_from"] is None  # the damaged checkpoint is not used
    assert res.stats["conservation_ok"] and res.stats["counts"]["dead_letter"] == 1


# ----------------------------------------------------------------- atomic promotion


def _fail_at(monkeypatch, step):
    class Crash(Exception):
        pass

    def hook(name):
        if name == step:
            raise Crash(f"crash at {step}")

    monkeypatch.setattr(promote, "_step", hook)
    return Crash


@pytest.mark.parametrize("layout,steps", [
    ("swap", ["staged", "moved", "swapped", "linked"]),
    ("in_place", ["journal", "marked", "removed_old", "moved"]),
])
def test_a_reader_sees_one_complete_build_when_promotion_dies_at_any_step(
        tmp_path, corpus, monkeypatch, layout, steps):
    monkeypatch.setattr(promote, "layout_for", lambda out: layout)
    out = tmp_path / "out"
    old = build(_cfg(corpus, out, shards=3)).stats["run_id"]
    foreign = out / "data" / "someone-elses.txt"
    if layout == "in_place":  # a real data/ folder: a file datamill did not write stays there
        foreign.write_bytes(b"not ours")
    committed = {"swapped", "linked"} if layout == "swap" else set(steps)  # journal first
    for k, step in enumerate(steps, start=2):
        before = _run_dirs(out)
        crash = _fail_at(monkeypatch, step)
        with pytest.raises(crash):  # the new build differs: other shards, other removals
            build(_cfg(corpus, out, min_words=k, shards=2 + k % 2))
        (new,) = _run_dirs(out) - before
        seen = one_complete_build(out)
        assert seen in ({old, new} if layout == "swap" else {old, new, None}), step
        monkeypatch.setattr(promote, "_step", lambda name: None)
        promote.recover(str(out))  # what the next run does first
        now = one_complete_build(out)
        assert now == (new if step in committed else old), step
        old = now
        assert not (out / "_staging").exists() and not (out / promote.JOURNAL).exists()
    if layout == "swap":  # the visible build and the one before it, nothing else
        assert len(list((out / "_builds").iterdir())) <= 2
    else:
        assert foreign.read_bytes() == b"not ours"


def _run_dirs(out: Path) -> set[str]:
    return {p.name for sub in ("_builds", "_staging") if (out / sub).is_dir()
            for p in (out / sub).iterdir()}


def test_sigkill_during_promotion_then_next_run_recovers(tmp_path, corpus):
    out = tmp_path / "out"
    first = build(_cfg(corpus, out)).stats["run_id"]
    cfg = json.dumps(_cfg(corpus, out, min_words=3))
    code = (
        "import json, os, signal\n"
        "from pipelines.build import promote\n"
        "from tests.buildutil import build\n"
        "promote._step = lambda n: os.kill(os.getpid(), signal.SIGKILL) if n == 'moved' "
        "else None\n"
        f"build(json.loads({cfg!r}))\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, timeout=300)
    assert proc.returncode == -signal.SIGKILL
    assert one_complete_build(out) == first  # killed before the swap: the old build
    res = build(_cfg(corpus, out, min_words=3))  # the lock died with the process
    assert one_complete_build(out) == res.stats["run_id"]
    assert sorted(p.name for p in (out / "_builds").iterdir()) == sorted(
        [first, res.stats["run_id"]])  # the killed run's unpublished build was removed


# ----------------------------------------------------------------- faults


def test_second_build_is_refused_while_the_first_holds_the_lock(tmp_path, corpus):
    from typer.testing import CliRunner

    from pipelines.cli.main import app

    out = tmp_path / "out"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps(_cfg(corpus, out)))
    with OutputLock(str(out), "20260101-000000-aaaaaa"):
        with pytest.raises(OutputLocked, match=rf"run 20260101-000000-aaaaaa \(pid {os.getpid()}"):
            build(_cfg(corpus, out))
        res = CliRunner().invoke(app, ["build", str(cfg)])
        assert res.exit_code == 75, res.output
        assert "in use by another build" in " ".join(res.output.split())
    # a lock file left by a dead process (no flock held any more) is taken over
    (out / ".datamill.lock").write_text(json.dumps({"pid": 999999, "run_id": "old"}))
    assert build(_cfg(corpus, out)).stats["conservation_ok"]


def test_interrupt_removes_staging_and_keeps_the_previous_build(tmp_path, corpus, monkeypatch):
    """SIGINT, then SIGTERM, each in the middle of a build after one complete build."""
    import pipelines.build.run as b

    out = tmp_path / "out"
    stale = out / "_staging" / "20250101-000000-abcdef"  # left by a killed run
    (stale / "data").mkdir(parents=True)
    (stale / "data" / "part-00000-of-00002.parquet").write_bytes(b"x" * 1000)
    first = build(_cfg(corpus, out)).stats["run_id"]
    assert not stale.exists()  # cleaned up by the next run
    real = b.gather_stats
    for k, sig in enumerate((signal.SIGINT, signal.SIGTERM)):
        def interrupted(plan, *a, _sig=sig):
            os.kill(os.getpid(), _sig)
            return real(plan, *a)

        monkeypatch.setattr(b, "gather_stats", interrupted)
        with pytest.raises(BuildInterrupted) as err:
            build(_cfg(corpus, out, min_words=4 + k))
        assert err.value.exit_code == 128 + sig, sig
        assert not (out / "_staging").exists(), sig
        assert one_complete_build(out) == first, sig


def test_disk_full_is_one_clear_line(tmp_path, corpus, monkeypatch):
    from typer.testing import CliRunner

    import pipelines.io.sinks as sinks
    from pipelines.cli.main import app

    def full(path, rows):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    monkeypatch.setattr(sinks, "write_spill", full)  # the sinks' first write of every shard
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps(_cfg(corpus, tmp_path / "out")))
    res = CliRunner().invoke(app, ["build", str(cfg)])
    assert res.exit_code == DiskFull.exit_code, res.output
    assert "disk full" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "out" / "_staging").exists()


def _can_mount_tmpfs() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            "mount -t tmpfs -o size=1m tmpfs /mnt"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.parametrize("workers", [1, 2])
def test_disk_full_mid_build_is_one_line_from_the_real_cli(tmp_path, workers):
    """Issue 23 item 7: the real ``datamill`` process on a real 2 MB filesystem that fills
    while the build writes (not a monkeypatch, which cannot see what Beam and its worker
    processes print): exit 74, the one line, no Beam log or traceback, nothing left there."""
    if not _can_mount_tmpfs():
        pytest.skip("needs root and unshare to mount a small tmpfs in a private namespace")
    rows = [{"id": i, "text": f"document {i} " + " ".join(f"w{(i * j) % 997}" for j in
                                                           range(40))} for i in range(20_000)]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))  # ~5 MB: more than fits
    full = tmp_path / "full"
    full.mkdir()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"name": "full", "sources": [{"name": "s", "type": "jsonl",
                                                            "path": str(src)}],
                               "stages": [{"stage": "length_filter", "min_words": 1}],
                               "output": {"dir": str(full / "out"), "shards": 2}}))
    script = (f"mount -t tmpfs -o size=2m tmpfs {full} && "
              f"{sys.executable} -m pipelines.cli.main build {cfg} -w {workers}; rc=$?; "
              f"ls -A {full}/out/_staging 2>/dev/null; exit $rc")
    proc = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CI": "true"})
    err = proc.stderr
    assert proc.returncode == DiskFull.exit_code, err
    assert "error: disk full (No space left on device)" in err
    assert "Traceback" not in err and "ERROR:" not in err and "OSError" not in err, err
    assert proc.stdout.strip() == "", proc.stdout  # no staging left in the full filesystem


def test_output_on_a_read_only_filesystem_is_one_line_before_any_work(tmp_path):
    """Issue 23 item 15: ``-o`` on a read-only mount: exit 2 and one line naming the
    directory, from the real CLI, before anything is read."""
    if not _can_mount_tmpfs():
        pytest.skip("needs root and unshare to mount a read-only tmpfs in a private namespace")
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": i, "text": f"doc {i} a b c"}) + "\n"
                           for i in range(10)))
    ro = tmp_path / "ro"
    ro.mkdir()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"name": "ro", "sources": [{"name": "s", "type": "jsonl",
                                                          "path": str(src)}],
                               "stages": [], "output": {"dir": str(tmp_path / "unused")}}))
    script = (f"mount -t tmpfs -o ro,size=1m tmpfs {ro} && "
              f"{sys.executable} -m pipelines.cli.main build {cfg} -o {ro}/out")
    proc = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                          cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "CI": "true"})
    assert proc.returncode == 2, proc.stderr
    message = "".join(proc.stderr.splitlines())  # one message, wrapped to the terminal
    assert message.startswith("error: output.dir:") and message.count("error:") == 1, message
    assert f"{ro}/out" in message and "read-only" in message and "Traceback" not in message
    assert not (tmp_path / "unused").exists()


def test_spill_folders_belong_to_the_run_and_go_with_it(tmp_path, corpus, monkeypatch):
    """Issue 23 item 4: spilled records live in ``_staging/<run id>.spill/`` beside the run's
    staging; a failed run removes them, the next run removes what a killed run left (also the
    ``_staging/spill/`` folder of older versions), and a successful run leaves none."""
    import pipelines.build.run as b

    out = tmp_path / "out"
    killed = out / "_staging" / "20250101-000000-abcdef.spill" / "exact_dedup-0123"
    legacy = out / "_staging" / "spill" / "exact_dedup-4567"
    for folder in (killed, legacy):
        folder.mkdir(parents=True)
        (folder / "part-0.spill").write_bytes(b"x" * 4096)
    stages = [{"stage": "exact_dedup"}]
    seen = {}
    real = b.gather_stats

    def look(plan, *a):
        seen["staging"] = sorted(p.name for p in (out / "_staging").iterdir())
        seen["run"] = plan.run_id
        return real(plan, *a)

    monkeypatch.setattr(b, "gather_stats", look)
    res = build(config(_src(corpus), stages, out))
    assert res.stats["conservation_ok"]
    # while it ran, the only spill folder was its own (the stale ones were already removed)
    assert seen["staging"] == [seen["run"], seen["run"] + ".spill"]
    assert not (out / "_staging").exists()  # nothing left after a successful run

    def interrupted(plan, *a):
        assert (out / "_staging" / (plan.run_id + ".spill")).is_dir()
        os.kill(os.getpid(), signal.SIGINT)
        return real(plan, *a)

    monkeypatch.setattr(b, "gather_stats", interrupted)
    with pytest.raises(BuildInterrupted):
        build(config(_src(corpus), stages, out, shards=3))
    assert not (out / "_staging").exists()


def test_rebuilding_a_checkpoint_keeps_files_datamill_did_not_write(tmp_path, corpus):
    """Issue 23 item 14: a user's file inside <out>/checkpoints/<stage>/ survives the rebuild of
    that checkpoint (it is logged); datamill's own checkpoint files are replaced."""
    out = tmp_path / "out"
    stages = [{"stage": "length_filter", "min_words": 1, "checkpoint": True}]
    first = build(config(_src(corpus), stages, out))
    ck = next((out / "checkpoints").iterdir())
    notes = ck / "notes.txt"
    notes.write_text("my notes")
    (ck / "data" / "mine.parquet").write_bytes(b"not datamill's")
    old_manifest = json.loads((ck / "manifest.json").read_text())
    stages[0]["min_words"] = 3  # the checkpoint is stale: rebuilt
    logs: list[str] = []
    second = build(config(_src(corpus), stages, out), log=logs.append)
    assert second.stats["conservation_ok"] and second.stats["run_id"] != first.stats["run_id"]
    assert notes.read_text() == "my notes"
    assert (ck / "data" / "mine.parquet").read_bytes() == b"not datamill's"
    manifest = json.loads((ck / "manifest.json").read_text())
    assert manifest["fingerprint"] != old_manifest["fingerprint"]
    assert all(Path(f["path"]).exists() for f in manifest["files"])
    assert any("did not write" in line and "kept 2 file(s)" in line for line in logs), logs


def test_output_dir_that_cannot_be_a_directory_is_a_config_error(tmp_path, corpus, monkeypatch):
    """Issue 23 items 15-16: -o at an existing file, below a file, or with a literal '~' is
    refused before any work with exit 2 and one line naming the path and the fix."""
    from typer.testing import CliRunner

    from pipelines.cli.main import app

    a_file = tmp_path / "report.txt"
    a_file.write_text("keep me")
    monkeypatch.chdir(tmp_path)
    cases = [(a_file, "is an existing file"), (a_file / "out", "which is a file"),
             (Path("~") / "out", "'~' is not expanded")]
    for out, message in cases:
        with pytest.raises(ConfigError, match=message):
            plan_build(build_config_from_dict(_cfg(corpus, out)))
        cfg = tmp_path / "c.yaml"
        cfg.write_text(json.dumps(_cfg(corpus, tmp_path / "unused")))
        res = CliRunner().invoke(app, ["build", str(cfg), "-o", str(out)])
        assert res.exit_code == 2, res.output
        assert message in " ".join(res.output.split())
        assert "Traceback" not in res.output
    assert a_file.read_text() == "keep me"
    assert not (tmp_path / "~").exists()


def test_signal_during_promotion_finishes_it_and_exits_zero(tmp_path, corpus, monkeypatch):
    """Issue 23 item 13: a non-zero exit means nothing was published; a signal that arrives
    during the final promotion waits for it, and the build then succeeds saying so."""
    out = tmp_path / "out"
    first = build(_cfg(corpus, out)).stats["run_id"]
    sent = []

    def step(name):
        if name == "moved" and not sent:
            sent.append(name)
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(promote, "_step", step)
    logs: list[str] = []
    res = build(_cfg(corpus, out, min_words=3), log=logs.append)
    assert sent and one_complete_build(out) == res.stats["run_id"] != first
    assert any("SIGINT arrived during the final promotion" in line for line in logs), logs


def test_kill_9_mid_build_leaves_nothing_after_the_next_run(tmp_path):
    """Issue 23: the real CLI (progress on) killed with SIGKILL while its spill files exist
    (exact_dedup has written records to _staging/<run>.spill/) leaves staging and spill
    behind, and nothing in the system's temporary folder (Beam's pipeline folder and the
    progress snapshots live in the run's spill folder); the next run removes both and builds
    normally."""
    import time

    rows = [{"id": f"{i:05d}", "text": r["text"]}
            for i, r in enumerate(stdlib_doc_rows(("json", "shutil", "os", "re", "textwrap",
                                                   "collections", "pathlib"))
                                  * 40)]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out"
    cfg = config(_src(src), [{"stage": "exact_dedup"}, {"stage": "length_filter",
                                                       "min_words": 1}], out)
    cfg_path = tmp_path / "c.json"
    cfg_path.write_text(json.dumps(cfg))
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(system_tmp), "CI": "true"}
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli.main", "build",
                             str(cfg_path), "--progress-every", "0.2"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    spilled = False
    while time.monotonic() < deadline and proc.poll() is None:
        staging = out / "_staging"
        if staging.is_dir() and any(p.is_file() for p in
                                    staging.glob("*.spill/exact_dedup-*/**/*")):
            spilled = True
            proc.kill()
            break
        time.sleep(0.05)
    proc.wait(timeout=60)
    if not spilled:
        pytest.skip("the build finished before its spill files could be seen")
    assert proc.returncode == -signal.SIGKILL
    assert any((out / "_staging").glob("*.spill"))  # left behind by the killed run
    assert any((out / "_staging").glob("*.spill/tmp/*"))  # its temporary files are there
    assert sorted(p.name for p in system_tmp.iterdir()) == []
    res = build(cfg)
    assert res.stats["conservation_ok"]
    assert not (out / "_staging").exists()
