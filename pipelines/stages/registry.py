"""The stage registry: config names -> :class:`~pipelines.stages.base.Stage` classes, discovery of
the stage modules in ``pipelines/stages/<family>/`` and of plugins, and validation of a config's
``stages:`` list against each stage's own Params model. Stage labels must match
:data:`LABEL_PATTERN` (they become directory names)."""

from __future__ import annotations

import difflib
import importlib
import json
import pkgutil
import re
from typing import Any

from pydantic import ValidationError

from pipelines.core.settings import ConfigError, as_json, format_validation_error
from pipelines.stages.base import Stage, StageParams

FAMILIES = ("text", "filter", "dedup", "embed")  # pipelines/stages/<family>/<stage>.py
STAGES: dict[str, type[Stage]] = {}
UNAVAILABLE: dict[str, str] = {}  # stage module -> import error (missing optional extra)


def register_stage(cls: type[Stage]) -> type[Stage]:
    """Class decorator: make ``cls`` available in configs under ``cls.name``."""
    if not getattr(cls, "name", None):
        raise TypeError(f"{cls.__name__} must set a class attribute 'name'")
    if cls.name in STAGES and STAGES[cls.name] is not cls:
        raise ValueError(f"two stages registered under the name {cls.name!r}")
    STAGES[cls.name] = cls
    return cls


_LOADED = False


def load_stages() -> dict[str, type[Stage]]:
    """Import every stage module in ``pipelines/stages/<family>/`` and every ``datamill.stages`` entry point
    (see :mod:`pipelines.stages.plugins`) so that their stages register themselves."""
    global _LOADED
    if not _LOADED:
        modules = []
        for family in FAMILIES:
            pkg = importlib.import_module(f"pipelines.stages.{family}")
            modules += [(info.name, f"{pkg.__name__}.{info.name}")
                        for info in pkgutil.iter_modules(pkg.__path__)
                        if not info.name.startswith("_")]
        for name, module in sorted(modules):
            try:
                importlib.import_module(module)
            except ImportError as err:
                UNAVAILABLE[name] = f"{type(err).__name__}: {err}"
        from pipelines.stages.plugins import PLUGIN_ERRORS, load_entry_points

        load_entry_points()  # installed packages' ``datamill.stages`` entry points
        UNAVAILABLE.update(PLUGIN_ERRORS)
        _LOADED = True
    return STAGES


LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_LABEL_RE = re.compile(LABEL_PATTERN)


def label_problem(label: Any) -> str | None:
    """Why ``label`` is not a safe stage label (None when it is): labels name directories."""
    if isinstance(label, str) and _LABEL_RE.match(label) and ".." not in label:
        return None
    return (f"{json.dumps(label, default=str)[:80]} is not allowed: use 1-64 characters from "
            "A-Z a-z 0-9 _ . - starting with a letter or digit, without '..' "
            "(labels become directory names)")


def parse_stages(raw: Any) -> list[StageParams]:
    """Validate each stage block against its own stage's Params model."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError("stages: must be a list of stage blocks, each with a 'stage' key")
    registry = load_stages()
    parsed: list[StageParams] = []
    problems: list[str] = []
    for i, item in enumerate(raw):
        where = f"stages[{i}]"
        if not isinstance(item, dict) or "stage" not in item:
            problems.append(f"{where}: must be a mapping with a 'stage' key (got {item!r})")
            continue
        name = item["stage"]
        if name not in registry:
            close = difflib.get_close_matches(str(name), registry, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            if UNAVAILABLE:
                hint += " (not loaded: " + "; ".join(
                    f"{m}: {e}" for m, e in sorted(UNAVAILABLE.items())) + ")"
            problems.append(
                f"{where}.stage: unknown stage {name!r}.{hint} "
                f"Allowed: {', '.join(sorted(registry))}"
            )
            continue
        try:
            params = registry[name].Params.model_validate_json(as_json(item), strict=True)
        except ValidationError as err:
            problems.append(format_validation_error(err, where))
            continue
        bad = label_problem(params.label) if params.label is not None else None
        if bad:
            problems.append(f"{where}.label: {bad}")
            continue
        parsed.append(params)
    if not problems:
        seen: set[str] = set()
        for i, label in enumerate(stage_labels(parsed)):
            if label in seen:
                problems.append(
                    f"stages[{i}].label: {label!r} is used twice; give each repeated stage "
                    "a distinct 'label'"
                )
            seen.add(label)
    if problems:
        raise ConfigError("\n".join(problems))
    return parsed


def stage_labels(stages: list[StageParams]) -> list[str]:
    return [s.label or s.stage for s in stages]