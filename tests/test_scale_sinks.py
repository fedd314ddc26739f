"""External-sort sinks and spilling exact dedup: same bytes and decisions whatever the budget."""

import gzip
import hashlib
import inspect
import json
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.io import sinks
from pipelines.core.spill import read_spill, write_spill
from pipelines.stages.dedup import exact_dedup
from pipelines.stages.testing import local_pipeline, run_stage


def _docs(n=120):
    import collections
    import functools
    import json as j
    import textwrap

    out = []
    for mod in (collections, functools, j, textwrap, inspect, pathlib_mod()):
        for _name, obj in sorted(vars(mod).items()):
            doc = inspect.getdoc(obj) if callable(obj) else None
            if doc and len(doc.split()) > 8:
                out.append(doc)
    return sorted(set(out))[:n]


def pathlib_mod():
    import pathlib

    return pathlib


SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string()), ("n", pa.int64())])


def _rows():
    docs = _docs()
    rows = [{"id": f"d{i:04d}", "text": t, "n": i} for i, t in enumerate(docs)]
    # ties on the sort key (same id, different content) and exact repeats
    rows += [{"id": "d0003", "text": "another text with the same id", "n": -1},
             {"id": "d0003", "text": "a third one, also d0003", "n": -2}, dict(rows[5])]
    return rows


def _write(rows, out, fmt, spill_bytes, row_group_size=sinks.ROW_GROUP_SIZE, part=None,
           workers=1):
    p = local_pipeline(workers, "in_memory" if workers == 1 else "multi_processing")
    (p | beam.Create(rows) | sinks.WriteSortedShards(
        str(out), 3, fmt, schema=SCHEMA if fmt == "parquet" else None, partition_by=part,
        spill_bytes=spill_bytes, row_group_size=row_group_size))
    p.run().wait_until_finish()
    return {str(f.relative_to(out)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(Path(out).rglob("*")) if f.is_file()}


def test_stream_writers_equal_one_shot_bytes(tmp_path):
    rows = _rows()
    for rgs in (7, 50_000):
        path = tmp_path / f"a{rgs}.parquet"
        n = sinks.write_parquet_stream(str(path), iter(rows), SCHEMA, rgs)
        assert n == len(rows)
        assert path.read_bytes() == sinks.parquet_bytes(rows, SCHEMA, rgs)
    empty = tmp_path / "e.parquet"
    assert sinks.write_parquet_stream(str(empty), iter([]), SCHEMA) == 0
    assert empty.read_bytes() == sinks.parquet_bytes([], SCHEMA)
    gz = tmp_path / "a.jsonl.gz"
    assert sinks.write_jsonl_gz_stream(str(gz), iter(rows), lines_per_write=5) == len(rows)
    assert gz.read_bytes() == sinks.jsonl_gz_bytes(rows)
    assert [json.loads(x) for x in gzip.decompress(gz.read_bytes()).splitlines()] == rows


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_external_sort_same_files_for_any_spill_budget(tmp_path, fmt):
    rows = _rows()
    one_run = _write(rows, tmp_path / "big", fmt, spill_bytes=1 << 30)
    many_runs = _write(list(reversed(rows)), tmp_path / "small", fmt, spill_bytes=2000)
    assert one_run == many_runs
    assert sorted(one_run) == [f"part-0000{i}-of-00003.{'parquet' if fmt == 'parquet' else 'jsonl.gz'}"
                               for i in range(3)]
    assert not (tmp_path / "small-runs").exists() and not (tmp_path / "big-runs").exists()
    # content: every row once, each shard sorted by id, ties by content
    got = []
    for f in sorted((tmp_path / "small").glob("part-*")):
        if fmt == "parquet":
            shard = pq.read_table(f).to_pylist()
        else:
            shard = [json.loads(x) for x in gzip.decompress(f.read_bytes()).splitlines()]
        assert shard == sinks.deterministic_sort(shard, lambda r: r["id"])
        got.extend(shard)
    assert sorted(map(sinks._stable, got)) == sorted(map(sinks._stable, rows))


def test_parquet_many_row_groups_equal_one_shot(tmp_path):
    rows = _rows()
    files = _write(rows, tmp_path / "x", "parquet", spill_bytes=3000, row_group_size=4)
    for name in files:
        data = pq.read_table(tmp_path / "x" / name).to_pylist()
        assert (tmp_path / "x" / name).read_bytes() == sinks.parquet_bytes(data, SCHEMA, 4)


def test_row_groups_built_from_batches_keep_their_bounds(tmp_path, monkeypatch):
    """A row group is assembled from Arrow batches of BATCH_ROWS rows (the group never exists as
    Python rows at once); its bounds stay ``row_group_size`` rows or ROW_GROUP_BYTES of text,
    the row that reaches the byte bound being the group's last, and the content is unchanged."""
    rows = _rows()
    sizes = [sinks.approx_size(r) for r in rows]
    monkeypatch.setattr(sinks, "BATCH_ROWS", 3)
    monkeypatch.setattr(sinks, "ROW_GROUP_BYTES", sum(sizes[:10]) - 1)  # row 10 closes group 1
    path = tmp_path / "g.parquet"
    assert sinks.write_parquet_stream(str(path), iter(rows), SCHEMA, 50_000) == len(rows)
    meta = pq.ParquetFile(path).metadata
    counts = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert counts[0] == 10 and sum(counts) == len(rows)
    assert pq.read_table(path).to_pylist() == rows
    by_rows = tmp_path / "r.parquet"
    monkeypatch.setattr(sinks, "ROW_GROUP_BYTES", 1 << 30)
    sinks.write_parquet_stream(str(by_rows), iter(rows), SCHEMA, 7)
    meta = pq.ParquetFile(by_rows).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == (
        [7] * (len(rows) // 7) + ([len(rows) % 7] if len(rows) % 7 else []))


def test_sort_buffer_holds_pickled_rows(tmp_path):
    """The sink's sort buffer holds each row pickled with its key (bytes ~ its text, not 3-4x
    as Python objects) and the run file carries them as ``(key, row bytes)``."""
    import pickle

    spill = sinks._SpillSortedRuns(str(tmp_path / "runs"), 1, lambda r: r["id"], None, 1 << 30)
    spill.start_bundle()
    rows = _rows()[:5]
    for r in reversed(rows):
        assert list(spill.process(r)) == []
    assert all(isinstance(d, bytes) for _k, d in spill._buf[0])
    (out,) = list(spill.finish_bundle())
    shard, path = out.value
    assert shard == 0
    entries = list(read_spill(path))
    assert [k for k, _ in entries] == sorted(r["id"] for r in rows)
    assert [pickle.loads(d) for _, d in entries] == sorted(rows, key=lambda r: r["id"])


def test_partitioned_shards(tmp_path):
    rows = [dict(r, lang="en" if r["n"] % 2 else "de/../x") for r in _rows()]
    schema = SCHEMA.append(pa.field("lang", pa.string()))
    p = local_pipeline()
    (p | beam.Create(rows) | sinks.WriteSortedShards(str(tmp_path / "o"), 2, "parquet",
                                                    schema=schema, partition_by="lang",
                                                    spill_bytes=5000))
    p.run().wait_until_finish()
    folders = sorted(d.name for d in (tmp_path / "o").iterdir())
    assert folders == ["lang-de_.._x", "lang-en"]
    total = sum(pq.read_metadata(f).num_rows for f in (tmp_path / "o").rglob("*.parquet"))
    assert total == len(rows)
    # the default 100,000 rows per shard: each small partition is one file, not 2
    assert sorted(f.name for f in (tmp_path / "o").rglob("*.parquet")) == [
        "part-00000-of-00001.parquet"] * 2


def test_partition_shards_follow_the_record_count(tmp_path):
    assert sinks.partition_shards(0, 8, 100) == 1
    assert sinks.partition_shards(250, 8, 100) == 3
    assert sinks.partition_shards(10_000, 8, 100) == 8
    rows = [dict(r, lang="en" if i % 4 else "de") for i, r in enumerate(_rows() * 3)]
    schema = SCHEMA.append(pa.field("lang", pa.string()))
    n_en = sum(r["lang"] == "en" for r in rows)
    p = local_pipeline()
    (p | beam.Create(rows) | sinks.WriteSortedShards(str(tmp_path / "o"), 8, "parquet",
                                                    schema=schema, partition_by="lang",
                                                    spill_bytes=5000, rows_per_shard=20))
    p.run().wait_until_finish()
    en = sorted((tmp_path / "o" / "lang-en").glob("*.parquet"))
    k = sinks.partition_shards(n_en, 8, 20)
    assert len(en) <= k and all(f.name.endswith(f"-of-{k:05d}.parquet") for f in en)
    assert sum(pq.read_metadata(f).num_rows for f in en) == n_en


def test_spill_file_roundtrip_and_truncation(tmp_path):
    rows = [(b"k%d" % i, {"id": str(i), "text": t}) for i, t in enumerate(_docs() * 3)]
    path = tmp_path / "s.bin"
    write_spill(str(path), rows)
    assert list(read_spill(str(path))) == rows
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(EOFError, match="truncated"):
        list(read_spill(str(path)))


def test_spill_file_names_are_made_in_one_place():
    """Every spill file is named by pipelines/core/spill.py, with the names on disk of before
    (issue 21), and the build recognises a writer's leftover runs by the same rule."""
    import re

    from pipelines.build.run import _CHECKPOINT_FILE
    from pipelines.core import spill

    assert spill.spill_file("/s", "spill", 0xAB) == "/s/spill-00000000000000ab.bin"  # exact_dedup
    assert spill.spill_file("/s", "records", 2**63 - 1) == "/s/records-7fffffffffffffff.bin"
    assert spill.spill_file_id("/a-b/spill-00000000000000ab.bin") == 0xAB
    assert spill.spill_file_id(spill.spill_file("/x-y", "cand", 12345)) == 12345
    assert 0 <= spill.new_file_id() < 2**63
    assert re.fullmatch(r"/s/rows-[0-9a-f]{32}\.bin", spill.rows_file("/s"))
    runs = spill.run_folder("/ck/removed")
    assert runs == "/ck/removed-runs"
    assert spill.run_file(runs, 3, "ff") == "/ck/removed-runs/run-3-ff.bin"
    assert spill.run_file(runs, "0-9a", "ff") == "/ck/removed-runs/run-0-9a-ff.bin"
    for kind in ("data", "removed", "dead_letter"):
        rel = spill.run_file(spill.run_folder(kind), "1-2c", "0f" * 16)
        assert _CHECKPOINT_FILE.match(rel), rel
    assert not _CHECKPOINT_FILE.match("data-runs/notes.txt")


def test_exact_dedup_same_decisions_with_many_spill_files(tmp_path, monkeypatch):
    docs = _docs(60)
    recs = []
    for i, t in enumerate(docs):
        recs.append({"id": f"a{i:03d}", "text": t, "source": "s"})
        if i % 3 == 0:  # a whitespace variant (same canonical text), with a larger id
            recs.append({"id": f"b{i:03d}", "text": t.replace(" ", "  ", 2) + "\n", "source": "s"})
        if i % 7 == 0:  # the very same record twice: exactly one copy survives
            recs.append({"id": f"a{i:03d}", "text": t, "source": "s"})
    big = run_stage({"stage": "exact_dedup"}, recs, output_dir=str(tmp_path / "o1"))
    monkeypatch.setattr(exact_dedup, "SPILL_BYTES", 500)
    small = run_stage({"stage": "exact_dedup"}, list(reversed(recs)),
                      output_dir=str(tmp_path / "o2"))
    for res in (big, small):
        assert [r["id"] for r in res["kept"]] == [f"a{i:03d}" for i in range(len(docs))]
        dc = {r["id"]: r["dup_count"] for r in res["kept"]}
        assert dc["a000"] == 3 and dc["a003"] == 2 and dc["a001"] == 1 and dc["a007"] == 2
        assert len(res["removed"]) == len(recs) - len(docs)
        assert all(reason == "duplicate" for reason, _ in res["removed"])
    assert big["kept"] == small["kept"]
    assert sorted(map(sinks._stable, big["removed"])) == sorted(map(sinks._stable,
                                                                    small["removed"]))
    # spill files are gone, and so are the folders only they used
    for out in ("o1", "o2"):
        assert not (tmp_path / out / "_staging").exists()


def test_exact_dedup_keep_longest_across_spill_files(tmp_path, monkeypatch):
    monkeypatch.setattr(exact_dedup, "SPILL_BYTES", 200)
    base = _docs(5)
    recs = [{"id": f"x{i}", "text": base[0] + " " * i, "source": "s"} for i in range(6)]
    res = run_stage({"stage": "exact_dedup", "keep": "longest", "canonicalize": "none"}, recs,
                    output_dir=str(tmp_path))
    assert len(res["kept"]) == 6  # canonicalize none: trailing spaces make them distinct
    res = run_stage({"stage": "exact_dedup", "keep": "longest"}, recs, output_dir=str(tmp_path))
    assert [(r["id"], r["dup_count"]) for r in res["kept"]] == [("x5", 6)]


def test_canonical_without_regex_matches_the_regex_definition():
    import re

    from filters.text_hash import canonical

    ws = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2005\u200a\u2028\u2029\u202f\u205f\u3000"
    samples = [d.replace(" ", ws[i % len(ws)] * (1 + i % 3)) for i, d in enumerate(_docs(40))]
    samples += ["", ws, ws + "a" + ws, "x\u200by", "Ünïcödé\u00a0\u00a0text", "\ufeffbom"]
    for text in samples:
        want = re.sub(r"\s+", " ", text).strip()
        assert canonical(text) == want
        assert canonical(text, "lower") == want.lower()
        assert canonical(text, "none") == text


# Many spill files with one and two worker processes, same bytes: one build with small spill
# budgets on two workers against the default-budget one-worker build, in
# tests/test_build.py::test_same_output_with_one_and_two_workers (one reference build shared
# with the threads test instead of a second pair of demo builds here).


def test_no_empty_shards_beyond_the_first(tmp_path):
    """``shards: 100000`` and one record: one file, not 100,000 (issue 23, item 16); an output
    with no rows keeps one empty shard that carries the schema."""
    rows = [{"id": "only", "text": "one record", "n": 1}]
    p = local_pipeline()
    (p | "One" >> beam.Create(rows)
     | "W1" >> sinks.WriteSortedShards(str(tmp_path / "one"), 100_000, "parquet", schema=SCHEMA))
    (p | "None" >> beam.Create([]).with_output_types(dict)
     | "W0" >> sinks.WriteSortedShards(str(tmp_path / "none"), 8, "parquet", schema=SCHEMA))
    p.run().wait_until_finish()
    one = [f.name for f in (tmp_path / "one").iterdir()]
    assert len(one) == 1 and one[0].endswith("-of-100000.parquet")
    assert pq.read_table(tmp_path / "one" / one[0]).to_pylist() == rows
    none = [f.name for f in (tmp_path / "none").iterdir()]
    assert none == ["part-00000-of-00008.parquet"]
    table = pq.read_table(tmp_path / "none" / none[0])
    assert table.num_rows == 0 and table.schema.names == SCHEMA.names
