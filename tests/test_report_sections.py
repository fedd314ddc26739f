"""Report sections of issue 13: near-duplicate pairs side by side (minhash_dedup) and the
normalize section (changes per kind, before/after examples), their stats, determinism, and the
rendered report in headless Chromium."""

from __future__ import annotations

import json
import random

import apache_beam as beam
import pytest

from filters.normalize import Normalizer, normalize_changes, normalize_text, sample_rank
from pipelines.stages.registry import parse_stages
from pipelines.report.diff import diff_segments, side_by_side, visible
from pipelines.stages.base import StageContext
from pipelines.stages.registry import load_stages
from pipelines.stages.dedup.minhash_dedup import PAIR_SAMPLES
from pipelines.stages.dedup.minhash_passes import sample_pairs
from pipelines.stages.text.normalize import NormalizeStatsFn
from pipelines.stages.testing import collect, collected, local_pipeline
from tests.browserutil import page_facts
from tests.buildutil import build, config, stdlib_doc_rows, write_jsonl

# --------------------------------------------------------------------------- text differences


def _doc(name="json.dumps"):
    import importlib
    import inspect

    mod, attr = name.rsplit(".", 1)
    return inspect.getdoc(getattr(importlib.import_module(mod), attr))


def test_word_diff_marks_changed_words_and_keeps_line_breaks():
    a = _doc()
    b = a.replace("If ``indent``", "When ``indent``", 1).replace("separators", "SEPARATORS", 1)
    d = diff_segments(a, b, context=4)
    changed = [s[1:] for s in d["segments"] if s[0] == "~"]
    assert ["If ", "When "] in changed and any("SEPARATORS" in x[1] for x in changed)
    assert not d["identical"] and not d["truncated"]
    # long equal runs are cut to the context around each change
    assert any(s[0] == "…" and s[1] > 20 for s in d["segments"])
    shown = "".join(s[1] for s in d["segments"] if s[0] in "=~")
    assert len(shown) < len(a) / 2 and "\n" in shown
    page = side_by_side(d, "kept", "removed")
    assert "<mark class=d1>If </mark>" in page and "<mark class=d2>When </mark>" in page


def test_word_diff_of_identical_and_empty_texts():
    assert diff_segments("same words here", "same   words\nhere")["identical"]
    d = diff_segments("", "two words")
    assert d["segments"] == [["~", "", "two words"]] and not d["identical"]
    assert diff_segments("", "")["segments"] == []
    with pytest.raises(ValueError, match="unit must be"):
        diff_segments("a", "b", unit="line")


def test_diff_window_is_bounded_and_flagged_on_long_texts():
    words = " ".join(_doc("argparse.ArgumentParser").split())
    a = (words + " ") * 200  # ~70k words
    b = a[:5000] + "INSERTED " + a[5000:]
    d = diff_segments(a, b, max_units=300)
    assert d["truncated"] and any(s[0] == "~" and "INSERTED" in s[2] for s in d["segments"])
    assert len(json.dumps(d)) < 5000
    assert d["segments"][0][0] == "…" and d["segments"][-1][0] == "…"


def test_hostile_text_is_escaped_and_invisible_characters_are_named():
    d = diff_segments("a <script>alert(1)</script>\x00 b\u200b", "a <b>x</b> b",
                      unit="char")
    page = side_by_side(d, "before <i>", "after")
    assert "<script>" not in page and "<b>" not in page and "before &lt;i&gt;" in page
    assert "alert(1)" in page and "&lt;/" in page
    assert "⟨NUL⟩" in page and "⟨ZWSP⟩" in page
    assert visible("\t\r\n\u0301\u2003") == "→⟨CR⟩↵\n⟨U+0301⟩⟨U+2003⟩"


def test_char_diff_shows_a_collapsed_run_as_one_change():
    d = diff_segments("a    b\r\nc", "a b\nc", unit="char")
    assert ["~", "    ", " "] in d["segments"] and ["~", "\r\n", "\n"] in d["segments"]


# --------------------------------------------------------------------------- normalize stats


@pytest.mark.parametrize("text, kw, kind, removed", [
    ("one\r\ntwo", {}, "line_endings", 1),
    ("e\u0301te\u0301", {}, "unicode_nfc", 2),
    ("a\x00b\ufeffc", {}, "control_chars", 2),
    ("a    b\u00a0c", {}, "odd_spaces", 0),
    ("a    b\tc", {"collapse_spaces": "inner"}, "collapse_inner_spaces", 3),
    ("a    b\tc", {"collapse_spaces": "all"}, "collapse_all_spaces", 3),
    ("a \nb", {}, "trailing_spaces", 1),
    ("a\n\n\n\nb", {"max_blank_lines": 1}, "blank_lines", 2),
    ("\n a b\n", {}, "edges", 2),
])
def test_normalize_changes_name_each_kind(text, kw, kind, removed):
    out, changes = normalize_changes(text, **kw)
    assert out == normalize_text(text, **kw)
    assert changes == {kind: removed}


def test_normalize_changes_nfkc_can_add_characters_and_clean_text_has_none():
    out, changes = normalize_changes("ﬁne", form="NFKC")
    assert out == "fine" and changes == {"unicode_nfkc": -1}
    doc = " ".join(_doc("csv.reader").split())  # one line, single spaces: nothing to change
    assert normalize_changes(doc) == (doc, {})


def test_normalize_changes_agree_with_normalize_text_on_random_dirty_text():
    rng = random.Random(3)
    pieces = ["word", " ", "  ", "\t", "\n", "\n\n\n", "\r\n", "\x00", "\u00a0", "e\u0301",
              "\ufeff", "ﬁ", " \n"]
    for _ in range(300):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 30)))
        for form in ("NFC", "NFKC", "none"):
            kw = dict(form=form, max_blank_lines=rng.choice([-1, 0, 1]),
                      collapse_spaces=rng.choice(["none", "inner", "all"]),
                      odd_spaces=rng.random() < 0.8, strip_trailing_spaces=rng.random() < 0.8,
                      strip_control=rng.random() < 0.8)
            out, changes = normalize_changes(text, **kw)
            assert out == normalize_text(text, **kw)
            assert sum(changes.values()) == len(text) - len(out)
            assert (out != text) == bool(changes)


def _dirty_rows():
    rows = stdlib_doc_rows(("json", "csv", "argparse", "logging"))
    for i, r in enumerate(rows):
        if i % 3 == 0:
            r["text"] = r["text"].replace("\n", "\r\n")
        if i % 4 == 0:
            r["text"] = r["text"] + "\x00 trailing\ufeff"
        if i % 5 == 0:
            r["text"] = "e\u0301te\u0301 " + r["text"]
    return rows


def _notes(rows, order_seed=None, parts=1):
    """Feed rows through ``parts`` scorers (workers), each in its own order; combine."""
    rows = list(rows)
    if order_seed is not None:
        random.Random(order_seed).shuffle(rows)
    fn = NormalizeStatsFn(5)
    accs = []
    for k in range(parts):
        scorer = Normalizer(examples=5, window=300)
        acc = fn.create_accumulator()
        mine = rows[k::parts]
        for i in range(0, len(mine), 7):  # batches of 7
            notes = [d.note for d in scorer.process_batch(mine[i:i + 7]) if d.note is not None]
            acc = fn.add_input(acc, notes)
        accs.append(acc)
    return fn.extract_output(fn.merge_accumulators(accs))


def test_normalize_sample_is_the_same_whatever_the_order_and_worker_count():
    rows = _dirty_rows()
    one = _notes(rows)
    assert one == _notes(rows, order_seed=1, parts=2) == _notes(rows, order_seed=2, parts=3)
    changed = [r for r in rows if normalize_changes(r["text"])[1]]
    assert one["docs_changed"] == len(changed)
    want = sorted(changed, key=lambda r: sample_rank(r["id"]))[:5]
    assert [e["id"] for e in one["examples"]] == [r["id"] for r in want]
    assert one["by_kind"]["control_chars"]["docs"] == sum(
        1 for r in changed if "\x00" in r["text"])
    # the examples carry bounded windows, not whole documents
    for ex in one["examples"]:
        assert len("".join(s[1] if s[0] == "=" else "" for s in ex["diff"]["segments"])) < 700


def test_clean_scorer_attaches_no_notes_without_examples():
    d = Normalizer().process({"id": "x", "text": "a\u00a0b"})
    assert d.note is None and d.columns["text"] == "a b"
    d = Normalizer(examples=2).process({"id": "x", "text": "clean text"})
    assert d.note is None


def test_normalize_stage_alone_reports_dropped_and_annotated_records():
    from pipelines.stages.testing import run_stage

    rows = _dirty_rows()[:20] + [{"id": "only-controls", "text": " \x00\ufeff\r\n ",
                                  "source": "t"}]
    out = run_stage({"stage": "normalize"}, rows)
    (st,) = out["stats"]["normalize"]
    assert [r["id"] for _reason, r in out["removed"]] == ["only-controls"]
    assert st["docs_changed"] == sum(1 for r in rows if normalize_changes(r["text"])[1])
    assert st["by_kind"]["control_chars"]["docs"] >= 1
    assert st["chars_removed"] == sum(len(r["text"]) - len(normalize_text(r["text"]))
                                      for r in rows)
    section = out["stage"].report_section({"in": len(rows), "stats": {"normalize": st}})
    assert "Documents changed" in section and section.count("<table class=pair>") == 5
    # annotate_only: nothing dropped, same stats
    ann = run_stage({"stage": "normalize", "annotate_only": True}, rows)
    assert ann["removed"] == [] and ann["stats"]["normalize"] == [st]
    assert ann["stats"]["would_remove"] == [{"empty": 1}]


# --------------------------------------------------------------------------- near-dup sample


def test_pair_sample_is_bounded_and_seeded():
    n = 60_000
    ids = [f"d{i:07d}" for i in range(n)]
    files, pos = [i % 7 for i in range(n)], list(range(n))
    removed = [(i, i - i % 3, 3) for i in range(n) if i % 3]  # index hits are not in it
    s = sample_pairs(ids, files, pos, removed, PAIR_SAMPLES, seed=1)
    assert len(s["pairs"]) == PAIR_SAMPLES and len(s["places"]) <= 2 * PAIR_SAMPLES
    assert s["population"] == 40_000
    assert all(rep == ids[int(rid[1:]) - int(rid[1:]) % 3] for rid, rep, _a, _b in s["pairs"])
    assert all(s["sizes"][here] == 3 for _r, _k, here, _t in s["pairs"])
    again = sample_pairs(ids, files, pos, list(reversed(removed)), PAIR_SAMPLES, 1)
    assert again["pairs"] == s["pairs"]
    assert sample_pairs(ids, files, pos, removed, PAIR_SAMPLES, seed=2)["pairs"] != s["pairs"]
    assert sample_pairs(ids, files, pos, [], PAIR_SAMPLES, 1)["pairs"] == []


def _near_dup_records():
    from pydoc_data.topics import topics

    rng = random.Random(0)
    base = [" ".join(topics[k].split()[:150]) for k in sorted(topics)
            if len(topics[k].split()) >= 150][:40]
    recs = [{"id": f"b{i:03d}", "text": t, "source": "t"} for i, t in enumerate(base)]
    for i in range(12):
        toks = base[i].split()
        for _ in range(1 + i % 2):
            toks[rng.randrange(len(toks))] = "EDITED"
        recs.append({"id": f"c{i:03d}", "text": " ".join(toks), "source": "t"})
    return recs


def _run_minhash(records, workers):
    (sp,) = parse_stages([{"stage": "minhash_dedup"}])
    stage = load_stages()[sp.stage](sp, StageContext(sp.stage, 0, "/tmp/dm", {}))
    p = local_pipeline(num_workers=workers, mode="multi_threading")
    res = stage.expand(p | beam.Create(records))
    key = collect(res.stats["near_dup_pairs"], "pairs")
    rkey = collect(res.removed, "removed")
    p.run().wait_until_finish()
    (st,) = collected(key)
    return stage, st, sorted(r["id"] for _reason, r in collected(rkey))


def test_near_dup_pairs_stat_and_section():
    recs = _near_dup_records()
    stage, st, removed = _run_minhash(recs, 1)
    assert len(removed) >= 10 and all(r.startswith("c") for r in removed)
    assert st["removed_within_run"] == len(removed) and len(st["pairs"]) == PAIR_SAMPLES
    by_id = {r["id"]: r["text"] for r in recs}
    want = sorted(removed, key=lambda i: _key(i, 1))[:PAIR_SAMPLES]
    assert [p["removed_id"] for p in st["pairs"]] == want
    for pr in st["pairs"]:
        assert pr["kept_id"] == "b" + pr["removed_id"][1:]
        assert 0.6 < pr["jaccard"] < 1 and abs(pr["jaccard"] - pr["jaccard_estimated"]) < 0.15
        assert pr["kept_chars"] == len(by_id[pr["kept_id"]])
        edited = [s for s in pr["diff"]["segments"] if s[0] == "~"]
        assert edited and all("EDITED" in s[2] for s in edited)
    page = stage.report_section({"static": stage.static_stats(),
                                 "stats": {"near_dup_pairs": st}})
    assert page.count("<table class=pair>") == PAIR_SAMPLES
    assert "<mark class=d2>EDITED" in page and f"of {len(removed)} removed" in page
    _, two, removed2 = _run_minhash(list(reversed(recs)), 2)
    assert two == st and removed2 == removed


def _key(rid, seed):
    from pipelines.stages.score_stats import sample_key

    return sample_key(rid, seed)


# --------------------------------------------------------------------------- build + browser


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sections")
    rows = _dirty_rows()
    recs = _near_dup_records()
    write_jsonl(tmp / "docs.jsonl", rows + recs)
    cfg = config([{"name": "docs", "type": "jsonl", "path": str(tmp / "docs.jsonl"),
                   "id_field": "id"}],
                 [{"stage": "normalize"}, {"stage": "length_filter", "min_words": 3},
                  {"stage": "minhash_dedup"}], tmp / "out")
    res = build(cfg)
    return tmp, res


def test_build_stats_and_report_have_both_sections(built):
    tmp, res = built
    stages = res.stats["stages"]
    norm = stages["normalize"]["stats"]["normalize"]
    assert norm["docs_changed"] >= len(_dirty_rows()) // 3
    assert {"line_endings", "control_chars", "unicode_nfc"} <= set(norm["by_kind"])
    assert len(norm["examples"]) == 5
    pairs = stages["minhash_dedup"]["stats"]["near_dup_pairs"]
    assert len(pairs["pairs"]) == PAIR_SAMPLES
    page = (tmp / "out" / "report.html").read_text()
    assert "Near-duplicate pairs, side by side" in page and "Before / after" in page
    assert 'href="#stage-normalize--normalize"' in page
    assert page.count("<table class=pair>") == PAIR_SAMPLES + 5


def test_report_sections_in_headless_chromium(built, tmp_path):
    tmp, _ = built
    facts = page_facts(tmp / "out" / "report.html", tmp_path, script=(
        "const pairs=[...d.querySelectorAll('table.pair')];"
        "const cells=pairs.map(t=>[...t.querySelectorAll('td')].map(c=>c.getBoundingClientRect()));"
        "facts={pairs:pairs.length,"
        "marks:d.querySelectorAll('table.pair mark').length,"
        "sideBySide:cells.filter(c=>c.length==2&&c[1].left>=c[0].right-1&&"
        "Math.abs(c[0].top-c[1].top)<2).length,"
        "preWrap:pairs.length?getComputedStyle(pairs[0].querySelector('td')).whiteSpace:'',"
        "broken:[...d.images].filter(i=>!i.complete||i.naturalWidth===0).length,"
        "toc:d.querySelectorAll('nav.toc a').length,h2:d.querySelectorAll('h2[id]').length}"))
    assert facts["pairs"] == PAIR_SAMPLES + 5 and facts["marks"] >= facts["pairs"]
    assert facts["sideBySide"] == facts["pairs"]  # two columns next to each other
    assert facts["preWrap"] == "pre-wrap"  # line breaks of the texts are kept
    assert facts["broken"] == 0 and facts["toc"] == facts["h2"]


# --------------------------------------------------------------------------- layout (issue 26)

# ids as object stores and crawls name documents: long, and with no place to break a line
_LONG_ID = ("s3://commoncrawl/crawl_data/CC_MAIN_2024_10/segments/1707947473347.0/warc/"
            "CC_MAIN_20240220211055_20240221001055_{:05d}.warc.gz?record=urn:uuid:{:032x}")
GROUP_SIZES = (2, 3, 5, 9, 17, 33)  # one bin each: 2, 3-4, 5-8, 9-16, 17-32, 33-64


@pytest.fixture(scope="module")
def layout_built(tmp_path_factory):
    """A build whose report has every layout hazard of issue 26 item 11: exact-duplicate groups
    of sizes 2..33 (more bins than nine, so text order differs from numeric order), more groups
    than the largest ten (a random-groups table), long unbreakable ids and tokens in both dedup
    sections, a language with nothing kept and records removed before language ID."""
    tmp = tmp_path_factory.mktemp("layout")
    docs = sorted({r["text"] for r in stdlib_doc_rows(
        ("json", "csv", "argparse", "logging", "textwrap", "inspect"), min_words=30)})[:18]
    rows = []
    for g, text in enumerate(docs):
        if g == 0:  # an unbreakable token in a kept text shown in the groups tables
            text = "sha256=" + "0123456789abcdef" * 12 + "\n" + text
        for c in range(GROUP_SIZES[g % len(GROUP_SIZES)]):
            rows.append({"id": _LONG_ID.format(g, c), "text": text, "source": "crawl"})
    rows += [{"id": _LONG_ID.format(900, i), "source": "crawl",
              "text": "Dies ist ein deutscher Satz über die Datenverarbeitung und die Qualität "
                      f"von Texten, Nummer {i}, mit genug Wörtern für die Erkennung."}
             for i in range(6)]
    rows += [{"id": _LONG_ID.format(950, i), "text": f"too short {i}", "source": "crawl"}
             for i in range(4)]
    rows += [{**r, "id": _LONG_ID.format(800, 0) + r["id"], "source": "crawl"}
             for r in _near_dup_records()]
    write_jsonl(tmp / "docs.jsonl", rows)
    cfg = config([{"name": "crawl", "type": "jsonl", "path": str(tmp / "docs.jsonl"),
                   "id_field": "id"}],
                 [{"stage": "length_filter", "min_words": 8}, {"stage": "exact_dedup"},
                  {"stage": "language_id", "allowed_languages": ["en"]},
                  {"stage": "minhash_dedup"}], tmp / "out")
    return tmp, build(cfg)


def _tables(facts: dict, heading: str) -> list[dict]:
    return [t for t in facts["tables"] if t["heading"].startswith(heading)]


def _check_layout(facts: dict) -> None:
    bins = _tables(facts, "Group sizes")
    assert len(bins) == 1 and bins[0]["first"] == ["2", "3-4", "5-8", "9-16", "17-32", "33-64"]
    # nothing runs off the page: every table fits the column or scrolls inside a box that does
    assert facts["pageOverflow"] <= 0
    assert all(t["boxFits"] for t in facts["tables"]), \
        [t["heading"] for t in facts["tables"] if not t["boxFits"]]
    groups = _tables(facts, "Largest groups") + _tables(facts, "Groups drawn at random")
    assert len(groups) == 2
    for t in groups:  # the groups tables fit the page as they are (long ids wrap)
        assert t["fits"] and not t["spilling"], (t["heading"], t["width"], t["spilling"])
    pairs = [t for t in facts["tables"] if t["cls"] == "pair"]
    assert len(pairs) == PAIR_SAMPLES
    for t in pairs:  # long ids in the headers stay in their own column
        assert t["fits"] and not t["spilling"], t["spilling"]
    (funnel,) = _tables(facts, "Funnel")
    assert funnel["header"][:2] == ["stage", "type"] and "resumed" not in funnel["header"]
    (langs,) = _tables(facts, "Per language")
    assert "de" in langs["first"] and langs["first"][-1] == "- (removed before language ID)"


def test_report_layout_in_headless_chromium(layout_built, tmp_path):
    tmp, res = layout_built
    st = res.stats["stages"]
    assert len(st["exact_dedup"]["stats"]["groups"]["random"]) == 5
    de = res.stats["breakdown"]["by_language"]["de"]
    assert de["kept"] == 0 and de["removed"] == 6
    page = tmp / "out" / "report.html"
    _check_layout(page_facts(page, tmp_path))
    # the same page re-rendered from stats.json (its keys sorted) by `datamill report`
    from pipelines.cli.main import report

    page.unlink()
    report(str(tmp / "out"))
    _check_layout(page_facts(page, tmp_path / "again"))


def test_report_resumed_column_only_when_a_stage_was_resumed(layout_built):
    import copy

    from pipelines.report.render import render

    _, res = layout_built
    fresh = render(res.stats, "out")
    assert "<th>resumed</th>" not in fresh
    stats = copy.deepcopy(res.stats)
    stats["stages"]["exact_dedup"]["resumed"] = True
    page = render(stats, "out")
    assert "<th>resumed</th>" in page and page.count("<td>yes</td>") == 1
