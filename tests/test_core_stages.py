"""normalize, length_filter and exact_dedup on real text, including edge cases."""

import inspect
import json

import pytest

from filters.normalize import normalize_text
from filters.text_hash import canonical, content_key, representative_key
from pipelines.stages.testing import run_stage


def _docs(n=40):
    """Real English text: docstrings of stdlib modules already imported here."""
    import collections
    import functools
    import json as j
    import textwrap

    out = []
    for mod in (collections, functools, j, textwrap, inspect):
        for name, obj in sorted(vars(mod).items()):
            doc = inspect.getdoc(obj) if callable(obj) else None
            if doc and len(doc.split()) > 15:
                out.append(doc)
    return sorted(set(out))[:n]


def test_normalize_text_rules():
    assert normalize_text("e\u0301te\u0301") == "été"  # NFC composes accents
    assert normalize_text("a\x00b\x1bc\ufeffd\u200be") == "abcde"
    # the defaults keep runs of spaces, tabs and blank lines (code and layout, issue 24);
    # collapsing is the lossy opt-in
    assert normalize_text("a  \t b\u00a0c  \nnext   \n\n\n\nend  ") == "a  \t b c\nnext\n\n\n\nend"
    assert normalize_text("a  \t b\u00a0c  \nnext   \n\n\n\nend  ", collapse_spaces="all",
                          max_blank_lines=1) == "a b c\nnext\n\nend"
    assert normalize_text("line\r\nother\rthird") == "line\nother\nthird"
    assert normalize_text("ﬁ", form="NFKC") == "fi" and normalize_text("ﬁ") == "ﬁ"
    assert normalize_text("a\n\n\n\nb", max_blank_lines=-1) == "a\n\n\n\nb"


def test_normalize_stage_drops_empty_and_rewrites_text():
    recs = [{"id": "1", "text": " \x00\x01 \n ", "source": "s"},
            {"id": "2", "text": "Cafe\u0301   ok", "source": "s"}]
    res = run_stage({"stage": "normalize"}, recs)
    assert [r["text"] for r in res["kept"]] == ["Café   ok"]  # runs of spaces kept by default
    assert [(reason, r["id"]) for reason, r in res["removed"]] == [("empty", "1")]


def test_length_filter_boundaries():
    recs = [{"id": str(n), "text": " ".join(["word"] * n), "source": "s"} for n in (2, 3, 10, 11)]
    res = run_stage({"stage": "length_filter", "min_words": 3, "max_words": 10}, recs)
    assert [r["id"] for r in res["kept"]] == ["10", "3"]
    assert sorted((reason, r["id"]) for reason, r in res["removed"]) == [
        ("too_few_words", "2"), ("too_many_words", "11")]
    assert res["kept"][1]["n_words"] == 3 and res["kept"][1]["n_chars"] == 14


def test_length_filter_annotate_only_counts_would_remove():
    recs = [{"id": str(n), "text": " ".join(["w"] * n), "source": "s"} for n in (1, 2, 5)]
    res = run_stage({"stage": "length_filter", "min_words": 3, "annotate_only": True}, recs)
    assert len(res["kept"]) == 3 and not res["removed"]
    assert res["stats"]["would_remove"] == [{"too_few_words": 2}]


def test_exact_dedup_real_text_with_whitespace_variants():
    docs = _docs()
    assert len(docs) >= 20
    recs = [{"id": f"a{i:03d}", "text": t, "source": "s"} for i, t in enumerate(docs)]
    recs += [{"id": f"b{i:03d}", "text": t.replace(" ", "  ") + "\n", "source": "s"}
             for i, t in enumerate(docs[:7])]
    res = run_stage({"stage": "exact_dedup"}, recs)
    assert [r["id"] for r in res["kept"]] == [f"a{i:03d}" for i in range(len(docs))]
    assert sorted(r["id"] for _, r in res["removed"]) == [f"b{i:03d}" for i in range(7)]
    assert {r["dup_count"] for r in res["kept"][:7]} == {2}
    # without canonicalization the whitespace variants are different texts
    res = run_stage({"stage": "exact_dedup", "canonicalize": "none"}, recs)
    assert len(res["kept"]) == len(recs)


def test_exact_dedup_keep_policies():
    recs = [{"id": "z", "text": "Same text here", "source": "s", "q": 0.9},
            {"id": "a", "text": "same   text here", "source": "s", "q": 0.1},
            {"id": "m", "text": "SAME text here", "source": "s", "q": None}]
    assert [r["id"] for r in run_stage({"stage": "exact_dedup", "canonicalize": "lower"},
                                       recs)["kept"]] == ["a"]
    assert [r["id"] for r in run_stage({"stage": "exact_dedup", "canonicalize": "lower",
                                        "keep": "longest"}, recs)["kept"]] == ["a"]
    assert [r["id"] for r in run_stage({"stage": "exact_dedup", "canonicalize": "lower",
                                        "keep": "highest_score", "score_column": "q"},
                                       recs, columns={"q": "float64"})["kept"]] == ["z"]


def test_exact_dedup_hot_key_and_repeated_ids():
    # one boilerplate text repeated many times, plus the same (id, text) twice
    recs = [{"id": f"h{i:05d}", "text": "Accept cookies | Privacy", "source": "s"}
            for i in range(3000)]
    recs += [{"id": "u1", "text": "unique text", "source": "s"}] * 2
    res = run_stage({"stage": "exact_dedup"}, recs)
    assert [r["id"] for r in res["kept"]] == ["h00000", "u1"]
    assert res["kept"][0]["dup_count"] == 3000
    assert len(res["removed"]) == 3000


def test_exact_dedup_dead_letters_bad_record():
    recs = [{"id": "1", "text": None, "source": "s"}, {"id": "2", "text": "fine", "source": "s"}]
    res = run_stage({"stage": "exact_dedup"}, recs)
    assert [r["id"] for r in res["kept"]] == ["2"]
    assert res["dead"][0]["reason"].startswith("exception: TypeError")
    assert json.loads(res["dead"][0]["raw"])["id"] == "1"


def test_hash_helpers():
    assert canonical("  A\tb \n c ") == "A b c"
    assert content_key("a b") == content_key(" a\n b ") != content_key(" a\n b ", "none")
    assert len(content_key("x")) == 32
    r = {"id": "x", "text": "abc", "q": float("nan")}
    assert representative_key(r, "highest_score", "q")[0] == 1  # NaN ranks last
    with pytest.raises(KeyError):
        representative_key({"text": "t"}, "lowest_id")


def test_normalize_blank_line_limits():
    assert normalize_text("a\n\n\n\n\nb", max_blank_lines=2) == "a\n\n\nb"
    assert normalize_text("a\n\nb", max_blank_lines=0) == "a\nb"
    assert normalize_text("a b c\td") == "a b c\td"  # tabs are kept by default
    assert normalize_text("a b c\td", collapse_spaces="inner") == "a b c d"
