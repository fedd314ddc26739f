"""Stage ``pii_redact``: replace e-mail addresses, IP addresses and phone numbers in ``text``.

Never drops a record: the text is rewritten with one placeholder per match (configurable per
kind) and ``pii_<kind>`` columns count the matches per record. ``stats.json`` gets
``pii_counts`` (matches per kind over the whole build, and records with any match) and
``pii_examples``: per kind, up to ``examples`` snippets of *redacted* text around a
placeholder, from the records with the smallest ids (deterministic). The original PII is never
written to stats or the report. Matching rules: ``filters/pii.py``.
"""

from __future__ import annotations

import html
from typing import Literal

import apache_beam as beam
from pydantic import Field, field_validator, model_validator

from filters.pii import DEFAULT_PLACEHOLDERS, KINDS, PiiRedactor, PiiScorer
from pipelines.stages.record_stage import RecordStage, RecordStageParams
from pipelines.stages.registry import register_stage

SNIPPET_CONTEXT = 60


class PiiRedactParams(RecordStageParams):
    stage: Literal["pii_redact"]
    kinds: list[Literal["email", "ip", "phone"]] = Field(
        default_factory=lambda: list(KINDS), min_length=1,
        description="What to redact: email, ip, phone.")
    placeholders: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_PLACEHOLDERS),
        description="Replacement text per kind (kinds not given keep the default).")
    phone_regions: list[str] = Field(
        default_factory=lambda: ["US"],
        description="Regions (ISO 3166 alpha-2) whose national phone formats are recognised; "
        "numbers with a +country code are found for any region.")
    ip_only_global: bool = Field(
        default=True, description="Redact only globally routable IPs (keep 127.0.0.1, 10.x...).")
    examples: int = Field(default=5, ge=0, le=100, description="Redacted examples per kind.")

    @field_validator("placeholders")
    @classmethod
    def _known(cls, v):
        bad = sorted(set(v) - set(KINDS))
        if bad:
            raise ValueError(f"unknown kinds {bad}; allowed: {list(KINDS)}")
        return {**DEFAULT_PLACEHOLDERS, **v}

    @field_validator("phone_regions")
    @classmethod
    def _regions(cls, v):
        import phonenumbers

        known = phonenumbers.SUPPORTED_REGIONS
        bad = [r for r in v if r not in known]
        if bad:
            raise ValueError(f"unknown phone regions {bad}; use ISO 3166 codes like 'US', 'DE'")
        return v

    @model_validator(mode="after")
    def _distinct(self):
        used = [self.placeholders[k] for k in self.kinds]
        if any(not p for p in used):
            raise ValueError("placeholders must be non-empty (an empty one would hide where "
                             "text was removed)")
        return self


def _snippets(placeholders: dict[str, str], kinds: list[str]):
    def fn(record):
        text = record.get("text") or ""
        for kind in kinds:
            if not record.get(f"pii_{kind}"):
                continue
            ph = placeholders[kind]
            at = text.find(ph)
            if at < 0:
                continue
            lo, hi = max(0, at - SNIPPET_CONTEXT), min(len(text), at + len(ph) + SNIPPET_CONTEXT)
            yield kind, (record["id"], " ".join(text[lo:hi].split()))

    return fn


class _SumCounts(beam.CombineFn):
    def __init__(self, kinds):
        self._kinds = list(kinds)

    def create_accumulator(self):
        return {**{k: 0 for k in self._kinds}, "records_with_pii": 0}

    def add_input(self, acc, record):
        hit = False
        for k in self._kinds:
            n = record.get(f"pii_{k}") or 0
            acc[k] += n
            hit = hit or n > 0
        acc["records_with_pii"] += int(hit)
        return acc

    def merge_accumulators(self, accs):
        out = self.create_accumulator()
        for a in accs:
            for k, v in a.items():
                out[k] += v
        return out

    def extract_output(self, acc):
        return acc


@register_stage
class PiiRedactStage(RecordStage):
    name = "pii_redact"
    Params = PiiRedactParams
    description = "Replace e-mail addresses, IP addresses and phone numbers with placeholders."

    def make_scorer(self) -> PiiScorer:
        p: PiiRedactParams = self.params  # type: ignore[assignment]
        return PiiScorer(PiiRedactor(p.kinds, p.placeholders, p.phone_regions, p.ip_only_global))

    def output_columns(self) -> dict[str, str]:
        p: PiiRedactParams = self.params  # type: ignore[assignment]
        return {f"pii_{k}": "int64" for k in KINDS if k in p.kinds}

    def expand(self, records):
        p: PiiRedactParams = self.params  # type: ignore[assignment]
        res = super().expand(records)
        kinds = [k for k in KINDS if k in p.kinds]
        res.stats["pii_counts"] = res.kept | "PiiCounts" >> beam.CombineGlobally(_SumCounts(kinds))
        if p.examples:
            res.stats["pii_examples"] = (
                res.kept
                | "PiiSnippets" >> beam.FlatMap(_snippets(p.placeholders, kinds))
                | "PiiFirst" >> beam.combiners.Top.SmallestPerKey(p.examples)
                | "PiiExamplesDict" >> beam.combiners.ToDict()
            )
        return res

    def report_section(self, stage_stats):
        stats = stage_stats.get("stats") or {}
        counts = stats.get("pii_counts")
        examples = stats.get("pii_examples")
        if not isinstance(counts, dict):
            return None
        parts = ["<h3>PII redaction</h3>", "<p>Matches replaced: " + ", ".join(
            f"{html.escape(k)}: {v}" for k, v in counts.items()) + "</p>"]
        if isinstance(examples, dict) and examples:
            parts.append("<table><tr><th>kind</th><th>record</th><th>redacted text</th></tr>")
            for kind in sorted(examples):
                for rid, snippet in examples[kind]:
                    parts.append(f"<tr><td>{html.escape(kind)}</td><td>{html.escape(str(rid))}"
                                 f"</td><td>{html.escape(snippet)}</td></tr>")
            parts.append("</table>")
        return "".join(parts)
