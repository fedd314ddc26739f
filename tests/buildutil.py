"""Helpers for end-to-end build tests: write small corpora, run builds, read outputs."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow.parquet as pq

from pipelines.config import build_config_from_dict
from pipelines.graph import run_build


def write_jsonl(path: Path, rows: list, compress: str | None = None) -> Path:
    lines = [r if isinstance(r, bytes) else json.dumps(r).encode() for r in rows]
    data = b"\n".join(lines) + b"\n"
    if compress == "gz":
        data = gzip.compress(data)
    elif compress == "zst":
        import zstandard

        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)
    return path


def config(sources: list[dict], stages: list[dict], out: Path, **output) -> dict:
    return {
        "name": "test",
        "sources": sources,
        "stages": stages,
        "output": {"dir": str(out), "shards": 2, **output},
    }


def build(cfg: dict, **kw):
    return run_build(build_config_from_dict(cfg), **kw)


def read_output(out: Path) -> list[dict]:
    rows = []
    for f in sorted((out / "data").glob("*.parquet")):
        rows.extend(pq.read_table(f).to_pylist())
    return sorted(rows, key=lambda r: r["id"])


def read_jsonl_gz(folder: Path) -> list[dict]:
    rows = []
    for f in sorted(folder.glob("*.jsonl.gz")):
        rows.extend(json.loads(x) for x in gzip.decompress(f.read_bytes()).decode().splitlines())
    return rows
