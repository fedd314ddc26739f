"""Hostile inputs, round 3 (issue 23, low/medium items 7, 10, 11, 12 and 16): real files in tmp_path.

* a UTF-8 BOM at the start of a JSONL file (plain, .gz, .bz2, .zst) is dropped, the first
  record parses, counting stays exact;
* CR-only line endings: a file whose first line end is a lone ``\\r`` is cut at every ``\\r``;
* a Parquet file with two columns named like ``text_field``/``id_field``: a planning error for
  the file planning reads, a dead-letter of the whole file (counted exactly) for the others;
* one file matched by two sources: a config error naming both sources (``validate`` too);
* a disk already full when the lock file is written: exit 74 and one line;
* ``shards: 100000`` for one record: one data file (shards no record falls into are not
  written), and more than 100,000 shards is a config error.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from typer.testing import CliRunner

from pipelines.build.errors import DiskFull
from pipelines.cli.main import app
from pipelines.core.settings import ConfigError
from pipelines.io.framing import BOM, FramedFile, RecordFramer
from pipelines.io.input_files import list_input_files
from pipelines.io.source_config import SourceConfig
from pipelines.io.sources import COUNTED, DEAD, _ReadJsonl, _ReadParquet
from tests.buildutil import build, config, read_output

TEXT = "A sentence long enough to be a document of its own, with words in it."
STAGES = [{"stage": "length_filter", "min_words": 1}]
COMPRESS = {"": lambda b: b, ".gz": gzip.compress, ".bz2": bz2.compress,
            ".zst": zstandard.ZstdCompressor().compress}


def _line(i: int, end: bytes = b"\n") -> bytes:
    return json.dumps({"text": f"{TEXT} Number {i}."}).encode() + end


def _outputs(dofn, element) -> tuple[list[dict], list[dict], list[dict]]:
    recs, dead, counted = [], [], []
    for out in dofn.process(element):
        tag = getattr(out, "tag", None)
        (dead if tag == DEAD else counted if tag == COUNTED else recs).append(
            out.value if tag else out)
    return recs, dead, counted


def _read(path: Path, type_: str = "jsonl", **src):
    files, _ = list_input_files(str(path), type_)
    cfg = SourceConfig(name="s", type=type_, path=str(path), **src)
    reader = _ReadJsonl(cfg) if type_ == "jsonl" else _ReadParquet(cfg)
    return _outputs(reader, files[0])


# ----------------------------------------------------------------------- item 10: a leading BOM


@pytest.mark.parametrize("suffix", list(COMPRESS))
def test_leading_bom_is_dropped_and_the_first_record_parses(tmp_path, suffix):
    path = tmp_path / f"win.jsonl{suffix}"
    path.write_bytes(COMPRESS[suffix](BOM + _line(1, b"\r\n") + _line(2, b"\r\n") + _line(3)))
    recs, dead, counted = _read(path)
    assert dead == [] and [r["text"] for r in recs] == [f"{TEXT} Number {i}." for i in (1, 2, 3)]
    assert counted[0]["records"] == 3 and counted[0]["changed"] is None


def test_bom_only_at_the_start_and_at_any_chunk_boundary(tmp_path):
    data = BOM + _line(1) + BOM + _line(2)  # a BOM inside the stream is data: a bad record
    for step in (1, 2, 3, 4, 7, len(data)):
        framer = RecordFramer(iter([data[i:i + step] for i in range(0, len(data), step)]))
        frames = [f.data for f in framer]
        assert frames == [_line(1)[:-1], BOM + _line(2)[:-1]] and framer.bom
    path = tmp_path / "bom-inside.jsonl"
    path.write_bytes(data)
    recs, dead, counted = _read(path)
    assert len(recs) == 1 and len(dead) == 1 and counted[0]["records"] == 2


def test_bom_in_a_build_keeps_every_record(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.jsonl.gz").write_bytes(gzip.compress(BOM + _line(1) + _line(2)))
    (src / "b.jsonl").write_bytes(BOM + _line(3))
    res = build(config([{"name": "s", "type": "jsonl", "path": str(src)}], STAGES,
                       tmp_path / "out"))
    assert res.stats["conservation_ok"] and res.stats["counts"]["input"] == 3
    assert len(read_output(tmp_path / "out")) == 3


# -------------------------------------------------------------- item 16: no 100,000 files


def test_many_shards_for_one_record_write_one_file(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(_line(1) + b"not json\n")
    res = build(config([{"name": "s", "type": "jsonl", "path": str(src)}], STAGES,
                       tmp_path / "out", shards=100_000))
    assert res.stats["counts"]["input"] == 2 and res.stats["conservation_ok"]
    data = list((tmp_path / "out" / "data").rglob("*.parquet"))
    assert len(data) == 1 and len(read_output(tmp_path / "out")) == 1
    everything = [f for f in (tmp_path / "out").rglob("*") if f.is_file()]
    assert len(everything) < 50, len(everything)
    with pytest.raises(ConfigError, match="shards"):
        build(config([{"name": "s", "type": "jsonl", "path": str(src)}], STAGES,
                     tmp_path / "out2", shards=100_001))


# -------------------------------------------------------------- item 16: CR-only line endings


@pytest.mark.parametrize("suffix", list(COMPRESS))
def test_cr_only_file_is_one_record_per_line(tmp_path, suffix):
    path = tmp_path / f"mac.jsonl{suffix}"
    body = b"".join(_line(i, b"\r") for i in range(1, 6)) + b"\r" + b"{broken\r" + _line(6, b"")
    path.write_bytes(COMPRESS[suffix](body))
    recs, dead, counted = _read(path)
    assert len(recs) == 6 and len(dead) == 1 and counted[0]["records"] == 7
    assert dead[0]["location"].endswith(":7") and "bad_json" in dead[0]["reason"]
    for step in (1, 2, 5, 64):  # the same cut whatever the chunks
        framer = RecordFramer(iter([body[i:i + step] for i in range(0, len(body), step)]))
        assert len(list(framer)) == 7 and framer.line_end == "cr"


def test_lf_and_crlf_files_are_not_cut_at_inner_cr(tmp_path):
    # the first line end decides: a CRLF file stays a LF file, a raw CR later is not a line end
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(_line(1, b"\r\n") + b'{"text": "a\rb"}\r\n' + _line(2, b"\r\n"))
    framed = FramedFile(str(path))
    assert len(list(framed)) == 3 and framed.records == 3


# ------------------------------------------------------- item 11: duplicated Parquet columns


def _dup_parquet(path: Path, names: list[str], rows: int = 3) -> Path:
    cols = [pa.array([f"{TEXT} {n} {i}" for i in range(rows)]) for n in range(len(names))]
    pq.write_table(pa.Table.from_arrays(cols, names=names), path)
    return path


@pytest.mark.parametrize("names, setting", [(["text", "text"], "text_field"),
                                            (["id", "text", "id"], "id_field")])
def test_duplicated_parquet_column_is_a_planning_error(tmp_path, names, setting):
    _dup_parquet(tmp_path / "dup.parquet", names)
    cfg = config([{"name": "s", "type": "parquet", "path": str(tmp_path / "dup.parquet"),
                   **({"id_field": "id"} if setting == "id_field" else {})}], STAGES,
                 tmp_path / "out")
    with pytest.raises(ConfigError) as err:
        build(cfg)
    msg = str(err.value)
    assert f"sources[0].{setting}" in msg and "dup.parquet" in msg and "unique column" in msg
    assert not (tmp_path / "out").exists()


def test_duplicated_parquet_column_after_the_first_file_dead_letters_the_file(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    pq.write_table(pa.table({"text": [f"{TEXT} {i}" for i in range(4)]}), src / "a.parquet")
    _dup_parquet(src / "b.parquet", ["text", "text"], rows=5)
    recs, dead, counted = _read(src / "b.parquet", "parquet")
    assert recs == [] and len(dead) == 1 and dead[0]["records"] == 5
    assert "duplicate_column: 'text' (text_field)" in dead[0]["reason"]
    assert counted[0]["records"] == 5
    res = build(config([{"name": "s", "type": "parquet", "path": str(src)}], STAGES,
                       tmp_path / "out", max_dead_letter_fraction=1.0))
    assert res.stats["conservation_ok"] and res.stats["counts"]["input"] == 9
    assert len(read_output(tmp_path / "out")) == 4


# ------------------------------------------------------ item 12: a file read by two sources


def test_file_matched_by_two_sources_is_refused_naming_both(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.jsonl").write_bytes(_line(1))
    (src / "b.jsonl").write_bytes(_line(2))
    os.symlink(src / "a.jsonl", tmp_path / "alias.jsonl")  # the same file by another name
    for second in (str(src / "*.jsonl"), str(tmp_path / "alias.jsonl")):
        cfg = config([{"name": "web", "type": "jsonl", "path": str(src)},
                      {"name": "books", "type": "jsonl", "path": second}], STAGES,
                     tmp_path / "out")
        with pytest.raises(ConfigError) as err:
            build(cfg)
        msg = str(err.value)
        assert "'web'" in msg and "'books'" in msg and "a.jsonl" in msg
        assert "narrow a glob" in msg
        assert not (tmp_path / "out").exists()
        (tmp_path / "c.yaml").write_text(json.dumps(cfg))
        r = CliRunner().invoke(app, ["validate", str(tmp_path / "c.yaml")])
        assert r.exit_code == 2 and "narrow a glob" in " ".join(r.output.split()), r.output
    # disjoint globs are fine
    cfg = config([{"name": "web", "type": "jsonl", "path": str(src / "a*.jsonl")},
                  {"name": "books", "type": "jsonl", "path": str(src / "b*.jsonl")}], STAGES,
                 tmp_path / "out")
    assert build(cfg).stats["counts"]["input"] == 2


# ------------------------------------------------ item 7: disk full when the lock is written


def test_disk_full_writing_the_lock_is_exit_74_and_one_line(tmp_path, monkeypatch):
    from pipelines.build import output_lock

    def full(fd, holder):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(output_lock, "_write_holder", full)
    (tmp_path / "a.jsonl").write_bytes(_line(1))
    out = tmp_path / "out"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps(config([{"name": "s", "type": "jsonl",
                                       "path": str(tmp_path / "a.jsonl")}], STAGES, out)))
    res = CliRunner().invoke(app, ["build", str(cfg)], env={"COLUMNS": "400"})  # no wrapping
    assert res.exit_code == DiskFull.exit_code == 74, res.output
    assert "Traceback" not in res.output and isinstance(res.exception, SystemExit)
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "disk full" in lines[0] and "lock" in lines[0], res.output
    # the lock was released: the next build (disk no longer full) takes it
    monkeypatch.undo()
    assert build(json.loads(cfg.read_text())).stats["counts"]["input"] == 1


def test_content_fingerprint_sees_a_rewrite_with_the_same_size_and_time(tmp_path):
    """Issue 23 item 6: an input rewritten with the same size and mtime (cp -p, rsync -t, tar)
    looks unchanged to the default stat fingerprint ('up to date', stale output kept, as
    documented); ``fingerprint: content`` hashes the bytes at planning and rebuilds."""
    path = tmp_path / "in.jsonl"
    rows = [{"id": str(i), "text": f"document number {i} has some words"} for i in range(20)]

    def write(rows_):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows_))
        os.utime(path, (1_700_000_000, 1_700_000_000))

    write(rows)
    stages = [{"stage": "length_filter", "min_words": 1}]
    for mode in ("stat", "content"):
        out = tmp_path / f"out-{mode}"
        src = [{"name": "s", "type": "jsonl", "path": str(path), "fingerprint": mode}]
        write(rows)
        first = build(config(src, stages, out))
        assert not first.skipped
        changed = [dict(r, text=r["text"].replace("some", "more")) for r in rows]  # same size
        write(changed)
        assert path.stat().st_size == sum(len(json.dumps(r)) + 1 for r in rows)
        again = build(config(src, stages, out))
        texts = {r["text"] for r in read_output(out)}
        if mode == "stat":
            assert again.skipped and "document number 0 has some words" in texts
        else:
            assert not again.skipped and "document number 0 has more words" in texts
