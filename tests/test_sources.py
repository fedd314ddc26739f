"""Each source format reads real records with deterministic ids; bad rows are dead-lettered."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.core.settings import ConfigError
from tests.buildutil import build, config, read_jsonl_gz, read_output, write_jsonl

DOCS = [
    "The quick brown fox jumps over the lazy dog near the river bank today.",
    "Beam pipelines run the same code on a laptop and on a cluster of many workers.",
    "Parquet files store columns together, which makes scans of one column cheap.",
]


FORMATS = [(None, ".jsonl"), ("gz", ".jsonl.gz"), ("zst", ".jsonl.zst")]


def test_jsonl_formats(tmp_path):
    """Plain, gzip and zstd JSONL side by side in one build (one build, not one per format)."""
    src = tmp_path / "in"
    src.mkdir()
    for compress, suffix in FORMATS:
        write_jsonl(src / f"a{suffix}", [{"text": t} for t in DOCS], compress)
    res = build(config([{"name": "web", "type": "jsonl", "path": str(src / "*")}], [],
                       tmp_path / "out"))
    rows = read_output(tmp_path / "out")
    for _, suffix in FORMATS:
        mine = sorted((r for r in rows if r["id"].startswith(f"a{suffix}:")),
                      key=lambda r: r["id"])
        assert [r["text"] for r in mine] == DOCS, suffix
        assert [r["id"] for r in mine] == [f"a{suffix}:{i}" for i in (1, 2, 3)], suffix
    assert {r["source"] for r in rows} == {"web"}
    n = 3 * len(FORMATS)
    assert res.stats["counts"] == {"input": n, "kept": n, "removed": 0, "dead_letter": 0}


def test_glob_over_directories_and_id_field(tmp_path):
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        write_jsonl(tmp_path / sub / "part.jsonl",
                    [{"text": t, "uid": f"{sub}-{i}"} for i, t in enumerate(DOCS)])
    build(config([{"name": "s", "type": "jsonl", "path": str(tmp_path / "*" / "*.jsonl"),
                   "id_field": "uid"}], [], tmp_path / "out"))
    rows = read_output(tmp_path / "out")
    assert [r["id"] for r in rows] == ["x-0", "x-1", "x-2", "y-0", "y-1", "y-2"]


def test_generated_ids_distinguish_same_basename(tmp_path):
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        write_jsonl(tmp_path / sub / "part.jsonl", [{"text": DOCS[0]}])
    build(config([{"name": "s", "type": "jsonl", "path": str(tmp_path / "*" / "*.jsonl")}], [],
                 tmp_path / "out"))
    assert [r["id"] for r in read_output(tmp_path / "out")] == ["x/part.jsonl:1",
                                                                 "y/part.jsonl:1"]


def test_parquet_source(tmp_path):
    table = pa.Table.from_pylist([
        {"doc_id": "p1", "content": DOCS[0]},
        {"doc_id": "p2", "content": None},
        {"doc_id": "p3", "content": DOCS[1]},
    ])
    pq.write_table(table, tmp_path / "in.parquet")
    res = build(config([{"name": "pq", "type": "parquet", "path": str(tmp_path / "in.parquet"),
                         "text_field": "content", "id_field": "doc_id"}], [], tmp_path / "out"))
    assert [r["id"] for r in read_output(tmp_path / "out")] == ["p1", "p3"]
    dead = read_jsonl_gz(tmp_path / "out" / "dead_letter")
    assert [d["reason"] for d in dead] == ["non_string_text: 'content' is NoneType"]
    assert dead[0]["location"].endswith("in.parquet#row=1")
    assert res.stats["counts"]["input"] == 3


def test_parquet_text_column_checked_before_work_and_per_row(tmp_path):
    # the first file's schema is checked while planning: a config error naming the columns
    pq.write_table(pa.Table.from_pylist([{"body": "x"}]), tmp_path / "a.parquet")
    with pytest.raises(ConfigError, match=r"sources\[0\]\.text_field: 'text' is not a column.*"
                                          r"\['body'\]"):
        build(config([{"name": "pq", "type": "parquet", "path": str(tmp_path / "a.parquet")}],
                     [], tmp_path / "out"))
    # a later file without the column: each of its rows is dead-lettered with its data
    pq.write_table(pa.Table.from_pylist([{"text": DOCS[0]}]), tmp_path / "0.parquet")
    res = build(config([{"name": "pq", "type": "parquet", "path": str(tmp_path / "*.parquet")}],
                       [], tmp_path / "out"))
    dead = read_jsonl_gz(tmp_path / "out" / "dead_letter")
    assert [(d["reason"], json.loads(d["raw"])) for d in dead] == [
        ("missing_text_field: no field 'text'", {"body": "x"})]
    assert res.stats["counts"] == {"input": 2, "kept": 1, "removed": 0, "dead_letter": 1}


def test_hf_load_from_disk_source(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"text": DOCS + [None], "n": [1, 2, 3, 4]})
    ds.save_to_disk(str(tmp_path / "saved"))
    res = build(config([{"name": "hf", "type": "hf", "path": str(tmp_path / "saved"),
                         "hf_shards": 3}], [], tmp_path / "out"))
    rows = read_output(tmp_path / "out")
    assert sorted(r["text"] for r in rows) == sorted(DOCS)
    assert all(r["id"].startswith(f"{tmp_path / 'saved'}#train#") for r in rows)
    assert res.stats["counts"] == {"input": 4, "kept": 3, "removed": 0, "dead_letter": 1}


def test_missing_files_and_bad_hf_text_field_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"sources\[0\].path: no jsonl files match"):
        build(config([{"name": "s", "type": "jsonl", "path": str(tmp_path / "nope*.jsonl")}], [],
                     tmp_path / "out"))
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"body": ["x"]}).save_to_disk(str(tmp_path / "saved"))
    with pytest.raises(ConfigError, match=r"sources\[0\].text_field: 'text' is not a column"):
        build(config([{"name": "s", "type": "hf", "path": str(tmp_path / "saved")}], [],
                     tmp_path / "out"))


def test_output_loads_with_datasets(tmp_path):
    datasets = pytest.importorskip("datasets")
    write_jsonl(tmp_path / "a.jsonl", [{"text": t} for t in DOCS])
    build(config([{"name": "s", "type": "jsonl", "path": str(tmp_path / "a.jsonl")}],
                 [{"stage": "length_filter", "min_words": 3}], tmp_path / "out", jsonl=True))
    files = sorted(str(p) for p in (tmp_path / "out" / "data").glob("*.parquet"))
    ds = datasets.load_dataset("parquet", data_files=files, split="train")
    assert sorted(ds["text"]) == sorted(DOCS)
    assert set(ds.column_names) == {"id", "text", "source", "n_chars", "n_words",
                                   "extra_fields"}  # input fields: none besides text
    jsonl = read_jsonl_gz(tmp_path / "out" / "jsonl")
    assert sorted(r["text"] for r in jsonl) == sorted(DOCS)
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["conservation_ok"]
