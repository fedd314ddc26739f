from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.jobs.materialize import MaterializeError, epoch_targets, materialize
from pipelines.stages.testing import local_pipeline
from tests.buildutil import stdlib_doc_rows
from filters.tokens import load_token_counter


def count_tokens(text: str) -> int:
    return load_token_counter().count(text)


def _pool_files(tmp: Path) -> list[dict]:
    rows = stdlib_doc_rows(("json", "pathlib", "collections", "functools", "argparse", "textwrap", "csv"))
    (tmp / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows[::2]), tmp / "data" / "a.parquet")
    bad = rows[1::2] + [{"id": None, "text": "orphan text here", "source": "x", "quality": 0.9}]
    pq.write_table(pa.Table.from_pylist(bad), tmp / "data" / "b.parquet")
    return rows


def _rec(tmp: Path, rows: list[dict]) -> dict:
    glob = str(tmp / "data" / "*.parquet")
    hi = [r for r in rows if r["quality"] >= 0.5]
    lo = [r for r in rows if r["quality"] < 0.5]
    tok = lambda rs: sum(count_tokens(r["text"]) for r in rs)  # noqa: E731
    return {"materialize": {"seed": 7, "shards": 3, "tokenizer": "tiktoken:cl100k_base", "pools": [
        {"name": "hi", "files": [glob], "select": {"column": "quality", "min": 0.5, "max": None},
         "epochs": 2.4, "unique_tokens": tok(hi)},
        {"name": "lo", "files": [glob], "select": {"column": "quality", "min": None, "max": 0.5},
         "epochs": 0.35, "unique_tokens": tok(lo)},
    ]}}


def test_epoch_targets():
    assert epoch_targets(2.5, 100.0) == [(0, None), (1, None), (2, 50.0)]
    assert epoch_targets(1.0, 100.0) == [(0, None)]
    assert epoch_targets(0.0, 100.0) == []


def test_materialize_hits_targets_and_is_deterministic(tmp_path):
    rows = _pool_files(tmp_path / "in")
    rec = _rec(tmp_path / "in", rows)
    m = materialize(rec, str(tmp_path / "out1"), pipeline=local_pipeline())
    max_doc = max(count_tokens(r["text"]) for r in rows)
    for pool in m["pools"]:
        for e in pool["epochs_detail"]:
            if e["full"]:
                assert e["achieved_tokens"] == pytest.approx(pool["unique_tokens"])
            else:
                assert e["target_tokens"] <= e["achieved_tokens"] < e["target_tokens"] + max_doc
        assert abs(pool["achieved_tokens"] - pool["target_tokens"]) < max_doc
    assert [len(p["epochs_detail"]) for p in m["pools"]] == [3, 1]
    assert m["dead_letter"]["count"] == 1 and m["dead_letter"]["reasons"] == {"missing_id": 1}
    assert m["tokenizer"] == "tiktoken:cl100k_base"
    # Shards: epoch column, every row of 'hi' twice in full epochs, rows sorted by sample key.
    tables = [pq.read_table(f["path"]) for f in m["files"]]
    t = pa.concat_tables(tables).to_pylist()
    hi_ids = {r["id"] for r in rows if r["quality"] >= 0.5}
    for ep in (0, 1):
        assert {r["id"] for r in t if r["pool"] == "hi" and r["epoch"] == ep} == hi_ids
    for tab in tables:
        keys = tab.column("sample_key").to_pylist()
        assert keys == sorted(keys)
    assert sum(f["rows"] for f in m["files"]) == len(t)
    # Same plan, second run: byte-identical shards.
    m2 = materialize(rec, str(tmp_path / "out2"), pipeline=local_pipeline(num_workers=2,
                                                                          mode="multi_threading"))
    for f1, f2 in zip(m["files"], m2["files"]):
        assert Path(f1["path"]).read_bytes() == Path(f2["path"]).read_bytes()
    # A different seed samples a different partial epoch.
    rec["materialize"]["seed"] = 8
    m3 = materialize(rec, str(tmp_path / "out3"), pipeline=local_pipeline())
    lo3 = {r["id"] for f in m3["files"] for r in pq.read_table(f["path"]).to_pylist()
           if r["pool"] == "lo"}
    lo1 = {r["id"] for r in t if r["pool"] == "lo"}
    assert lo1 != lo3


def test_cli_materialize(tmp_path):
    import typer
    import yaml
    from typer.testing import CliRunner

    from pipelines.cli.scaling import register

    app = typer.Typer()
    register(app)
    rows = _pool_files(tmp_path / "in")
    rec = _rec(tmp_path / "in", rows)
    rec["materialize"]["pools"] = rec["materialize"]["pools"][1:]  # the 0.35-epoch pool
    path = tmp_path / "rec.yaml"
    path.write_text(yaml.safe_dump(rec))
    res = CliRunner().invoke(app, ["materialize", str(path), "--out", str(tmp_path / "mix")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "mix" / "manifest.json").is_file()
    assert "lo" in res.output and "achieved" in res.output
    path.write_text(yaml.safe_dump({"recommendation": {}}))
    res = CliRunner().invoke(app, ["materialize", str(path)])
    assert res.exit_code == 2 and "materialize" in res.output


def test_materialize_errors(tmp_path):
    with pytest.raises(MaterializeError, match="no 'materialize' block"):
        materialize({"recommendation": {}}, str(tmp_path / "o"))
    rec = {"materialize": {"pools": [{"name": "x", "files": [str(tmp_path / "none*.parquet")],
                                      "epochs": 1.0, "unique_tokens": 10.0}]}}
    with pytest.raises(MaterializeError, match="nothing matches"):
        materialize(rec, str(tmp_path / "o"), pipeline=local_pipeline())
    assert not (tmp_path / "o").exists()  # a config mistake touches no output directory
    rec["materialize"]["pools"][0]["epochs"] = -1
    with pytest.raises(MaterializeError, match="epochs"):
        materialize(rec, str(tmp_path / "o"))


def test_materialize_uses_the_builds_token_column(tmp_path):
    # With token_column, the counts come from the build (here deliberately 10 per document,
    # which no tokenizer gives), not from re-tokenizing.
    rows = stdlib_doc_rows(("json", "textwrap"))
    for r in rows:
        r["tokens"] = 10
    (tmp_path / "data").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "data" / "a.parquet")
    rec = {"materialize": {"seed": 1, "shards": 1, "token_column": "tokens", "pools": [
        {"name": "all", "files": [str(tmp_path / "data" / "*.parquet")], "select": None,
         "epochs": 0.5, "unique_tokens": 10.0 * len(rows)}]}}
    m = materialize(rec, str(tmp_path / "out"), pipeline=local_pipeline())
    (pool,) = m["pools"]
    assert pool["achieved_tokens"] == pytest.approx(5.0 * len(rows), abs=10)
    assert pool["documents"] == pytest.approx(len(rows) / 2, abs=1)


def test_materialize_is_staged_and_promoted_like_a_build(tmp_path):
    """A second materialization into the same directory replaces the first atomically (the
    `current` link moves), records its outputs, and leaves no staging behind."""
    import os

    rows = _pool_files(tmp_path / "in")
    rec = _rec(tmp_path / "in", rows)
    out = tmp_path / "mix"
    m1 = materialize(rec, str(out), pipeline=local_pipeline())
    assert m1["status"] == "complete" and m1["kind"] == "materialize"
    assert os.path.islink(out / "current") and os.path.islink(out / "data")
    first = os.readlink(out / "current")
    rec["materialize"]["seed"] = 8
    m2 = materialize(rec, str(out), pipeline=local_pipeline())
    assert os.readlink(out / "current") != first and m2["previous"] == first.split("/")[-1]
    assert not (out / "_staging").exists()
    recorded = {o["path"] for o in m2["outputs"]}
    for f in m2["files"]:
        assert f["path"].startswith(str(out) + "/data/") and Path(f["path"]).is_file()
        assert f["path"][len(str(out)) + 1:] in recorded
