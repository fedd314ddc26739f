"""Filesystem helpers for a build's own files (outputs, checkpoints, staging, stats).

Every path handled here is a *literal* path: nothing is ever expanded as a glob, so an output
directory named ``out/run[2]`` is treated as exactly that directory. Local paths use the OS
directly; URLs (``gs://``, ``s3://``...) go through Beam's FileSystems.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from apache_beam.io.filesystems import FileSystems


def is_url(path: str) -> bool:
    return "://" in path


def exists(path: str) -> bool:
    try:
        return FileSystems.exists(path)
    except Exception:  # noqa: BLE001 - e.g. gs:// without the gcp extra while only planning
        return False


def read_json(path: str) -> Any:
    with FileSystems.open(path) as fh:
        return json.loads(fh.read().decode("utf-8"))


def list_files(folder: str) -> list[str]:
    """All files below ``folder`` (recursively: partitioned outputs have sub-folders)."""
    if not is_url(folder):
        root = Path(folder)
        return sorted(str(p) for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
    if not exists(folder):
        return []
    return sorted(m.path for m in FileSystems.match([f"{folder}/**"])[0].metadata_list)


def confined(root: str, *parts: str) -> str:
    """``root/part/...`` after checking that no part can leave ``root`` (contract C2).

    A part may not be empty, ``.`` or ``..``, contain a path separator or a NUL byte, so a
    path built from a stage label always stays below the output directory.
    """
    from pipelines.core.settings import ConfigError

    for part in parts:
        if part in ("", ".", "..") or any(c in part for c in "/\\\x00") or ".." in part:
            raise ConfigError(
                f"refusing to build a path below {root!r} from {part!r}: it could leave the "
                "output directory (use letters, digits, '_', '.', '-' and no '..')")
    return "/".join([root.rstrip("/"), *parts])


def within(path: str, root: str) -> bool:
    """``path`` is ``root`` or below it (local paths compared after resolving symlinks)."""
    if is_url(path) or is_url(root):
        a, b = path.rstrip("/"), root.rstrip("/")
        return a == b or a.startswith(b + "/")
    a, b = os.path.realpath(path), os.path.realpath(root)
    return a == b or a.startswith(b.rstrip(os.sep) + os.sep)
