"""A source block of a build config (``sources:``): which files, which format, which fields."""


from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from pipelines.core.settings import StrictModel
from pipelines.io.framing import DEFAULT_MAX_RECORD_BYTES


class SourceConfig(StrictModel):
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
    fingerprint: Literal["stat", "content"] = Field(
        default="stat",
        description="What says an input file is unchanged (checkpoints, 'up to date'): stat = "
        "path, size and modification time (free); content = also an xxh3-128 hash of every "
        "file's bytes, read once more at planning (costs one read of the input, ~1-2 GB/s "
        "locally), which catches files rewritten with the same size and time (cp -p, "
        "rsync -t, tar).")
    # --- warc / html sources (pipelines/io/web_sources.py)
    extractor: Literal["resiliparse", "trafilatura"] = Field(
        default="resiliparse", description="warc/html only: main-text extractor.")
    content_types: list[str] = Field(
        default_factory=lambda: ["text/html", "application/xhtml+xml"], min_length=1,
        description="warc/html only: MIME types extracted; other responses are dead-lettered.")
    # --- input fields kept as columns (pipelines/io/input_fields.py)
    keep_fields: list[str] | None = Field(
        default=None,
        description="Input fields kept as output columns (besides text_field/id_field); "
        "unset: every field; []: none. Exclusive with drop_fields.")
    drop_fields: list[str] | None = Field(
        default=None, description="Input fields not kept; every other field is kept.")
    # the planned FieldPlan (pipelines.build.plan sets it; derived from config + files, not config)
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
