"""The dataset card: ``README.md`` beside the data, with a Hugging Face dataset-card YAML header.

The header declares the data files (so ``datasets.load_dataset(<out dir>)`` and the Hub viewer
find the Parquet shards and nothing else), the languages, the size category and the licence
from the config (``output.license``); the body says where the data came from and what was done
to it: sources, stages with their parameters, counts per stage and reason, tokens, languages and
the command that built it. Everything comes from the build's own ``stats.json`` numbers.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

# Hugging Face's size_categories buckets (by number of rows)
_SIZE_BUCKETS = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                 (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"),
                 (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
                 (10_000_000_000, "1B<n<10B"), (100_000_000_000, "10B<n<100B"),
                 (1_000_000_000_000, "100B<n<1T")]
_NOT_LANGUAGES = {"-", "und", "unknown", "", None}


def size_category(rows: int) -> str:
    for limit, name in _SIZE_BUCKETS:
        if rows < limit:
            return name
    return "n>1T"


def _languages(stats: dict[str, Any]) -> list[str]:
    by_lang = (stats.get("breakdown") or {}).get("by_language") or {}
    langs = [k for k, v in by_lang.items() if v.get("kept") and k not in _NOT_LANGUAGES]
    return sorted(langs, key=lambda k: (-by_lang[k]["kept"], k))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        text = f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _columns_section(stats: dict[str, Any]) -> list[str]:
    """The columns of the data files with their types, and how input fields were kept."""
    from pipelines.io.input_fields import EXTRA_FIELDS
    from pipelines.core.records import BASE_COLUMNS

    columns = {**BASE_COLUMNS, **(stats.get("columns") or {})}
    out = ["", "## Columns", "", _table(["column", "type"], [[f"`{k}`", f"`{v}`"]
                                                          for k, v in columns.items()])]
    notes = []
    if "json" in columns.values():
        notes.append("`json` columns hold JSON text (nested objects, mixed types): "
                     "`json.loads` the value.")
    if EXTRA_FIELDS in columns:
        notes.append(f"`{EXTRA_FIELDS}` holds, as a JSON object text, the input fields that "
                     "had no column (not seen when the types were planned, past the column "
                     "cap) or a value that did not fit their column's type; null when empty.")
    notes += list(stats.get("input_fields") or [])
    if notes:
        out += [""] + [f"- {n}" for n in notes]
    return out


def reading_snippets() -> dict[str, str]:
    """Code that reads a build's kept records, and only those, from ``<out>/data`` (one
    snippet per library; tests/test_output_layout.py runs each). Every other path below
    ``<out>`` is not data, and a glob over all of it counts records several times."""
    return {
        "pandas": 'import pandas as pd\ndf = pd.read_parquet(f"{OUT}/data")',
        "pyarrow": 'import pyarrow.dataset as ds\n'
                   'table = ds.dataset(f"{OUT}/data", format="parquet").to_table()',
        "duckdb": 'import duckdb\nrows = duckdb.sql(\n'
                  '    f"SELECT * FROM read_parquet(\'{OUT}/data/**/*.parquet\')").fetchall()',
        "datasets": 'from datasets import load_dataset\n'
                    'dset = load_dataset("parquet", data_files=f"{OUT}/data/**/*.parquet", '
                    'split="train")',
    }


def _reading_section(cfg: Any, kept: int) -> list[str]:
    out = str(cfg.output.dir).rstrip("/")
    state = "" if "://" in out else \
        "`current` and `_builds/`, with this build and the previous one, "
    parts = ["", "## Reading the data", "",
             f"Read `data/` and nothing else: it holds exactly the {kept:,} kept records as "
             "Parquet files (with `output.partition_by`, in one plain `<column>-<value>/` folder "
             "per value; the files keep the column). The rest of this folder is not data: "
             "`removed/` and `dead_letter/` (JSONL), `stats.json`, `report.html`, "
             f"`manifest.json`, this card, and datamill's own state ({state}`checkpoints/` "
             "with the records after intermediate stages), so a reader pointed at the whole "
             "folder fails on the "
             "non-Parquet files, and a glob such as `**/*.parquet` over it counts records "
             "several times.", "",
             "```python", f"OUT = {out!r}  # this folder", "```"]
    for code in reading_snippets().values():
        parts += ["", "```python", code, "```"]
    parts += ["", "Uploaded to the Hugging Face Hub, this card's YAML header points "
              "`load_dataset` at `data/` only. On this machine use the `parquet` loader above: "
              "`load_dataset(OUT)` caches a local folder by its name and header, not its "
              "files, and returns the previous build's rows after a rebuild in the same "
              "folder."]
    return parts


def render_card(cfg: Any, stats: dict[str, Any], data_glob: str = "data/**/*.parquet",
                command: str | None = None) -> str:
    """The card's text. ``cfg``: the BuildConfig; ``stats``: the build's stats.json dict."""
    from pipelines.report.render import ordered_stages

    counts = stats["counts"]
    kept = counts["kept"]
    languages = _languages(stats)
    header: dict[str, Any] = {
        "pretty_name": cfg.name,
        "license": getattr(cfg.output, "license", None) or "other",
        "size_categories": [size_category(kept)],
        "configs": [{"config_name": "default",
                     "data_files": [{"split": "train", "path": data_glob}]}],
        "tags": ["datamill"],
    }
    if languages:
        header["language"] = languages
    parts = ["---", yaml.safe_dump(header, sort_keys=False, allow_unicode=True).strip(), "---",
             "", f"# {cfg.name}", ""]
    parts.append(
        f"Built with datamill: {counts['input']:,} input records, **{kept:,} kept**, "
        f"{counts['removed']:,} removed by the stages below and {counts['dead_letter']:,} "
        "dead-lettered (unreadable or failed). Every input record is accounted for: "
        f"input = kept + removed + dead-letter "
        f"({'balanced' if stats.get('conservation_ok') else 'NOT balanced'}).")
    if getattr(cfg.output, "license", None) is None:
        parts.append("")
        parts.append("No licence was set in the build config (`output.license`); the licence "
                     "of the data is that of its sources.")
    parts += ["", "## Sources", ""]
    parts.append(_table(["name", "type", "path"],
                        [[s.name, s.type, f"`{s.path}`"] for s in cfg.sources]))
    by_source = (stats.get("breakdown") or {}).get("by_source") or {}
    if by_source:
        parts += ["", "Kept and removed per source:", ""]
        parts.append(_table(["source", "kept", "removed", "kept characters", "kept tokens"],
                            [[k, v["kept"], v["removed"], v["kept_chars"], v["kept_tokens"]]
                             for k, v in sorted(by_source.items())]))
    parts += _columns_section(stats)
    parts += ["", "## Processing", "",
              "Stages in order, with the parameters they ran with:", ""]
    rows = []
    for i, (label, st) in enumerate(ordered_stages(stats)):
        params = {k: v for k, v in (st.get("params") or {}).items()
                  if k not in ("stage", "label") and v not in (None, [], {})}
        removed = sum((st.get("removed") or {}).values())
        dead = sum((st.get("dead_letter") or {}).values())
        rows.append([i + 1, f"`{label}` ({st.get('stage')})", st.get("in", 0), removed, dead,
                     st.get("out", 0), f"`{json.dumps(params, sort_keys=True, default=str)}`"])
    if rows:
        parts.append(_table(["#", "stage", "in", "removed", "dead-letter", "out", "parameters"],
                            rows))
    else:
        parts.append("No stages: the data is the input, parsed and validated.")
    reasons = []
    for label, st in [("read", stats.get("read") or {}), *ordered_stages(stats)]:
        for reason, n in sorted((st.get("removed") or {}).items()):
            reasons.append([label, "removed", reason, n])
        for reason, n in sorted((st.get("dead_letter") or {}).items()):
            reasons.append([label, "dead-letter", reason, n])
    if reasons:
        parts += ["", "Records removed or dead-lettered, per stage and reason:", ""]
        parts.append(_table(["stage", "outcome", "reason", "records"], reasons))
    by_lang = (stats.get("breakdown") or {}).get("by_language") or {}
    # every language seen, those with 0 kept too (all removed: that is news), then the records
    # that never reached language ID (removed before it: no language column yet)
    seen = sorted((k for k in by_lang if k != "-"),
                  key=lambda k: (-by_lang[k].get("kept", 0), -by_lang[k].get("removed", 0), k))
    if seen:
        rows = [[k, by_lang[k].get("kept", 0), by_lang[k].get("removed", 0),
                 by_lang[k].get("kept_tokens", 0)] for k in seen]
        if "-" in by_lang:
            v = by_lang["-"]
            rows.append(["- (removed before language ID)" if not v.get("kept")
                         else "- (no language)", v.get("kept", 0), v.get("removed", 0),
                         v.get("kept_tokens", 0)])
        parts += ["", "## Languages", ""]
        parts.append(_table(["language", "kept", "removed", "kept tokens"], rows))
    warns = (stats.get("breakdown") or {}).get("language_warnings") or []
    if warns:  # a language that lost most of its documents to one stage (build/breakdown.py)
        parts += ["", "**Warning: a language lost most of its documents to one stage.** Check "
                  "that stage's thresholds for that language before using the data:", ""]
        parts += [f"- {w['message']}" for w in warns]
    tokens = sum(v["kept_tokens"] for v in by_source.values())
    parts += ["", "## Size", ""]
    size_rows = [["records", kept],
                 ["characters", sum(v["kept_chars"] for v in by_source.values())]]
    if tokens:
        size_rows.append(["tokens", tokens])
    size_rows.append(["Parquet files", len(stats.get("output_files") or [])])
    parts.append(_table(["", "kept"], size_rows))
    if not tokens:
        parts += ["", "No token counts: add the `token_count` stage to count tokens."]
    parts += _reading_section(cfg, kept)
    parts += ["", "## Reproducing", "",
              "The full config is in `manifest.json` (`config`); per-stage statistics are in "
              "`stats.json` and `report.html`. Removed records (with stage and reason) are in "
              "`removed/`, unreadable input (with reason and raw input) in `dead_letter/`.", ""]
    if command:
        parts += ["```", command, "```", ""]
    parts.append(f"Run `{stats.get('run_id')}` on {stats.get('runner')}.")
    return "\n".join(parts) + "\n"
