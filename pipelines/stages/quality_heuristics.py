"""Stages ``gopher_quality``, ``gopher_repetition``, ``c4_filter``, ``fineweb_filter``.

Each wraps the plain-Python scorer of the same name in ``filters/``. Every rule has its own
threshold parameter (``null`` disables it); every statistic becomes a score column; a dropped
record's reason is the rule's name. ``annotate_only: true`` keeps everything and counts the
would-be drops. Defaults are the published ones (see the scorer modules for the citations).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import apache_beam as beam
from pydantic import Field, field_validator, model_validator

from filters.heuristics_c4 import C4Config, C4Filter
from filters.heuristics_fineweb import FineWebConfig, FineWebFilter
from filters.heuristics_gopher import (
    DEFAULT_DUP_NGRAM,
    DEFAULT_PER_LANGUAGE,
    DEFAULT_TOP_NGRAM,
    THRESHOLD_FIELDS,
    GopherQuality,
    GopherQualityConfig,
    GopherRepetition,
    GopherRepetitionConfig,
)
from filters.text_stats import Rule
from pipelines.partial_combine import count_parts
from pipelines.score_report import HistSpec, ScoreReportMixin
from pipelines.stage import RecordStage, RecordStageParams, StageResult, register_stage

Frac = float | None
log = logging.getLogger(__name__)

LANGUAGE_COLUMN_DOC = ("Column with each document's language (the language_id stage's "
                       "'language'); when the records have no such column every document is "
                       "treated as default_language, and stats.json says so.")


def _language_column(stage) -> str | None:
    """The configured language column if the records entering the stage have it."""
    col = getattr(stage.params, "language_column", None)
    if col and col in stage.ctx.columns:
        return col
    return None


def _language_note(stage, default: str | None) -> str:
    col = getattr(stage.params, "language_column", None)
    if _language_column(stage):
        return f"per document, from column {col!r}"
    msg = (f"every document treated as {default!r}: no column {col!r} before this stage "
           "(add a language_id stage before it)" if col else
           f"every document treated as {default!r} (language_column: null)")
    return msg


def _rules_text(rules: list[Rule]) -> str:
    on = [f"{r.name}: keep {r.describe()}" for r in rules if r.threshold is not None]
    return "Rules (first failure names the drop reason): " + "; ".join(on)


def _thr(*values: float | None) -> tuple[float, ...]:
    return tuple(float(v) for v in values if v is not None)


def _config_from(cls, params, **overrides):
    """Build a scorer's config dataclass from the stage params with the same field names."""
    values = {k: getattr(params, k) for k in cls.__dataclass_fields__ if k not in overrides}
    return cls(**values, **overrides)


class _HeuristicStage(ScoreReportMixin, RecordStage):
    def expand(self, records):
        return self.with_score_stats(super().expand(records))

    def static_stats(self) -> dict:
        out = {"rules": {r.name: r.describe() for r in self.make_scorer().rules
                         if r.threshold is not None}}
        if hasattr(self.params, "language_column"):
            out["language"] = _language_note(self, getattr(self.params, "default_language", "en"))
        return out

    def rules_text(self) -> str:
        return _rules_text(self.make_scorer().rules)


# --------------------------------------------------------------------------- gopher quality


class GopherQualityParams(RecordStageParams):
    stage: Literal["gopher_quality"]
    min_words: int | None = Field(default=50, ge=0)
    max_words: int | None = Field(default=100_000, ge=1)
    min_mean_word_length: float | None = Field(default=3.0, ge=0)
    max_mean_word_length: float | None = Field(default=10.0, ge=0)
    max_symbol_word_ratio: Frac = Field(default=0.1, ge=0)
    max_bullet_lines_frac: Frac = Field(default=0.9, ge=0, le=1)
    max_ellipsis_lines_frac: Frac = Field(default=0.3, ge=0, le=1)
    min_alpha_words_frac: Frac = Field(default=0.8, ge=0, le=1)
    min_stop_words: int | None = Field(
        default=2, ge=0,
        description="Minimum DISTINCT stop words of the document's language (Gopher: 'at "
        "least two of' the, be, to, of, and, that, have, with; Stopwords ISO for other "
        "languages; skipped for languages without a list).")
    language_column: str | None = Field(default="language", description=LANGUAGE_COLUMN_DOC)
    default_language: str = Field(default="en",
                                  description="Language of documents without a language value.")
    per_language: dict[str, dict[str, float | int | None]] = Field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_PER_LANGUAGE.items()},
        description="Language code -> threshold overrides (FineWeb-2 style), e.g. "
        "{zh: {min_mean_word_length: 1.0}}. Replaces the defaults when given (see "
        "docs/quality.md).")

    @field_validator("per_language")
    @classmethod
    def _overrides(cls, v):
        allowed = set(THRESHOLD_FIELDS)
        for lang, over in v.items():
            bad = sorted(set(over) - allowed)
            if bad:
                raise ValueError(f"per_language[{lang!r}]: unknown thresholds {bad}; allowed: "
                                 f"{sorted(allowed)}")
        return v

    @model_validator(mode="after")
    def _ranges(self):
        pairs = (("min_words", "max_words"), ("min_mean_word_length", "max_mean_word_length"))
        for lo, hi in pairs:
            a, b = getattr(self, lo), getattr(self, hi)
            if a is not None and b is not None and b < a:
                raise ValueError(f"{hi} ({b}) must be >= {lo} ({a})")
        return self


@register_stage
class GopherQualityStage(_HeuristicStage):
    name = "gopher_quality"
    Params = GopherQualityParams
    description = "Gopher quality rules (Rae et al. 2021, A.1.1): word count, word length, " \
                  "symbols, bullets, ellipses, alphabetic words, stop words."

    def make_scorer(self) -> GopherQuality:
        p: GopherQualityParams = self.params  # type: ignore[assignment]
        return GopherQuality(_config_from(GopherQualityConfig, p),
                             language_column=_language_column(self),
                             default_language=p.default_language, per_language=p.per_language)

    def expand(self, records):
        if self.params.language_column and not _language_column(self):
            log.warning("stage %s: %s", self.label, _language_note(self, self.params.default_language))
        res = super().expand(records)
        # documents per stop-word list used (kept + removed), counted per side: a Flatten of
        # the records would be held in memory (pipelines.partial_combine)
        res.stats["stop_lists"] = count_parts([
            res.kept | "StopListOf" >> beam.Map(lambda r: r.get("gopher_stop_list") or "none"),
            res.removed | "StopListOfRemoved" >> beam.Map(
                lambda x: x[1].get("gopher_stop_list") or "none")], "StopList")
        return res

    def hist_specs(self) -> list[HistSpec]:
        p: GopherQualityParams = self.params  # type: ignore[assignment]
        return [
            HistSpec("gopher_n_words", 0, 1_000_000, 40, _thr(p.min_words, p.max_words), log=True),
            HistSpec("gopher_mean_word_length", 0, 15, 30,
                     _thr(p.min_mean_word_length, p.max_mean_word_length)),
            HistSpec("gopher_symbol_word_ratio", 0, 0.5, 25, _thr(p.max_symbol_word_ratio)),
            HistSpec("gopher_bullet_lines_frac", 0, 1, 20, _thr(p.max_bullet_lines_frac)),
            HistSpec("gopher_ellipsis_lines_frac", 0, 1, 20, _thr(p.max_ellipsis_lines_frac)),
            HistSpec("gopher_alpha_words_frac", 0, 1, 20, _thr(p.min_alpha_words_frac)),
            HistSpec("gopher_stop_words", 0, 10_000, 30, _thr(p.min_stop_words), log=True),
        ]


# --------------------------------------------------------------------------- gopher repetition


class GopherRepetitionParams(RecordStageParams):
    stage: Literal["gopher_repetition"]
    max_dup_line_frac: Frac = Field(default=0.30, ge=0, le=1)
    max_dup_para_frac: Frac = Field(default=0.30, ge=0, le=1)
    max_dup_line_char_frac: Frac = Field(default=0.20, ge=0, le=1)
    max_dup_para_char_frac: Frac = Field(default=0.20, ge=0, le=1)
    max_top_ngram_char_frac: dict[int, Frac] = Field(
        default_factory=lambda: dict(DEFAULT_TOP_NGRAM),
        description="n -> max fraction of characters in the most frequent n-gram (null: off).",
    )
    max_dup_ngram_char_frac: dict[int, Frac] = Field(
        default_factory=lambda: dict(DEFAULT_DUP_NGRAM),
        description="n -> max fraction of characters in repeated n-grams (null: off).",
    )
    language_column: str | None = Field(default="language", description=LANGUAGE_COLUMN_DOC)
    default_language: str = Field(default="en",
                                  description="Language of documents without a language value.")

    @model_validator(mode="after")
    def _ns(self):
        for name in ("max_top_ngram_char_frac", "max_dup_ngram_char_frac"):
            for n, v in getattr(self, name).items():
                if not 1 <= n <= 20:
                    raise ValueError(f"{name}: n-gram size {n} must be between 1 and 20")
                if v is not None and not 0 <= v <= 1:
                    raise ValueError(f"{name}[{n}]: fraction {v} must be between 0 and 1")
        return self


@register_stage
class GopherRepetitionStage(_HeuristicStage):
    name = "gopher_repetition"
    Params = GopherRepetitionParams
    description = "Gopher repetition rules (Rae et al. 2021, Table A1): duplicate lines, " \
                  "paragraphs and n-grams."

    def make_scorer(self) -> GopherRepetition:
        p: GopherRepetitionParams = self.params  # type: ignore[assignment]
        return GopherRepetition(_config_from(
            GopherRepetitionConfig, p,
            max_top_ngram_char_frac=tuple(sorted(p.max_top_ngram_char_frac.items())),
            max_dup_ngram_char_frac=tuple(sorted(p.max_dup_ngram_char_frac.items())),
        ), language_column=_language_column(self), default_language=p.default_language)

    def hist_specs(self) -> list[HistSpec]:
        return [HistSpec(r.column, 0, 1, 20, _thr(r.threshold)) for r in self.make_scorer().rules]


# --------------------------------------------------------------------------- C4


def _check_bad_words(v):
    if v is not None and v != "better-profanity":
        if not Path(v).is_file():
            raise ValueError(f"bad_words: file {v!r} does not exist (or use 'better-profanity')")
    if v == "better-profanity":
        try:
            import better_profanity  # noqa: F401
        except ImportError:
            raise ValueError("bad_words 'better-profanity' needs: pip install "
                             "'datamill[web]'") from None
    return v


class C4FilterParams(RecordStageParams):
    stage: Literal["c4_filter"]
    terminal_punctuation: bool = True
    min_words_per_line: int | None = Field(default=3, ge=1)
    drop_javascript_lines: bool = True
    drop_policy_lines: bool = True
    drop_lorem_ipsum: bool = True
    drop_curly_bracket: bool = True
    min_sentences: int | None = Field(default=5, ge=0)
    max_word_length: int | None = Field(
        default=1000, ge=1, description="Drop lines with a longer word (C4 reference cleaner).")
    remove_citations: bool = Field(
        default=True, description="Strip [1], [edit], [citation needed] (C4 reference cleaner).")
    bad_words: str | None = Field(
        default=None,
        description="C4 bad-words page rule: null (off), 'better-profanity' (English list "
        "shipped in that package, MIT) or a path to a word-list file (e.g. LDNOOBW).")
    bad_words_language: str = Field(default="en", description="Language of the bad-word list.")
    language_column: str | None = Field(
        default="language",
        description="Documents whose language (this column) is not bad_words_language are not "
        "checked for bad words; without the column every document is checked.")
    rewrite_lines: bool = Field(
        default=True,
        description="Replace 'text' with the lines that pass the line rules (C4's behaviour). "
        "Never done in annotate_only mode.",
    )

    @field_validator("bad_words")
    @classmethod
    def _bad(cls, v):
        return _check_bad_words(v)


@register_stage
class C4FilterStage(_HeuristicStage):
    name = "c4_filter"
    Params = C4FilterParams
    description = "C4 rules (Raffel et al. 2020, 2.2): line cleaning + lorem ipsum, curly " \
                  "brackets, minimum sentences."

    def make_scorer(self) -> C4Filter:
        p: C4FilterParams = self.params  # type: ignore[assignment]
        return C4Filter(_config_from(C4Config, p,
                                     rewrite_lines=p.rewrite_lines and not p.annotate_only,
                                     language_column=_language_column(self)))

    def hist_specs(self) -> list[HistSpec]:
        p: C4FilterParams = self.params  # type: ignore[assignment]
        return [
            HistSpec("c4_lines_kept_frac", 0, 1, 20, (0.0,)),
            HistSpec("c4_sentences", 0, 10_000, 30, _thr(p.min_sentences), log=True),
        ]


# --------------------------------------------------------------------------- FineWeb


class FineWebFilterParams(RecordStageParams):
    stage: Literal["fineweb_filter"]
    min_line_punct_frac: Frac = Field(default=0.12, ge=0, le=1)
    max_dup_line_char_frac: Frac = Field(default=0.1, ge=0, le=1)
    max_short_line_frac: Frac = Field(default=0.67, ge=0, le=1)
    short_line_chars: int = Field(default=30, ge=1)
    max_newline_ratio: Frac = Field(default=0.3, ge=0)
    line_end_punctuation: Literal["fineweb", "unicode", "auto"] = Field(
        default="fineweb",
        description="fineweb: . ' \" ! ? (FineWeb); unicode: every Unicode Sentence_Terminal "
        "character too; auto: unicode for documents not in English (by language_column).")
    language_column: str | None = Field(default="language", description=LANGUAGE_COLUMN_DOC)


@register_stage
class FineWebFilterStage(_HeuristicStage):
    name = "fineweb_filter"
    Params = FineWebFilterParams
    description = "FineWeb rules (Penedo et al. 2024, 3.3): line punctuation, duplicated-line " \
                  "characters, short lines, newline ratio."

    def make_scorer(self) -> FineWebFilter:
        p: FineWebFilterParams = self.params  # type: ignore[assignment]
        return FineWebFilter(_config_from(FineWebConfig, p,
                                          language_column=_language_column(self)))

    def hist_specs(self) -> list[HistSpec]:
        p: FineWebFilterParams = self.params  # type: ignore[assignment]
        return [
            HistSpec("fineweb_line_punct_frac", 0, 1, 20, _thr(p.min_line_punct_frac)),
            HistSpec("fineweb_dup_line_char_frac", 0, 1, 20, _thr(p.max_dup_line_char_frac)),
            HistSpec("fineweb_short_line_frac", 0, 1, 20, _thr(p.max_short_line_frac)),
            HistSpec("fineweb_newline_ratio", 0, 2, 20, _thr(p.max_newline_ratio)),
        ]


__all__ = [
    "C4FilterStage",
    "FineWebFilterStage",
    "GopherQualityStage",
    "GopherRepetitionStage",
    "StageResult",
]
