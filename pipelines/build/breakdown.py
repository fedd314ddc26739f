"""Counts of kept and removed records per source and per language, for the report and the
dataset card.

One lifted combine per stream (kept records; removed records), with state bounded by the number
of distinct (source, language[, stage, reason]) keys, never by the number of records. Records
without a ``language`` column count under ``"-"``. When a ``tokens`` column exists (the
``token_count`` stage) its values are summed too.
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam

NO_LANGUAGE = "-"

# A language "loses most of its documents to one stage" (issue 26): the rules of one stage
# removed more than LOSS_FRACTION of the language's documents (kept + removed), and the language
# had at least LOSS_MIN_DOCUMENTS. Warned in the build log, the report and the card.
LOSS_FRACTION = 0.5
LOSS_MIN_DOCUMENTS = 10
# reasons that are not a threshold's verdict: the config's language choice, and copies
# removed by the dedup stages (exact_dedup, minhash_dedup, semdedup)
_NOT_THRESHOLDS = frozenset({"language_not_allowed", "duplicate", "near_duplicate",
                             "semantic_duplicate"})


def _key(record: dict) -> tuple[str, str]:
    return str(record.get("source") or ""), str(record.get("language") or NO_LANGUAGE)


class BreakdownFn(beam.CombineFn):
    """Records -> ``{"<source>\\t<language>": [records, chars, tokens]}``; with ``removed=True``
    the inputs are ``(reason, record)`` pairs tagged with their stage as ``(stage, reason,
    record)`` and the key gains ``\\t<stage>\\t<reason>``."""

    def __init__(self, removed: bool = False):
        self._removed = removed

    def create_accumulator(self) -> dict[str, list[int]]:
        return {}

    def add_input(self, acc, item):
        if self._removed:
            stage, reason, record = item
            key = "\t".join((*_key(record), stage, reason))
        else:
            record = item
            key = "\t".join(_key(record))
        a = acc.get(key)
        if a is None:
            a = acc[key] = [0, 0, 0]
        a[0] += 1
        a[1] += len(record.get("text") or "")
        tokens = record.get("tokens")
        if isinstance(tokens, int) and not isinstance(tokens, bool):
            a[2] += tokens
        return acc

    def merge_accumulators(self, accs):
        out: dict[str, list[int]] = {}
        for acc in accs:
            for k, v in acc.items():
                o = out.setdefault(k, [0, 0, 0])
                for i in range(3):
                    o[i] += v[i]
        return out

    def extract_output(self, acc):
        return acc


def summarize_breakdown(kept: dict[str, list[int]] | None,
                        removed: dict[str, list[int]] | None) -> dict[str, Any]:
    """Per source and per language: kept records/chars/tokens and removed records by stage."""
    out: dict[str, Any] = {"by_source": {}, "by_language": {}}

    def slot(kind: str, name: str) -> dict[str, Any]:
        return out[kind].setdefault(name, {"kept": 0, "kept_chars": 0, "kept_tokens": 0,
                                           "removed": 0, "removed_by_stage": {}})

    for key, (n, chars, tokens) in (kept or {}).items():
        source, language = key.split("\t")[:2]
        for kind, name in (("by_source", source), ("by_language", language)):
            s = slot(kind, name)
            s["kept"] += n
            s["kept_chars"] += chars
            s["kept_tokens"] += tokens
    by_rule: dict[tuple[str, str, str], int] = {}
    for key, (n, _chars, _tokens) in (removed or {}).items():
        source, language, stage, reason = key.split("\t")[:4]
        for kind, name in (("by_source", source), ("by_language", language)):
            s = slot(kind, name)
            s["removed"] += n
            s["removed_by_stage"][stage] = s["removed_by_stage"].get(stage, 0) + n
        by_rule[language, stage, reason] = by_rule.get((language, stage, reason), 0) + n
    out["language_warnings"] = language_loss_warnings(out["by_language"], by_rule)
    return out


def language_loss_warnings(by_language: dict[str, Any],
                           by_rule: dict[tuple[str, str, str], int], *,
                           fraction: float = LOSS_FRACTION,
                           min_documents: int = LOSS_MIN_DOCUMENTS) -> list[dict[str, Any]]:
    """One warning per (language, stage) whose rules together removed more than ``fraction``
    of the language's documents (kept + removed, at least ``min_documents``): usually
    thresholds made for English applied to another language (a language can lose its pages
    to two rules of one stage, e.g. C4's line and sentence rules). Records without a language
    are not a language; removals that say nothing about thresholds are not counted: the
    config's own language choice and copies removed by deduplication. Sorted by language,
    then stage."""
    per_stage: dict[tuple[str, str], dict[str, int]] = {}
    for (language, stage, reason), n in by_rule.items():
        if language == NO_LANGUAGE or reason in _NOT_THRESHOLDS:
            continue
        reasons = per_stage.setdefault((language, stage), {})
        reasons[reason] = reasons.get(reason, 0) + n
    out = []
    for (language, stage), reasons in sorted(per_stage.items()):
        n = sum(reasons.values())
        slot = by_language.get(language) or {}
        total = slot.get("kept", 0) + slot.get("removed", 0)
        if total < min_documents or n <= fraction * total:
            continue
        share = n / total
        rules = ", ".join(f"{r} {c}" for r, c in sorted(reasons.items(), key=lambda x: -x[1]))
        out.append({
            "language": language, "stage": stage, "reasons": dict(sorted(reasons.items())),
            "removed": n, "documents": total, "fraction": round(share, 4),
            "message": (f"language {language!r} lost {n} of its {total} documents "
                        f"({share:.0%}) to one stage, {stage} ({rules}); its thresholds may "
                        "not suit this language (set them per language, see docs/quality.md, "
                        "Languages)"),
        })
    return out
