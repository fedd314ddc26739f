"""Stage ``url_filter``: drop records whose URL is on a domain or URL-substring blocklist.

Blocklists are text files named in the config (one entry per line, ``#`` comments); they are
read once when the build is planned (a missing or empty file fails the config before any
work) and shipped to the workers with the stage, so workers need no access to the files.
Drops are counted per reason (``url_blocked_domain``, ``url_blocked_substring``,
``url_unparsable``, ``url_missing``) in ``stats.json`` like every stage's removals; the
matching entry is kept in the ``url_block_match`` column of removed records.
See ``filters/url_filter.py`` for the matching rules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import hashlib

from pydantic import Field, computed_field, field_validator, model_validator

from filters.url_filter import UrlBlocklist, read_list
from pipelines.core.records import BASE_COLUMNS
from pipelines.core.settings import ConfigError
from pipelines.stages.record_stage import RecordStage, RecordStageParams
from pipelines.stages.registry import register_stage


class UrlFilterParams(RecordStageParams):
    stage: Literal["url_filter"]
    blocked_domains_files: list[str] = Field(
        default_factory=list,
        description="Files of blocked domains (each also blocks its subdomains).")
    blocked_substrings_files: list[str] = Field(
        default_factory=list, description="Files of URL substrings that block a URL.")
    url_column: str = Field(default="url", description="Column holding the URL.")
    missing: Literal["keep", "remove"] = Field(
        default="keep", description="What to do with records without a URL.")

    @field_validator("blocked_domains_files", "blocked_substrings_files")
    @classmethod
    def _files_exist(cls, v: list[str]) -> list[str]:
        for path in v:
            p = Path(path)
            if not p.is_file():
                raise ValueError(f"blocklist file {path!r} does not exist")
            if not read_list(p):
                raise ValueError(f"blocklist file {path!r} has no entries")
        return v

    @computed_field  # part of the stage's fingerprint: edited lists invalidate checkpoints
    @property
    def blocklists_sha256(self) -> str:
        h = hashlib.sha256()
        for path in [*self.blocked_domains_files, "--", *self.blocked_substrings_files]:
            h.update(path.encode() + b"\0")
            if path != "--" and Path(path).is_file():
                h.update(Path(path).read_bytes())
        return h.hexdigest()

    @model_validator(mode="after")
    def _some_list(self):
        if not self.blocked_domains_files and not self.blocked_substrings_files:
            raise ValueError("give blocked_domains_files and/or blocked_substrings_files")
        return self


class _Factory:
    """Picklable: carries the list entries (not the file paths) to the workers."""

    def __init__(self, domains, substrings, url_column, missing):
        self.args = (tuple(domains), tuple(substrings), url_column, missing)

    def __call__(self) -> UrlBlocklist:
        d, s, col, missing = self.args
        return UrlBlocklist(d, s, col, missing)


@register_stage
class UrlFilterStage(RecordStage):
    name = "url_filter"
    Params = UrlFilterParams
    description = "Drop records whose URL matches a domain or substring blocklist file."

    def __init__(self, params, ctx):
        super().__init__(params, ctx)
        p: UrlFilterParams = params  # type: ignore[assignment]
        known = {**BASE_COLUMNS, **dict(ctx.columns)}  # the base columns are columns too
        if ctx.config is not None and p.url_column not in known:
            raise ConfigError(
                f"stage {ctx.label!r}: url_column {p.url_column!r} is not a column of the "
                f"records (available: {', '.join(sorted(known))}); "
                "read a warc/html source or set url_column")
        self._domains = [e for f in p.blocked_domains_files for e in read_list(f)]
        self._substrings = [e for f in p.blocked_substrings_files for e in read_list(f)]

    def scorer_factory(self):
        p: UrlFilterParams = self.params  # type: ignore[assignment]
        return _Factory(self._domains, self._substrings, p.url_column, p.missing)

    def make_scorer(self) -> UrlBlocklist:
        return self.scorer_factory()()

    def static_stats(self) -> dict:
        return {"blocked_domains": len(set(self._domains)),
                "blocked_substrings": len(set(self._substrings))}
