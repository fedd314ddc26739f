"""The command line as a user meets it: validate for every config kind, stage listing with
types and defaults, quiet output, help for Beam arguments, report in pipeline order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli.main import app
from pipelines.report.render import ordered_stages
from tests.buildutil import config, stdlib_doc_rows, write_jsonl

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.mark.parametrize("path,summary", [
    ("configs/demo.yaml", "build config"),
    ("configs/synth_math.yaml", "synth config"),
    ("configs/synth_code.yaml", "synth config"),
    ("configs/mixture_example.yaml", "mixture config"),
    ("configs/train_classifier_example.yaml", "classifier training config"),
])
def test_validate_understands_every_config_kind(path, summary):
    res = runner.invoke(app, ["validate", str(ROOT / path)])
    assert res.exit_code == 0, res.output
    assert summary in res.output


def test_validate_names_the_file_and_field_for_a_bad_synth_config(tmp_path):
    bad = tmp_path / "s.yaml"
    bad.write_text("task: math\nbackend: {type: nosuch, model: m}\n")
    res = runner.invoke(app, ["validate", str(bad)])
    assert res.exit_code == 2
    assert "backend" in res.output
    unknown = tmp_path / "u.yaml"
    unknown.write_text("hello: 1\n")
    res = runner.invoke(app, ["validate", str(unknown)])
    assert res.exit_code == 2 and "--kind" in res.output and "hello" in res.output
    res = runner.invoke(app, ["validate", str(unknown), "--kind", "nope"])
    assert res.exit_code == 2 and "must be one of" in res.output


def test_validate_writes_nothing(tmp_path, monkeypatch):
    """Validating the demo config does not generate the demo corpus (issue 26 item 8)."""
    (tmp_path / "demo.yaml").write_text((ROOT / "configs/demo.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["validate", "demo.yaml"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["demo.yaml"]


def test_validate_names_a_configured_field_no_sampled_record_has(tmp_path):
    """A wrong text_field is reported as such, before url_filter could blame the missing url
    column; a keep_fields entry never seen is a warning (issue 26 item 8)."""
    src = write_jsonl(tmp_path / "in.jsonl", [
        {"body": f"document {i} has some words", "url": f"http://x{i}.org/"} for i in range(5)])
    (tmp_path / "bl.txt").write_text("example.org\n")
    cfg = config([{"name": "s", "type": "jsonl", "path": str(src), "keep_fields": ["url", "nope"]}],
                 [{"stage": "url_filter", "blocked_domains_files": [str(tmp_path / "bl.txt")]}],
                 tmp_path / "out")
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(cfg))
    res = runner.invoke(app, ["validate", str(path)])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "text_field: 'text' occurs in none of the sampled records" in text, text
    assert "'body'" in text and "url_column" not in text
    cfg["sources"][0]["text_field"] = "body"
    path.write_text(json.dumps(cfg))
    res = runner.invoke(app, ["validate", str(path)])
    assert res.exit_code == 0, res.output
    assert "keep_fields: 'nope' occurs in none" in " ".join(res.output.split())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bl.txt", "c.yaml", "in.jsonl"]


def test_stages_lists_types_and_defaults():
    res = runner.invoke(app, ["stages"], env={"COLUMNS": "250"})
    assert res.exit_code == 0
    assert "min_words: int = 0" in res.output  # length_filter
    assert "batch_size" not in res.output.split("length_filter")[1].split("\n")[0]


def test_build_help_documents_beam_argument_pass_through():
    res = runner.invoke(app, ["build", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    assert "after `--`" in res.output and "--runner" in res.output


def test_cli_is_quiet_by_default(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", "from pipelines.cli.main import main; main()",
                          "validate", str(ROOT / "configs/demo.yaml")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    noise = [ln for ln in (res.stdout + res.stderr).splitlines()
             if "WARNING" in ln or "apitools" in ln]
    assert noise == []


def test_report_and_summary_keep_pipeline_order_not_alphabetical(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", stdlib_doc_rows(("json", "csv")))
    stages = [{"stage": "normalize", "label": "zz_first"},
              {"stage": "length_filter", "label": "aa_second", "min_words": 8}]
    cfg = config([{"name": "s", "type": "jsonl", "path": str(tmp_path / "a.jsonl")}],
                 stages, tmp_path / "out", report=False)
    (tmp_path / "c.yaml").write_text(json.dumps(cfg))
    res = runner.invoke(app, ["build", str(tmp_path / "c.yaml")], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "report:" not in res.output  # report: false -> no report path is printed
    table = res.output[res.output.index("zz_first"):]
    assert "aa_second" in table  # the summary table lists stages in pipeline order
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert list(stats["stages"]) == ["aa_second", "zz_first"]  # sorted keys on disk...
    assert [k for k, _ in ordered_stages(stats)] == ["zz_first", "aa_second"]  # ...not shown so
    assert not (tmp_path / "out" / "report.html").exists()
    res = runner.invoke(app, ["report", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "out" / "report.html").read_text()
    assert page.index("zz_first") < page.index("aa_second")
