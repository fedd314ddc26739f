"""PII redaction: detection per kind, placeholders, and text outside matches never changes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("phonenumbers")

from filters.pii import PiiRedactor, PiiScorer  # noqa: E402
from pipelines.core.settings import ConfigError
from pipelines.stages.registry import parse_stages  # noqa: E402
from pipelines.stages.testing import run_stage  # noqa: E402


def _kinds(text, **kw):
    return [(text[s.start:s.end], s.kind) for s in PiiRedactor(**kw).find(text)]


def test_each_kind_found():
    text = ("Write to jane.doe+news@mail.example.co.uk, call (650) 253-0000 or "
            "+44 20 7946 0958; servers 8.8.8.8 and 2001:4860:4860::8888.")
    assert _kinds(text, phone_regions=["US"]) == [
        ("jane.doe+news@mail.example.co.uk", "email"), ("(650) 253-0000", "phone"),
        ("+44 20 7946 0958", "phone"), ("8.8.8.8", "ip"), ("2001:4860:4860::8888", "ip")]


def test_not_pii():
    text = ("At 10:30:45 use std::vector and a::b; version 1.2.3; 999.1.1.1 is not an IP; "
            "user@localhost has no domain; ratio 3/4; ISBN 978-3-16-148410-0.")
    assert _kinds(text) == []


def test_private_ips_kept_unless_asked():
    text = "loopback 127.0.0.1, lan 192.168.1.20, v6 fe80::1:2 and fd00:1::5"
    assert _kinds(text) == []
    assert [k for _, k in _kinds(text, ip_only_global=False)] == ["ip"] * 4


def test_overlap_longest_wins_and_placeholders():
    r = PiiRedactor(placeholders={"email": "[mail]"})
    new, spans = r.redact("mail 8.8.8.8@example.com now")
    # the e-mail contains an IPv4-looking local part: one e-mail match, not two
    assert [s.kind for s in spans] == ["email"] and new == "mail [mail] now"


def test_scorer_counts_and_unchanged_text():
    s = PiiScorer(PiiRedactor(kinds=["email", "ip"]))
    d = s.process({"id": "a", "text": "a@b.org and c@d.org at 1.1.1.1", "source": "s"})
    assert d.columns == {"pii_email": 2, "pii_ip": 1,
                         "text": "<EMAIL> and <EMAIL> at <IP_ADDRESS>"}
    d = s.process({"id": "b", "text": "nothing to see", "source": "s"})
    assert d.columns == {"pii_email": 0, "pii_ip": 0} and d.drop is None


_filler = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
_pii = st.sampled_from(["bob@example.org", "8.8.4.4", "2606:4700::1111", "(212) 555-0199",
                        "+49 30 901820", "x.y@sub.example.com"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_filler, _pii), max_size=6), _filler)
def test_text_outside_matches_is_byte_identical(parts, tail):
    text = "".join(a + b for a, b in parts) + tail
    r = PiiRedactor(phone_regions=["US", "DE"])
    new, spans = r.redact(text)
    # rebuild from the spans: the redacted text is exactly the untouched slices + placeholders
    pos, pieces = 0, []
    for s in spans:
        assert pos <= s.start < s.end <= len(text)
        pieces += [text[pos:s.start], r.placeholders[s.kind]]
        pos = s.end
    pieces.append(text[pos:])
    assert new == "".join(pieces)
    assert new.encode("utf-8") == b"".join(p.encode("utf-8") for p in pieces)
    if not spans:
        assert new is text or new == text


def test_stage_stats_examples_and_report():
    recs = [{"id": f"r{i}", "text": f"Contact admin{i}@example.org from 9.9.9.{i}.",
             "source": "s"} for i in range(8)]
    recs.append({"id": "z", "text": "clean text", "source": "s"})
    out = run_stage({"stage": "pii_redact", "examples": 3}, recs)
    assert len(out["kept"]) == 9 and not out["removed"] and not out["dead"]
    assert out["stats"]["pii_counts"] == [{"email": 8, "ip": 8, "phone": 0,
                                           "records_with_pii": 8}]
    ex = out["stats"]["pii_examples"][0]
    assert [rid for rid, _ in ex["email"]] == ["r0", "r1", "r2"]  # smallest ids
    html = out["stage"].report_section(out["entry"])
    assert "&lt;EMAIL&gt;" in html and "example.org" not in html  # never the original PII


def test_config_errors():
    with pytest.raises(ConfigError, match="unknown kinds"):
        parse_stages([{"stage": "pii_redact", "placeholders": {"ssn": "X"}}])
    with pytest.raises(ConfigError, match="phone regions"):
        parse_stages([{"stage": "pii_redact", "phone_regions": ["Narnia"]}])
    with pytest.raises(ConfigError, match="non-empty"):
        parse_stages([{"stage": "pii_redact", "placeholders": {"email": ""}}])
    with pytest.raises(ConfigError, match="kinds"):
        parse_stages([{"stage": "pii_redact", "kinds": ["credit_card"]}])
