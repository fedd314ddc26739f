"""Finalizing a build: move the staged outputs into place, write stats.json, report and
manifest, clean up the staging directory; and recognising an up-to-date complete build."""

from __future__ import annotations

import shutil
from pathlib import Path

from apache_beam.io.filesystems import FileSystems

from pipelines.buildfs import exists, list_files, read_json
from pipelines.checkpoint import chain, files_valid
from pipelines.plan import BuildPlan


def _move_tree(src_dir: str, dst_dir: str, copy: bool = False, prefix: str = "") -> None:
    src = list_files(src_dir)
    if not src:
        return
    dst = []
    for path in src:
        rel = path[len(src_dir):].lstrip("/")
        head, _, name = rel.rpartition("/")
        dst.append(f"{dst_dir}/{head + '/' if head else ''}{prefix}{name}")
    if "://" not in dst_dir:
        for d in dst:
            Path(d).parent.mkdir(parents=True, exist_ok=True)
    (FileSystems.copy if copy else FileSystems.rename)(src, dst)


def promote(plan: BuildPlan) -> list[dict]:
    """Move staged outputs into place (replacing a previous run's) and copy resumed side outputs."""
    import pyarrow.parquet as pq

    out, staging = plan.out, plan.staging
    for sub in ("data", "jsonl", "removed", "dead_letter"):
        if "://" not in out:
            shutil.rmtree(f"{out}/{sub}", ignore_errors=True)
        else:
            old = list_files(f"{out}/{sub}")
            if old:
                FileSystems.delete(old)
        _move_tree(f"{staging}/{sub}", f"{out}/{sub}")
    for depth, ck in enumerate(chain(plan.resume)):
        for sub in ("removed", "dead_letter"):
            _move_tree(f"{ck}/{sub}", f"{out}/{sub}", copy=True, prefix=f"resumed{depth}-")
    files = []
    for path in list_files(f"{out}/data"):
        if path.endswith(".parquet"):
            with FileSystems.open(path) as fh:
                files.append({"path": path, "rows": pq.ParquetFile(fh).metadata.num_rows})
    return files


def cleanup_staging(plan: BuildPlan) -> None:
    if "://" not in plan.out:
        shutil.rmtree(plan.staging, ignore_errors=True)
        root = Path(plan.out) / "_staging"
        if root.is_dir() and not any(root.iterdir()):
            root.rmdir()
    elif exists(plan.staging):
        FileSystems.delete([plan.staging])


def existing_complete(plan: BuildPlan) -> dict | None:
    mpath = f"{plan.out}/manifest.json"
    if not exists(mpath):
        return None
    try:
        manifest = read_json(mpath)
    except Exception:  # noqa: BLE001
        return None
    if manifest.get("status") != "complete" or manifest.get("fingerprint") != plan.full_fingerprint():
        return None
    if not files_valid(manifest.get("files", [])) or not exists(f"{plan.out}/stats.json"):
        return None
    return manifest
