"""WARC / HTML sources on WARC files built here from real installed HTML (no downloads)."""

from __future__ import annotations

import gzip

import pytest

pytest.importorskip("fastwarc")
pytest.importorskip("resiliparse")
pytest.importorskip("warcio")

from filters.extract import Undecodable, decode_html, html_lang, meta_charset  # noqa: E402
from pipelines.core.settings import ConfigError
from pipelines.build.config import build_config_from_dict  # noqa: E402
from pipelines.io.sources import expand_files  # noqa: E402
from pipelines.stages.testing import collect, collected, local_pipeline  # noqa: E402
from pipelines.io.web_sources import ReadWeb  # noqa: E402
from tests.buildutil import build, config, read_jsonl_gz, read_output  # noqa: E402
from tests.webutil import real_html_files, write_warc  # noqa: E402


def _pages(n=4):
    return [{"url": f"http://docs.example.org/{i}.html", "body": f.read_bytes()}
            for i, f in enumerate(real_html_files(n))]


def _hostile_pages():
    return [
        {"url": "http://x.example/doc.pdf", "body": b"%PDF-1.4 binary",
         "headers": [("Content-Type", "application/pdf")]},
        {"url": "http://x.example/missing", "body": b"<html><p>gone</p></html>",
         "status": "404 Not Found", "headers": [("Content-Type", "text/html")]},
        {"url": "http://x.example/bad-utf8", "body": b"<html><p>caf\xe9 \xff\xfe</p></html>",
         "headers": [("Content-Type", "text/html; charset=utf-8")]},
        {"url": "http://x.example/empty", "body": b"<html><body></body></html>",
         "headers": [("Content-Type", "text/html")]},
    ]


def _read(src_dict, pattern):
    """Run ReadWeb alone; returns records, dead rows and counted rows."""
    cfg = build_config_from_dict({"sources": [{**src_dict, "path": pattern}],
                                  "output": {"dir": "/tmp/unused"}})
    src = cfg.sources[0]
    files, _skipped = expand_files(src, 0)
    p = local_pipeline()
    res = p | ReadWeb(src, files)
    keys = {k: collect(res[k], k) for k in ("records", "dead", "counted")}
    p.run().wait_until_finish()
    return {k: collected(v) for k, v in keys.items()}


def _balanced(out):
    emitted = len(out["records"]) + sum(d.get("records", 1) for d in out["dead"])
    return emitted == sum(c["records"] for c in out["counted"])


def test_warc_records_columns_and_dead_letters(tmp_path, gz=True):
    """A whole build (plain WARC framing is covered by the counting tests below)."""
    pages = _pages(4)
    name = "crawl.warc.gz" if gz else "crawl.warc"
    write_warc(tmp_path / name, pages + _hostile_pages(), gz=gz)
    res = build(config([{"name": "cc", "type": "warc", "path": str(tmp_path / "*.warc*")}], [],
                       tmp_path / "out"))
    rows = read_output(tmp_path / "out")
    assert [r["id"] for r in rows] == [f"{name}:{i}" for i in range(1, 5)]
    assert [r["url"] for r in rows] == [p["url"] for p in pages]
    for r in rows:
        assert r["content_type"] == "text/html" and r["source"] == "cc"
        assert r["fetch_date"].endswith("Z") and r["warc_record_id"].startswith("<urn:uuid:")
        assert r["text"].strip() and "<" not in r["text"][:200]
    dead = sorted(read_jsonl_gz(tmp_path / "out" / "dead_letter"), key=lambda d: d["id"])
    assert [(d["id"], d["reason"].split(":")[0]) for d in dead] == [
        (f"{name}:5", "not_html"), (f"{name}:6", "http_status"), (f"{name}:7", "undecodable"),
        (f"{name}:8", "no_main_text")]
    assert "application/pdf" in dead[0]["reason"] and "404" in dead[1]["reason"]
    assert dead[0]["raw"].startswith("%PDF")  # the raw payload is kept for inspection
    assert res.stats["counts"]["kept"] == 4 and res.stats["counts"]["dead_letter"] == 4


def test_counted_from_framing_matches_emitted(tmp_path):
    write_warc(tmp_path / "a.warc.gz", _pages(3) + _hostile_pages(), gz=True)
    write_warc(tmp_path / "b.warc", _pages(2), gz=False)
    out = _read({"name": "cc", "type": "warc"}, str(tmp_path / "*.warc*"))
    counted = {c["path"].rsplit("/", 1)[1]: c for c in out["counted"]}
    # request and warcinfo records are not documents: 7 and 2 responses
    assert {k: c["records"] for k, c in counted.items()} == {"a.warc.gz": 7, "b.warc": 2}
    assert counted["b.warc"]["bytes"] == (tmp_path / "b.warc").stat().st_size
    assert all(c["source"] == "cc" for c in counted.values())
    assert _balanced(out)


def test_truncated_gzip_is_dead_lettered_and_counted(tmp_path):
    full = write_warc(tmp_path / "full.warc.gz", _pages(4), gz=True).read_bytes()
    (tmp_path / "cut.warc.gz").write_bytes(full[: len(full) * 2 // 3])
    (tmp_path / "full.warc.gz").unlink()
    out = _read({"name": "cc", "type": "warc"}, str(tmp_path / "cut.warc.gz"))
    assert any(d["reason"].startswith("read_error: EOFError") for d in out["dead"])
    assert len(out["records"]) < 4
    assert _balanced(out)


def test_truncated_plain_warc_record(tmp_path):
    full = write_warc(tmp_path / "full.warc", _pages(3), gz=False).read_bytes()
    # cut inside the last response's payload (the trailing request record is ~300 bytes)
    (tmp_path / "cut.warc").write_bytes(full[:-900])
    (tmp_path / "full.warc").unlink()
    out = _read({"name": "cc", "type": "warc"}, str(tmp_path / "cut.warc"))
    reasons = [d["reason"] for d in out["dead"]]
    assert any(r.startswith("truncated_record") for r in reasons), reasons
    assert _balanced(out)


def test_garbage_file_is_one_dead_row(tmp_path):
    (tmp_path / "junk.warc").write_bytes(b"this is not a WARC file\r\n\r\n" * 3)
    out = _read({"name": "cc", "type": "warc"}, str(tmp_path / "junk.warc"))
    assert out["records"] == [] and len(out["dead"]) == 1
    assert out["dead"][0]["reason"].startswith("read_error")
    assert out["counted"][0]["records"] == 1 and _balanced(out)


def test_resource_records_and_language_hints(tmp_path):
    body = real_html_files(1)[0].read_bytes()
    german = ("<html lang='de-DE'><body><article><p>Dies ist ein Absatz mit genug Text, damit "
              "der Extraktor ihn als Hauptinhalt erkennt und behält.</p></article></body></html>")
    write_warc(tmp_path / "r.warc", [
        {"url": "file:///doc.html", "body": body, "type": "resource"},
        {"url": "http://de.example/", "body": german.encode("utf-8"),
         "headers": [("Content-Type", "text/html"), ("Content-Language", "de, en")]},
        {"url": "http://de2.example/", "body": german.encode("utf-8"),
         "headers": [("Content-Type", "text/html")]},
    ])
    out = _read({"name": "cc", "type": "warc"}, str(tmp_path / "r.warc"))
    recs = sorted(out["records"], key=lambda r: r["id"])
    assert [r["url"] for r in recs] == ["file:///doc.html", "http://de.example/",
                                        "http://de2.example/"]
    assert recs[1]["language_hint"] == "de"  # HTTP header first
    assert recs[2]["language_hint"] == "de-DE"  # then <html lang>
    assert "Absatz" in recs[1]["text"]


def test_html_files_source_and_trafilatura(tmp_path):
    pytest.importorskip("trafilatura")
    files = real_html_files(3)
    for i, f in enumerate(files):
        (tmp_path / f"p{i}.html").write_bytes(f.read_bytes())
    (tmp_path / "bin.html").write_bytes(b"\x00\x01\x02\xff\xfe binary")
    for extractor in ("resiliparse", "trafilatura"):
        out = _read({"name": "h", "type": "html", "extractor": extractor},
                    str(tmp_path / "*.html"))
        assert sorted(r["id"] for r in out["records"]) == ["p0.html", "p1.html", "p2.html"]
        assert [d["id"] for d in out["dead"]] == ["bin.html"]
        assert all(r["url"].endswith(r["id"]) for r in out["records"])
        assert _balanced(out)


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="extractor"):
        build_config_from_dict({"sources": [{"name": "w", "type": "warc", "path": "x",
                                             "extractor": "beautifulsoup"}],
                                "output": {"dir": str(tmp_path)}})
    with pytest.raises(ConfigError, match="no warc files"):
        build(config([{"name": "w", "type": "warc", "path": str(tmp_path / "*.warc")}], [],
                     tmp_path / "out"))


def test_decoding_rules():
    assert decode_html("café".encode("utf-8"))[0] == "café"
    # a declared charset wins and must decode the whole body
    assert decode_html("café".encode("latin-1"), "ISO-8859-1")[0] == "café"
    with pytest.raises(Undecodable, match="declared charset utf-8"):
        decode_html(b"caf\xe9", "utf-8")
    # a <meta charset> counts as a declaration; an unknown charset name does not
    body = b'<html><head><meta charset="windows-1252"></head><p>caf\xe9</p></html>'
    assert meta_charset(body) == "windows-1252" and "café" in decode_html(body)[0]
    assert decode_html(b"plain ascii", "no-such-charset")[0] == "plain ascii"
    assert html_lang('<!doctype html><html class="x" lang="pt_BR">') == "pt-BR"
    assert html_lang("<html><body lang='fr'>") is None


def test_gzip_multi_member_html(tmp_path):
    page = real_html_files(1)[0].read_bytes()
    (tmp_path / "p.html.gz").write_bytes(gzip.compress(page[:100]) + gzip.compress(page[100:]))
    out = _read({"name": "h", "type": "html"}, str(tmp_path / "*.html.gz"))
    assert len(out["records"]) == 1 and _balanced(out)
