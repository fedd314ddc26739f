"""PII redaction of what report.html shows (``output.redact_snippets``).

The report shows text from records: removed-by-rule samples, near-duplicate pairs,
normalization diffs, dead-letter lines, and more. Records removed *before* a ``pii_redact``
stage never passed through it, so without this their e-mail addresses, IP addresses and phone
numbers would appear in the report as they were. :func:`redact_html` runs the same
:class:`filters.pii.PiiRedactor` over every text node of the finished page (never over tags,
attribute values such as the inline figures, ``<style>`` or ``<script>``), so every snippet
any section shows is covered, including sections added later and stages from plugins.

Only the report is rewritten: ``removed/`` and ``dead_letter/`` keep the records exactly as
they were (no data is ever lost), and ``stats.json`` keeps the samples the report is
rendered from. The dataset card (README.md) shows no record text.
"""

from __future__ import annotations

import html
import re
from typing import Any

from filters.pii import PiiRedactor

# a tag, a comment, or a <style>/<script> element with its content: kept as they are
_NOT_TEXT = re.compile(r"<(style|script)\b[^>]*>.*?</\1\s*>|<!--.*?-->|<[^>]*>",
                       re.IGNORECASE | re.DOTALL)


def snippet_redactor(cfg: Any) -> PiiRedactor | None:
    """The redactor for the report of a build with config ``cfg`` (a BuildConfig), or None.

    ``output.redact_snippets``: true, false, or unset (the default): on when the build has a
    ``pii_redact`` stage. The first ``pii_redact`` stage's kinds, placeholders, phone regions
    and ``ip_only_global`` are used; without one, the defaults (all kinds, US)."""
    wanted = getattr(getattr(cfg, "output", None), "redact_snippets", None)
    stage = next((p for p in getattr(cfg, "stages", None) or []
                  if getattr(p, "stage", None) == "pii_redact"), None)
    if wanted is False or (wanted is None and stage is None):
        return None
    if stage is None:
        return PiiRedactor()
    return PiiRedactor(stage.kinds, stage.placeholders, stage.phone_regions,
                       stage.ip_only_global)


def redact_html(page: str, redactor: PiiRedactor | None) -> str:
    """``page`` with PII replaced in its text nodes (HTML-escaped placeholders)."""
    if redactor is None:
        return page
    out: list[str] = []
    pos = 0
    for m in _NOT_TEXT.finditer(page):
        out.append(_redact_node(page[pos:m.start()], redactor))
        out.append(m.group())
        pos = m.end()
    out.append(_redact_node(page[pos:], redactor))
    return "".join(out)


def _redact_node(escaped: str, redactor: PiiRedactor) -> str:
    if not escaped.strip():
        return escaped
    text = html.unescape(escaped)
    new, spans = redactor.redact(text)
    return html.escape(new, quote=False) if spans else escaped
