"""Hostile inputs (issue 10, input side): every case on real files made in tmp_path.

No record may vanish while the build reports success: input records are counted from the raw
data (pipelines.io.framing / Parquet metadata), every unparseable record is its own dead-letter
row, and a bad value, file name or special file never crashes or hangs the build.
"""

from __future__ import annotations

import bz2
import gzip
import json
import os
import threading
import time
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from pipelines.build import accounting as acc
from pipelines.build import run as build_run  # run_build calls the plan_build it imported
from pipelines.core.settings import ConfigError
from pipelines.io.source_config import SourceConfig
from pipelines.build.config import build_config_from_dict, load_build_config
from pipelines.io.framing import RecordFramer
from pipelines.io.input_files import list_input_files
from pipelines.io.sources import COUNTED, DEAD, _ReadJsonl, file_change
from tests.buildutil import build, config, read_jsonl_gz, read_output

TEXT = "A sentence long enough to be a document of its own, with words in it."


def _line(i: int, **extra) -> bytes:
    return json.dumps({"text": f"{TEXT} Number {i}.", **extra}).encode() + b"\n"


def _outputs(dofn, element) -> tuple[list[dict], list[dict], list[dict]]:
    """Run a source DoFn on one element: (records, dead rows, counted rows)."""
    recs, dead, counted = [], [], []
    for out in dofn.process(element):
        if getattr(out, "tag", None) == DEAD:
            dead.append(out.value)
        elif getattr(out, "tag", None) == COUNTED:
            counted.append(out.value)
        else:
            recs.append(out)
    return recs, dead, counted


def _input_file(path: Path):
    files, _ = list_input_files(str(path), "jsonl")
    return files[0]


# ----------------------------------------------------------------- one build, many hostile files


@pytest.fixture
def hostile_tree(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    # names a directory source must read (case-insensitive, every compression suffix)
    (d / "a.JSONL").write_bytes(_line(1))
    (d / "b.ndjson").write_bytes(_line(2))
    (d / "c.json.bz2").write_bytes(bz2.compress(_line(3)))
    (d / "d.jsonl.zstd").write_bytes(zstandard.ZstdCompressor().compress(_line(4)))
    (d / "e.json.zst").write_bytes(zstandard.ZstdCompressor().compress(_line(5)))
    (d / "f.Jsonl.GZ").write_bytes(gzip.compress(_line(6)))
    # a JSON line nested 200,000 deep between valid lines: the 3 lines after it must survive
    deep = b"[" * 200_000 + b"]" * 200_000 + b"\n"
    (d / "nested.jsonl").write_bytes(_line(7) + deep + _line(8) + _line(9) + _line(10))
    # a line over max_record_bytes (set to 1,024 below)
    (tmp_path / "long.jsonl").write_bytes(json.dumps({"text": "x" * 5000}).encode() + b"\n" + _line(11))
    # a file name that is not UTF-8
    (d / os.fsdecode(b"caf\xe9.jsonl")).write_bytes(_line(12))
    # found but never read
    (d / "notes.txt").write_bytes(_line(99))
    (d / ".hidden.jsonl").write_bytes(_line(98))
    (d / "broken.jsonl").symlink_to(d / "does-not-exist.jsonl")
    os.mkfifo(d / "pipe.jsonl")
    # lone surrogate in the id field (a second source, with id_field)
    ids = tmp_path / "ids.jsonl"
    ids.write_bytes(b'{"uid": "\\ud800", "text": "lone surrogate in the id field of this one"}\n'
                    + _line(13, uid="fine"))
    # Parquet: invalid UTF-8 at row 6,000 of 8,000
    vals = [f"{TEXT} Row {i}.".encode() for i in range(8000)]
    vals[6000] = b"bad \xff\xfe utf-8 in a parquet string column"
    pq.write_table(pa.table({"text": pa.array(vals, type=pa.binary()).view(pa.string())}),
                   tmp_path / "rows.parquet")
    return tmp_path


def test_hostile_files_lose_nothing(hostile_tree):
    t = hostile_tree
    fifo = t / "in" / "pipe.jsonl"
    # if anything opened the FIFO it would block forever: unblock it after a while so the
    # test fails instead of hanging
    guard = threading.Timer(120, lambda: open(fifo, "wb").close())  # noqa: SIM115
    guard.daemon = True
    guard.start()
    logs: list[str] = []
    try:
        res = build(config([
            {"name": "dir", "type": "jsonl", "path": str(t / "in")},
            {"name": "long", "type": "jsonl", "path": str(t / "long.jsonl"),
             "max_record_bytes": 1024},
            {"name": "ids", "type": "jsonl", "path": str(t / "ids.jsonl"), "id_field": "uid"},
            {"name": "pq", "type": "parquet", "path": str(t / "rows.parquet")},
        ], [], t / "out"), log=logs.append)
    finally:
        guard.cancel()
    s = res.stats
    assert s["conservation_ok"]
    # 12 JSONL records in the directory, 2 + 2 in long/ids.jsonl, 8,000 Parquet rows
    assert s["counts"] == {"input": 8016, "kept": 8012, "removed": 0, "dead_letter": 4}
    per_file = {Path(f["path"]).name: f["records"] for f in s["input_files"]}
    assert per_file["nested.jsonl"] == 5 and per_file["rows.parquet"] == 8000
    assert per_file["caf\\xe9.jsonl"] == 1 and per_file["long.jsonl"] == 2
    assert all(f["changed"] is None for f in s["input_files"])

    kept = read_output(t / "out")
    texts = {r["text"] for r in kept}
    for i in (8, 9, 10, 11):  # the lines after the nested one and after the long one
        assert f"{TEXT} Number {i}." in texts
    for i in (1, 2, 3, 4, 5, 6, 12):  # every name a directory source must read
        assert f"{TEXT} Number {i}." in texts
    assert f"{TEXT} Number 99." not in texts and f"{TEXT} Number 98." not in texts
    assert "caf\\xe9.jsonl:1" in {r["id"] for r in kept}  # undecodable name byte, escaped
    assert sum(r["source"] == "pq" for r in kept) == 7999

    dead = {d["reason"].split(":")[0]: d for d in read_jsonl_gz(t / "out" / "dead_letter")}
    assert sorted(dead) == ["bad_id", "bad_json", "invalid_utf8", "record_too_large"]
    assert dead["bad_json"]["location"].endswith("nested.jsonl:2")
    assert dead["record_too_large"]["location"].endswith("long.jsonl:1")
    assert "5,012 bytes > max_record_bytes 1,024" in dead["record_too_large"]["reason"]
    assert dead["invalid_utf8"]["location"].endswith("rows.parquet#row=6000")
    assert "\\xff" in dead["invalid_utf8"]["raw"]
    assert dead["bad_id"]["source"] == "ids"

    skipped = {Path(f["path"]).name: f["reason"] for f in s["skipped_files"]}
    assert set(skipped) == {"notes.txt", ".hidden.jsonl", "broken.jsonl", "pipe.jsonl"}
    assert skipped["pipe.jsonl"] == "special file (FIFO), never opened"
    assert skipped["broken.jsonl"] == "broken symlink"
    assert "name does not end in" in skipped["notes.txt"]
    assert any("skipping 4 file(s)" in m for m in logs)
    assert any("pipe.jsonl: special file (FIFO)" in m for m in logs)
    page = (t / "out" / "report.html").read_text()
    assert "Skipped input files (4)" in page and "special file (FIFO), never opened" in page


# ----------------------------------------------------------------- files changed during the build


def test_file_truncated_after_planning_fails_the_build_naming_it(tmp_path, monkeypatch):
    src = tmp_path / "big.jsonl"
    src.write_bytes(b"".join(_line(i) for i in range(2500)))
    real_plan = build_run.plan_build

    def plan_then_truncate(*a, **kw):
        plan = real_plan(*a, **kw)
        src.write_bytes(b"")  # truncated to 0 bytes between planning and reading
        return plan

    monkeypatch.setattr(build_run, "plan_build", plan_then_truncate)
    with pytest.raises(acc.InputChangedError, match=r"big\.jsonl: size changed since planning: "
                                                    r"[\d,]+ -> 0 bytes") as e:
        build(config([{"name": "s", "type": "jsonl", "path": str(src)}], [], tmp_path / "out"))
    assert e.value.exit_code == 5
    assert not (tmp_path / "out" / "data").exists()


def test_modified_file_is_detected_without_opening(tmp_path):
    f = tmp_path / "a.jsonl"
    f.write_bytes(_line(1))
    planned = _input_file(f)
    assert file_change(planned) is None
    os.utime(f, (planned.mtime + 10, planned.mtime + 10))
    assert file_change(planned).startswith("modified since planning")
    f.unlink()
    os.mkfifo(f)
    assert file_change(planned) == "no longer a regular file"
    src = SourceConfig(name="s", type="jsonl", path=str(f))
    recs, dead, counted = _outputs(_ReadJsonl(src), planned)  # must not block on the FIFO
    assert (recs, dead) == ([], []) and counted[0]["changed"] == "no longer a regular file"


# ----------------------------------------------------------------- memory and framing


def test_huge_line_is_dead_lettered_in_bounded_memory(tmp_path):
    big = 50 << 20
    plain = tmp_path / "big.jsonl"
    with open(plain, "wb") as fh:
        fh.write(b'{"text": "')
        for _ in range(big >> 20):
            fh.write(b"a" * (1 << 20))
        fh.write(b'"}\n' + _line(1))
    comp = tmp_path / "big.jsonl.zst"  # a 50 MB line compresses to a few KB: a small bomb
    with open(plain, "rb") as fin, open(comp, "wb") as fout:
        zstandard.ZstdCompressor().copy_stream(fin, fout)
    src = SourceConfig(name="s", type="jsonl", path=str(tmp_path), max_record_bytes=1 << 20)
    for path in (plain, comp):
        tracemalloc.start()
        try:
            recs, dead, counted = _outputs(_ReadJsonl(src), _input_file(path))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 12 << 20, f"{path.name}: peak {peak / 2**20:.0f} MiB"
        assert [r["text"] for r in recs] == [f"{TEXT} Number 1."]
        assert len(dead) == 1 and dead[0]["reason"].startswith(
            f"record_too_large: {big + 12:,} bytes > max_record_bytes 1,048,576")
        assert len(dead[0]["raw"]) < 25_000
        assert counted[0]["records"] == 2 and counted[0]["changed"] is None


def test_framer_counts_records_not_parses():
    chunks = [b'{"a"', b": 1}\n\n  \n{bad json\r\n", b"[1,2]", b"\n\nlast-no-newline"]
    framer = RecordFramer(iter(chunks), max_record_bytes=1024)
    frames = list(framer)
    assert [f.data for f in frames] == [b'{"a": 1}', b"{bad json", b"[1,2]",
                                        b"last-no-newline"]
    assert [f.lineno for f in frames] == [1, 4, 5, 7]
    assert framer.records == 4

    def broken():
        yield b'{"text": "one"}\n{"text": "tw'
        raise EOFError("Compressed file ended before the end-of-stream marker was reached")

    framer = RecordFramer(broken())
    frames = list(framer)
    assert [f.kind for f in frames] == ["record", "unreadable"]
    assert frames[1].data == b'{"text": "tw' and "EOFError" in frames[1].error
    assert framer.records == 2


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".zst"])
def test_truncated_archives_end_in_one_read_error(tmp_path, suffix):
    data = b"".join(_line(i) for i in range(300))
    comp = {".gz": gzip.compress, ".bz2": bz2.compress,
            ".zst": zstandard.ZstdCompressor().compress}[suffix](data)
    f = tmp_path / f"t.jsonl{suffix}"
    f.write_bytes(comp[: len(comp) // 2])
    src = SourceConfig(name="s", type="jsonl", path=str(f))
    recs, dead, counted = _outputs(_ReadJsonl(src), _input_file(f))
    assert len(dead) == 1 and dead[0]["reason"].startswith("read_error: ")
    assert counted[0]["records"] == len(recs) + 1 and counted[0]["changed"] is None


# ----------------------------------------------------------------- the accounting itself


def test_every_record_dead_exits_4_and_fraction_is_configurable(tmp_path):
    from typer.testing import CliRunner

    from pipelines.cli.main import app

    (tmp_path / "a.jsonl").write_bytes(b"".join(_line(i) for i in range(50)))
    cfg = config([{"name": "s", "type": "jsonl", "path": str(tmp_path / "a.jsonl"),
                   "text_field": "body"}], [], tmp_path / "out")
    (tmp_path / "c.yaml").write_text(json.dumps(cfg))
    result = CliRunner().invoke(app, ["build", str(tmp_path / "c.yaml")])
    assert result.exit_code == 4, result.output
    assert "every input record went to dead_letter" in " ".join(result.output.split())
    assert not (tmp_path / "out" / "data").exists()

    stats = {"counts": {"input": 10, "kept": 7, "removed": 0, "dead_letter": 3},
             "conservation_ok": True, "stages": {},
             "read": {"dead_letter": {"bad_json": 3}}}
    acc.check_build(stats, 0.5)  # 30% is allowed by default
    with pytest.raises(acc.DeadLetterError, match=r"30.0% of the input.*read/bad_json: 3"):
        acc.check_build(stats, 0.2)
    with pytest.raises(acc.DeadLetterError, match="every input record"):
        acc.check_build({**stats, "counts": {**stats["counts"], "kept": 0, "dead_letter": 10}},
                        1.0)


def test_missing_input_count_stat_fails_loudly(tmp_path, monkeypatch):
    (tmp_path / "a.jsonl").write_bytes(_line(1))
    real = acc.write_json_files
    dropped = []

    def drop_input_counts(files, label, p):  # a runner that loses a stat
        kept = [f for f in files if not f.path.endswith("/input_counts.json")]
        dropped.extend(f.path for f in files if f not in kept)
        return real(kept, label, p)

    monkeypatch.setattr(acc, "write_json_files", drop_input_counts)
    with pytest.raises(acc.MissingCountError, match=r"input_counts\.json is missing"):
        build(config([{"name": "s", "type": "jsonl", "path": str(tmp_path / "a.jsonl")}], [],
                     tmp_path / "out"))
    assert dropped and not (tmp_path / "out" / "data").exists()


# ----------------------------------------------------------------- config strictness


@pytest.mark.parametrize("where,value,fix", [
    ("stages", [{"stage": "length_filter", "min_words": True}], "whole number"),
    ("output", {"dir": "out", "shards": 2.0}, "whole number"),
    ("output", {"dir": "out", "jsonl": "yes"}, "true or false"),
])
def test_config_types_are_strict(where, value, fix):
    data = {"sources": [{"name": "s", "type": "jsonl", "path": "x.jsonl"}],
            "output": {"dir": "out"}, where: value}
    with pytest.raises(ConfigError) as e:
        build_config_from_dict(data)
    msg = str(e.value)
    field = {"stages": "stages[0].min_words", "output": "output."}[where]
    assert field in msg and fix in msg
    assert any(v in msg for v in ("got true", "got 2.0", 'got "yes"'))


def test_yaml_alias_bomb_is_refused_quickly(tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    assert bomb.stat().st_size < 1100  # ~1 KB that would expand to 9^9 = 387M strings
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(ConfigError, match="expands to more than 100,000 values"):
            load_build_config(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 5 and peak < 20 << 20
    loop = tmp_path / "loop.yaml"
    loop.write_text("a: &a [*a]\n")
    with pytest.raises(ConfigError):
        load_build_config(loop)


def test_unsafe_stage_label_refused_before_any_work(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    data = {"sources": [{"name": "s", "type": "jsonl", "path": str(tmp_path / "x.jsonl")}],
            "stages": [{"stage": "normalize", "label": "x/../../../victim", "checkpoint": True}],
            "output": {"dir": str(tmp_path / "out")}}
    with pytest.raises(ConfigError) as e:
        build(data)
    msg = str(e.value)
    assert "stages[0].label" in msg and "A-Z a-z 0-9 _ . -" in msg and "'..'" in msg
    assert (victim / "keep.txt").read_text() == "precious"
    assert not (tmp_path / "out").exists()
    for ok in ("dedup_2", "v1.5-final"):
        data["stages"][0]["label"] = ok
        assert build_config_from_dict(data).stages[0].label == ok
    for bad in ("..", "a..b", "", ".hidden", "x" * 65, "sp ace"):
        data["stages"][0]["label"] = bad
        with pytest.raises(ConfigError, match="stages\\[0\\].label"):
            build_config_from_dict(data)


def test_validate_runs_the_planner(tmp_path):
    from typer.testing import CliRunner

    from pipelines.cli.main import app

    src = tmp_path / "in"  # (an output dir inside a source directory is refused)
    src.mkdir()
    (src / "a.jsonl").write_bytes(_line(1))
    (src / "notes.txt").write_text("x")
    (src / "table.csv").write_text("x")

    def validate(source_path: str, **output) -> tuple[int, str]:
        cfg = {"sources": [{"name": "s", "type": "jsonl", "path": source_path}],
               "stages": [{"stage": "length_filter"}],
               "output": {"dir": str(tmp_path / "out"), **output}}
        (tmp_path / "c.yaml").write_text(json.dumps(cfg))
        r = CliRunner().invoke(app, ["validate", str(tmp_path / "c.yaml")])
        return r.exit_code, " ".join(r.output.split())

    code, out = validate(str(src / "nothing-*.jsonl"))
    assert code == 2 and "no jsonl files match" in out
    code, out = validate(str(src), partition_by="language")
    assert code == 2 and "partition_by: column 'language' is not produced" in out
    code, out = validate(str(src))
    assert code == 0 and "1 file(s), 2 skipped" in out and "notes.txt" in out
    assert not (tmp_path / "out").exists()


def test_framer_is_independent_of_chunk_boundaries():
    import random

    rng = random.Random(7)
    alphabet = [b"a", b"b", b" ", b"\n", b"\n", b"\r", b"\t", b"\xff"]
    for _ in range(200):
        data = b"".join(rng.choice(alphabet) * rng.choice([1, 7, 40, 700])
                        for _ in range(rng.randint(0, 30)))
        limit = rng.choice([1024, 1200, 5000])
        want = []
        ends = [i for i in (data.find(b"\n"), data.find(b"\r")) if i != -1]
        first = min(ends, default=-1)  # a lone CR as first line end: a CR-terminated file
        cr = first != -1 and data[first:first + 1] == b"\r" and data[first + 1:first + 2] not in (
            b"\n", b"")
        for n, line in enumerate((data.replace(b"\r", b"\n") if cr else data).split(b"\n"), 1):
            if len(line) > limit:
                want.append(("oversize", n, len(line)))
            elif line and not line.isspace():
                want.append(("record", n, line[:-1] if line.endswith(b"\r") else line))
        cuts = sorted(rng.sample(range(len(data) + 1), min(len(data) + 1, rng.randint(0, 8))))
        chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)]) if b > a]
        framer = RecordFramer(iter(chunks), max_record_bytes=limit)
        got = [(f.kind, f.lineno, f.size if f.kind == "oversize" else f.data) for f in framer]
        assert got == want and framer.records == len(want)


def test_literal_names_with_glob_characters_and_odd_yaml_keys(tmp_path):
    literal = tmp_path / "run[2].jsonl"  # a glob would match run2.jsonl, not this file
    literal.write_bytes(_line(1))
    (tmp_path / "run2.jsonl").write_bytes(_line(2))
    files, skipped = list_input_files(str(literal), "jsonl")
    assert [f.path for f in files] == [str(literal)] and skipped == []
    bad = tmp_path / "dates.yaml"
    bad.write_text("sources: [{name: s, type: jsonl, path: x}]\noutput: {dir: o}\n"
                   "2024-01-01: release\n")
    with pytest.raises(ConfigError, match="mapping key is not text or a number"):
        load_build_config(bad)


def test_corrupt_parquet_row_group_loses_only_its_rows(tmp_path):
    from pipelines.io.sources import _ReadParquet

    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"text": [f"{TEXT} Row {i}." for i in range(3000)]}), path,
                   row_group_size=1000, compression="snappy")
    chunk = pq.ParquetFile(path).metadata.row_group(1).column(0)
    data = bytearray(path.read_bytes())
    start = chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset
    for i in range(start, start + chunk.total_compressed_size):
        data[i] = (data[i] * 7 + 13) % 256  # garble the second row group's pages
    path.write_bytes(bytes(data))
    files, _ = list_input_files(str(path), "parquet")
    src = SourceConfig(name="s", type="parquet", path=str(path))
    recs, dead, counted = _outputs(_ReadParquet(src), files[0])
    assert len(recs) == 2000 and len(dead) == 1, [d["location"] for d in dead]
    assert dead[0]["location"].endswith("c.parquet#rows=1000-1999")
    assert dead[0]["records"] == 1000 and dead[0]["reason"].startswith("read_error: ")
    assert counted[0]["records"] == 3000 == len(recs) + acc.dead_weight(dead[0])
