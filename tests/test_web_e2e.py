"""End to end: WARC -> extract -> URL filter -> PII redaction -> language id -> per-language
Gopher quality -> exact dedup, on a WARC built here from real installed HTML and man pages."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess

import pytest

pytest.importorskip("fastwarc")
pytest.importorskip("warcio")
pytest.importorskip("phonenumbers")

from tests.buildutil import build, config, read_jsonl_gz, read_output  # noqa: E402
from tests.webutil import real_html_files, write_warc  # noqa: E402


def _german_page() -> bytes:
    path = "/usr/share/man/de/man1/apt-transport-http.1.gz"
    if not shutil.which("man") or not os.path.exists(path):
        pytest.skip("German man page not installed")
    text = subprocess.run(["man", "-l", "-Tutf8", path], capture_output=True, timeout=60,
                          env={**os.environ, "MANWIDTH": "80"}).stdout.decode("utf-8")
    text = re.sub(r".\x08", "", text)
    paras = [p.strip() for p in text.split("\n\n") if p.strip()]
    body = "".join(f"<p>{html.escape(' '.join(p.split()))}</p>" for p in paras)
    return (f"<html lang='de'><head><title>apt-transport-http</title></head><body><main>"
            f"{body}</main></body></html>").encode("utf-8")


def test_warc_to_curated_output(tmp_path):
    docs = real_html_files(5, min_bytes=6000)
    pages = [{"url": f"https://docs.example.org/{i}.html", "body": f.read_bytes()}
             for i, f in enumerate(docs)]
    # the first page again under another URL: an exact duplicate after extraction
    pages.append({"url": "https://mirror.example.net/copy.html", "body": docs[0].read_bytes()})
    # a page from a blocked domain and one with a blocked URL substring
    pages.append({"url": "https://ads.spam.example/x.html", "body": docs[1].read_bytes()})
    pages.append({"url": "https://ok.example.org/casino/win.html", "body": docs[2].read_bytes()})
    # PII injected into a real page's first paragraph
    raw = docs[3].read_bytes()
    at = re.search(rb"<body[^>]*>", raw, re.IGNORECASE).end()
    pii_body = (raw[:at] + b"<p>Questions about this page: write to maintainer.one@example.com"
                b" or call +1 650 253 0000; the mirror is at 8.8.8.8 for everyone.</p>"
                + raw[at:])
    pages.append({"url": "https://docs.example.org/pii.html", "body": pii_body})
    pages.append({"url": "https://de.example.org/apt.html", "body": _german_page()})
    pages.append({"url": "https://files.example.org/a.pdf", "body": b"%PDF-1.7",
                  "headers": [("Content-Type", "application/pdf")]})
    write_warc(tmp_path / "crawl.warc.gz", pages, gz=True)
    (tmp_path / "domains.txt").write_text("# ad networks\nspam.example\n")
    (tmp_path / "substrings.txt").write_text("/casino/\n")

    stages = [
        {"stage": "url_filter", "blocked_domains_files": [str(tmp_path / "domains.txt")],
         "blocked_substrings_files": [str(tmp_path / "substrings.txt")]},
        {"stage": "pii_redact", "phone_regions": ["US"]},
        {"stage": "language_id", "min_score": 0.3},
        {"stage": "gopher_quality", "min_words": 20, "min_alpha_words_frac": 0.5,
         "per_language": {"de": {"min_stop_words": 3}}},
        {"stage": "exact_dedup"},
    ]
    res = build(config([{"name": "crawl", "type": "warc",
                         "path": str(tmp_path / "*.warc.gz")}], stages, tmp_path / "out"))
    rows = {r["url"]: r for r in read_output(tmp_path / "out")}
    counts = res.stats["counts"]
    assert counts["input"] == len(pages) == 11
    assert counts["input"] == counts["kept"] + counts["removed"] + counts["dead_letter"]
    assert counts["dead_letter"] == 1  # the PDF

    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    st = stats["stages"] if "stages" in stats else stats
    text = json.dumps(st)
    assert "url_blocked_domain" in text and "url_blocked_substring" in text

    removed = read_jsonl_gz(tmp_path / "out" / "removed")
    by_reason = {(r["stage"], r["reason"]) for r in removed}
    assert ("url_filter", "url_blocked_domain") in by_reason
    assert ("url_filter", "url_blocked_substring") in by_reason
    assert any(s == "exact_dedup" for s, _ in by_reason)

    pii = rows["https://docs.example.org/pii.html"]
    assert "<EMAIL>" in pii["text"] and "maintainer.one@" not in pii["text"]
    assert "<IP_ADDRESS>" in pii["text"] and "8.8.8.8" not in pii["text"]
    assert pii["pii_email"] == 1 and pii["pii_ip"] == 1 and pii["pii_phone"] == 1

    german = rows["https://de.example.org/apt.html"]
    assert german["language"] == "de" and german["language_hint"] == "de"
    assert german["gopher_stop_list"] == "stopwords-iso:de"
    assert all(r["gopher_stop_list"] == "gopher-en" for u, r in rows.items() if "de." not in u)
    assert "https://mirror.example.net/copy.html" not in rows  # duplicate of page 0 removed
    assert "https://docs.example.org/0.html" in rows
    assert all(r["fetch_date"] and r["warc_record_id"] for r in rows.values())
    report = (tmp_path / "out" / "report.html").read_text()
    assert "PII redaction" in report and "maintainer.one@" not in report
