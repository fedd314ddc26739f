"""Settings shared by every config: ConfigError, YAML loading with limits, strict pydantic
validation with messages that name the field, the bad value and the fix, and the runner block.

Every mistake becomes a :class:`ConfigError` whose message names the field path
(``stages[2].min_words``), the bad value and what is allowed, so the user can fix it.
Configs are validated with strict types (as if the YAML were JSON): ``min_words: true``,
``shards: 2.0`` or ``jsonl: "yes"`` are errors, not silently coerced; an integer is accepted
where a float is expected. YAML anchors/aliases may not expand to more than
``MAX_YAML_NODES`` values (a few-KB "billion laughs" file would otherwise take GBs).
"""


from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
            return model.model_validate_json(as_json(data), strict=True)
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, prefix)) from None


def as_json(data: Any) -> str:
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


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunnerConfig(StrictModel):
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
