"""Build configuration: YAML -> pydantic models, validated before any work starts.

Every mistake becomes a :class:`ConfigError` whose message names the field path
(``stages[2].min_words``), the bad value and what is allowed, so the user can fix it.
Other commands (synth, recommend) reuse :func:`load_yaml` / :func:`validate_model`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import (BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError,
                      field_validator, model_validator)

from pipelines.stage import UNAVAILABLE, StageParams, load_stages

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration mistake, with a message meant for the person who wrote the config."""


def _loc(loc: tuple[Any, ...], prefix: str = "") -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def format_validation_error(err: ValidationError, prefix: str = "") -> str:
    lines = []
    for e in err.errors():
        loc = tuple(x for x in e["loc"] if not (isinstance(x, str) and x.startswith("function-")))
        where = _loc(loc, prefix)
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown field (remove it or check its spelling)")
            continue
        got = e.get("input")
        shown = json.dumps(got, default=str)[:120] if got is not None else "nothing"
        lines.append(f"{where}: {msg} (got {shown})")
    return "\n".join(lines)


def validate_model(model: type[M], data: Any, prefix: str = "") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, prefix)) from None


def load_yaml(path: str | Path) -> Any:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist")
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: not valid YAML: {err}") from None


# --------------------------------------------------------------------------- models


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceConfig(_Strict):
    name: str = Field(description="Value of the 'source' column for records from here.")
    type: Literal["jsonl", "parquet", "hf", "demo_corpus", "warc", "html"] = Field(
        description="jsonl (plain, .gz, .zst), parquet, hf (datasets.load_from_disk path or a "
        "hub dataset name), demo_corpus (generated locally from the Python installation), "
        "warc (plain or .gz WARC files, main text extracted), html (one page per file)."
    )
    path: str = Field(description="File, directory or glob; for hf a saved dataset or hub name.")
    text_field: str = "text"
    id_field: str | None = Field(
        default=None,
        description="Field holding a record id; when absent ids are derived from path + line/row.",
    )
    split: str = Field(default="train", description="hf only: split to read.")
    hf_shards: int = Field(default=4, ge=1, description="hf only: parallel read shards.")
    demo_docs: int = Field(default=3000, ge=50, description="demo_corpus only: base documents.")
    # --- warc / html sources (pipelines/web_sources.py)
    extractor: Literal["resiliparse", "trafilatura"] = Field(
        default="resiliparse", description="warc/html only: main-text extractor.")
    content_types: list[str] = Field(
        default_factory=lambda: ["text/html", "application/xhtml+xml"], min_length=1,
        description="warc/html only: MIME types extracted; other responses are dead-lettered.")

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not v or any(c in v for c in "/\\:"):
            raise ValueError("must be non-empty and must not contain '/', '\\' or ':'")
        return v


class OutputConfig(_Strict):
    dir: str = Field(description="Output directory (local path or any Beam filesystem URL).")
    shards: int = Field(default=4, ge=1, le=100_000, description="Number of Parquet shards.")
    jsonl: bool = Field(default=False, description="Also write kept records as JSONL shards.")
    write_removed: bool = Field(default=True, description="Write removed records with reasons.")
    report: bool = Field(default=True, description="Write report.html.")
    card: bool = Field(default=True, description="Write README.md, a Hugging Face dataset card "
                       "(YAML header + sources, stages, counts, languages, tokens).")
    license: str | None = Field(default=None, description="Licence for the dataset card header "
                                "(an SPDX id such as 'odc-by' or 'cc-by-4.0'); unset: 'other'.")
    partition_by: str | None = Field(
        default=None,
        description="Split kept records into data/<column>=<value>/ folders, e.g. 'language' "
        "after the language_id stage (per-language outputs).",
    )


class RunnerConfig(_Strict):
    name: str = Field(
        default="DirectRunner",
        description="Any Beam runner: DirectRunner, DataflowRunner, FlinkRunner, SparkRunner...",
    )
    direct_num_workers: int = Field(default=1, ge=0, description="DirectRunner workers (0 = cores).")
    direct_running_mode: Literal["in_memory", "multi_threading", "multi_processing"] = "in_memory"
    options: list[str] = Field(
        default_factory=list,
        description="Extra Beam pipeline arguments, e.g. ['--project=p', '--region=us-central1'].",
    )


class BuildConfig(_Strict):
    name: str = "build"
    plugins: list[str] = Field(
        default_factory=list,
        description="Python modules defining extra stages (imported before the stages are "
        "validated), e.g. ['my_package.my_stages']. See pipelines/plugins.py.",
    )
    sources: list[SourceConfig] = Field(min_length=1)
    # SerializeAsAny: dump each stage with its own Params fields, not only the base ones
    stages: list[SerializeAsAny[StageParams]] = Field(default_factory=list)
    output: OutputConfig
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    length_histogram_bins: int = Field(default=40, ge=5, le=400)

    @model_validator(mode="after")
    def _unique_sources(self) -> BuildConfig:
        names = [s.name for s in self.sources]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"sources: names must be unique; repeated: {sorted(dup)}")
        return self


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
            parsed.append(registry[name].Params.model_validate(item))
        except ValidationError as err:
            problems.append(format_validation_error(err, where))
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


def build_config_from_dict(data: Any) -> BuildConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"the top level must be a mapping (got {type(data).__name__})")
    data = dict(data)
    raw_stages = data.pop("stages", [])
    problems = []
    plugins = data.get("plugins") or []
    if isinstance(plugins, list):  # (a non-list is reported by the model below)
        from pipelines.plugins import PluginError, import_plugins

        try:
            import_plugins(plugins)
        except PluginError as err:
            raise ConfigError(str(err)) from None
    try:
        stages = parse_stages(raw_stages)
    except ConfigError as err:
        problems.append(str(err))
        stages = []
    try:
        cfg = BuildConfig.model_validate({**data, "stages": []})
    except ValidationError as err:
        problems.insert(0, format_validation_error(err))
        cfg = None
    if problems:
        raise ConfigError("\n".join(problems))
    assert cfg is not None
    cfg.stages = stages
    return cfg


def stage_labels(stages: list[StageParams]) -> list[str]:
    return [s.label or s.stage for s in stages]


def apply_overrides(data: Any, overrides: dict[str, Any] | None) -> Any:
    """Set dotted keys (``output.dir``) in a loaded YAML mapping, creating parents."""
    if isinstance(data, dict):
        for dotted, value in (overrides or {}).items():
            node = data
            keys = dotted.split(".")
            for k in keys[:-1]:
                node = node.setdefault(k, {})
            node[keys[-1]] = value
    return data


def load_build_config(path: str | Path, overrides: dict[str, Any] | None = None) -> BuildConfig:
    """Load and validate a build config; ``overrides`` maps dotted keys to values."""
    data = apply_overrides(load_yaml(path), overrides)
    try:
        return build_config_from_dict(data)
    except ConfigError as err:
        raise ConfigError(f"{path}:\n{err}") from None


def stage_fingerprint(cfg: BuildConfig, upto: int) -> str:
    """Hash of everything that determines the records after stage ``upto`` (inclusive)."""
    payload = {
        "sources": [s.model_dump() for s in cfg.sources],
        "stages": [
            {k: v for k, v in s.model_dump().items() if k != "checkpoint"}
            for s in cfg.stages[: upto + 1]
        ],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
