"""Text normalization: Unicode NFC, control characters, whitespace.

The normalized text replaces ``text``; a document that is empty after normalization is
dropped with reason ``empty``. Tabs and newlines are kept (they carry structure); every other
C0/C1 control character, the BOM and zero-width formatting characters are removed.
"""

from __future__ import annotations

import re
import unicodedata

from filters.base import Decision, Record, RecordScorer

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff\u200b\u200c\u200d\u2060]")
_ODD = "\t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000"  # horizontal space other than " "
_ODD_SPACE = re.compile(f"[{_ODD}]")
# a run of 2+ horizontal spaces, or one unusual space: single plain spaces are left alone
# (rewriting every space made this the slowest step of a build)
_HSPACE = re.compile(f"[ {_ODD}]{{2,}}|[{_ODD}]")
_TRAILING = re.compile(r" +\n")


def normalize_text(
    text: str,
    *,
    form: str = "NFC",
    strip_control: bool = True,
    collapse_spaces: bool = True,
    max_blank_lines: int = 1,
) -> str:
    """Normalize one text. ``form`` is a ``unicodedata`` form or ``"none"``.

    Every rewrite is guarded by a cheap substring test, so clean text costs a few scans.
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if form != "none" and not unicodedata.is_normalized(form, text):
        text = unicodedata.normalize(form, text)
    if strip_control and _CONTROL.search(text):
        text = _CONTROL.sub("", text)
    if collapse_spaces:
        if "  " in text or _ODD_SPACE.search(text):
            text = _HSPACE.sub(" ", text)
        if " \n" in text:
            text = _TRAILING.sub("\n", text)
    if max_blank_lines >= 0:
        keep = max_blank_lines + 1  # newlines in a row that are allowed
        if "\n" * (keep + 1) in text:
            text = re.sub(f"\n{{{keep + 1},}}", "\n" * keep, text)
    return text.strip()


class Normalizer(RecordScorer):
    columns = {}

    def __init__(self, form: str = "NFC", strip_control: bool = True,
                 collapse_spaces: bool = True, max_blank_lines: int = 1):
        self.kw = dict(form=form, strip_control=strip_control,
                       collapse_spaces=collapse_spaces, max_blank_lines=max_blank_lines)

    def process(self, record: Record) -> Decision:
        text = normalize_text(record["text"], **self.kw)
        if not text:
            return Decision(drop="empty", columns={"text": text})
        return Decision(columns={"text": text})
