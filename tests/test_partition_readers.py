"""``partition_by: language`` output read by the tools data teams use: duckdb, pandas, pyarrow and
``datasets`` must all see the same rows, with ``language`` a plain string column (the folders are
``language-xx``, not hive ``language=xx``, so no reader adds a second, differently typed column)."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from tests.buildutil import build, config, write_jsonl

MAN = Path("/usr/share/man")
_ESCAPE = re.compile(r"\\(\([a-zA-Z]{2}|f[BIRP]|[-&e ]|\*.|.)")


def _man_text(path: Path) -> str:
    """A man page's prose: roff requests and escapes dropped, line breaks kept."""
    lines = []
    for ln in gzip.decompress(path.read_bytes()).decode("utf-8", "replace").splitlines():
        if ln.startswith((".", "'")):
            continue
        ln = _ESCAPE.sub(" ", ln).strip()
        if ln:
            lines.append(ln)
    return "\n".join(lines)


def _man_rows(langs: tuple[str, ...], per_lang: int) -> list[dict]:
    rows = []
    for lang in langs:
        folder = MAN / lang / "man1" if lang != "en" else MAN / "man1"
        files = sorted(folder.glob("*.1.gz"))[: per_lang * 3] if folder.is_dir() else []
        got = 0
        for f in files:
            text = _man_text(f)
            if len(text.split()) >= 150:
                rows.append({"id": f"{lang}/{f.name}", "text": text})
                got += 1
            if got == per_lang:
                break
    return rows


@pytest.fixture(scope="module")
def partitioned(tmp_path_factory):
    rows = _man_rows(("de", "fr", "es", "en"), 6)
    if len({r["id"].split("/")[0] for r in rows}) < 3:
        pytest.skip("fewer than 3 languages of man pages installed under /usr/share/man")
    tmp = tmp_path_factory.mktemp("partition")
    write_jsonl(tmp / "man.jsonl", rows)
    res = build(config([{"name": "man", "type": "jsonl", "path": str(tmp / "man.jsonl"),
                         "id_field": "id"}],
                       [{"stage": "language_id", "min_score": 0.3}], tmp / "out",
                       partition_by="language"))
    return tmp / "out", res


def _expected(res) -> dict[str, int]:
    by_lang = res.stats["breakdown"]["by_language"]
    return {k: v["kept"] for k, v in by_lang.items() if v["kept"]}


def test_partition_folders_are_not_hive_keys(partitioned):
    out, res = partitioned
    folders = sorted(p.name for p in (out / "data").iterdir() if p.is_dir())
    assert len(folders) >= 3 and all(re.fullmatch(r"language-[a-z]{2,3}", f) for f in folders)
    assert not any("=" in str(p) for p in (out / "data").rglob("*"))
    # small partitions are one file each, not output.shards of them
    assert len(list((out / "data").rglob("*.parquet"))) == len(folders)
    assert sum(f["rows"] for f in res.stats["output_files"]) == res.stats["counts"]["kept"]


def test_duckdb_reads_the_partitioned_output(partitioned):
    duckdb = pytest.importorskip("duckdb")
    out, res = partitioned
    con = duckdb.connect()
    glob = f"{out}/data/**/*.parquet"
    got = dict(con.execute(
        f"SELECT language, count(*) FROM read_parquet('{glob}') GROUP BY language").fetchall())
    assert got == _expected(res)
    # hive detection on (duckdb's default is auto) adds nothing: the folders are not key=value
    cols = [r[0] for r in con.execute(
        f"DESCRIBE SELECT * FROM read_parquet('{glob}', hive_partitioning=true)").fetchall()]
    assert cols.count("language") == 1 and "language_score" in cols
    typ = dict((r[0], r[1]) for r in con.execute(
        f"DESCRIBE SELECT * FROM read_parquet('{glob}')").fetchall())
    assert typ["language"] == "VARCHAR" and typ["text"] == "VARCHAR"
    # a row is intact: the text of a German page sits in the German partition
    row = con.execute(f"SELECT id, language, text FROM read_parquet('{glob}') "
                      "WHERE id LIKE 'de/%' ORDER BY id LIMIT 1").fetchone()
    assert row[1] == "de" and len(row[2].split()) >= 150 and "\n" in row[2]


def test_pandas_pyarrow_and_datasets_agree_with_duckdb(partitioned):
    import datasets
    import pandas as pd
    import pyarrow.parquet as pq

    out, res = partitioned
    expected = _expected(res)
    df = pd.read_parquet(out / "data")
    assert df["language"].value_counts().to_dict() == expected
    table = pq.read_table(out / "data")
    assert str(table.schema.field("language").type) == "string"
    assert sorted(table.column("id").to_pylist()) == sorted(df["id"])
    ds = datasets.load_dataset("parquet", data_files=str(out / "data" / "**" / "*.parquet"),
                               split="train")
    assert sorted(ds["id"]) == sorted(df["id"])
    assert {k: ds["language"].count(k) for k in expected} == expected

