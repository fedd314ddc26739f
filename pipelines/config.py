"""Build configuration: YAML -> pydantic models, validated before any work starts.

Every mistake becomes a :class:`ConfigError` whose message names the field path
(``stages[2].min_words``), the bad value and what is allowed, so the user can fix it.
Other commands (synth, recommend) reuse :func:`load_yaml` / :func:`validate_model`.

Build configs are validated with strict types (as if the YAML were JSON): ``min_words: true``,
``shards: 2.0`` or ``jsonl: "yes"`` are errors, not silently coerced; an integer is accepted
where a float is expected. YAML anchors/aliases may not expand to more than
``MAX_YAML_NODES`` values (a few-KB "billion laughs" file would otherwise take GBs). Stage
labels must match :data:`LABEL_PATTERN` (they become directory names).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, SerializeAsAny,
                      ValidationError, field_validator, model_validator)

from pipelines.framing import DEFAULT_MAX_RECORD_BYTES
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
        hint = _TYPE_HINTS.get(e["type"], "")
        if e["type"] in ("float_type", "float_parsing") and isinstance(got, str):
            hint = "; YAML reads 1e-3 as text: write 1.0e-3 or 0.001"
        lines.append(f"{where}: {msg} (got {shown}){hint}")
    return "\n".join(lines)


_TYPE_HINTS = {
    "int_type": "; write a whole number without quotes or decimal point, e.g. 4",
    "int_from_float": "; write a whole number without a decimal point, e.g. 4",
    "bool_type": "; write true or false, without quotes",
    "string_type": "; put the value in quotes",
    "float_type": "; write a number, e.g. 0.5",
    "list_type": "; write a list, e.g. [a, b]",
    "dict_type": "; write a mapping, e.g. {key: value}",
}


def validate_model(model: type[M], data: Any, prefix: str = "", strict: bool = False) -> M:
    """Validate ``data`` against ``model``; ``strict`` validates it as JSON with strict types
    (no bool/str/float -> int coercion; lists are fine for tuples; int keys as strings)."""
    try:
        if strict:
            return model.model_validate_json(_as_json(data), strict=True)
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, prefix)) from None


def _as_json(data: Any) -> str:
    # default=str: YAML dates and the like become text (and fail where text is not allowed)
    try:
        return json.dumps(data, default=str, allow_nan=True)
    except TypeError as err:  # a mapping key YAML read as a date or the like
        raise ConfigError(f"a mapping key is not text or a number ({err}); quote it") from None


MAX_YAML_NODES = 100_000  # values after alias expansion; real configs have a few hundred


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """Number of nodes ``root`` stands for once every alias is expanded (stops past limit).

    Aliases are shared node objects in PyYAML's graph, so sizes are memoized per node:
    the work is linear in the file, not in the expansion."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ConfigError("YAML anchor refers to itself (recursive alias)")
        active.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            for child in node.value:
                total += size(child)
                if total > limit:
                    break
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                total += size(k) + size(v)
                if total > limit:
                    break
        active.discard(key)
        sizes[key] = total
        return total

    return size(root)


def parse_yaml(text: str, name: str = "<config>") -> Any:
    """``yaml.safe_load`` with alias expansion bounded to ``MAX_YAML_NODES`` values."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        n = _expanded_size(node, MAX_YAML_NODES)
        if n > MAX_YAML_NODES:
            raise ConfigError(
                f"{name}: YAML expands to more than {MAX_YAML_NODES:,} values through "
                "anchors/aliases (&x / *x); a config never needs that many: remove the "
                "repeated aliases")
        return loader.construct_document(node)
    except RecursionError:
        raise ConfigError(f"{name}: YAML nested too deeply") from None
    finally:
        loader.dispose()


def load_yaml(path: str | Path) -> Any:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist")
    try:
        return parse_yaml(p.read_text(encoding="utf-8"), str(p))
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: not valid YAML: {err}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{p}: not UTF-8 text ({err.reason} at byte {err.start})") from None


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
    max_record_bytes: int = Field(
        default=DEFAULT_MAX_RECORD_BYTES, ge=1024, le=1 << 31,
        description="Longest input record (JSONL line, or text value) read; longer ones go to "
        "dead_letter with their first 20,000 bytes, without being loaded whole. Default 32 MiB.",
    )
    demo_docs: int = Field(default=3000, ge=50, description="demo_corpus only: base documents.")
    # --- warc / html sources (pipelines/web_sources.py)
    extractor: Literal["resiliparse", "trafilatura"] = Field(
        default="resiliparse", description="warc/html only: main-text extractor.")
    content_types: list[str] = Field(
        default_factory=lambda: ["text/html", "application/xhtml+xml"], min_length=1,
        description="warc/html only: MIME types extracted; other responses are dead-lettered.")
    # --- input fields kept as columns (pipelines/input_fields.py)
    keep_fields: list[str] | None = Field(
        default=None,
        description="Input fields kept as output columns (besides text_field/id_field); "
        "unset: every field; []: none. Exclusive with drop_fields.")
    drop_fields: list[str] | None = Field(
        default=None, description="Input fields not kept; every other field is kept.")
    # the planned FieldPlan (pipelines.plan sets it; derived from config + files, not config)
    _input_fields: Any = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _fields_ok(self) -> SourceConfig:
        if self.keep_fields is not None and self.drop_fields is not None:
            raise ValueError(
                f"keep_fields {self.keep_fields} and drop_fields {self.drop_fields} are "
                "mutually exclusive: keep only the list you need")
        for key in ("keep_fields", "drop_fields"):
            names = getattr(self, key) or []
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"{key}: names repeated: {dup} (list each field once)")
            if "" in names:
                raise ValueError(f"{key}: an empty field name (remove it)")
        if self.type in ("warc", "html") and (self.keep_fields or self.drop_fields):
            raise ValueError(
                f"keep_fields/drop_fields: type {self.type} records have no input fields "
                "(their columns are url, fetch_date, ...); remove the option")
        return self

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
            params = registry[name].Params.model_validate_json(_as_json(item), strict=True)
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
        cfg = BuildConfig.model_validate_json(_as_json({**data, "stages": []}), strict=True)
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
