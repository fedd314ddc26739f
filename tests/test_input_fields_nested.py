"""Nested input fields kept as Parquet structs and lists, ISO-8601 texts as timestamps
(issue 26 item 10; pipelines/io/input_fields.py), on real text: stdlib docstrings with
crawl-like nested metadata."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.build.config import build_config_from_dict
from pipelines.build.plan import plan_build
from pipelines.core.records import arrow_type, format_type, parse_type
from pipelines.io import input_fields as inf
from tests.buildutil import (
    build,
    config,
    read_jsonl_gz,
    read_output,
    stdlib_doc_rows,
    write_jsonl,
)

UTC = dt.timezone.utc
LANGS = ("en", "de", "fr")


def _rows(n: int = 60) -> list[dict]:
    rows = []
    for i, r in enumerate(stdlib_doc_rows(("json", "textwrap", "shutil", "string", "csv"))[:n]):
        meta = {"url": f"https://docs.python.org/3/library/{r['source']}.html#{r['id']}",
                "lang": LANGS[i % 3],
                # ints and floats mixed: list<float64>
                "scores": [i % 5, (i % 7) / 4] if i % 2 else [i % 5],
                "fetch": {"status": 200 + i % 3, "at": f"2024-03-{1 + i % 28:02d}T10:00:00Z"}}
        if i % 4 == 3:
            del meta["lang"]  # missing key: a nullable struct field
        rows.append({
            "id": r["id"], "text": r["text"], "meta": meta,
            "ts": f"2024-01-02T03:{i % 60:02d}:05" + ("Z" if i % 2 else "+02:00"),
            "local_ts": f"2024-01-02 03:04:{i % 60:02d}",  # no offset: naive
            "day": f"2024-01-{1 + i % 28:02d}",  # a date alone stays a string
            "links": [{"href": f"#{r['id']}", "rel": "self"}] * (i % 3),
            "unstable": {"k": i} if i % 2 else f"text {i}",  # object or text: json
            "license": None,  # only ever null: json
        })
    return rows


def _src(path, **kw):
    return {"name": "crawl", "type": "jsonl", "path": str(path), "id_field": "id", **kw}


def _schema(out) -> pa.Schema:
    return pq.read_schema(sorted((out / "data").glob("*.parquet"))[0])


META = "struct<url: string, lang: string, scores: list<float64>, fetch: struct<status: int64, " \
       "at: timestamp[us, tz=UTC]>>"


def test_jsonl_nested_objects_become_structs_lists_and_timestamps(tmp_path):
    rows = _rows()
    write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out"
    res = build(config([_src(tmp_path / "in.jsonl")], [{"stage": "length_filter",
                                                          "min_words": 3}], out, jsonl=True))
    assert res.stats["conservation_ok"] and res.stats["counts"]["kept"] == len(rows)
    cols = res.stats["columns"]
    assert cols["meta"] == META
    assert cols["ts"] == "timestamp[us, tz=UTC]" and cols["local_ts"] == "timestamp[us]"
    assert cols["day"] == "string" and cols["links"] == "list<struct<href: string, rel: string>>"
    assert cols["unstable"] == "json" and cols["license"] == "json"
    # pyarrow reads the right types
    types = {f.name: f.type for f in _schema(out)}
    assert types["meta"] == arrow_type(META) and pa.types.is_struct(types["meta"])
    assert types["meta"]["scores"].type == pa.list_(pa.float64())
    assert types["ts"] == pa.timestamp("us", "UTC") and types["local_ts"] == pa.timestamp("us")
    assert types["links"] == pa.list_(pa.struct([("href", pa.string()), ("rel", pa.string())]))
    assert types["unstable"] == pa.string() and types["day"] == pa.string()
    got = {r["id"]: r for r in read_output(out)}
    for i in (0, 3, 7):
        want, r = rows[i], got[rows[i]["id"]]
        meta = dict(want["meta"], lang=want["meta"].get("lang"))
        meta["scores"] = [float(x) for x in meta["scores"]]
        meta["fetch"] = {"status": meta["fetch"]["status"],
                         "at": dt.datetime.fromisoformat(meta["fetch"]["at"])}
        assert r["meta"] == meta and list(r["meta"]) == ["url", "lang", "scores", "fetch"]
        assert r["ts"] == dt.datetime.fromisoformat(want["ts"])  # the same instant, in UTC
        assert r["ts"].utcoffset() == dt.timedelta(0)
        assert r["local_ts"] == dt.datetime.fromisoformat(want["local_ts"])
        assert r["local_ts"].tzinfo is None and r["day"] == want["day"]
        assert r["links"] == want["links"] and json.loads(r["unstable"]) == want["unstable"]
        assert r["license"] is None and r["extra_fields"] is None
    assert got[rows[0]["id"]]["ts"] == dt.datetime(2024, 1, 2, 1, 0, 5, tzinfo=UTC)  # +02:00
    # JSONL output: objects stay objects
    line = {r["id"]: r for r in read_jsonl_gz(out / "jsonl")}[rows[1]["id"]]
    assert line["meta"]["url"] == rows[1]["meta"]["url"] and line["links"] == rows[1]["links"]
    card = (out / "README.md").read_text()
    assert "timestamp[us, tz=UTC]" in card and "struct<url: string" in card
    # pandas and Hugging Face datasets see the nested types
    import pandas as pd

    df = pd.read_parquet(out / "data")
    assert str(df["ts"].dtype) == "datetime64[us, UTC]" and isinstance(df["meta"][0], dict)
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("parquet", data_files=str(out / "data" / "*.parquet"),
                               split="train", cache_dir=str(tmp_path / "hf"))
    assert ds.features["ts"].dtype == "timestamp[us, tz=UTC]"
    assert ds.features["meta"]["url"].dtype == "string"
    assert ds.features["meta"]["fetch"]["status"].dtype == "int64"
    by_id = {r["id"]: r for r in ds}
    assert by_id[rows[1]["id"]]["meta"]["scores"] == [1.0, 0.25]


def test_parquet_structs_lists_and_timestamps_round_trip_as_the_same_types(tmp_path):
    docs = stdlib_doc_rows(("json", "textwrap", "csv"))[:12]
    n = len(docs)
    meta_t = pa.struct([("url", pa.string()), ("scores", pa.list_(pa.float64())),
                        ("crawl", pa.struct([("id", pa.int64()), ("ok", pa.bool_())]))])
    table = pa.table({
        "content": [d["text"] for d in docs],
        "meta": pa.array([{"url": f"https://docs.python.org/{d['id']}", "scores": [i / 2, 1.0],
                           "crawl": {"id": i, "ok": i % 2 == 0}} for i, d in enumerate(docs)],
                         meta_t),
        "links": pa.array([[{"href": d["id"], "n": i}] for i, d in enumerate(docs)],
                          pa.list_(pa.struct([("href", pa.string()), ("n", pa.int64())]))),
        "grid": pa.array([[[i, i + 1], [i * 2]] for i in range(n)], pa.list_(pa.list_(pa.int64()))),
        "fetched": pa.array([1_700_000_000_000 + i for i in range(n)],
                            pa.timestamp("ms", "Europe/Berlin")),
        "seen_ns": pa.array([1_700_000_000_000_000_001 + i for i in range(n)],
                            pa.timestamp("ns")),
        "flags": pa.array([{"a": "x"}] * n, pa.map_(pa.string(), pa.string())),  # map: json
    })
    pq.write_table(table, tmp_path / "in.parquet")
    src = {"name": "pq", "type": "parquet", "path": str(tmp_path / "in.parquet"),
           "text_field": "content"}
    out = tmp_path / "out"
    res = build(config([src], [], out, jsonl=True))
    assert res.stats["conservation_ok"] and res.stats["counts"]["kept"] == n
    cols = res.stats["columns"]
    assert cols["fetched"] == "timestamp[ms, tz=Europe/Berlin]" and cols["flags"] == "json"
    types = {f.name: f.type for f in _schema(out)}
    for name in ("meta", "links", "grid", "fetched", "seen_ns"):
        assert types[name] == table.schema.field(name).type, name
    got = pq.read_table(out / "data")  # rows back with the same values
    want = table.select(["meta", "links", "grid", "fetched", "seen_ns"])
    key = {json.dumps(r["meta"]): r for r in got.select(want.column_names).to_pylist()}
    for r in want.to_pylist():
        assert key[json.dumps(r["meta"])] == r
    assert json.loads(got.to_pylist()[0]["flags"]) == [["a", "x"]]
    # a resumed build (checkpoint written and read back) gives the same files
    stages = [{"stage": "length_filter", "min_words": 1, "checkpoint": True},
              {"stage": "exact_dedup"}]
    first = build(config([src], stages, tmp_path / "ck"))
    stages[1] = {"stage": "minhash_dedup"}
    again = build(config([src], stages, tmp_path / "ck"))
    assert first.stats["conservation_ok"] and again.stats["resumed_from"] == "length_filter"
    resumed = {f.name: f.type for f in _schema(tmp_path / "ck")}
    assert all(resumed[k] == types[k] for k in want.column_names)
    back = {json.dumps(r["meta"]): r for r in read_output(tmp_path / "ck")}
    assert len(back) == again.stats["counts"]["kept"] >= n // 2  # minhash may drop near-dups
    for r in want.to_pylist():
        if json.dumps(r["meta"]) in back:
            assert {k: back[json.dumps(r["meta"])][k] for k in want.column_names} == r


def test_value_read_after_the_sample_that_does_not_fit_goes_whole_to_extra_fields(
        tmp_path, monkeypatch):
    monkeypatch.setattr(inf, "SAMPLE_RECORDS", 20)
    rows = _rows(40)
    late = {
        20: {"meta": {**rows[20]["meta"], "new_key": 1}},  # a key the struct lacks
        21: {"meta": "just a string"},  # not an object
        22: {"ts": "yesterday"},  # not a timestamp
        23: {"ts": "2024-01-02T03:04:05"},  # no offset for a zoned column: not assumed UTC
        24: {"local_ts": "2024-01-02T03:04:05Z"},  # an offset for a naive column
        25: {"meta": {**rows[25]["meta"], "scores": [1, "high"]}},  # a list element
        26: {"links": [{"href": "#x", "rel": 3}]},  # a struct field in a list
        27: {"meta": {"url": "https://docs.python.org/3/"}},  # missing keys: fits, nulls
        28: {"ts": "2024-01-02T03:04:05.5-01:00"},  # another offset: fits, as UTC
    }
    for i, change in late.items():
        rows[i].update(change)
    write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out"
    res = build(config([_src(tmp_path / "in.jsonl")], [], out, jsonl=True))
    assert res.stats["conservation_ok"] and res.stats["counts"]["kept"] == len(rows)
    assert res.stats["columns"]["meta"] == META  # planned from the first 20 records
    got = {r["id"]: r for r in read_output(out)}
    for i in range(20, 27):
        (field, value), = late[i].items()
        r = got[rows[i]["id"]]
        assert r[field] is None, i
        assert json.loads(r["extra_fields"]) == {field: value}, i  # the original value, whole
    r27, r28 = got[rows[27]["id"]], got[rows[28]["id"]]
    assert r27["meta"] == {"url": "https://docs.python.org/3/", "lang": None, "scores": None,
                           "fetch": None} and r27["extra_fields"] is None
    assert r28["ts"] == dt.datetime(2024, 1, 2, 4, 4, 5, 500000, tzinfo=UTC)
    assert got[rows[0]["id"]]["extra_fields"] is None
    jsonl = {r["id"]: r for r in read_jsonl_gz(out / "jsonl")}
    assert json.loads(jsonl[rows[22]["id"]]["extra_fields"]) == {"ts": "yesterday"}


def test_type_rules():
    vt, m, final = inf.value_type, inf.merge_types, inf.final_type
    a = vt({"url": "u", "lang": "en", "scores": [1, 2]})
    b = vt({"url": "u", "scores": [0.5], "extra": None})
    assert m(a, b) == "struct<url: string, lang: string, scores: list<float64>, extra: null>"
    assert final(m(a, b)).endswith("extra: json>")  # only ever null inside: json text
    assert m(a, vt({"url": 3})) == "json"  # a conflict inside: the whole field json
    assert m(a, vt("text")) == "json" and m(a, vt(None)) == a
    assert vt({f"k{i}": i for i in range(inf.MAX_STRUCT_FIELDS + 1)}) == "json"  # map-like
    many = [vt({f"k{i}": i}) for i in range(inf.MAX_STRUCT_FIELDS + 1)]
    t = many[0]
    for x in many[1:]:
        t = m(t, x)
    assert t == "json"  # keys that vary from record to record: map-like, json
    assert vt({"bad\tname": 1}) == "json" and final(vt({})) == "json"
    assert vt([{"a": 1}, {"b": "x"}]) == "list<struct<a: int64, b: string>>"
    assert vt([[1], [2.5]]) == "list<list<float64>>" and vt([True]) == "list<bool>"
    deep = 1
    for _ in range(inf.MAX_DEPTH + 1):
        deep = {"d": deep}
    assert vt(deep) == "json"
    utc, naive = vt("2024-01-02T03:04:05Z"), vt("2024-01-02 03:04")
    assert (utc, naive) == ("timestamp[us, tz=UTC]", "timestamp[us]")
    assert vt("2024-01-02") == "string" and vt("2024-01-02T03:04:05.1234567") == "string"
    assert m(utc, naive) == "string" and m(utc, "string") == "string"
    assert m("timestamp[ms]", "timestamp[ns]") == "string"
    # type names parse back, also with field names that need quoting
    name = 'struct<"a b": list<struct<"x,y": timestamp[ns, tz=Europe/Berlin]>>, c: json>'
    assert format_type(parse_type(name)) == name
    assert arrow_type(name) == pa.struct([
        ("a b", pa.list_(pa.struct([("x,y", pa.timestamp("ns", "Europe/Berlin"))]))),
        ("c", pa.string())])
    for bad in ("struct<>", "list<?>", "struct<a int64>", "timestamp", "list<int64"):
        with pytest.raises(ValueError, match="unknown column type"):
            arrow_type(bad)
    # fitting a value
    t = final(m(a, b))
    assert inf.fit(t, {"url": "v"}) == {"url": "v", "lang": None, "scores": None, "extra": None}
    assert inf.fit(t, {"url": "v", "other": 1}) is inf._NOFIT
    assert inf.fit(t, {"scores": [1, None]})["scores"] == [1.0, None]
    assert inf.fit("timestamp[s]", dt.datetime(2024, 1, 1, 0, 0, 0, 5)) is inf._NOFIT
    assert inf.fit("timestamp[us, tz=UTC]", "2024-01-02T03:04:05+01:00") == dt.datetime(
        2024, 1, 2, 2, 4, 5, tzinfo=UTC)
    assert inf.fit("timestamp[us]", "2024-01-02T03:04:05+01:00") is inf._NOFIT
    # a record is the same after a checkpoint (written, read back): the zone object too
    v = inf.fit("timestamp[us, tz=UTC]", "2024-01-02T03:04:05Z")
    assert repr(v) == repr(pa.array([v], pa.timestamp("us", "UTC")).to_pylist()[0])


def test_planned_types_are_deterministic_and_do_not_depend_on_the_sample_order(tmp_path):
    rows = _rows(30)
    for i, chunk in enumerate((rows[:10], rows[10:20], rows[20:])):
        write_jsonl(tmp_path / f"part-{i}.jsonl", chunk)
    cfg = config([_src(tmp_path / "part-*.jsonl")], [], tmp_path / "out")
    first = plan_build(build_config_from_dict(cfg)).columns
    assert first == plan_build(build_config_from_dict(cfg)).columns
    assert first["meta"] == META and list(first)[:2] == ["meta", "ts"]


def test_hf_dataset_structs_sequences_and_timestamps_keep_their_types(tmp_path):
    datasets = pytest.importorskip("datasets")
    docs = stdlib_doc_rows(("json", "textwrap"))[:10]
    features = datasets.Features({
        "text": datasets.Value("string"),
        "fetched": datasets.Value("timestamp[us, tz=UTC]"),
        "links": datasets.Sequence({"href": datasets.Value("string")}),  # a struct of lists
        "meta": {"module": datasets.Value("string"), "n": datasets.Value("int32")},
    })
    ds = datasets.Dataset.from_dict({
        "text": [d["text"] for d in docs],
        "fetched": [dt.datetime(2024, 5, 1, i, tzinfo=UTC) for i in range(len(docs))],
        "links": [{"href": [d["id"], d["source"]]} for d in docs],
        "meta": [{"module": d["source"], "n": i} for i, d in enumerate(docs)]}, features=features)
    ds.save_to_disk(str(tmp_path / "ds"))
    out = tmp_path / "out"
    res = build(config([{"name": "hf", "type": "hf", "path": str(tmp_path / "ds")}], [], out))
    cols = res.stats["columns"]
    assert (cols["fetched"], cols["links"], cols["meta"]) == (
        "timestamp[us, tz=UTC]", "struct<href: list<string>>", "struct<module: string, n: int64>")
    rows = sorted(read_output(out), key=lambda r: r["fetched"])
    assert rows[3]["fetched"] == dt.datetime(2024, 5, 1, 3, tzinfo=UTC)
    assert rows[3]["links"] == {"href": [docs[3]["id"], docs[3]["source"]]}
    assert rows[3]["meta"] == {"module": docs[3]["source"], "n": 3}
    assert all(r["extra_fields"] is None for r in rows)
