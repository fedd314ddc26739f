"""PII redaction: e-mail addresses, IP addresses (v4 and v6) and phone numbers.

Plain Python. Detection:

* ``email``: ``local@domain.tld`` with an ASCII local part of ``[A-Za-z0-9._%+-]`` and a
  dotted domain whose last label is 2-63 letters;
* ``ip``: IPv4 dotted quads and IPv6 addresses (any RFC 4291 text form, including ``::``
  compression and an embedded IPv4 tail) with at least 3 groups (``a::b`` is valid but is
  rarely an address), every candidate validated by :mod:`ipaddress`;
  with ``ip_only_global`` (default, as FineWeb-2's PII step) only globally routable addresses
  are redacted -- ``127.0.0.1``, ``192.168.0.1``, ``10.0.0.1``, ``::1``, documentation ranges
  are not personal data and are kept;
* ``phone``: Google's libphonenumber (``phonenumbers.PhoneNumberMatcher``, leniency
  ``VALID``: the number must be a valid number for its region) for each region in
  ``phone_regions``; numbers written with a ``+`` country code are found whatever the region.

Matches are resolved left to right; where two overlap the longer wins (then the kind listed
first in ``KINDS``). Each match is replaced by its kind's placeholder. Text outside matches
is never touched: :meth:`PiiRedactor.redact` rebuilds the text from the unchanged slices
between matches and the placeholders (property-tested).

Presidio is not used: its analyzer needs a spaCy language model that is not on PyPI (it is
downloaded from GitHub), and its e-mail/IP/phone recognizers are regexes and libphonenumber,
which are used here directly.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from filters.base import Decision, Record, RecordScorer
from filters.text_stats import require_text

KINDS = ("email", "ip", "phone")
DEFAULT_PLACEHOLDERS = {"email": "<EMAIL>", "ip": "<IP_ADDRESS>", "phone": "<PHONE_NUMBER>"}

_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(?![A-Za-z0-9-])"
)
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?"
    r"(?![\w:])"
)


@dataclass(frozen=True, order=True)
class Span:
    start: int
    end: int
    kind: str


class PiiRedactor:
    def __init__(self, kinds: Iterable[str] = KINDS,
                 placeholders: Mapping[str, str] | None = None,
                 phone_regions: Iterable[str] = ("US",), ip_only_global: bool = True):
        self.kinds = tuple(k for k in KINDS if k in set(kinds))
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown PII kinds {sorted(unknown)}; allowed: {KINDS}")
        self.placeholders = {**DEFAULT_PLACEHOLDERS, **dict(placeholders or {})}
        self.phone_regions = tuple(phone_regions)
        self.ip_only_global = ip_only_global
        self._priority = {k: i for i, k in enumerate(KINDS)}

    # ------------------------------------------------------------------ detection

    def _emails(self, text: str):
        for m in _EMAIL.finditer(text):
            yield Span(m.start(), m.end(), "email")

    def _ip_ok(self, addr) -> bool:
        return bool(addr.is_global) if self.ip_only_global else True

    def _ips(self, text: str):
        for m in _IPV4.finditer(text):
            try:
                addr = ipaddress.IPv4Address(m.group())
            except ValueError:
                continue
            if self._ip_ok(addr):
                yield Span(m.start(), m.end(), "ip")
        if ":" not in text:
            return
        for m in _IPV6.finditer(text):
            cand = m.group()
            groups = [g for g in cand.split(":") if g]
            # at least 3 groups (an IPv4 tail counts 2): "a::b" or "dead::beef" in code and
            # prose are valid addresses but are far more often not addresses
            if len(groups) + (1 if "." in cand else 0) < 3:
                continue
            try:
                addr = ipaddress.IPv6Address(cand)
            except ValueError:
                continue
            if self._ip_ok(addr):
                yield Span(m.start(), m.end(), "ip")

    def _phones(self, text: str):
        import phonenumbers

        if not any(c.isdigit() for c in text):
            return
        for region in self.phone_regions:
            for m in phonenumbers.PhoneNumberMatcher(text, region,
                                                     leniency=phonenumbers.Leniency.VALID):
                yield Span(m.start, m.end, "phone")

    def find(self, text: str) -> list[Span]:
        """Non-overlapping matches, sorted by position."""
        cands: list[Span] = []
        if "email" in self.kinds and "@" in text:
            cands += self._emails(text)
        if "ip" in self.kinds:
            cands += self._ips(text)
        if "phone" in self.kinds:
            cands += self._phones(text)
        cands.sort(key=lambda s: (s.start, -(s.end - s.start), self._priority[s.kind]))
        out: list[Span] = []
        end = -1
        for s in cands:
            if s.start >= end:
                out.append(s)
                end = s.end
        return out

    # ------------------------------------------------------------------ redaction

    def redact(self, text: str) -> tuple[str, list[Span]]:
        """(redacted text, the spans of ``text`` that were replaced)."""
        spans = self.find(text)
        if not spans:
            return text, spans
        parts: list[str] = []
        pos = 0
        for s in spans:
            parts.append(text[pos:s.start])
            parts.append(self.placeholders[s.kind])
            pos = s.end
        parts.append(text[pos:])
        return "".join(parts), spans


# --------------------------------------------------------------------------- scorer

class PiiScorer(RecordScorer):
    """Rewrites ``text`` with PII replaced; adds ``pii_<kind>`` match counts. Never drops."""

    def __init__(self, redactor: PiiRedactor):
        self.redactor = redactor
        self.columns = {f"pii_{k}": "int64" for k in redactor.kinds}

    def process(self, record: Record) -> Decision:
        text = require_text(record)
        new, spans = self.redactor.redact(text)
        cols: dict = {f"pii_{k}": 0 for k in self.redactor.kinds}
        for s in spans:
            cols[f"pii_{s.kind}"] += 1
        if new != text:
            cols["text"] = new
        return Decision(None, cols)
