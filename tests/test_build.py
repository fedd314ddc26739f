"""End-to-end builds: dead-letter for each bad input, conservation, determinism, resume."""

import filecmp
import json
from pathlib import Path
from typing import Literal

import apache_beam as beam
import pytest

from filters.base import Decision, RecordScorer
from pipelines.build.accounting import ConservationError
from pipelines.build.config import build_config_from_dict
from pipelines.build.graph import construct
from pipelines.build.plan import plan_build
from pipelines.stages.record_stage import RecordStage, RecordStageParams
from pipelines.stages.base import Stage, StageParams, StageResult, empty_pcollection
from pipelines.stages.registry import register_stage
from tests.buildutil import (build, config, read_jsonl_gz, read_output, stdlib_doc_rows,
                             write_jsonl)

GOOD = [
    {"text": "A normal English document with enough words to pass every filter here."},
    {"text": "Another normal document, different from the first one in its wording."},
]


# ----------------------------------------------------------------- test-only stages


class _ExplodeParams(RecordStageParams):
    stage: Literal["test_explode"]


class _Explode(RecordScorer):
    columns = {"checked": "bool"}

    def process(self, record):
        if "BOOM" in record["text"]:
            raise ZeroDivisionError("boom inside the stage")
        return Decision(columns={"checked": True})


@register_stage
class _ExplodeStage(RecordStage):
    name = "test_explode"
    Params = _ExplodeParams

    def make_scorer(self):
        return _Explode()


class _LoseParams(StageParams):
    stage: Literal["test_lose"]


@register_stage
class _LoseStage(Stage):
    """A buggy stage that silently loses every other record."""

    name = "test_lose"
    Params = _LoseParams

    def expand(self, records):
        kept = records | "Lose" >> beam.Filter(lambda r: r["id"].endswith(("1", "3", "5")))
        empty = empty_pcollection(records.pipeline, "NoRemoved")
        return StageResult(kept=kept, removed=empty,
                           dead=empty_pcollection(records.pipeline, "NoDead"))


# ----------------------------------------------------------------- tests


def test_every_bad_input_kind_is_dead_lettered_and_counted(tmp_path):
    rows = GOOD + [
        b'{"text": "unterminated',                      # bad JSON
        b'{"text": "caf\xe9"}',                         # invalid UTF-8
        {"body": "no text field"},                      # missing text field
        {"text": 42},                                   # non-string text
        b"[1, 2, 3]",                                   # not an object
        b'{"text": "lone surrogate \\ud800 here"}',     # unencodable text
        {"text": "This one raises BOOM inside a stage of the pipeline."},
        b"",                                            # blank line: not a record
    ]
    write_jsonl(tmp_path / "in.jsonl", rows)
    truncated = tmp_path / "in2.jsonl.gz"
    write_jsonl(truncated, GOOD * 50, "gz")
    truncated.write_bytes(truncated.read_bytes()[:-30])  # corrupt archive tail
    res = build(config([{"name": "s", "type": "jsonl", "path": str(tmp_path / "in*")}],
                       [{"stage": "test_explode"}], tmp_path / "out",
                       max_dead_letter_fraction=1.0))  # 8 of 10 records are dead on purpose
    dead = read_jsonl_gz(tmp_path / "out" / "dead_letter")
    reasons = sorted(d["reason"].split(":")[0] for d in dead)
    assert reasons == ["bad_json", "exception", "invalid_unicode", "invalid_utf8",
                       "missing_text_field", "non_string_text", "not_an_object", "read_error"]
    by = {d["reason"].split(":")[0]: d for d in dead}
    assert by["invalid_utf8"]["raw"] == '{"text": "caf\\xe9"}'  # raw bytes kept, escaped
    assert by["exception"]["stage"] == "test_explode"
    assert "ZeroDivisionError: boom inside the stage" in by["exception"]["reason"]
    assert by["bad_json"]["location"].endswith("in.jsonl:3")
    s = res.stats
    assert s["conservation_ok"]
    assert s["counts"]["input"] == s["counts"]["kept"] + s["counts"]["removed"] + \
        s["counts"]["dead_letter"]
    assert s["read"]["dead_letter"]["bad_json"] == 1
    assert s["stages"]["test_explode"]["dead_letter"] == {"exception": 1}
    # the records before the corruption in the truncated file were still read
    assert s["counts"]["kept"] >= 2


def test_conservation_failure_is_loud(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [{"text": f"doc number {i}"} for i in range(6)])
    with pytest.raises(ConservationError, match="does not balance"):
        build(config([{"name": "s", "type": "jsonl", "path": str(tmp_path / "in.jsonl")}],
                     [{"stage": "test_lose"}], tmp_path / "out"))
    assert not (tmp_path / "out" / "data").exists()  # nothing half-written was promoted


def test_removed_output_and_reasons(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", GOOD + [{"text": "short"}, GOOD[0], {"text": " \x00 "}])
    res = build(config([{"name": "s", "type": "jsonl", "path": str(tmp_path / "in.jsonl")}],
                       [{"stage": "normalize"}, {"stage": "length_filter", "min_words": 3},
                        {"stage": "exact_dedup"}], tmp_path / "out"))
    removed = read_jsonl_gz(tmp_path / "out" / "removed")
    got = sorted((r["stage"], r["reason"], r["record"]["id"]) for r in removed)
    assert got == [("exact_dedup", "duplicate", "in.jsonl:4"),
                   ("length_filter", "too_few_words", "in.jsonl:3"),
                   ("normalize", "empty", "in.jsonl:5")]
    kept = read_output(tmp_path / "out")
    assert [r["id"] for r in kept] == ["in.jsonl:1", "in.jsonl:2"]
    assert kept[0]["dup_count"] == 2
    st = res.stats["stages"]
    assert (st["normalize"]["in"], st["exact_dedup"]["out"]) == (5, 2)
    html = (tmp_path / "out" / "report.html").read_text()
    assert "too_few_words" in html and "balanced" in html and "data:image/png;base64" in html


def _demo_cfg(corpus, out, workers, mode):
    cfg = config([{"name": "pydocs", "type": "demo_corpus", "path": str(corpus),
                   "demo_docs": 300}],
                 [{"stage": "normalize"}, {"stage": "length_filter", "min_words": 5},
                  {"stage": "exact_dedup", "keep": "longest"}], out, shards=3, jsonl=True)
    cfg["runner"] = {"direct_num_workers": workers, "direct_running_mode": mode}
    return cfg


@pytest.fixture(scope="module")
def one_worker_demo(tmp_path_factory, demo_corpus_300):
    """The reference for the worker-count tests: the demo build on one in-memory worker with the
    default spill budgets (built once for the module)."""
    out = tmp_path_factory.mktemp("demo") / "one"
    res = build(_demo_cfg(demo_corpus_300, out, 1, "in_memory"))
    return demo_corpus_300, out, res


def _same_files(a: Path, b: Path, subs=("data", "jsonl", "removed", "dead_letter")):
    for sub in subs:
        names = sorted(p.name for p in (a / sub).iterdir())
        assert names and names == sorted(p.name for p in (b / sub).iterdir()), sub
        _, mismatch, errors = filecmp.cmpfiles(a / sub, b / sub, names, shallow=False)
        assert not mismatch and not errors, (sub, mismatch, errors)


@pytest.mark.slow
def test_same_output_with_one_and_two_workers(one_worker_demo, tmp_path, monkeypatch):
    """Two worker processes with small spill budgets against one in-memory worker with the
    default ones: exact dedup spills many files and every sink merges many runs, which the
    second worker reads and merges in its own process; not a byte may change. (The budgets are
    read when the graph is built and pickled with the DoFns, so the workers get them too.)"""
    from pipelines.io import sinks
    from pipelines.stages.dedup import exact_dedup

    corpus, one, a = one_worker_demo
    monkeypatch.setattr(exact_dedup, "SPILL_BYTES", 15_000)
    monkeypatch.setattr(sinks, "SPILL_BYTES", 22_000)
    b = build(_demo_cfg(corpus, tmp_path / "two", 2, "multi_processing"))
    assert a.stats["counts"] == b.stats["counts"] and a.stats["conservation_ok"]
    assert a.stats["counts"]["removed"] > 0
    _same_files(one, tmp_path / "two")
    # the statistics too (partial accumulators merged in whatever order the bundles end),
    # and the input files in one order (source, then path)
    for label, st in a.stats["stages"].items():
        assert st["stats"] == b.stats["stages"][label]["stats"], label
    assert a.stats["input_files"] == b.stats["input_files"]
    assert [f["path"] for f in a.stats["input_files"]] == sorted(
        f["path"] for f in a.stats["input_files"])
    # no run or spill file is left behind
    assert not list((tmp_path / "two").rglob("*.bin"))
    assert not (tmp_path / "two" / "_staging").exists()


def test_same_output_with_threads(one_worker_demo, tmp_path):
    corpus, one, a = one_worker_demo
    b = build(_demo_cfg(corpus, tmp_path / "two", 2, "multi_threading"))
    assert a.stats["counts"] == b.stats["counts"]
    _same_files(one, tmp_path / "two")


def test_resume_from_checkpoint_and_up_to_date(tmp_path):
    write_jsonl(tmp_path / "in.jsonl",
                GOOD + [GOOD[0], {"text": "tiny"}, b"not json"] +
                [{"text": f"document {i} has several words in it"} for i in range(20)])
    stages = [{"stage": "normalize"},
              {"stage": "length_filter", "min_words": 6, "annotate_only": True},
              {"stage": "exact_dedup", "checkpoint": True}]
    src = [{"name": "s", "type": "jsonl", "path": str(tmp_path / "in.jsonl")}]
    out = tmp_path / "out"
    first = build(config(src, stages, out))
    assert first.stats["resumed_from"] is None
    assert (out / "checkpoints" / "02-exact_dedup" / "manifest.json").is_file()

    again = build(config(src, stages, out))
    assert again.skipped  # unchanged config and inputs: nothing to do

    later = stages + [{"stage": "length_filter", "min_words": 3, "label": "min3"}]
    resumed = build(config(src, later, out))
    assert resumed.stats["resumed_from"] == "exact_dedup"
    fresh = build(config(src, later, tmp_path / "fresh"))
    assert resumed.stats["counts"] == fresh.stats["counts"]
    assert resumed.stats["conservation_ok"]
    # the stages before the checkpoint keep their stats and histograms in the resumed report
    would = resumed.stats["stages"]["length_filter"]["stats"]["would_remove"]
    assert would == fresh.stats["stages"]["length_filter"]["stats"]["would_remove"]
    assert would == {"too_few_words": 1}  # "tiny"
    assert resumed.stats["input_lengths"] == fresh.stats["input_lengths"]
    assert resumed.stats["stages"]["exact_dedup"]["resumed"]
    assert read_output(out) == read_output(tmp_path / "fresh")
    assert sorted(r["record"]["id"] for r in read_jsonl_gz(out / "removed")) == \
        sorted(r["record"]["id"] for r in read_jsonl_gz(tmp_path / "fresh" / "removed"))
    assert len(read_jsonl_gz(out / "dead_letter")) == 1

    # a changed stage before the checkpoint invalidates it
    changed = [{"stage": "normalize", "form": "NFKC"}] + later[1:]
    assert build(config(src, changed, out)).stats["resumed_from"] is None

    # a corrupted checkpoint shard is detected and not used (the checkpoint is the one the
    # `changed` build just wrote, which a stage added after it would otherwise resume from)
    after = changed + [{"stage": "normalize", "label": "n2"}]
    assert plan_build(build_config_from_dict(config(src, after, out))).resume is not None
    shard = sorted((out / "checkpoints" / "02-exact_dedup" / "data").glob("*.parquet"))[0]
    shard.write_bytes(shard.read_bytes()[:50])
    assert build(config(src, after, out)).stats["resumed_from"] is None


def test_input_change_invalidates_up_to_date(tmp_path):
    src_file = tmp_path / "in.jsonl"
    write_jsonl(src_file, GOOD)
    src = [{"name": "s", "type": "jsonl", "path": str(src_file)}]
    build(config(src, [], tmp_path / "out"))
    write_jsonl(src_file, GOOD + [{"text": "a new line appeared in the input file"}])
    res = build(config(src, [], tmp_path / "out"))
    assert not res.skipped and res.stats["counts"]["input"] == 3


def test_dataflow_graph_constructs_without_running(tmp_path):
    from apache_beam.options.pipeline_options import PipelineOptions

    write_jsonl(tmp_path / "in.jsonl", GOOD)
    cfg = build_config_from_dict(config(
        [{"name": "s", "type": "jsonl", "path": str(tmp_path / "in.jsonl")}],
        [{"stage": "normalize"}, {"stage": "length_filter", "min_words": 2},
         {"stage": "exact_dedup", "checkpoint": True}],
        "gs://my-bucket/datamill/out"))
    args = ["--runner=DataflowRunner", "--project=my-project-123", "--region=us-central1",
            "--temp_location=gs://my-bucket/tmp", f"--setup_file={Path('setup.py').resolve()}",
            "--dry_run=True"]  # no GCS access without credentials (it would retry for minutes)
    plan = plan_build(cfg, args, use_checkpoints=False)
    p = beam.Pipeline(options=PipelineOptions(args))
    assert type(p.runner).__name__ == "DataflowRunner"
    construct(plan, p)
    proto = p.to_runner_api()
    names = {t.unique_name for t in proto.components.transforms.values()}
    assert any(n.startswith("exact_dedup/") for n in names)
    assert "WriteParquet" in names and any("Checkpoint[exact_dedup]" in n for n in names)


def test_cli_build_and_errors(tmp_path):
    from typer.testing import CliRunner

    from pipelines.cli.main import app

    runner = CliRunner()
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: [{name: s, type: jsonl, path: x}]\nstages: [{stage: dedupe}]\n"
                   "output: {dir: o}\n")
    res = runner.invoke(app, ["build", str(bad)])
    assert res.exit_code == 2
    assert "stages[0].stage: unknown stage 'dedupe'" in res.output.replace("\n", "")
    write_jsonl(tmp_path / "in.jsonl", GOOD)
    good = tmp_path / "good.yaml"
    good.write_text(json.dumps(config(
        [{"name": "s", "type": "jsonl", "path": str(tmp_path / "in.jsonl")}],
        [{"stage": "normalize"}], tmp_path / "out")))
    res = runner.invoke(app, ["build", str(good)])
    assert res.exit_code == 0, res.output
    assert "balanced" in res.output
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["counts"]["kept"] == 2


def test_partitioned_output_by_column(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [{"text": "two words"}, {"text": "three words here"},
                                        {"text": "also two"}])
    cfg = config([{"name": "s", "type": "jsonl", "path": str(tmp_path / "in.jsonl")}],
                 [{"stage": "length_filter"}], tmp_path / "out", partition_by="n_words")
    res = build(cfg)
    parts = sorted(p.relative_to(tmp_path / "out" / "data").as_posix()
                   for p in (tmp_path / "out" / "data").rglob("*.parquet"))
    assert {p.split("/")[0] for p in parts} == {"n_words-2", "n_words-3"}
    assert all("/part-" in p for p in parts)
    assert sum(f["rows"] for f in res.stats["output_files"]) == 3
    bad = config([{"name": "s", "type": "jsonl", "path": str(tmp_path / "in.jsonl")}], [],
                 tmp_path / "out2", partition_by="language")
    from pipelines.core.settings import ConfigError

    with pytest.raises(ConfigError, match="output.partition_by: column 'language' is not"):
        build(bad)


def test_report_command_rerenders(tmp_path):
    from typer.testing import CliRunner

    from pipelines.cli.main import app

    write_jsonl(tmp_path / "in.jsonl", GOOD)
    build(config([{"name": "s", "type": "jsonl", "path": str(tmp_path / "in.jsonl")}],
                 [{"stage": "length_filter", "min_words": 3}], tmp_path / "out"))
    (tmp_path / "out" / "report.html").unlink()
    res = CliRunner().invoke(app, ["report", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert "length_filter" in (tmp_path / "out" / "report.html").read_text()


def test_language_routing_partitions_output(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [
        {"text": "The library reads every file line by line and reports the lines it cannot "
                 "parse, without stopping the rest of the work."},
        {"text": "Die Bibliothek liest jede Datei Zeile für Zeile und meldet die Zeilen, die "
                 "sie nicht verarbeiten kann, ohne die übrige Arbeit anzuhalten."},
    ])
    build(config([{"name": "s", "type": "jsonl", "path": str(tmp_path / "in.jsonl")}],
                 [{"stage": "language_id", "route_by_language": True, "min_score": 0.3}],
                 tmp_path / "out"))
    data = tmp_path / "out" / "data"
    files = sorted(p.relative_to(data).as_posix() for p in data.rglob("*.parquet"))
    # one file per small language (not output.shards of them), column kept in the files
    assert files == ["language-de/part-00000-of-00001.parquet",
                     "language-en/part-00000-of-00001.parquet"]
    # readable alike by pandas, pyarrow and datasets, with `language` as written
    import datasets
    import pandas as pd
    import pyarrow.parquet as pq

    df = pd.read_parquet(data)
    assert sorted(df["language"]) == ["de", "en"] and df["language"].dtype == object
    table = pq.read_table(data)
    assert table.schema.field("language").type == "string" and table.num_rows == 2
    ds = datasets.load_dataset("parquet", data_files=str(data / "**" / "*.parquet"),
                               split="train")
    assert sorted(ds["language"]) == ["de", "en"]


@pytest.mark.slow
def test_stats_and_input_files_do_not_depend_on_workers(tmp_path):
    """Two sources of several files: stats.json lists the input files in source order, then
    by path, and every stage statistic (histograms, removal samples, breakdowns, counts:
    partial accumulators merged in whatever order the bundles end) is the same on one
    in-memory worker and on two worker processes."""
    rows = stdlib_doc_rows(("json", "csv", "argparse", "pathlib", "textwrap"))
    assert len(rows) > 60
    files = {"zeta": [], "alpha": []}
    for n, name in enumerate(("f3", "f1", "f2", "f0", "f4")):
        src = "zeta" if n < 3 else "alpha"
        part = [dict(r, id=f"{name}-{i}") for i, r in enumerate(rows[n::5])]
        files[src].append(write_jsonl(tmp_path / f"{src}-{name}.jsonl", part))
    sources = [{"name": "zeta", "type": "jsonl", "path": str(tmp_path / "zeta-*.jsonl")},
               {"name": "alpha", "type": "jsonl", "path": str(tmp_path / "alpha-*.jsonl")}]
    stages = [{"stage": "gopher_repetition"}, {"stage": "gopher_quality"},
              {"stage": "length_filter", "min_words": 40}]
    got = []
    for workers, mode in ((1, "in_memory"), (2, "multi_processing")):
        cfg = config(sources, stages, tmp_path / f"out{workers}", shards=2)
        cfg["runner"] = {"direct_num_workers": workers, "direct_running_mode": mode}
        got.append(build(cfg).stats)
    one, two = got
    assert one["counts"] == two["counts"] and one["counts"]["removed"] > 0
    listed = [(f["source"], Path(f["path"]).name) for f in one["input_files"]]
    assert listed == [("zeta", "zeta-f1.jsonl"), ("zeta", "zeta-f2.jsonl"),
                      ("zeta", "zeta-f3.jsonl"), ("alpha", "alpha-f0.jsonl"),
                      ("alpha", "alpha-f4.jsonl")]
    assert one["input_files"] == two["input_files"]
    for label, st in one["stages"].items():
        assert st["stats"] == two["stages"][label]["stats"], label
    assert one["stages"]["gopher_quality"]["stats"]["score_histograms"]
    assert any(st["stats"].get("removed_by_rule") for st in one["stages"].values())
    assert one["breakdown"] == two["breakdown"]
