"""Build configuration: YAML -> pydantic models (sources, stages, output, runner), validated
completely before any work starts; the fingerprint that decides whether a checkpoint is reusable."""


from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import Field, SerializeAsAny, ValidationError, model_validator

from pipelines.core.settings import (
    ConfigError,
    RunnerConfig,
    StrictModel,
    apply_overrides,
    as_json,
    format_validation_error,
    load_yaml,
)
from pipelines.io.source_config import SourceConfig
from pipelines.stages.base import StageParams
from pipelines.stages.registry import parse_stages


class OutputConfig(StrictModel):
    dir: str = Field(description="Output directory (local path or any Beam filesystem URL).")
    shards: int = Field(default=4, ge=1, le=100_000, description="Number of Parquet shards.")
    jsonl: bool = Field(default=False, description="Also write kept records as JSONL shards.")
    write_removed: bool = Field(default=True, description="Write removed records with reasons.")
    report: bool = Field(default=True, description="Write report.html.")
    redact_snippets: bool | None = Field(
        default=None,
        description="Replace e-mail addresses, IP addresses and phone numbers in every text "
        "report.html shows (removed-record samples, near-duplicate pairs, dead-letter lines...) "
        "with pii_redact's detectors and placeholders. Unset: on when the build has a "
        "pii_redact stage (with that stage's settings). removed/ and dead_letter/ always keep "
        "the original text.")
    card: bool = Field(default=True, description="Write README.md, a Hugging Face dataset card "
                       "(YAML header + sources, stages, counts, languages, tokens).")
    license: str | None = Field(default=None, description="Licence for the dataset card header "
                                "(an SPDX id such as 'odc-by' or 'cc-by-4.0'); unset: 'other'.")
    max_dead_letter_fraction: float = Field(
        default=0.5, ge=0.0, le=1.0,
        description="The build fails (exit code 4, nothing promoted) when more than this "
        "fraction of the input records went to dead_letter; it always fails when every record "
        "did (e.g. a wrong text_field).",
    )
    partition_by: str | None = Field(
        default=None,
        description="Split kept records into data/<column>-<value>/ folders, e.g. 'language' "
        "after the language_id stage (per-language outputs); the files keep the column, so "
        "pandas, pyarrow, duckdb and datasets read the folder alike.",
    )
    partition_rows_per_shard: int = Field(
        default=100_000, ge=1,
        description="partition_by: shards per partition = ceil(records / this), at most "
        "'shards' (a small language gets one file, not 'shards' tiny ones).",
    )


class BuildConfig(StrictModel):
    name: str = "build"
    plugins: list[str] = Field(
        default_factory=list,
        description="Python modules defining extra stages (imported before the stages are "
        "validated), e.g. ['my_package.my_stages']. See pipelines/stages/plugins.py.",
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


def build_config_from_dict(data: Any) -> BuildConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"the top level must be a mapping (got {type(data).__name__})")
    data = dict(data)
    raw_stages = data.pop("stages", [])
    problems = []
    plugins = data.get("plugins") or []
    if isinstance(plugins, list):  # (a non-list is reported by the model below)
        from pipelines.stages.plugins import PluginError, import_plugins

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
        cfg = BuildConfig.model_validate_json(as_json({**data, "stages": []}), strict=True)
    except ValidationError as err:
        problems.insert(0, format_validation_error(err))
        cfg = None
    if problems:
        raise ConfigError("\n".join(problems))
    assert cfg is not None
    cfg.stages = stages
    return cfg


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
