"""What a new user reads first: configs/example_full.yaml names every option, Literal
parameters show their allowed values, `build --help` wraps cleanly, log lines carry no source
locations (issue 26, item 12)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from typer.testing import CliRunner

from pipelines.build.config import BuildConfig, OutputConfig
from pipelines.cli.main import app
from pipelines.core.settings import RunnerConfig
from pipelines.io.source_config import SourceConfig
from pipelines.stages.base import StageParams
from pipelines.stages.record_stage import RecordStageParams

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "configs" / "example_full.yaml"
KEY = re.compile(r"^\s*#?\s*(?:-\s+)?([a-z_][a-z0-9_]*):(?:\s|$)")


def _section(text: str, name: str) -> str:
    """The lines of a top-level section (up to the next top-level key)."""
    out, inside = [], False
    for line in text.splitlines():
        if re.match(r"^[a-z_]+:", line):
            inside = line.startswith(f"{name}:")
            continue
        if inside:
            out.append(line)
    return "\n".join(out)


def _keys(block: str) -> set[str]:
    """Keys written in a block, active or in a commented-out example (``#   split: train``)."""
    return {m.group(1) for line in block.splitlines() if (m := KEY.match(line))}


def test_example_full_names_every_option_of_every_section():
    text = EXAMPLE.read_text()
    data = yaml.safe_load(text)
    missing = [f"top level: {k}" for k in BuildConfig.model_fields if k not in data]
    for name, model in (("output", OutputConfig), ("runner", RunnerConfig)):
        missing += [f"{name}.{k}" for k in model.model_fields if k not in data[name]]
    source_keys = _keys(_section(text, "sources"))
    missing += [f"sources[].{k}" for k in SourceConfig.model_fields if k not in source_keys]
    stage_keys = set().union(*(s.keys() for s in data["stages"]))
    common = set(StageParams.model_fields) | set(RecordStageParams.model_fields)
    missing += [f"stages[].{k}" for k in common if k not in stage_keys]
    # each stage the example shows is shown whole (the others: docs/stages.md)
    from pipelines.stages.registry import load_stages

    stages = load_stages()
    for st in data["stages"]:
        own = set(stages[st["stage"]].Params.model_fields) - common
        missing += [f"stages[{st['stage']}].{k}" for k in sorted(own) if k not in st]
    assert not missing, f"configs/example_full.yaml lacks: {missing}"


def test_example_full_uses_the_readme_partition_folder_names():
    from pipelines.io.sinks import partition_dir

    folder = partition_dir("language", "en")
    assert folder in EXAMPLE.read_text()
    assert folder in (ROOT / "README.md").read_text()
    assert "language=en" not in EXAMPLE.read_text().replace("Hive language=en", "")


def test_literal_parameters_show_their_allowed_values():
    from pipelines.stages.docs import stages_markdown

    doc = stages_markdown()
    assert "| Literal |" not in doc
    assert '"NFC" \\| "NFKC" \\| "NFD" \\| "NFKD" \\| "none"' in doc  # normalize.form
    # the table's width follows the console rich made first in this process (other tests may
    # have made it narrow), so only what survives wrapping is checked there
    res = CliRunner().invoke(app, ["stages"], env={"COLUMNS": "250"})
    assert res.exit_code == 0
    assert '"NFKC"' in res.output and "Literal" not in res.output
    res = CliRunner().invoke(app, ["stages", "--markdown"])
    assert res.exit_code == 0
    assert '"NFC" \\| "NFKC" \\| "NFD" \\| "NFKD" \\| "none"' in res.output


def test_build_help_wraps_paragraphs_and_shows_flags_without_a_type():
    res = CliRunner().invoke(app, ["build", "--help"], env={"COLUMNS": "80"},
                             terminal_width=80)
    assert res.exit_code == 0
    lines = res.output.splitlines()
    assert "<bool>" not in res.output
    assert all(len(ln) <= 80 for ln in lines)
    # a paragraph is re-wrapped to the width: no line stops after a word or two mid-sentence
    prose = [ln.strip() for ln in lines if ln.startswith("  ") and not ln.lstrip().startswith("-")]
    short = [ln for ln in prose[:-1] if 0 < len(ln) < 25 and not ln.endswith(".")
             and ":" not in ln]
    assert not short, short
    assert re.search(r"^\s+--force\s+Ignore checkpoints", res.output, re.M)
    assert "after `--`" in res.output


def test_log_lines_carry_no_source_location():
    from pipelines.cli.main import console

    with console.capture() as cap:
        console.log("running 3 stages")
    assert "running 3 stages" in cap.get()
    assert not re.search(r"\w+\.py:\d+", cap.get())
