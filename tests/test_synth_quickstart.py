"""The synth quick start from a fresh clone (no ../shared beside it), and what the CLI prints."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GSM8K = REPO / "configs" / "data" / "gsm8k"


def _clone_files() -> list[str]:
    """What a clone holds: tracked files plus new files that are not ignored."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                         cwd=REPO, capture_output=True, check=True).stdout.decode()
    return [f for f in out.split("\0") if f and (REPO / f).is_file()]


def test_quickstart_data_ships_with_licence():
    files = set(_clone_files())
    for name in ("train.jsonl", "test.jsonl", "LICENSE"):
        assert f"configs/data/gsm8k/{name}" in files, f"configs/data/gsm8k/{name} not shipped"
    assert "MIT License" in (GSM8K / "LICENSE").read_text()
    assert sum(1 for _ in (GSM8K / "test.jsonl").open()) == 1319  # the full GSM8K test set
    train = [json.loads(ln) for ln in (GSM8K / "train.jsonl").open()]
    assert 300 <= len(train) <= 1000 and all("####" in x["answer"] for x in train)
    assert "graft configs" in (REPO / "MANIFEST.in").read_text()  # the sdist carries them


def test_synth_configs_validate_in_a_fresh_clone(tmp_path):
    clone = tmp_path / "clone"
    for f in _clone_files():
        if f.startswith(("configs/", "pipelines/", "synth/", "filters/", "scaling/")) \
                or "/" not in f:
            (clone / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, clone / f)
    assert not (tmp_path / "shared").exists() and not (clone.parent.parent / "shared").exists()
    env = {**os.environ, "PYTHONPATH": str(clone)}
    for name in ("synth_math", "synth_code"):
        res = subprocess.run(
            [sys.executable, "-c", ("import sys; from pipelines.cli.main import app; "
                                    "sys.argv[0] = 'datamill'; app()"),
             "validate", f"configs/{name}.yaml"],
            cwd=clone, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "ok: synth config" in res.stdout + res.stderr
    # the paths resolve inside the clone, from the repository root or from anywhere else
    code = ("import pipelines; print(pipelines.__file__); "
            "from pipelines.jobs.synth import load_synth_config as l; "
            "c = l('configs/synth_math.yaml'); print(c.seeds.path); "
            "print(c.decontam.benchmarks[0]); print(c.decontam.benchmark_names()[0])")
    res = subprocess.run([sys.executable, "-c", code], cwd=clone, env=env, capture_output=True,
                         text=True, timeout=300, check=True)
    where, seeds, bench, name = res.stdout.split()
    assert where.startswith(str(clone))  # the clone's own code
    assert seeds == str(clone / "configs/data/gsm8k/train.jsonl")
    assert bench == str(clone / "configs/data/gsm8k/test.jsonl") and name == "gsm8k_test"


def _reply(user, i, body):
    return "3 + 4 = 7. The answer is 7."


def test_cli_prints_progress_to_stderr_and_only_the_summary_to_stdout(tmp_path):
    import typer
    import yaml
    from typer.testing import CliRunner

    from pipelines.cli.synth import register
    from tests.test_synth import _Server

    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Group, so that 'synth' is parsed as a subcommand."""

    register(app)
    srv = _Server(reply=_reply)
    try:
        cfg = {"name": "quick", "task": "math",
               "backend": {"type": "openai", "model": "test",
                           "options": {"base_url": srv.url, "max_concurrency": 4}},
               "seeds": {"inline": [{"id": f"p{i}", "question": f"Tom has 3 apples and buys "
                                     f"4 more. Ann has {i} pears. How many apples?",
                                     "answer": "7"} for i in range(5)]},
               "math": {"n": 3}, "batch_size": 2, "output_dir": str(tmp_path / "out")}
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(cfg))
        res = CliRunner().invoke(app, ["synth", str(path)])
    finally:
        srv.close()
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("quick: kept 5 problems"), res.stdout
    progress = [ln for ln in res.stderr.splitlines() if ln.startswith("[quick] solve:")]
    assert len(progress) == 3  # one per batch of 2
    assert progress[-1].startswith("[quick] solve: batch 3/3, 5/5 problems, 15 samples, "
                                   "5 kept, ")
    assert progress[-1].endswith(" s")
