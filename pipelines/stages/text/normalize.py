"""Stage ``normalize``: Unicode NFC, control characters, whitespace (filters/normalize.py).

The defaults keep line structure, indentation, runs of spaces and blank lines (code parses to
the same tree); ``collapse_spaces: inner|all`` and ``max_blank_lines >= 0`` are the lossy
options. The old boolean ``collapse_spaces: true`` is refused with a message naming the fix.

Stats ``normalize``: documents changed and net characters removed per kind of rewrite, and a
few before/after examples (a fixed-seed random sample of the changed documents, chosen by the
smallest seeded hash of the id, so the same whatever the worker count). Each scorer attaches
a bounded text window only to records among the smallest ranks it has seen, so what reaches
the combiner is a few counts per batch and ~k·ln(n) windows per worker, never every text.
"""

from __future__ import annotations

import html
from typing import Any, Literal

import apache_beam as beam
from pydantic import field_validator

from filters.normalize import NormalizeConfig, Normalizer
from pipelines.stages.base import params_from
from pipelines.stages.record_stage import RecordStage, RecordStageParams
from pipelines.stages.registry import register_stage

REPORT_EXAMPLES = 5  # before/after examples kept for the report
WINDOW_CHARS = 2000  # characters of each example kept, from a little before the first change


class NormalizeParams(params_from(NormalizeConfig, RecordStageParams)):
    stage: Literal["normalize"]

    @field_validator("collapse_spaces", mode="before")
    @classmethod
    def _no_boolean(cls, v: Any) -> Any:
        if v is True:
            raise ValueError(
                "collapse_spaces is no longer true/false: `true` also flattened leading "
                "indentation and broke code. Remove the line to keep spaces (the new default), "
                "or write `collapse_spaces: inner` (runs inside a line become one space, "
                "indentation kept) or `collapse_spaces: all` (the old lossy behaviour)")
        if v is False:
            return "none"
        return v


class NormalizeStatsFn(beam.CombineFn):
    """Lists of ``(changes, example)`` notes -> counts per kind + the k examples of smallest
    rank (ties by id), with their character-level differences."""

    def __init__(self, k: int = REPORT_EXAMPLES):
        self._k = k

    def create_accumulator(self):
        return [0, {}, []]  # changed documents, kind -> [docs, chars], examples

    def add_input(self, acc, notes):
        kinds, examples = acc[1], acc[2]
        for changes, example in notes:
            acc[0] += 1
            for kind, chars in changes.items():
                k = kinds.get(kind)
                if k is None:
                    kinds[kind] = [1, chars]
                else:
                    k[0] += 1
                    k[1] += chars
            if example is not None:
                examples.append((example, sorted(changes)))
        if len(examples) > 4 * self._k:
            acc[2] = self._best(examples)
        return acc

    def _best(self, examples):
        seen, out = set(), []
        for ex in sorted(examples, key=lambda e: (e[0][0], e[0][1])):
            if ex[0][1] not in seen:  # a record scored twice (batch retry) counts once
                seen.add(ex[0][1])
                out.append(ex)
            if len(out) == self._k:
                break
        return out

    def merge_accumulators(self, accs):
        out = self.create_accumulator()
        for n, kinds, examples in accs:
            out[0] += n
            for kind, (d, c) in kinds.items():
                o = out[1].setdefault(kind, [0, 0])
                o[0] += d
                o[1] += c
            out[2].extend(examples)
        out[2] = self._best(out[2])
        return out

    def extract_output(self, acc):
        from pipelines.report.diff import diff_segments

        n, kinds, examples = acc
        return {
            "docs_changed": n,
            "chars_removed": sum(c for _d, c in kinds.values()),
            "by_kind": {k: {"docs": d, "chars_removed": c} for k, (d, c) in sorted(kinds.items())},
            "examples": [
                {"id": rid, "kinds": ks,
                 "diff": diff_segments(before, after, unit="char", context=15, cut=cut)}
                for (_rank, rid, before, after, cut), ks in self._best(examples)],
            "sample": "smallest xxh64(id, seed 0) among changed documents",
        }


@register_stage
class NormalizeStage(RecordStage):
    name = "normalize"
    Params = NormalizeParams
    description = "Unicode normalization, control-character and whitespace cleanup."

    def make_scorer(self) -> Normalizer:
        p: NormalizeParams = self.params  # type: ignore[assignment]
        return Normalizer(p.scorer_config(), examples=REPORT_EXAMPLES, window=WINDOW_CHARS)

    def note_stats(self, notes: Any) -> dict[str, Any]:
        return {"normalize": notes | f"NormalizeStats[{self.label}]" >> beam.CombineGlobally(
            NormalizeStatsFn(REPORT_EXAMPLES))}

    def report_section(self, stage_stats: dict[str, Any]) -> str | None:
        from pipelines.report.html import table_html
        from pipelines.report.diff import side_by_side

        st = (stage_stats.get("stats") or {}).get("normalize")
        if not isinstance(st, dict):  # [] when no batch reached the stage (stat_value)
            return None
        docs_in = stage_stats.get("in")
        p = stage_stats.get("params") or {}
        settings = ", ".join(f"{k}: {p[k]}" for k in (
            "form", "strip_control", "odd_spaces", "strip_trailing_spaces", "collapse_spaces",
            "max_blank_lines") if k in p)
        share = (f" ({100 * st['docs_changed'] / docs_in:.1f}% of {docs_in:,})"
                 if isinstance(docs_in, int) and docs_in else "")
        parts = [f"<p>Documents changed: {st['docs_changed']:,}{share}; net characters removed: "
                 f"{st['chars_removed']:,}." + (f" Settings: {html.escape(settings)}." if
                                               settings else "") + "</p>"]
        rows = [[kind, v["docs"], f"{100 * v['docs'] / docs_in:.1f}%" if isinstance(
            docs_in, int) and docs_in else "", v["chars_removed"]]
            for kind, v in sorted(st.get("by_kind", {}).items(), key=lambda kv: -kv[1]["docs"])]
        if rows:
            parts.append(table_html(["kind", "documents changed", "of input",
                                     "net characters removed"], rows))
            parts.append("<p class=muted>A document can change in several kinds. Net characters "
                         "removed can be negative for a Unicode form that expands characters "
                         "(NFKC: 'ﬁ' → 'fi'). <code>collapse_inner_spaces</code>, "
                         "<code>collapse_all_spaces</code> and <code>blank_lines</code> are the "
                         "lossy, opt-in rewrites.</p>")
        examples = st.get("examples") or []
        if examples:
            parts.append(f"<h3>Before / after ({len(examples)} random changed documents, fixed "
                         "seed)</h3><p class=muted>Changes are marked; changed whitespace and "
                         "invisible characters are shown as symbols (· space, → tab, ↵ line "
                         "break, ⟨CR⟩, ⟨NUL⟩, ⟨U+…⟩ other invisible code points)."
                         "</p>")
            for ex in examples:
                cap = (f"<code>{html.escape(str(ex['id']))}</code>: "
                       f"{html.escape(', '.join(ex.get('kinds', [])))}")
                parts.append(side_by_side(ex["diff"], "before", "after", caption=cap))
        return "\n".join(parts)

