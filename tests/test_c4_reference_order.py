"""C4 page rules in the reference cleaner's order (issue 24, item 2).

The released C4 was made by TFDS ``c4_utils.clean_page``, which checks "lorem ipsum" and ``{``
only on lines that survived the line rules before them (datatrove's ``C4QualityFilter`` does
the same); the paper (Raffel et al. 2020, 2.2) reads as page-wide rules. ``page_rules_on``
picks: ``kept_lines`` (default, the reference) or ``whole_page`` (the paper's literal reading).
"""

from __future__ import annotations

import pytest

from filters.heuristics_c4 import C4Config, C4Filter
from pipelines.core.settings import ConfigError
from pipelines.stages.registry import parse_stages
from pipelines.stages.testing import run_stage

PROSE = "\n".join(f"This is perfectly normal sentence number {w} here." for w in
                  ("one", "two", "three", "four", "five", "six"))
REFERENCE = C4Filter()
LITERAL = C4Filter(C4Config(page_rules_on="whole_page"))


def _drop(scorer: C4Filter, text: str) -> str | None:
    return scorer.process({"id": "x", "text": text}).drop


# a page rule's trigger on a line that a line rule before it removes
ON_DROPPED_LINES = {
    "json_no_end_mark": ('{"id": 7, "name": "widget"}', "c4_curly_bracket"),
    "js_code_no_end_mark": ("function f() { return 1; }", "c4_curly_bracket"),
    "brace_on_short_line": ("{x: 1}.", "c4_curly_bracket"),
    # "javascript" is checked before the curly bracket: the line goes, the page stays
    "brace_on_javascript_line": ("Please enable javascript to see {the} map.",
                                 "c4_curly_bracket"),
    "lorem_no_end_mark": ("Lorem ipsum dolor sit amet", "c4_lorem_ipsum"),
    "lorem_too_short": ("Lorem ipsum.", "c4_lorem_ipsum"),
    "lorem_long_word": ("Lorem ipsum dolor " + "x" * 1001 + " amet.", "c4_lorem_ipsum"),
}


@pytest.mark.parametrize("name", sorted(ON_DROPPED_LINES))
def test_trigger_on_a_removed_line_keeps_the_page_by_default(name):
    line, rule = ON_DROPPED_LINES[name]
    text = PROSE + "\n" + line
    d = REFERENCE.process({"id": "x", "text": text})
    assert d.drop is None
    assert d.columns["text"] == PROSE  # the line itself is removed by the line rules
    assert _drop(LITERAL, text) == rule  # the paper's reading removes the page


# a page rule's trigger on a line the line rules before it keep: removed in both readings
ON_KEPT_LINES = {
    "brace_on_kept_line": ("The set {a, b} has two members here.", "c4_curly_bracket"),
    "brace_on_policy_line": ("Read our privacy policy at {site} today.", "c4_curly_bracket"),
    "lorem_on_kept_line": ("Lorem ipsum dolor sit amet, consectetur.", "c4_lorem_ipsum"),
    # "lorem ipsum" is checked before the javascript and policy line rules
    "lorem_on_javascript_line": ("Lorem ipsum text needs javascript to load.", "c4_lorem_ipsum"),
    "lorem_on_policy_line": ("Lorem ipsum is in our cookie policy too.", "c4_lorem_ipsum"),
}


@pytest.mark.parametrize("name", sorted(ON_KEPT_LINES))
def test_trigger_on_a_kept_line_removes_the_page_in_both(name):
    line, rule = ON_KEPT_LINES[name]
    text = PROSE + "\n" + line
    assert _drop(REFERENCE, text) == rule
    assert _drop(LITERAL, text) == rule


def test_only_the_opening_bracket_counts_on_kept_lines():
    text = PROSE + "\nAnd then the block ends right here }."
    assert _drop(REFERENCE, text) is None  # the reference checks '{' only
    assert _drop(LITERAL, text) == "c4_curly_bracket"  # '{' or '}' anywhere


def test_reason_is_the_rule_on_the_earlier_line():
    brace, lorem = "A kept line with {braces} in it.", "Lorem ipsum dolor sit amet here."
    # the reference cleaner stops at the first page-dropping line
    assert _drop(REFERENCE, f"{PROSE}\n{brace}\n{lorem}") == "c4_curly_bracket"
    assert _drop(REFERENCE, f"{PROSE}\n{lorem}\n{brace}") == "c4_lorem_ipsum"
    # both flags are still recorded
    cols = REFERENCE.process({"id": "x", "text": f"{PROSE}\n{brace}\n{lorem}"}).columns
    assert cols["c4_curly_bracket"] and cols["c4_lorem_ipsum"]


def test_disabled_rules_and_line_rules_off():
    text = PROSE + "\nfunction f() { return 1; }"
    # with the end-mark rule off the line is kept, so its brace counts
    no_punct = C4Filter(C4Config(terminal_punctuation=False))
    assert _drop(no_punct, text) == "c4_curly_bracket"
    assert _drop(C4Filter(C4Config(drop_curly_bracket=False, page_rules_on="whole_page")),
                 text) is None
    js = PROSE + "\nPlease enable javascript to see {the} map."
    assert _drop(C4Filter(C4Config(drop_javascript_lines=False)), js) == "c4_curly_bracket"


def test_bad_words_look_at_kept_lines_by_default(tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("zorblax\n", encoding="utf-8")
    text = PROSE + "\nzorblax"  # a one-word line: removed by the line rules
    kept = C4Filter(C4Config(bad_words=str(words)))
    whole = C4Filter(C4Config(bad_words=str(words), page_rules_on="whole_page"))
    assert _drop(kept, text) is None
    assert _drop(whole, text) == "c4_bad_words"
    on_kept = PROSE + "\nSomeone wrote zorblax in this line."
    assert _drop(kept, on_kept) == _drop(whole, on_kept) == "c4_bad_words"
    # reference order: TFDS filters bad words after clean_page, so too few sentences comes first
    assert _drop(kept, "Someone wrote zorblax in this line.") == "c4_too_few_sentences"
    assert _drop(whole, "Someone wrote zorblax in this line.") == "c4_bad_words"


def test_option_is_validated():
    with pytest.raises(ValueError, match="page_rules_on"):
        C4Filter(C4Config(page_rules_on="paper"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="page_rules_on"):
        parse_stages([{"stage": "c4_filter", "page_rules_on": "paper"}])
    (sp,) = parse_stages([{"stage": "c4_filter"}])
    assert sp.page_rules_on == "kept_lines"


def _records():
    return [
        {"id": "prose", "text": PROSE, "source": "s"},
        {"id": "json_snippet", "text": PROSE + '\n{"id": 7, "name": "widget"}', "source": "s"},
        {"id": "brace_kept", "text": PROSE + "\nThe set {a, b} has two members here.",
         "source": "s"},
        {"id": "lorem_kept", "text": PROSE + "\nLorem ipsum dolor sit amet, consectetur.",
         "source": "s"},
        {"id": "lorem_dropped", "text": PROSE + "\nLorem ipsum dolor sit amet", "source": "s"},
    ]


def test_stage_default_and_literal_option_name_the_rules():
    out = run_stage({"stage": "c4_filter"}, _records())
    assert sorted(r["id"] for r in out["kept"]) == ["json_snippet", "lorem_dropped", "prose"]
    assert {r["id"]: reason for reason, r in out["removed"]} == {
        "brace_kept": "c4_curly_bracket", "lorem_kept": "c4_lorem_ipsum"}
    by_rule = out["stats"]["removed_by_rule"][0]
    assert {k: v["count"] for k, v in by_rule.items()} == {"c4_curly_bracket": 1,
                                                           "c4_lorem_ipsum": 1}
    assert "c4_curly_bracket" in out["stage"].static_stats()["rules"]

    lit = run_stage({"stage": "c4_filter", "page_rules_on": "whole_page"}, _records())
    assert [r["id"] for r in lit["kept"]] == ["prose"]
    by_rule = lit["stats"]["removed_by_rule"][0]
    assert {k: v["count"] for k, v in by_rule.items()} == {"c4_curly_bracket": 2,
                                                           "c4_lorem_ipsum": 2}
    assert lit["entry"]["params"]["page_rules_on"] == "whole_page"


def test_annotate_only_counts_by_rule_name():
    ann = run_stage({"stage": "c4_filter", "annotate_only": True}, _records())
    assert len(ann["kept"]) == len(_records())
    assert ann["stats"]["would_remove"][0] == {"c4_curly_bracket": 1, "c4_lorem_ipsum": 1}
    flags = {r["id"]: (r["c4_curly_bracket"], r["c4_lorem_ipsum"]) for r in ann["kept"]}
    assert flags["json_snippet"] == (False, False)  # on a removed line: not flagged
    assert flags["brace_kept"] == (True, False)
