"""Damaged compressed inputs and files that become unreadable after planning (issue 23).

* A damaged ``.gz``/``.bz2`` (cut short, corrupt in the middle, trailing garbage) keeps every
  complete line that a streaming decoder can decode before the break; the partial line and
  the damaged tail are ONE dead-letter row whose reason says where the break is.
* A file that was readable at planning but cannot be opened or read when the build reads it
  (EIO, permission, a storage error) fails the build, exit code 5, naming the file and the
  error: it is never counted as one record.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import json
import zlib
from pathlib import Path

import pytest

from tests.buildutil import build, config, read_output
from pipelines.build import accounting as acc
from pipelines.build import run as graph  # run_build plans through run.plan_build
from pipelines.io import framing
from pipelines.io.framing import UNREADABLE, FramedFile
from pipelines.io.input_files import list_input_files
from pipelines.io.source_config import SourceConfig
from pipelines.io.sources import COUNTED, DEAD, _ReadJsonl, _ReadParquet

N = 20_000


def _data(n: int = N, start: int = 0) -> bytes:
    return b"".join(
        json.dumps({"id": f"r{i}", "text": f"Record number {i}: " + "words and more words " *
                    (1 + i % 9)}).encode() + b"\n" for i in range(start, start + n))


def _reference_lines(comp: bytes, kind: str, step: int = 4096) -> int:
    """Complete lines a plain streaming decoder gets out of ``comp`` before it fails or
    the data ends (independent of datamill: stdlib decompressor objects, fixed input steps,
    new member/stream on end of stream, stop at the first error)."""
    out = bytearray()
    d = zlib.decompressobj(wbits=31) if kind == "gz" else bz2.BZ2Decompressor()
    pos = 0
    buf = b""
    while True:
        if not buf:
            buf, pos = comp[pos:pos + step], pos + step
            if not buf:
                break
        try:
            out += d.decompress(buf)
        except (zlib.error, OSError, EOFError):
            break
        if d.eof:
            buf = d.unused_data.lstrip(b"\0") if kind == "gz" else d.unused_data
            d = zlib.decompressobj(wbits=31) if kind == "gz" else bz2.BZ2Decompressor()
        else:
            buf = b""
    return bytes(out).count(b"\n")


def _compress(data: bytes, kind: str) -> bytes:
    return gzip.compress(data) if kind == "gz" else bz2.compress(data)


def _outputs(path: Path) -> tuple[list[dict], list[dict], dict]:
    files, _ = list_input_files(str(path), "jsonl")
    recs, dead, counted = [], [], []
    src = SourceConfig(name="s", type="jsonl", path=str(path), id_field="id")
    for out in _ReadJsonl(src).process(files[0]):
        tag = getattr(out, "tag", None)
        (dead if tag == DEAD else counted if tag == COUNTED else recs).append(
            out.value if tag else out)
    assert len(counted) == 1
    return recs, dead, counted[0]


def _build(tmp_path: Path, path: Path, **kw):
    out = tmp_path / "out"
    res = build(config([{"name": "s", "type": "jsonl", "path": str(path), "id_field": "id"}],
                       [], out), **kw)
    return out, res.stats


# ----------------------------------------------------------------- damaged compressed data


@pytest.mark.parametrize("kind", ["gz", "bz2"])
def test_file_cut_at_half_keeps_every_decodable_line(tmp_path, kind):
    comp = _compress(_data(), kind)
    cut = comp[: len(comp) // 2]
    f = tmp_path / f"cut.jsonl.{kind}"
    f.write_bytes(cut)
    expected = _reference_lines(cut, kind)
    assert expected > N // 4

    recs, dead, counted = _outputs(f)
    assert len(recs) >= expected  # never fewer than a streaming decoder gets
    assert [r["id"] for r in recs] == [f"r{i}" for i in range(len(recs))]
    assert len(dead) == 1 and dead[0]["reason"].startswith("read_error: truncated ")
    assert f"byte {len(cut):,}" in dead[0]["reason"]
    assert counted["records"] == len(recs) + 1 and counted["changed"] is None
    assert counted["bytes"] == len(cut)
    if kind == "gz":  # gzip decodes to the last byte: exactly the reference's lines
        assert len(recs) == expected
        assert dead[0]["raw"] and not dead[0]["raw"].endswith("\n")  # the partial line
        assert "every byte before the break was decoded" in dead[0]["reason"]
    else:  # what could not be decoded is said: the cut block
        assert "its last block, cut off, could not be decoded" in dead[0]["reason"]


def test_cut_gz_build_balances_with_input_counted_independently(tmp_path):
    comp = gzip.compress(_data())
    cut = comp[: len(comp) // 2]
    f = tmp_path / "in" / "cut.jsonl.gz"
    f.parent.mkdir()
    f.write_bytes(cut)
    complete = _reference_lines(cut, "gz")
    out, stats = _build(tmp_path, f)
    c = stats["counts"]
    assert c["input"] == complete + 1  # the complete lines plus the damaged tail
    assert (c["kept"], c["removed"], c["dead_letter"]) == (complete, 0, 1)
    assert stats["conservation_ok"]
    kept = read_output(out)
    assert sorted(r["id"] for r in kept) == sorted(f"r{i}" for i in range(complete))


@pytest.mark.parametrize("kind", ["gz", "bz2"])
def test_trailing_garbage_loses_no_good_record(tmp_path, kind):
    # two members/streams (as concatenated files are), then garbage
    good = _compress(_data(N // 2), kind) + _compress(_data(N // 2, N // 2), kind)
    garbage = b"GARBAGE!" * 100
    f = tmp_path / f"garbage.jsonl.{kind}"
    f.write_bytes(good + garbage)
    recs, dead, counted = _outputs(f)
    assert [r["id"] for r in recs] == [f"r{i}" for i in range(N)]
    assert len(dead) == 1
    reason = dead[0]["reason"]
    assert reason.startswith("read_error: trailing data after 2 complete ")
    assert f"{len(garbage):,} compressed bytes (from byte {len(good):,}" in reason
    assert counted["records"] == N + 1 and counted["changed"] is None


@pytest.mark.parametrize("kind", ["gz", "bz2"])
def test_multi_member_files_are_read_whole(tmp_path, kind):
    parts = [_compress(_data(1000, i * 1000), kind) for i in range(5)]
    pad = b"\0" * 512 if kind == "gz" else b""  # gzip -dc ignores zero padding after a member
    f = tmp_path / f"multi.jsonl.{kind}"
    f.write_bytes(pad.join(parts) + pad)
    recs, dead, counted = _outputs(f)
    assert [r["id"] for r in recs] == [f"r{i}" for i in range(5000)]
    assert dead == [] and counted["records"] == 5000 and counted["changed"] is None


def test_small_damaged_file_keeps_the_lines_before_the_break(tmp_path):
    data = _data(50)
    comp = gzip.compress(data)
    f = tmp_path / "small.jsonl.gz"
    f.write_bytes(comp[:-12])  # the trailer and the last bytes of data are gone
    recs, dead, counted = _outputs(f)
    assert len(recs) == _reference_lines(comp[:-12], "gz") >= 45
    assert len(dead) == 1 and counted["records"] == len(recs) + 1


def test_corrupt_middle_of_gz_keeps_what_precedes_the_damage(tmp_path):
    comp = bytearray(gzip.compress(_data(), compresslevel=6))
    mid = len(comp) // 2
    comp[mid:mid + 64] = bytes(range(1, 65))  # a scribbled-over stretch
    f = tmp_path / "corrupt.jsonl.gz"
    f.write_bytes(bytes(comp))
    recs, dead, counted = _outputs(f)
    # every line decoded (also the garbled ones after the damage, which gzip -dc prints too)
    # is one record or one dead row; then one row for the damaged tail
    assert len(recs) + len(dead) - 1 >= _reference_lines(bytes(comp), "gz")
    assert [r["id"] for r in recs[: N // 3]] == [f"r{i}" for i in range(N // 3)]
    assert "could not be decoded" in dead[-1]["reason"]
    assert counted["records"] == len(recs) + len(dead) and counted["changed"] is None


def test_decompression_stays_bounded_on_a_damaged_bomb(tmp_path):
    import tracemalloc

    # 64 MiB of newlines-free zeros compress to ~64 KiB; then cut the archive short
    comp = gzip.compress(b'{"text": "' + b"a" * (64 << 20) + b'"}\n', compresslevel=9)
    f = tmp_path / "bomb.jsonl.gz"
    f.write_bytes(comp[: len(comp) * 3 // 4])
    tracemalloc.start()
    try:
        frames = list(FramedFile(str(f), max_record_bytes=1 << 20))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 12 << 20, f"peak {peak / 2**20:.0f} MiB"
    assert [fr.kind for fr in frames] == [UNREADABLE]


# ----------------------------------------------------------------- unreadable after planning


def _eio_after_planning(monkeypatch, target: Path):
    """Planning sees a normal readable file; opening it when the build reads it fails with
    EIO (what a disk error or a stale NFS handle gives)."""
    def failing_open(path, *a, **kw):
        if str(path) == str(target):
            raise OSError(errno.EIO, "Input/output error", str(path))
        return open(path, *a, **kw)

    real_plan = graph.plan_build

    def plan_then_break(*a, **kw):
        plan = real_plan(*a, **kw)
        monkeypatch.setattr(framing, "open", failing_open, raising=False)
        return plan

    monkeypatch.setattr(graph, "plan_build", plan_then_break)


def test_open_error_after_planning_fails_the_build_naming_the_file(tmp_path, monkeypatch):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.jsonl").write_bytes(_data(2500))
    bad = src / "b.jsonl"
    bad.write_bytes(_data(2500, 2500))
    _eio_after_planning(monkeypatch, bad)
    with pytest.raises(acc.InputChangedError, match=r"b\.jsonl: could not be read at run time "
                       r"\(OSError: \[Errno 5\] Input/output error") as e:
        _build(tmp_path, src)
    assert e.value.exit_code == 5
    assert "\n" not in str(e.value)
    assert not (tmp_path / "out" / "data").exists()


def test_io_error_mid_file_fails_instead_of_counting_one_record(tmp_path, monkeypatch):
    f = tmp_path / "big.jsonl.gz"
    f.write_bytes(gzip.compress(_data(2500)))
    real = framing.CountingReader.read

    def read(self, n=-1):
        if self.bytes_read > 1000:
            raise OSError(errno.ESTALE, "Stale file handle")
        return real(self, min(n, 1024) if n and n > 0 else 1024)

    monkeypatch.setattr(framing.CountingReader, "read", read)
    recs, dead, counted = _outputs(f)
    assert counted["changed"].startswith("could not be read at run time (OSError: [Errno 116]")
    assert counted["records"] == len(recs) + len(dead)  # the rows balance; the build fails

    monkeypatch.setattr(framing.CountingReader, "read", real)
    planned = graph.plan_build

    def plan_then_break(*a, **kw):
        plan = planned(*a, **kw)
        monkeypatch.setattr(framing.CountingReader, "read", read)
        return plan

    monkeypatch.setattr(graph, "plan_build", plan_then_break)
    with pytest.raises(acc.InputChangedError, match=r"big\.jsonl\.gz: could not be read at run "
                       r"time \(OSError: \[Errno 116\] Stale file handle\)") as e:
        _build(tmp_path, f)
    assert e.value.exit_code == 5


def test_file_replaced_by_a_directory_after_planning_fails_the_build(tmp_path, monkeypatch):
    f = tmp_path / "gone.jsonl"
    f.write_bytes(_data(100))
    real_plan = graph.plan_build

    def plan_then_replace(*a, **kw):
        plan = real_plan(*a, **kw)
        f.unlink()
        f.mkdir()
        return plan

    monkeypatch.setattr(graph, "plan_build", plan_then_replace)
    with pytest.raises(acc.InputChangedError, match=r"gone\.jsonl: no longer a regular file"):
        _build(tmp_path, f)


def test_parquet_open_error_after_planning_fails_the_build(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipelines.io import sources

    f = tmp_path / "t.parquet"
    pq.write_table(pa.table({"text": [f"row {i} text" for i in range(100)]}), f)
    files, _ = list_input_files(str(f), "parquet")

    def failing(path):
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(sources, "_open_binary", failing)
    outs = list(_ReadParquet(SourceConfig(name="s", type="parquet", path=str(f)))
                .process(files[0]))
    assert [getattr(o, "tag", None) for o in outs] == [COUNTED]
    assert outs[0].value["changed"].startswith(
        "could not be read at run time (PermissionError: [Errno 13] Permission denied")


def test_corrupt_gz_is_not_an_io_error(tmp_path):
    f = tmp_path / "bad.jsonl.gz"
    f.write_bytes(b"this is not gzip at all\n" * 10)
    ff = FramedFile(str(f))
    frames = list(ff)
    assert [fr.kind for fr in frames] == [UNREADABLE] and ff.read_failure == ""
    assert "240 compressed bytes (from byte 0" in frames[0].error
