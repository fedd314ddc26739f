"""Filesystem helpers for a build's own files (outputs, checkpoints, staging, stats).

Every path handled here is a *literal* path: nothing is ever expanded as a glob, so an output
directory named ``out/run[2]`` is treated as exactly that directory. Local paths use the OS
directly; URLs (``gs://``, ``s3://``...) go through Beam's FileSystems.
"""

from __future__ import annotations

import json
import os
import uuid
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


def write_json(path: str, obj: Any, *, indent: int | None = 2, sort_keys: bool = True,
               ensure_ascii: bool = True, default: Any = None, newline: bool = False,
               durable: bool = True, parents: bool = True) -> None:
    """Write ``obj`` as the JSON file ``path`` with :func:`write_bytes`: a reader sees the old
    file or the new one, never a partial one. The one JSON writer of datamill
    (tests/test_fs_json.py checks that no other module writes JSON to a file).

    The options are ``json.dumps``'s (``default=str`` for values such as paths or dates);
    ``newline`` appends ``"\\n"``. The bytes are produced before anything is opened, so an
    object that cannot be serialized leaves no file, temporary or not."""
    data = json.dumps(obj, indent=indent, sort_keys=sort_keys, ensure_ascii=ensure_ascii,
                      default=default)
    write_bytes(path, (data + "\n" if newline else data).encode("utf-8"), durable=durable,
                parents=parents)


def write_bytes(path: str, payload: bytes, *, durable: bool = True,
                parents: bool = True) -> None:
    """Write ``payload`` as the file ``path``; a reader sees the old file or the new one, never
    a partial one. Every file datamill writes whole (JSON, a resume cache, a trained model)
    goes through here.

    Local paths: the bytes go to a temporary file beside the target (same directory, so the
    same filesystem), which is flushed and fsynced, renamed over the target with
    ``os.replace`` (atomic on POSIX), and the directory is fsynced so the rename itself
    survives a crash. Parent directories are created as Beam's local ``FileSystems.create``
    does (``parents=False``: not, a missing folder is ``FileNotFoundError``). On any failure the temporary file is removed and the old target is left as it was.
    ``durable=False`` skips both fsyncs (still atomic for readers; for files that only matter
    while the process lives, such as progress snapshots written every half second).

    URLs (``gs://``, ``s3://``): written directly with ``FileSystems.create``. Object stores
    make a single-object write atomic already (the new object becomes visible only when the
    upload completes; a failed upload leaves the old object), whereas their "rename" is a copy
    plus a delete, which would add a window with two objects and no atomicity. Other remote
    filesystems (e.g. ``hdfs://``) get no atomicity guarantee from this function.
    """
    if is_url(path):
        with FileSystems.create(path) as fh:
            fh.write(payload)
        return
    folder = os.path.dirname(os.path.abspath(path))
    if parents:
        os.makedirs(folder, exist_ok=True)
    # a unique name, created exclusively with the usual mode (0o666 less the umask)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}-{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if durable:
        fsync_dir(folder)


def fsync_dir(folder: str) -> None:
    """Make a rename in ``folder`` durable (best effort: not every OS can fsync a directory)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
