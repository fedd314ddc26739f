"""Input fields kept as typed columns (pipelines/io/input_fields.py), end to end on real text:
public docstrings of the Python standard library, with url/date/section/nested metadata."""

from __future__ import annotations

import filecmp
import importlib
import inspect
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.io import input_fields as inf
from pipelines.core.settings import ConfigError
from pipelines.build.config import build_config_from_dict
from pipelines.build.plan import plan_build
from tests.buildutil import build, config, read_jsonl_gz, read_output, write_jsonl


def _docs(modules=("json", "textwrap", "shutil", "string", "csv"), min_words=6) -> list[dict]:
    rows = []
    for mod in modules:
        m = importlib.import_module(mod)
        for name, obj in sorted(vars(m).items()):
            doc = inspect.getdoc(obj) if not name.startswith("_") else None
            if not doc or len(doc.split()) < min_words:
                continue
            n = len(rows)
            rows.append({
                "id": f"{mod}.{name}", "text": doc,
                "url": f"https://docs.python.org/3/library/{mod}.html#{mod}.{name}",
                "date": f"2024-0{1 + n % 9}-1{n % 10}",
                "section": 3 if callable(obj) else 1,
                "rating": (n % 7) / 2 if n % 2 else n % 7,  # int and float: float64
                "tags": [mod, type(obj).__name__],
                "meta": {"module": mod, "kind": type(obj).__name__, "lines": doc.count("\n")},
            })
    return rows


DOCS = _docs()


def _src(path, **kw):
    return {"name": "docs", "type": "jsonl", "path": str(path), "id_field": "id", **kw}


def _schema(out) -> pa.Schema:
    return pq.read_schema(sorted((out / "data").glob("*.parquet"))[0])


def test_jsonl_fields_become_typed_columns_readable_by_pandas_pyarrow_datasets(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", DOCS)
    out = tmp_path / "out"
    res = build(config([_src(tmp_path / "in.jsonl")], [{"stage": "length_filter",
                                                          "min_words": 6}], out, jsonl=True))
    assert res.stats["conservation_ok"]
    schema = _schema(out)
    types = {f.name: f.type for f in schema}
    assert types["url"] == pa.string() and types["date"] == pa.string()
    assert types["section"] == pa.int64() and types["rating"] == pa.float64()
    assert types["tags"] == pa.list_(pa.string())
    assert types["meta"] == pa.struct([("module", pa.string()), ("kind", pa.string()),
                                       ("lines", pa.int64())])  # a stable object: a struct
    assert types["extra_fields"] == pa.string()
    assert schema.names[:3] == ["id", "text", "source"]
    assert "n_words" in schema.names and "id" not in schema.names[3:]  # id_field not doubled
    rows = {r["id"]: r for r in read_output(out)}
    want = DOCS[1]
    got = rows[want["id"]]
    assert (got["url"], got["date"], got["section"], got["tags"]) == (
        want["url"], want["date"], want["section"], want["tags"])
    assert got["rating"] == float(want["rating"]) and got["meta"] == want["meta"]
    assert got["extra_fields"] is None
    jsonl = {r["id"]: r for r in read_jsonl_gz(out / "jsonl")}
    assert jsonl[want["id"]]["url"] == want["url"]
    # the usual readers see the same columns
    import pandas as pd

    df = pd.read_parquet(out / "data")
    assert len(df) == len(rows) and df["section"].dtype == "int64"
    assert pq.read_table(out / "data").num_rows == len(rows)
    import datasets

    ds = datasets.load_dataset("parquet", data_files=str(out / "data" / "*.parquet"),
                               split="train", cache_dir=str(tmp_path / "hf"))
    assert ds.features["url"].dtype == "string" and len(ds) == len(rows)
    assert res.stats["columns"]["tags"] == "list<string>"
    assert res.stats["columns"]["meta"] == "struct<module: string, kind: string, lines: int64>"
    card = (out / "README.md").read_text()
    assert "## Columns" in card and "| `section` | `int64` |" in card
    assert "`extra_fields` holds" in card
    assert "url:string" in card  # the planning summary (also in stats.json "input_fields")


def test_value_that_does_not_fit_or_field_after_the_sample_goes_to_extra_fields(tmp_path,
                                                                                monkeypatch):
    monkeypatch.setattr(inf, "SAMPLE_RECORDS", 10)
    rows = [dict(r) for r in DOCS[:30]]
    rows[20]["section"] = "three"  # a string in the planned int64 column
    rows[21]["section"] = 1 << 70  # an integer beyond int64
    rows[22]["late"] = {"first": "seen after the sample"}  # not seen at planning
    rows[23]["rating"] = None
    write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out"
    res = build(config([_src(tmp_path / "in.jsonl")], [], out))
    assert res.stats["counts"]["kept"] == 30 and res.stats["conservation_ok"]
    assert "late" not in _schema(out).names
    got = {r["id"]: r for r in read_output(out)}
    r20, r21, r22 = (got[rows[i]["id"]] for i in (20, 21, 22))
    assert r20["section"] is None and json.loads(r20["extra_fields"]) == {"section": "three"}
    assert r21["section"] is None and json.loads(r21["extra_fields"]) == {"section": 1 << 70}
    assert json.loads(r22["extra_fields"]) == {"late": {"first": "seen after the sample"}}
    assert got[rows[23]["id"]]["rating"] is None and got[rows[23]["id"]]["extra_fields"] is None
    assert got[rows[0]["id"]]["extra_fields"] is None


def test_merge_rule_for_types():
    m = inf.merge_types
    assert m("int64", "float64") == "float64"
    assert m("list<int64>", "list<float64>") == "list<float64>"
    assert m("string", "int64") == "json" and m("bool", "int64") == "json"
    assert m("null", "string") == "string" and inf.final_type("null") == "json"
    assert inf.value_type([1, 2.5, None]) == "list<float64>"
    assert inf.value_type(["a", 1]) == "json" and inf.value_type({"a": 1}) == "struct<a: int64>"
    assert inf.value_type(True) == "bool" and inf.value_type(1 << 64) == "json"
    # a value fits a wider column exactly, or not at all
    assert inf.fit("float64", 3) == 3.0 and inf.fit("float64", (1 << 53) + 1) is inf._NOFIT
    assert inf.fit("int64", True) is inf._NOFIT and inf.fit("string", "\ud800") is inf._NOFIT
    assert inf.fit("json", "\ud800") == '"\\ud800"'  # lone surrogate: escaped, encodable


def test_mixed_types_in_the_sample_and_across_sources(tmp_path):
    a = [{"text": d["text"], "date": d["date"], "n": i} for i, d in enumerate(DOCS[:10])]
    b = [{"text": d["text"], "date": 20240101 + i, "n": i + 0.5}
         for i, d in enumerate(DOCS[10:20])]
    write_jsonl(tmp_path / "a.jsonl", a)
    write_jsonl(tmp_path / "b.jsonl", b)
    out = tmp_path / "out"
    res = build(config([{"name": "a", "type": "jsonl", "path": str(tmp_path / "a.jsonl")},
                        {"name": "b", "type": "jsonl", "path": str(tmp_path / "b.jsonl")}],
                       [], out))
    assert res.stats["columns"]["date"] == "json"  # string in a, integer in b
    assert res.stats["columns"]["n"] == "float64"  # int in a, float in b
    rows = read_output(out)
    dates = sorted(json.loads(r["date"]) for r in rows if r["source"] == "b")
    assert dates == list(range(20240101, 20240111))
    assert {json.loads(r["date"]) for r in rows if r["source"] == "a"} == {d["date"] for d in a}
    assert all(r["extra_fields"] is None for r in rows)


def test_hostile_ten_thousand_distinct_keys_make_at_most_256_columns(tmp_path):
    keys = {f"k{j:05d}": j for j in range(10_000)}
    rows = [{"id": "wide", "text": DOCS[0]["text"], **keys}]
    rows += [{**r, f"only_in_{i}": i} for i, r in enumerate(DOCS[1:5], 1)]
    write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out"
    res = build(config([_src(tmp_path / "in.jsonl")], [], out))
    names = _schema(out).names
    assert len(names) == 3 + inf.MAX_COLUMNS + 1 and names[-1] == "extra_fields"
    assert res.stats["counts"]["kept"] == 5 and res.stats["conservation_ok"]
    got = {r["id"]: r for r in read_output(out)}
    wide = got["wide"]
    extra = json.loads(wide["extra_fields"])
    in_columns = {k: wide[k] for k in names if k.startswith("k")}
    assert in_columns and not set(extra) & set(in_columns)
    assert {**extra, **in_columns} == keys  # every key kept exactly once, with its value
    assert json.loads(got[DOCS[2]["id"]]["extra_fields"]) == {"only_in_2": 2}
    assert got[DOCS[2]["id"]]["url"] == DOCS[2]["url"]  # frequent fields got the columns


def test_parquet_struct_and_list_columns_keep_and_drop(tmp_path):
    n = 12
    table = pa.table({
        "content": [d["text"] for d in DOCS[:n]],
        "url": [d["url"] for d in DOCS[:n]],
        "meta": pa.array([d["meta"] for d in DOCS[:n]]),  # struct
        "tags": pa.array([d["tags"] for d in DOCS[:n]], pa.list_(pa.string())),
        "score": pa.array([float(i) for i in range(n)], pa.float32()),
        "fetched": pa.array([1_700_000_000_000_000 + i for i in range(n)],
                            pa.timestamp("us")),
    })
    pq.write_table(table, tmp_path / "in.parquet")
    src = {"name": "pq", "type": "parquet", "path": str(tmp_path / "in.parquet"),
           "text_field": "content"}
    out = tmp_path / "out"
    res = build(config([src], [], out))
    cols = res.stats["columns"]
    assert cols["meta"] == "struct<module: string, kind: string, lines: int64>"
    assert cols["tags"] == "list<string>" and cols["fetched"] == "timestamp[us]"
    assert cols["score"] == "float64" and "content" not in cols
    rows = sorted(read_output(out), key=lambda r: r["url"])
    first = next(r for r in rows if r["url"] == DOCS[0]["url"])
    assert first["meta"] == DOCS[0]["meta"] and first["tags"] == DOCS[0]["tags"]
    assert first["fetched"].isoformat().startswith("2023-11-14T22:13:20")
    # keep_fields / drop_fields (planned columns, and what the reader makes of a row)
    row = table.slice(0, 1).to_pylist()[0]

    def planned(**kw):
        plan = plan_build(build_config_from_dict(config([{**src, **kw}], [], tmp_path / "p")))
        return plan.columns, plan.sources[0].config._input_fields.values(row)

    cols, values = planned(keep_fields=["url"])
    assert list(cols) == ["url", "extra_fields"] and values == {"url": DOCS[0]["url"]}
    cols, values = planned(drop_fields=["meta", "fetched"])
    assert list(cols) == ["url", "tags", "score", "extra_fields"]
    assert set(values) == {"url", "tags", "score"}
    # names that are not columns of a Parquet schema: an error before any work
    for key in ("keep_fields", "drop_fields"):
        with pytest.raises(ConfigError, match=rf"sources\[0\]\.{key}: \['urll'\] not a field"):
            plan_build(build_config_from_dict(config([{**src, key: ["urll"]}], [],
                                                     tmp_path / "bad")))
    with pytest.raises(ConfigError, match="mutually exclusive"):
        build_config_from_dict(config([{**src, "keep_fields": ["url"], "drop_fields": []}], [],
                                      tmp_path / "bad"))


def test_keep_fields_empty_is_the_old_schema(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", DOCS[:10])
    out = tmp_path / "out"
    res = build(config([_src(tmp_path / "in.jsonl", keep_fields=[])],
                       [{"stage": "length_filter", "min_words": 6}], out))
    assert _schema(out).names == ["id", "text", "source", "n_chars", "n_words"]
    assert "extra_fields" not in res.stats["columns"]


def test_hf_dataset_saved_to_disk(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = DOCS[:16]
    ds = datasets.Dataset.from_dict({
        "text": [r["text"] for r in rows], "url": [r["url"] for r in rows],
        "section": [r["section"] for r in rows], "tags": [r["tags"] for r in rows],
        "meta": [r["meta"] for r in rows]})
    ds.save_to_disk(str(tmp_path / "ds"))
    out = tmp_path / "out"
    res = build(config([{"name": "hf", "type": "hf", "path": str(tmp_path / "ds"),
                         "hf_shards": 2}], [], out))
    cols = res.stats["columns"]
    assert (cols["url"], cols["section"], cols["tags"], cols["meta"]) == (
        "string", "int64", "list<string>", "struct<module: string, kind: string, lines: int64>")
    got = {r["url"]: r for r in read_output(out)}
    assert got[rows[3]["url"]]["section"] == rows[3]["section"]
    assert got[rows[3]["url"]]["meta"] == rows[3]["meta"]


def test_collisions_are_renamed_and_shown(tmp_path):
    rows = [{"text": d["text"], "source": "upstream-crawl", "n_words": 1,
             "extra_fields": "mine", "url": d["url"]} for d in DOCS[:8]]
    write_jsonl(tmp_path / "in.jsonl", rows)
    cfg = config([{"name": "docs", "type": "jsonl", "path": str(tmp_path / "in.jsonl")}],
                 [{"stage": "length_filter", "min_words": 6}], tmp_path / "out")
    plan = plan_build(build_config_from_dict(cfg))
    text = "\n".join(plan.describe_fields())
    for old in ("source", "n_words", "extra_fields"):
        assert f"{old} -> input_{old}" in text
    res = build(cfg)
    row = read_output(tmp_path / "out")[0]
    assert row["source"] == "docs" and row["input_source"] == "upstream-crawl"
    assert row["input_n_words"] == 1 and row["n_words"] >= 6
    assert row["input_extra_fields"] == "mine" and row["extra_fields"] is None
    assert res.stats["conservation_ok"]
    from typer.testing import CliRunner

    from pipelines.cli.main import app

    (tmp_path / "b.yaml").write_text(json.dumps(cfg))
    shown = CliRunner().invoke(app, ["validate", str(tmp_path / "b.yaml")])
    assert shown.exit_code == 0 and "source -> input_source" in shown.output
    # a renamed name that is taken too: an error naming the field and the fix
    write_jsonl(tmp_path / "in.jsonl", [{**r, "input_source": "x"} for r in rows])
    with pytest.raises(ConfigError, match="'source'.*'input_source'.*drop_fields"):
        plan_build(build_config_from_dict(cfg))


def test_fields_survive_dedup_checkpoint_resume_and_removed_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(inf, "SAMPLE_RECORDS", 20)  # "short" is not sampled: section stays int64
    rows = [dict(r) for r in DOCS[:40]]
    rows.append({**DOCS[0], "id": "copy-of-0", "url": "mirror://copy"})  # exact duplicate
    rows.append({**DOCS[1], "id": "short", "text": "too short", "section": "x"})
    write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out"
    stages = [{"stage": "length_filter", "min_words": 3, "checkpoint": True},
              {"stage": "exact_dedup"},
              {"stage": "minhash_dedup", "threshold": 0.8}]
    first = build(config([_src(tmp_path / "in.jsonl")], stages, out, write_removed=True))
    assert first.stats["conservation_ok"]
    kept = {r["id"]: r for r in read_output(out)}
    assert all(kept[r["id"]]["url"] == r["url"] for r in rows[:40] if r["id"] in kept)
    removed = {r["record"]["id"]: r for r in read_jsonl_gz(out / "removed")}
    assert removed["short"]["record"]["url"] == DOCS[1]["url"]
    assert json.loads(removed["short"]["record"]["extra_fields"]) == {"section": "x"}
    assert removed["short"]["stage"] == "length_filter"
    dup = removed.get("copy-of-0") or removed[DOCS[0]["id"]]
    assert dup["record"]["tags"] == DOCS[0]["tags"]
    # change a later stage: the build resumes from the checkpoint, fields intact
    stages[2]["threshold"] = 0.9
    again = build(config([_src(tmp_path / "in.jsonl")], stages, out, write_removed=True))
    assert again.stats["resumed_from"] == "length_filter" and again.stats["conservation_ok"]
    fields = ("url", "date", "section", "rating", "tags", "meta", "extra_fields")
    resumed = {r["id"]: r for r in read_output(out)}
    by_id = {r["id"]: r for r in rows}
    assert len(resumed) >= len(kept)
    for rid, r in resumed.items():
        want = by_id[rid]
        assert (r["url"], r["tags"], r["meta"]) == (
            want["url"], want["tags"], want["meta"])
        if rid in kept:
            assert {k: r[k] for k in fields} == {k: kept[rid][k] for k in fields}
    removed2 = {r["record"]["id"]: r for r in read_jsonl_gz(out / "removed")}
    assert removed2["short"]["record"]["extra_fields"] == removed["short"]["record"]["extra_fields"]


@pytest.mark.slow
def test_partition_by_a_kept_field_and_same_bytes_with_two_workers(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", DOCS)
    outs = []
    for workers, mode in ((1, "in_memory"), (2, "multi_processing")):
        out = tmp_path / f"w{workers}"
        cfg = config([_src(tmp_path / "in.jsonl")], [{"stage": "exact_dedup"}], out,
                     shards=2, jsonl=True, partition_by="section")
        cfg["runner"] = {"direct_num_workers": workers, "direct_running_mode": mode}
        kept = build(cfg).stats["counts"]["kept"]
        outs.append(out)
    parts = sorted(p.name for p in (outs[0] / "data").iterdir())
    assert parts == ["section-1", "section-3"]
    for sub in ("data/section-1", "data/section-3", "jsonl/section-1", "jsonl/section-3"):
        names = sorted(p.name for p in (outs[0] / sub).iterdir())
        _, mismatch, errors = filecmp.cmpfiles(outs[0] / sub, outs[1] / sub, names,
                                               shallow=False)
        assert not mismatch and not errors
    rows = pq.read_table(outs[0] / "data").to_pylist()
    assert {r["section"] for r in rows} == {1, 3} and len(rows) == kept


def test_odd_field_names_and_values_never_become_columns_but_are_kept():
    from pipelines.io.source_config import SourceConfig

    src = SourceConfig(name="s", type="jsonl", path="unused")
    cand = inf._Candidates()
    obj = {"text": "t", "": 1, "tab\there": 2, "bad\ud800": 3, "x" * 200: 4, "ok": "\ud800",
           "n": 1}
    for k, v in obj.items():
        cand.see(k, inf.value_type(v))
    (plan,), columns = inf.plan_fields([src], [cand], [False], {"id", "text", "source"})
    assert list(columns) == ["ok", "n", "extra_fields"] and columns["ok"] == "json"
    values = plan.values(obj)
    assert values["ok"] == '"\\ud800"' and values["n"] == 1
    extra = json.loads(values["extra_fields"])
    assert extra == {"": 1, "tab\there": 2, "bad\ud800": 3, "x" * 200: 4}
    values["extra_fields"].encode("utf-8")  # always writable


def test_records_the_reader_dead_letters_are_not_sampled(tmp_path):
    # a record without a string text field is dead-lettered whole (raw input kept there), so
    # its fields must not become output columns that are null in every kept row
    path = tmp_path / "in.jsonl"
    write_jsonl(path, [{"id": "a", "text": "kept text", "url": "u1"},
                       {"id": "b", "body": "no text field here", "url": "u2"},
                       {"id": "c", "text": 7, "score": 1.5},
                       {"id": "d", "text": "more kept text", "url": "u3"}])
    cand = inf.sample_jsonl([str(path)], 1 << 20, "text")
    assert set(cand.types) == {"id", "text", "url"}
    assert cand.counts["url"] == 2
    # without a text field every parsed object counts (used for schema-less sampling)
    assert "body" in inf.sample_jsonl([str(path)], 1 << 20).types
