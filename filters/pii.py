"""PII redaction: e-mail addresses, IP addresses (v4 and v6) and phone numbers.

Plain Python. Detection:

* ``email``: ``local@domain.tld`` with an ASCII local part of ``[A-Za-z0-9._%+-]`` and a
  dotted domain whose last label is 2-63 letters;
* ``ip``: IPv4 dotted quads and IPv6 addresses (any RFC 4291 text form, including ``::``
  compression and an embedded IPv4 tail) with at least 3 groups (``a::b`` is valid but is
  rarely an address), every candidate validated by :mod:`ipaddress`;
  with ``ip_only_global`` (default, as FineWeb-2's PII step) only globally routable addresses
  are redacted -- ``127.0.0.1``, ``192.168.0.1``, ``10.0.0.1``, ``::1``, documentation ranges
  are not personal data and are kept.
  Technical text is full of four-part dotted numbers that are not addresses, so an IPv4
  candidate (four parts, each 0-255, no leading zeros) is *not* an address when it is:
  part of a longer dotted number (``3.1.7.1.2``, ``1.3.6.1.4.1``) or glued to a word
  (``v1.2.3.4``, ``1.2.3.4-beta``, ``1.2.3.4~rc1``, ``1.2.3.4+dfsg``); a numbered heading
  (at the start of a line, after only indentation or bullet marks, and followed by ``". "``,
  or by text whose first word has no ``.``, ``:``, ``/`` or ``@`` -- ``3.1.7.1. Scope``,
  ``7.1.1.1 SHA256``; a log line such as ``203.0.113.7 - - [...]`` stays an address);
  named by the word before it (section, chapter, clause, figure, table, step, see, version,
  release, revision, build, patch, kernel, since, OID, RFC, ``§`` ...), by a phrase before it
  (``as described in``, ``per``, ``the table lists``) or after it (``of the ISO ...
  specification``); a later item of a list whose earlier item is not an address
  (``Sections 2.4.1.3 and 3.1.7.1``); near the word OID; beside versions with letters (``1.3.a4``,
  ``3.2.pl0``, ``1.5.2b2``: a list of version numbers); or a member of a numbering
  family in the same text: its first three parts also occur as a dotted number of their own
  (``3.8.11`` beside ``3.8.11.1``, ``7.1.1`` beside ``7.1.1.1``), or it begins a longer
  dotted number there (sections, versions and OIDs come in families, addresses do not);
* ``phone``: a candidate must *look like* a phone number -- digit groups joined by one
  space, ``-`` or ``.``, an area code in parentheses, or a leading ``+`` -- with 7 to 15
  digits (E.164 allows at most 15), not glued to a word, a path, a dotted number or a
  ``-`` sign; a plain run of digits (``2147483647``, a project number, ``19306908007``)
  counts only right after ``tel``/``phone``/``fax``/``call``/``mobile``. Dates
  (``2024-01-15``, ``15.01.2024``), numbers named as ISBN/ISSN/DOI/version/serial..., and
  space-separated figures with more figures beside them on the line (tables) are not phone
  numbers. Each candidate is then checked by Google's libphonenumber
  (``phonenumbers.PhoneNumberMatcher``, leniency ``STRICT_GROUPING``: a valid number for one
  of ``phone_regions``, or for its ``+`` country code, whose digit groups follow that
  country's formatting) and must match as a whole.

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
# four parts, not glued to a word or to more dotted digits; not followed by a version suffix
# (1.2.3.4-beta, 1.2.3.4~rc1, 1.2.3.4+dfsg); an IP range 192.0.2.1-192.0.2.9 still matches
# (each pattern opens with a lookahead on its first character: re then skips ahead by that
# character class instead of trying the lookbehind at every position, 2-3x faster)
_IPV4 = re.compile(r"(?=\d)(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d|[~+]\w|-[A-Za-z])")
# dotted numbers of 3 or more parts (version, section, OID families); "203.0.113.x" or
# "10.0.0.*" are address patterns, not numbers
_DOTTED = re.compile(r"(?=\d)(?<![\w.])\d{1,9}(?:\.\d{1,9}){2,}(?!\w|\.[\w*]|\\)")
_NOT_IP_WORD = re.compile(
    r"(?:\b(?:sections?|sect?|ch(?:ap(?:ter)?)?s?|clauses?|para(?:graph)?s?|parts?|appendix|"
    r"annex|fig(?:ure)?s?|tables?|steps?|items?|rules?|see|versions?|ver|v|releases?|rel|"
    r"revisions?|rev|builds?|patch(?:es)?|updates?|oids?|kernel|linux)\.?|\u00a7{1,2}|"
    r"\b(?:since|until|prior\s+to|up\s+to)(?:\s+[A-Za-z][\w+-]*)?|"  # "since dpkg 1.4.0.7"
    r"\b(?:rfc|iso|ecma|x\.)[\s-]*\d*[\s,:]*)"
    r"[\s(\[-]*$", re.IGNORECASE)
# a reference in running text: "as described in 3.1.7.1", "per 4.2.1.1", "the table lists
# 2.4.1.3" (a section word, then one more word)
_NOT_IP_PHRASE = re.compile(
    r"(?:\b(?:described|defined|specified|explained|discussed|documented|listed|shown|given|"
    r"detailed|covered|introduced)\s+(?:in|by|under)|\b(?:according\s+to|refer\s+to|per|cf\.?)"
    r"|\b(?:sections?|ch(?:ap(?:ter)?)?s?|clauses?|tables?|fig(?:ure)?s?|steps?|appendix)"
    r"\s+[A-Za-z]+)[\s(\[-]*$", re.IGNORECASE)
# the second and later numbers of a list: "Sections 2.4.1.3 and 3.1.7.1", "3.1.7.1, 3.1.7.2 or
# 3.1.8.1": the number before it decides
_LIST_BEFORE = re.compile(r"(?<![\w.])(\d{1,9}(?:\.\d{1,9}){2,})\s*(?:,|and|or|to|through|&|-)"
                          r"\s*$", re.IGNORECASE)
# the line before a numbered heading: blank, the end of a sentence, or another numbered line
_HEADING_BEFORE = re.compile(
    r"(?:^|[.:;!?)\]]|^[ \t\u00a0*#>|\u2022\u00b7-]*\d[\d.]*\s.*)[ \t\u00a0]*$")
# "(11.3.3.2 of the ISO PNG specification)", "3.1.7.1 of RFC 1035"
_NOT_IP_AFTER = re.compile(
    r"(?:[^.\n]|\.\d){0,40}?\b(?:of\s+(?:the\s+)?(?:rfc|iso|ecma)|specification|standard)\b",
    re.IGNORECASE)
# a version with letters beside it: "3.4j 1996.07.12 3.2.pl0 3.1.1.6 2g6", "2.7.2.2 1.3.a4"
_VERSION_NEAR = re.compile(r"(?<![\w.])\d+(?:\.\d+)+\.?(?:(?:a|b|c|rc|pl|alpha|beta|dev|pre|post|"
                           r"j|kw)\d*|\+\+)(?![\w.])")
# object identifiers: "the OID 2.5.29.3", "testoid1=1.2.3.5", "-oid option"
_OID_NEAR = re.compile(r"(?<![a-z])oids?(?![a-z])|oid\d*\s*=", re.IGNORECASE)
_HEADING_LEAD = " \t\u00a0*#>|\u2022\u00b7-"

# phone candidates: optional +CC, optional (area code), digit groups joined by one space,
# '-' or '.' (with up to two spaces around - and . and after the area code, as justified
# text has them; two spaces alone join table columns, not phone digits); the code checks
# the rest
_SEP = r"(?:[ \u00a0]{0,2}[-.\u2010\u2011\u2013][ \u00a0]{0,2}|[ \u00a0])"
_PHONE = re.compile(
    r"(?=[+(\d])(?<![\w+/\\.@#&%$\-])"
    r"(?:\+[ \u00a0]?\d{1,3}" + _SEP + r"?)?"
    r"(?:(?:\d{1,3}[ \u00a0]?)?\(\d{1,5}\)[ \u00a0]{0,2}(?:[-.][ \u00a0]?)?)?"
    r"\d{1,15}(?:" + _SEP + r"\d{1,15}){0,7}"
    r"(?![\w@]|[.\-/\u2010\u2011\u2013]\d)"
)
_PHONE_WORD = re.compile(
    r"\b(?:tel(?:ephone)?|phone|ph|fax|call|mobile|cell|mob|t\u00e9l(?:\u00e9phone)?|"
    r"telefon|tlf)\b\.?[ \t\u00a0]*(?:no\.?|nr\.?|number|#)?[ \t\u00a0]*[:.=]?[ \t\u00a0]*$",
    re.IGNORECASE)
_NOT_PHONE_WORD = re.compile(
    r"\b(?:isbn(?:-1[03])?|issn|doi|pmid|arxiv|versions?|ver|rev(?:ision)?|release|build|"
    r"serial|s/n|sn|oid|cve|id|uid|gid|pid|port|patent|order|invoice|account|acct|ticket|"
    r"bug|issue|pr|commit|sha|inode|offset|size|bytes?)\b[\s.:#=]*(?:no\.?|number|nr\.?)?"
    r"[\s.:#=]*$", re.IGNORECASE)
_PHONE_PREFIX = re.compile(r"^(?:\+[ \u00a0]?\d{1,3}[ \u00a0.\-]?)?(?:\d{1,3}[ \u00a0]?)?"
                           r"(?:\(\d{1,5}\)[ \u00a0]?)?")
# a hex byte before space-separated figures: "ab 90 78 56 34 12" is a dump, not a number
_HEXISH = re.compile(r"(?:^|\s)[0-9A-Fa-f]{2}$")
_DATE = re.compile(r"\d{4}([-./ ])\d{1,2}\1\d{1,2}|\d{1,2}([-./ ])\d{1,2}\2\d{2,4}")
_IPV6 = re.compile(
    r"(?=[0-9A-Fa-f:])(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}"
    r"(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?"
    r"(?![\w:])"
)


def _is_netmask(addr) -> bool:
    """ffff:ffff:ffff:ffff:: and the like: a prefix mask, not an address."""
    bits = int(addr)
    inv = ~bits & ((1 << addr.max_prefixlen) - 1)
    return bits != 0 and (inv & (inv + 1)) == 0


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

    def _ipv4_not_address(self, text: str, start: int, end: int, family) -> bool:
        """A four-part dotted number that is a heading, a named section/version, or a member
        of a numbering family (module docstring)."""
        line_start = text.rfind("\n", 0, start) + 1
        prev_line = text[text.rfind("\n", 0, max(0, line_start - 1)) + 1:max(0, line_start - 1)]
        if not text[line_start:start].strip(_HEADING_LEAD) and _HEADING_BEFORE.search(prev_line):
            # (a line that continues a sentence is not a heading: "... address is\n8.8.8.8.")
            after = text[end:end + 80].split("\n", 1)[0]
            if after[:1] == "." and after[1:2] in ("", " ", "\t", "\u00a0"):
                return True  # "3.1.7.1. Scope" or a "3.1.7.1." line
            words = after.split()
            if after[:1] in (" ", "\t", "\u00a0") and words and words[0][0].isalnum() \
                    and not any(c in words[0] for c in ".:/@"):
                return True  # "7.1.1.1 SHA256"
        if _NOT_IP_WORD.search(text, max(0, start - 24), start) or \
                _NOT_IP_PHRASE.search(text, max(0, start - 40), start):
            return True
        listed = _LIST_BEFORE.search(text, max(0, start - 48), start)
        if listed is not None:
            a, b = listed.span(1)
            if b - a > 0 and (text[a:b].count(".") != 3 or
                              self._ipv4_not_address(text, a, b, family)):
                return True  # a list of section or version numbers
        if start > 1 and text[start - 1] == "/" and text[start - 2].isalnum():
            return True  # "git/1.8.3.1", a path component (a URL has "//" before its host)
        if _NOT_IP_AFTER.match(text, end, end + 60):
            return True
        if _OID_NEAR.search(text, max(0, start - 80), end + 80):
            return True
        if _VERSION_NEAR.search(text, max(0, start - 30), end + 30):
            return True
        parts = tuple(text[start:end].split("."))
        return parts[:3] in family or parts in family

    @staticmethod
    def _numbering_family(text: str) -> set[tuple[str, ...]]:
        """Three-part dotted numbers, and the 3- and 4-part prefixes of longer ones."""
        out: set[tuple[str, ...]] = set()
        for m in _DOTTED.finditer(text):
            parts = tuple(m.group().split("."))
            if len(parts) == 4:
                continue
            out.add(parts[:3])
            if len(parts) > 4:
                out.add(parts[:4])
        return out

    def _ips(self, text: str):
        family = None
        for m in _IPV4.finditer(text):
            try:
                addr = ipaddress.IPv4Address(m.group())
            except ValueError:
                continue
            if not self._ip_ok(addr):
                continue
            if family is None:
                family = self._numbering_family(text)
            if self._ipv4_not_address(text, m.start(), m.end(), family):
                continue
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
            if len(groups) >= 6 and all(len(g) == 2 for g in groups):
                continue  # f9:2a:c2:77:29:f9:5c:00 is a MAC or DUID, not an address
            try:
                addr = ipaddress.IPv6Address(cand)
            except ValueError:
                continue
            if self._ip_ok(addr) and not _is_netmask(addr):
                yield Span(m.start(), m.end(), "ip")

    def _phone_candidate_ok(self, text: str, start: int, end: int) -> bool:
        raw = text[start:end]
        n_digits = sum(c.isdigit() for c in raw)
        if not 7 <= n_digits <= 15:
            return False
        before = text[max(0, start - 30):start]
        if start and text[start - 1] == ":" and start > 1 and text[start - 2].isalnum() \
                and not _PHONE_WORD.search(before):
            return False  # "10:30 ...", "host:8080", "a:b:650 ..."
        if start and text[start - 1] == "=" and not _PHONE_WORD.search(before):
            return False  # "uid=650-253-0000" style values
        groups = re.findall(r"\d+", raw)
        if len(groups) == 1 and raw[0] != "+":
            # a plain run of digits: a phone number only when named as one
            return bool(_PHONE_WORD.search(before))
        if _DATE.fullmatch(raw) or _NOT_PHONE_WORD.search(before):
            return False
        body = _PHONE_PREFIX.sub("", raw, count=1)
        if "." in body and " " in body.replace(" .", ".").replace(". ", "."):
            return False  # "1234.789 1235": dotted numbers are written with dots throughout
        if not any(c in raw for c in "+-.()\u2010\u2011\u2013"):
            # figures joined by spaces only: not when more figures stand beside them (a table
            # row, a hex dump)
            line_start = text.rfind("\n", 0, start) + 1
            prev = text[line_start:start].rstrip()
            nxt = text[end:end + 40].split("\n", 1)[0].lstrip()
            if (prev and (prev[-1].isdigit() or _HEXISH.search(prev))) or nxt[:1].isdigit():
                return False
        return True

    def _phones(self, text: str):
        import phonenumbers

        for m in _PHONE.finditer(text):
            start, end = m.span()
            if not self._phone_candidate_ok(text, start, end):
                continue
            raw = m.group()
            for region in self.phone_regions:
                hit = next(iter(phonenumbers.PhoneNumberMatcher(
                    raw, region, leniency=phonenumbers.Leniency.STRICT_GROUPING)), None)
                # the whole candidate must be the number (no digits left outside the match)
                if hit is not None and not any(c.isdigit() for c in raw[:hit.start]) \
                        and not any(c.isdigit() for c in raw[hit.end:]):
                    yield Span(start + hit.start, start + hit.end, "phone")
                    break

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
