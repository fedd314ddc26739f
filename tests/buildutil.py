"""Helpers for end-to-end build tests: write small corpora, run builds, read outputs."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow.parquet as pq

from pipelines.build.config import build_config_from_dict
from pipelines.build.run import run_build


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


def stdlib_doc_rows(modules: tuple[str, ...], min_words: int = 5) -> list[dict]:
    """Real English records: public docstrings of stdlib modules, with a spread 'quality'."""
    import importlib
    import inspect

    rows: list[dict] = []
    for mod in modules:
        m = importlib.import_module(mod)
        for name, obj in sorted(vars(m).items()):
            doc = inspect.getdoc(obj) if not name.startswith("_") else None
            if doc and len(doc.split()) >= min_words:
                rows.append({"id": f"{mod}.{name}", "text": doc, "source": mod,
                             "quality": (len(rows) * 37 % 100) / 100.0})
    return rows
