"""PII redaction: detection per kind, placeholders, and text outside matches never changes."""

from __future__ import annotations

import json

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


# ------------------------------------------------------- technical text (issue 26, item 6)

# real-looking snippets from man pages, RFCs, changelogs and API docs: none of these is PII
_TECHNICAL = [
    "3.1.7.1. Scope of this part\n   3.1.7.2. Conformance",      # numbered headings
    "7.1.1.1 SHA256\n\n7.2.7.1 32-bit counter variant\n",        # texinfo section titles
    "  * 4.2.2.1 Overview of the protocol",                      # a bulleted TOC line
    "as defined in Section 22.1.4.1 of the ECMAScript Language Specification",
    "see \u00a73.1.7.1 and clause 5.4.3.2; RFC 7540 8.1.2.4 forbids it",
    "sub-section 3.1.7.1.2 and OID 1.3.6.1.4.1.311 (OID 1.3.101.110)",
    "Version 1.2.3.4, v1.2.3.4, 1.2.3.4-beta, 1.2.3.4~rc1 and 1.2.3.4+dfsg1",
    "update syscall lists to kernel\u00a02.6.23.1",
    "2015-07-27 (3.8.11)\nFixes.\n2015-07-29 (3.8.11.1)\nRestore an undocumented side-effect",
    "The maximum value is the lesser of --secure-heap or 2147483647.",
    "INT_MAX 2147483647, INT_MIN -2147483648, UINT_MAX 4294967295",
    "describe the operation 'projects/19306908007/operations/ExportAssets/RE'",
    "id 1234567890 and offset 5551234567",
    "size     512 768 1024 2048\n  blocks   4096 8192 16384 32768",
    "// Prints: <Buffer ab 90 78 56 34 12>",
    "released 2024-01-15, 15.01.2024 and 01/15/2024",
    "ISBN 978-3-16-148410-0 and ISBN 0-306-40615-2",
    "netmask: 'ffff:ffff:ffff:ffff::', at 10:30:45, std::vector<int>",
    "Sections 2.4.1.3 and 3.1.7.1 describe the format; see 4.1.2.1, 4.1.2.2 or 4.1.3.1 too.",
    "As described in 3.1.7.1, the parser fails (per 5.2.1.1).",
    "The table lists 2.4.1.3 as the result",
]


@pytest.mark.parametrize("text", _TECHNICAL)
def test_technical_numbers_are_not_pii(text):
    assert _kinds(text, phone_regions=["US", "DE"], ip_only_global=False) == []


def test_addresses_and_phones_in_technical_text_are_still_found():
    text = ("nameserver 1.1.1.1\n"
            "93.184.216.34 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200\n"
            "connect to 8.8.4.4:53, then 9.9.9.9.\n"
            "ping 8.8.8.8 took 1.5ms (1st try)\n"
            "allow 74.125.0.0/16 and 2001:4860:4860::8888\n"
            "servers 93.184.216.35 and 8.8.8.9 answer\n"
            "Support: (650) 253-0000, 650-253-0001, 650.253.0002, +1 650 253 0003, "
            "1-800-555-0199, Tel: 6502530004, Berlin +49 30 901820.")
    assert _kinds(text) == [
        ("1.1.1.1", "ip"), ("93.184.216.34", "ip"), ("8.8.4.4", "ip"), ("9.9.9.9", "ip"),
        ("8.8.8.8", "ip"),
        ("74.125.0.0", "ip"), ("2001:4860:4860::8888", "ip"),
        ("93.184.216.35", "ip"), ("8.8.8.9", "ip"),
        ("(650) 253-0000", "phone"), ("650-253-0001", "phone"), ("650.253.0002", "phone"),
        ("+1 650 253 0003", "phone"), ("1-800-555-0199", "phone"), ("6502530004", "phone"),
        ("+49 30 901820", "phone")]


def test_rfc5737_documentation_addresses_are_addresses():
    # RFC 5737 example addresses are addresses (kept by default: not globally routable)
    text = "hosts 192.0.2.1, 198.51.100.7 and 203.0.113.9.\n203.0.113.10 - - [x] GET"
    assert _kinds(text) == []
    assert _kinds(text, ip_only_global=False) == [
        ("192.0.2.1", "ip"), ("198.51.100.7", "ip"), ("203.0.113.9", "ip"),
        ("203.0.113.10", "ip")]


def test_national_formats_follow_phone_regions():
    text = "Rufen Sie 030 901820 an; Paris 01 23 45 67 89"
    assert _kinds(text, phone_regions=["US"]) == []
    assert _kinds(text, phone_regions=["DE", "FR"]) == [("030 901820", "phone"),
                                                         ("01 23 45 67 89", "phone")]


# ------------------------------------------------ report snippets (output.redact_snippets)


def test_redact_html_rewrites_text_nodes_only():
    from pipelines.report.redact import redact_html

    page = ('<style>a{}</style><p title="x@example.org">a &amp; b bob@example.org, '
            'call (650) 253-0000</p><img src="data:image/png;base64,AAAA"/>'
            '<td>1,234,567</td><td>2147483647</td><!-- eve@example.org -->')
    out = redact_html(page, PiiRedactor())
    assert out == ('<style>a{}</style><p title="x@example.org">a &amp; b &lt;EMAIL&gt;, '
                   'call &lt;PHONE_NUMBER&gt;</p><img src="data:image/png;base64,AAAA"/>'
                   '<td>1,234,567</td><td>2147483647</td><!-- eve@example.org -->')
    assert redact_html(page, None) is page


def test_snippet_redactor_follows_config():
    from pipelines.build.config import build_config_from_dict
    from pipelines.report.redact import snippet_redactor

    def cfg(stages, **output):
        return build_config_from_dict({"sources": [{"name": "s", "type": "jsonl", "path": "x"}],
                                       "stages": stages, "output": {"dir": "o", **output}})

    assert snippet_redactor(cfg([])) is None                       # unset, no pii_redact
    assert snippet_redactor(cfg([], redact_snippets=True)).kinds == ("email", "ip", "phone")
    pii = [{"stage": "pii_redact", "kinds": ["email"], "placeholders": {"email": "[mail]"}}]
    r = snippet_redactor(cfg(pii))                                 # unset: on, stage settings
    assert r.kinds == ("email",) and r.placeholders["email"] == "[mail]"
    assert snippet_redactor(cfg(pii, redact_snippets=False)) is None
    with pytest.raises(ConfigError, match="redact_snippets"):
        cfg([], redact_snippets="yes")


def test_report_hides_pii_of_records_removed_before_pii_redact(tmp_path):
    from typer.testing import CliRunner

    from pipelines.cli.main import app
    from tests.buildutil import build, config, read_jsonl_gz, write_jsonl

    doc = {"text": "Section 3.1.7.1 and 2147483647 stay. Write to alice@example.org or "
                   "call (650) 253-0000 about the mirror at 93.184.216.34."}
    write_jsonl(tmp_path / "in.jsonl", [doc, doc, b'{"text": "mail carol@example.org'])
    build(config([{"name": "s", "type": "jsonl", "path": str(tmp_path / "in.jsonl")}],
                 [{"stage": "exact_dedup"}, {"stage": "pii_redact"}], tmp_path / "out",
                 shards=1, max_dead_letter_fraction=0.9))
    out = tmp_path / "out"
    # removed/ and dead_letter/ keep the original text: nothing is lost
    removed = read_jsonl_gz(out / "removed")
    assert "alice@example.org" in removed[0]["record"]["text"]
    assert "carol@example.org" in json.dumps(read_jsonl_gz(out / "dead_letter"))
    for _ in range(2):  # as built, then re-rendered by `datamill report`
        page = (out / "report.html").read_text()
        assert "output.redact_snippets" in page
        for raw in ("alice@example.org", "carol@example.org", "(650) 253-0000",
                    "93.184.216.34"):
            assert raw not in page
        assert "&lt;EMAIL&gt;" in page and "&lt;PHONE_NUMBER&gt;" in page
        assert "Section 3.1.7.1 and 2147483647 stay" in page  # numbers that are not PII
        (out / "report.html").unlink()
        res = CliRunner().invoke(app, ["report", str(out)])
        assert res.exit_code == 0, res.output


def test_wrapped_sentences_and_justified_text():
    # a sentence that wraps before an address is not a heading; groff-justified spacing
    text = ("The external IP address of 'example-instance' is\n         162.222.181.197.\n\n"
            "Given 'My phone number is  (415)  555-0890', the detector ...\n"
            "order-contact=\"name=Jane,phone=12345678910\"\n"
            "Table:\n  512  768  1024\n  uid=650-253-0000")
    assert _kinds(text) == [("162.222.181.197", "ip"), ("(415)  555-0890", "phone"),
                            ("12345678910", "phone")]


@pytest.mark.parametrize("text", [
    "The oid is expected to be in dotted decimal form, like 2.5.29.3.",
    "testoid1=1.2.3.5\n  testoid2=${testoid1}.6",
    "Supports epochs in version strings (since dpkg 1.4.0.7).",
    "(11.3.3.2 and 11.3.3.5 of the ISO PNG specification)",
    'identifier value "f9:2a:c2:77:29:f9:5c:00"',
    "invalid version numbers:\n\n    1\n    2.7.2.2\n    1.3.a4\n    1.3pl1\n",
    "3.10a 8.02 3.4j 1996.07.12 3.2.pl0 3.1.1.6 2g6 11g 0.960923 2.2beta29 1.13++",
])
def test_oids_versions_and_identifiers_are_not_addresses(text):
    assert _kinds(text, ip_only_global=False) == []
