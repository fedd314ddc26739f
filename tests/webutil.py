"""Build small WARC files from real HTML that ships on the machine (no downloads)."""

from __future__ import annotations

import glob
import io
import os
from pathlib import Path

import pytest

HTML_GLOBS = ("/usr/share/doc/**/*.html", "/work/main/.venv/**/*.html",
              "/usr/lib/python3*/**/*.html")


def real_html_files(n: int, min_bytes: int = 2000) -> list[Path]:
    """Up to ``n`` real HTML pages (sorted, deterministic); skips the test when none exist."""
    found: list[str] = []
    for pattern in HTML_GLOBS:
        found += [p for p in glob.glob(pattern, recursive=True)
                  if os.path.isfile(p) and os.path.getsize(p) >= min_bytes]
    found = sorted(set(found))
    if len(found) < 3:
        pytest.skip("no HTML documentation installed on this machine")
    return [Path(p) for p in found[:n]]


def write_warc(path: Path, pages: list[dict], gz: bool = False) -> Path:
    """``pages``: dicts with url, body (bytes) and optional status, headers, type.

    A warcinfo record and one request record per response are written as well (they are not
    documents). ``type: "resource"`` writes a resource record (no HTTP envelope).
    """
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    with open(path, "wb") as fh:
        w = WARCWriter(fh, gzip=gz)
        w.write_record(w.create_warcinfo_record(path.name, {"software": "datamill-tests"}))
        for page in pages:
            if page.get("type") == "resource":
                rec = w.create_warc_record(page["url"], "resource",
                                           payload=io.BytesIO(page["body"]),
                                           warc_content_type=page.get("ctype", "text/html"))
                w.write_record(rec)
                continue
            # no charset by default: the page's <meta charset> or detection decides, as for
            # many real crawls (installed docs are not all UTF-8)
            headers = page.get("headers", [("Content-Type", "text/html")])
            http = StatusAndHeaders(page.get("status", "200 OK"), headers, protocol="HTTP/1.1")
            w.write_record(w.create_warc_record(page["url"], "request",
                                                payload=io.BytesIO(b"GET / HTTP/1.1\r\n\r\n")))
            w.write_record(w.create_warc_record(page["url"], "response",
                                                payload=io.BytesIO(page["body"]),
                                                http_headers=http))
    return path
