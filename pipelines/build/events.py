"""What the build graph maps over removed and dead items on the workers.

Kept apart from :mod:`pipelines.build.graph`: a class or function pickled by reference makes
each worker import its module, and graph.py imports the planner and the config models
(pydantic), which a worker never needs (~0.35 s of CPU per worker process)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipelines.core import progress
from pipelines.core.fs import read_json


class RemovedRow:
    """A removed ``(reason, record)`` item -> its row in ``removed/``."""

    def __init__(self, label: str):
        self._label = label

    def __call__(self, item: Any) -> dict[str, Any]:
        reason, record = item
        return {"stage": self._label, "reason": reason, "record": record}


class ProgressKey:
    """Event key of a removed/dead item, counting it in the live progress as it passes."""

    def __init__(self, progress_key: str, make_key: Callable, label: str, reason: Callable):
        self._p, self._make, self._label, self._reason = progress_key, make_key, label, reason

    def __call__(self, item: Any) -> str:
        progress.add(self._p)
        return self._make(self._label, self._reason(item))


def checkpoint_data_files(manifest_path: str) -> list[str]:
    """The data shards a checkpoint's manifest lists (written: the manifest comes last)."""
    return [f["path"] for f in read_json(manifest_path)["files"]]
