"""Stages from the user's own code: ``plugins:`` in a config and the ``datamill.stages``
entry-point group; a user's score stage gets the standard report section."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pipelines.stages import registry as stage_mod
from pipelines.core.settings import ConfigError
from pipelines.build.config import build_config_from_dict
from tests.buildutil import build, config, read_jsonl_gz, read_output, write_jsonl

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"


@pytest.fixture
def clean_registry(monkeypatch):
    """Plugin stages registered by a test do not leak into other tests (e.g. the docs check)."""
    stage_mod.load_stages()
    monkeypatch.setattr(stage_mod, "STAGES", dict(stage_mod.STAGES))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith(("my_stages", "plugpkg")):
            del sys.modules[name]


def _corpus(tmp_path: Path) -> Path:
    prose = "Curation pipelines keep the documents that read like text, not like tables."
    rows = [{"id": f"p{i}", "text": f"{prose} Example {i}."} for i in range(12)]
    rows += [{"id": f"t{i}", "text": " ".join(str(1000 + i * j) for j in range(30))}
             for i in range(5)]
    return write_jsonl(tmp_path / "in.jsonl", rows)


def test_config_plugin_stage_runs_and_gets_the_standard_report_section(
        tmp_path, monkeypatch, clean_registry):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    src = _corpus(tmp_path)
    cfg = config([{"name": "s", "type": "jsonl", "path": str(src), "id_field": "id"}],
                 [{"stage": "digit_ratio", "max_digit_ratio": 0.3}], tmp_path / "out")
    cfg["plugins"] = ["my_stages"]
    res = build(cfg)
    kept = read_output(tmp_path / "out")
    assert {r["id"] for r in kept} == {f"p{i}" for i in range(12)}
    assert all(r["digit_ratio"] < 0.3 for r in kept)
    removed = read_jsonl_gz(tmp_path / "out" / "removed")
    assert {r["reason"] for r in removed} == {"too_many_digits"} and len(removed) == 5
    st = res.stats["stages"]["digit_ratio"]
    assert st["removed"] == {"too_many_digits": 5}
    hist = st["stats"]["score_histograms"]["digit_ratio"]
    assert sum(hist["counts"]) == 17 and hist["thresholds"] == [0.3]
    page = (tmp_path / "out" / "report.html").read_text()
    assert "digit_ratio: score distributions and removals" in page
    assert "too_many_digits" in page and "data:image/png;base64" in page


def test_unimportable_plugin_is_a_config_error_naming_the_entry(tmp_path):
    cfg = config([{"name": "s", "type": "jsonl", "path": str(tmp_path / "x.jsonl")}], [],
                 tmp_path / "out")
    cfg["plugins"] = ["no_such_pkg.stages"]
    with pytest.raises(ConfigError, match=r"plugins\[0\]: cannot import 'no_such_pkg.stages'"):
        build_config_from_dict(cfg)
    cfg["plugins"] = ["../evil"]
    with pytest.raises(ConfigError, match=r"plugins\[0\]: '../evil' is not a dotted"):
        build_config_from_dict(cfg)


def test_entry_point_plugin_registers_without_config(tmp_path, monkeypatch, clean_registry):
    pkg = tmp_path / "plugpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "from typing import Literal\n"
        "from filters.base import KEEP, RecordScorer\n"
        "from pipelines.stages import RecordStage, RecordStageParams, register_stage\n"
        "class P(RecordStageParams):\n    stage: Literal['plug_keep']\n"
        "class K(RecordScorer):\n    def process(self, r):\n        return KEEP\n"
        "@register_stage\nclass S(RecordStage):\n    name, Params = 'plug_keep', P\n"
        "    description = 'keeps everything'\n    def make_scorer(self):\n        return K()\n")
    dist = tmp_path / "plugpkg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: plugpkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[datamill.stages]\nplug = plugpkg\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(stage_mod, "_LOADED", False)
    assert "plug_keep" in stage_mod.load_stages()
    cfg = build_config_from_dict(config(
        [{"name": "s", "type": "jsonl", "path": str(tmp_path / "x.jsonl")}],
        [{"stage": "plug_keep"}], tmp_path / "out"))
    assert cfg.stages[0].stage == "plug_keep"


def test_readme_shows_the_example_plugin_and_its_test_passes(monkeypatch, clean_registry):
    readme = (ROOT / "README.md").read_text()
    for name in ("my_stages.py", "test_my_stages.py"):
        assert (EXAMPLES / name).read_text().strip() in readme, f"README lacks {name}"
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import test_my_stages

    test_my_stages.test_digit_ratio_drops_number_tables_and_keeps_prose()


def test_stage_outputs_in_parts_are_each_accounted_without_a_flatten(tmp_path, clean_registry):
    """A stage may give ``removed``/``dead`` as a tuple of PCollections made in different
    steps (d4, quality_classifier with threshold + top_fraction): every part is counted,
    written to removed/ or dead_letter/ and summarized, and the build graph has no Flatten of
    them (the local runner would hold it in memory)."""
    import apache_beam as beam
    from apache_beam import pvalue

    from pipelines.build.graph import construct
    from pipelines.build.plan import plan_build
    from pipelines.core.records import dead_letter
    from pipelines.stages.base import Stage, StageParams, StageResult
    from pipelines.stages.registry import register_stage

    class _Split(beam.DoFn):
        def __init__(self, word):
            self._word = word

        def process(self, r):
            if self._word in r["text"]:
                yield pvalue.TaggedOutput("removed", (f"has_{self._word}", r))
            elif r["id"].endswith("9"):
                yield pvalue.TaggedOutput("dead", dead_letter("two_parts", "ends_in_9", r))
            else:
                yield r

    class TwoPartParams(StageParams):
        stage: str = "two_parts"

    @register_stage
    class TwoPartStage(Stage):
        name = "two_parts"
        Params = TwoPartParams

        def expand(self, records):
            a = records | "A" >> beam.ParDo(_Split("Example 1")).with_outputs(
                "removed", "dead", main="kept")
            grouped = a["kept"] | "Key" >> beam.Map(lambda r: (r["id"], r)) | \
                "Group" >> beam.GroupByKey() | "Ungroup" >> beam.FlatMap(lambda kv: kv[1])
            b = grouped | "B" >> beam.ParDo(_Split("Example 2")).with_outputs(
                "removed", "dead", main="kept")
            return StageResult(b["kept"], (a["removed"], b["removed"]), (a["dead"], b["dead"]))

    src = _corpus(tmp_path)
    cfg = config([{"name": "s", "type": "jsonl", "path": str(src), "id_field": "id"}],
                 [{"stage": "two_parts"}], tmp_path / "out")
    res = build(cfg)
    removed = read_jsonl_gz(tmp_path / "out" / "removed")
    # "Example 1." in p1, "Example 10." / "Example 11." too; "Example 2." in p2 only
    assert sorted(r["record"]["id"] for r in removed) == ["p1", "p10", "p11", "p2"]
    assert {r["reason"] for r in removed} == {"has_Example 1", "has_Example 2"}
    dead = read_jsonl_gz(tmp_path / "out" / "dead_letter")
    assert sorted(d["id"] for d in dead) == ["p9"]
    st = res.stats["stages"]["two_parts"]
    assert st["removed"] == {"has_Example 1": 3, "has_Example 2": 1}
    assert len(read_output(tmp_path / "out")) == 17 - 5

    flattens = []

    class V(beam.pipeline.PipelineVisitor):
        def visit_transform(self, node):
            if isinstance(node.transform, beam.Flatten) and len(node.inputs) > 1:
                flattens.append([pc.producer.full_label for pc in node.inputs])

    p = beam.Pipeline(runner="DirectRunner")
    cfg["output"]["dir"] = str(tmp_path / "out2")
    construct(plan_build(build_config_from_dict(cfg)), p)
    p.visit(V())
    for producers in flattens:
        assert not {"two_parts/A", "two_parts/B"} & set(producers), producers


def test_report_of_a_plugin_build_names_the_module_to_import(
        tmp_path, monkeypatch, clean_registry):
    """Re-rendering a plugin build where the plugin is not importable (issue 26 item 3): one
    line naming the module, not "unknown stage"."""
    from typer.testing import CliRunner

    from pipelines.cli.main import app

    monkeypatch.syspath_prepend(str(EXAMPLES))
    cfg = config([{"name": "s", "type": "jsonl", "path": str(_corpus(tmp_path)),
                   "id_field": "id"}],
                 [{"stage": "digit_ratio", "max_digit_ratio": 0.3}], tmp_path / "out")
    cfg["plugins"] = ["my_stages"]
    build(cfg)
    res = CliRunner().invoke(app, ["report", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output  # importable: re-rendered
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(EXAMPLES)])
    for name in [n for n in sys.modules if n.startswith("my_stages")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(stage_mod, "STAGES", {k: v for k, v in stage_mod.STAGES.items()
                                              if k != "digit_ratio"})
    res = CliRunner().invoke(app, ["report", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "my_stages" in lines[0] and "PYTHONPATH" in lines[0], lines
    assert "unknown stage" not in res.output
