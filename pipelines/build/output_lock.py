"""One build at a time per output directory.

Local output directories: an exclusive ``fcntl.flock`` on ``<out>/.datamill.lock``, held for
the whole run. The kernel drops the lock when the holding process dies (even on SIGKILL), so a
lock left by a dead process is taken over without any staleness guess; the file's contents
(pid, run id, host, start time) only name the holder in the error message. Caveat: ``flock``
on NFS is only as reliable as the NFS server's lock support.

Remote output directories (``gs://``...) have no lock primitive: a lock object
``<out>/_lock.json`` is written (best effort, not atomic against a simultaneous start) and a
second build refuses while it exists, unless it was left by a dead process on this host.
Taking it is bounded in time like every remote call before the pipeline runs
(:mod:`pipelines.core.remote`: ``DATAMILL_REMOTE_TIMEOUT``, one line on failure). A dry run
(``--dry_run=True``) takes no lock (:func:`pipelines.build.run.run_build`).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from typing import Any

from apache_beam.io.filesystems import FileSystems

from pipelines.build.errors import DiskFull, OutputLocked, disk_full_cause
from pipelines.core import remote
from pipelines.core.fs import exists, is_url, read_json, write_json

LOCK_NAME = ".datamill.lock"
REMOTE_LOCK_NAME = "_lock.json"


def _holder(run_id: str) -> dict[str, Any]:
    return {"pid": os.getpid(), "run_id": run_id, "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _write_holder(fd: int, holder: dict[str, Any]) -> None:
    """Write the holder's description into the (locked) lock file."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(holder).encode("utf-8"), 0)


def _describe(h: dict[str, Any]) -> str:
    return (f"run {h.get('run_id', '?')} (pid {h.get('pid', '?')} on {h.get('host', '?')}, "
            f"started {h.get('started', '?')})")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OutputLock:
    """Context manager; raises :class:`OutputLocked` naming the holder."""

    def __init__(self, out: str, run_id: str):
        self.out, self.run_id = out, run_id
        self._fd: int | None = None
        self._remote_path: str | None = None

    def __enter__(self) -> OutputLock:
        try:
            if is_url(self.out):
                self._acquire_remote()
            else:
                self._acquire_local()
        except Exception as err:
            if disk_full_cause(err) is None:
                raise
            self.release()
            # a full disk before any work: the documented exit 74 and one line, no traceback
            raise DiskFull(
                f"disk full (No space left on device): cannot write the output lock in "
                f"{self.out}; nothing was built and the previous build is unchanged; free "
                "space there and rerun") from None
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _acquire_local(self) -> None:
        import fcntl

        os.makedirs(self.out, exist_ok=True)
        path = os.path.join(self.out, LOCK_NAME)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "{}")
            except ValueError:
                holder = {}
            os.close(fd)
            raise OutputLocked(
                f"output directory {self.out} is in use by another build: {_describe(holder)}; "
                "wait for it to finish or use another output dir") from None
        self._fd = fd  # released (the flock dropped) if writing the holder fails
        _write_holder(fd, _holder(self.run_id))

    def _acquire_remote(self) -> None:
        path = f"{self.out}/{REMOTE_LOCK_NAME}"
        remote.call(lambda: self._take_remote(path), path, "taking the output lock")
        self._remote_path = path

    def _take_remote(self, path: str) -> None:
        if exists(path):
            try:
                holder = read_json(path)
            except Exception:  # noqa: BLE001
                holder = {}
            dead_here = holder.get("host") == socket.gethostname() and isinstance(
                holder.get("pid"), int) and not _pid_alive(holder["pid"])
            if not dead_here:
                raise OutputLocked(
                    f"output directory {self.out} is in use by another build: "
                    f"{_describe(holder)}; if that build is gone, delete {path}")
        write_json(path, _holder(self.run_id), indent=None, sort_keys=False)

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):  # else the description stays; the lock goes
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = None
        if self._remote_path is not None:
            path, self._remote_path = self._remote_path, None
            try:
                remote.call(lambda: FileSystems.delete([path]), path,
                            "removing the output lock")
            except Exception:  # noqa: BLE001 - nothing more to do when it is already gone
                pass
