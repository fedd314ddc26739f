"""URL blocklists: domains with subdomains, substrings, counts per reason, config errors."""

from __future__ import annotations

import pytest

from filters.url_filter import UrlBlocklist, read_list, url_host
from pipelines.core.settings import ConfigError
from pipelines.build.config import build_config_from_dict
from pipelines.stages.registry import parse_stages
from pipelines.stages.testing import run_stage


def test_domain_and_substring_matching():
    b = UrlBlocklist(["example.com", "Bad.Org."], ["/wp-login", "utm_source=spam"])
    assert b.check("https://example.com/x") == ("url_blocked_domain", "example.com")
    assert b.check("http://a.b.EXAMPLE.com:8080/") == ("url_blocked_domain", "example.com")
    assert b.check("http://user:pw@bad.org./p") == ("url_blocked_domain", "bad.org")
    assert b.check("https://notexample.com/") == (None, None)
    assert b.check("https://ok.net/WP-LOGIN.php") == ("url_blocked_substring", "/wp-login")
    assert b.check("not a url") == ("url_unparsable", None)
    assert b.check("http://[::1") == ("url_unparsable", None)
    assert b.check(None) == (None, None)
    assert UrlBlocklist(["x.y"], missing="remove").check("") == ("url_missing", None)
    assert url_host("HTTPS://WWW.Example.COM/") == "www.example.com"


def test_list_files(tmp_path):
    f = tmp_path / "l.txt"
    f.write_text("# comment\n\n  Example.COM \nfoo.org\n", encoding="utf-8")
    assert read_list(f) == ["example.com", "foo.org"]


def test_stage_counts_per_reason(tmp_path):
    (tmp_path / "d.txt").write_text("example.org\n")
    (tmp_path / "s.txt").write_text("/casino/\n")
    recs = [{"id": str(i), "text": "t", "source": "s", "url": u} for i, u in enumerate([
        "http://www.example.org/a", "http://example.org", "https://ok.net/casino/win",
        "https://ok.net/fine", None, "::::"])]
    out = run_stage({"stage": "url_filter", "blocked_domains_files": [str(tmp_path / "d.txt")],
                     "blocked_substrings_files": [str(tmp_path / "s.txt")]}, recs,
                    columns={"url": "string"})
    assert [r["id"] for r in out["kept"]] == ["3", "4"]
    assert [(reason, r["id"]) for reason, r in out["removed"]] == [
        ("url_blocked_domain", "0"), ("url_blocked_domain", "1"),
        ("url_blocked_substring", "2"), ("url_unparsable", "5")]
    assert out["stage"].static_stats() == {"blocked_domains": 1, "blocked_substrings": 1}


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        parse_stages([{"stage": "url_filter", "blocked_domains_files": ["/no/such/list"]}])
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ConfigError, match="no entries"):
        parse_stages([{"stage": "url_filter", "blocked_domains_files": [str(tmp_path / "empty.txt")]}])
    with pytest.raises(ConfigError, match="give blocked_domains_files"):
        parse_stages([{"stage": "url_filter"}])
    (tmp_path / "d.txt").write_text("example.org\n")
    (tmp_path / "in.jsonl").write_text('{"text": "x"}\n')
    from pipelines.build.plan import plan_build

    cfg = build_config_from_dict({
        "sources": [{"name": "j", "type": "jsonl", "path": str(tmp_path / "in.jsonl")}],
        "stages": [{"stage": "url_filter", "blocked_domains_files": [str(tmp_path / "d.txt")]}],
        "output": {"dir": str(tmp_path / "out")}})
    with pytest.raises(ConfigError, match="url_column 'url' is not a column"):
        plan_build(cfg)
    # a base column is a column: ids that are URLs (a crawl keyed by URL) can be filtered
    cfg = build_config_from_dict({
        "sources": [{"name": "j", "type": "jsonl", "path": str(tmp_path / "in.jsonl")}],
        "stages": [{"stage": "url_filter", "url_column": "id",
                    "blocked_domains_files": [str(tmp_path / "d.txt")]}],
        "output": {"dir": str(tmp_path / "out")}})
    assert plan_build(cfg).stages[0].params.url_column == "id"


def test_list_contents_enter_the_fingerprint(tmp_path):
    f = tmp_path / "d.txt"
    f.write_text("a.example\n")
    (p,) = parse_stages([{"stage": "url_filter", "blocked_domains_files": [str(f)]}])
    before = p.model_dump()["blocklists_sha256"]  # the build fingerprints at planning time
    f.write_text("a.example\nb.example\n")
    assert p.model_dump()["blocklists_sha256"] != before


def _url_build(tmp_path, more_stages=()):
    """A 3-document build through url_filter (one URL blocked) and ``more_stages``; returns
    (output dir, input file, blocklist file)."""
    from tests.buildutil import build, config, write_jsonl

    blocklist = tmp_path / "d.txt"
    blocklist.write_text("example.org\n")
    src = write_jsonl(tmp_path / "in.jsonl", [
        {"id": str(i), "text": f"document number {i} with a few words and more", "url": u}
        for i, u in enumerate(["http://example.org/a", "https://ok.net/b", "https://ok.net/c"])])
    out = tmp_path / "out"
    build(config([{"name": "s", "type": "jsonl", "path": str(src)}],
                 [{"stage": "url_filter", "blocked_domains_files": [str(blocklist)]},
                  *more_stages], out))
    return out, src, blocklist


def _rerender(out):
    from typer.testing import CliRunner

    from pipelines.cli.main import app

    (out / "report.html").write_text("stale")
    return CliRunner().invoke(app, ["report", str(out)])


def test_report_rerenders_a_url_filter_build(tmp_path):
    """`datamill report OUT` on a url_filter build (issue 26 item 3): the manifest's config
    holds the derived blocklists_sha256, which re-loading must not reject."""
    out, _, _ = _url_build(tmp_path)
    res = _rerender(out)
    assert res.exit_code == 0, res.output
    assert "url_filter" in (out / "report.html").read_text()
    assert "stats.json alone" not in res.output  # planned from the manifest's config


def test_report_rerenders_a_build_whose_inputs_are_gone(tmp_path):
    """`datamill report OUT` needs only the output folder: with the input file and the
    blocklist moved away (a copied output folder), the report is rendered from stats.json,
    stage sections included, and says so in one note."""
    import shutil

    out, src, blocklist = _url_build(tmp_path, [{"stage": "gopher_quality",
                                                 "annotate_only": True}])
    first = (out / "report.html").read_text()
    shutil.move(str(src), tmp_path / "elsewhere.jsonl")
    shutil.move(str(blocklist), tmp_path / "elsewhere.txt")
    res = _rerender(out)
    assert res.exit_code == 0, res.output
    assert "rendered from stats.json alone" in res.output
    again = (out / "report.html").read_text()
    assert "Stage gopher_quality (gopher_quality)" in again
    assert again.count("<h2") == first.count("<h2")
