"""Boundary tests for every heuristic rule (plain Python scorers, no Beam).

Each test builds text that sits exactly on a rule's threshold (kept) and one step past it
(dropped), with all other rules of the suite disabled so the named rule is what decides.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filters.heuristics_c4 import C4Config, C4Filter
from filters.heuristics_fineweb import FineWebConfig, FineWebFilter
from filters.heuristics_gopher import (
    GopherQuality,
    GopherQualityConfig,
    GopherRepetition,
    GopherRepetitionConfig,
)
from filters.text_stats import (
    count_sentences,
    duplicate_fraction,
    duplicate_ngram_char_fraction,
    duplicate_ngram_char_fractions,
    top_ngram_char_fraction,
)


def _only(cfg_cls, **enabled):
    """A config with every rule disabled except the given ones."""
    off = {}
    for f in dataclasses.fields(cfg_cls):
        if f.name in enabled or f.name == "rewrite_lines":
            continue
        if f.type in ("bool",):
            off[f.name] = False
        elif "tuple" in str(f.type):
            off[f.name] = ()
        elif "None" in str(f.type):
            off[f.name] = None
    return cfg_cls(**off, **enabled)


def _w(i: int, length: int = 5) -> str:
    """A distinct alphabetic word of the given length (i < 26**2)."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    stem = letters[i // 26] + letters[i % 26]
    return (stem * length)[:length]


def _words(n: int, length: int = 5) -> str:
    return " ".join(_w(i, length) for i in range(n))


def _decide(scorer, text):
    return scorer.process({"id": "x", "text": text, "source": "t"})


# --------------------------------------------------------------------------- Gopher quality


def test_gopher_defaults_match_paper():
    c = GopherQualityConfig()
    assert (c.min_words, c.max_words) == (50, 100_000)
    assert (c.min_mean_word_length, c.max_mean_word_length) == (3.0, 10.0)
    assert c.max_symbol_word_ratio == 0.1
    assert (c.max_bullet_lines_frac, c.max_ellipsis_lines_frac) == (0.9, 0.3)
    assert (c.min_alpha_words_frac, c.min_stop_words) == (0.8, 2)


def test_gopher_word_count_bounds():
    s = GopherQuality(_only(GopherQualityConfig, min_words=50, max_words=100_000))
    assert _decide(s, _words(49)).drop == "gopher_too_few_words"
    assert _decide(s, _words(50)).kept
    assert _decide(s, "ab " * 100_000).kept
    assert _decide(s, "ab " * 100_001).drop == "gopher_too_many_words"


def test_gopher_mean_word_length_bounds():
    s = GopherQuality(_only(GopherQualityConfig, min_mean_word_length=3.0,
                            max_mean_word_length=10.0))
    assert _decide(s, _words(20, 3)).kept
    assert _decide(s, _words(20, 2)).drop == "gopher_short_mean_word_length"
    assert _decide(s, _words(20, 10)).kept
    assert _decide(s, _words(20, 11)).drop == "gopher_long_mean_word_length"
    # punctuation does not count toward word length: "abc," has length 3
    assert _decide(s, " ".join(["abc,"] * 10)).columns["gopher_mean_word_length"] == 3.0


def test_gopher_symbol_ratio_boundary():
    s = GopherQuality(_only(GopherQualityConfig, max_symbol_word_ratio=0.1))
    ok = _words(90) + " " + " ".join(["#"] * 10)  # 10 / 100 words
    bad = _words(89) + " " + " ".join(["#"] * 11)  # 11 / 100
    assert _decide(s, ok).columns["gopher_symbol_word_ratio"] == pytest.approx(0.1)
    assert _decide(s, ok).kept
    assert _decide(s, bad).drop == "gopher_symbol_word_ratio"
    ell = _words(89) + " " + " ".join(["wait..."] * 11)
    assert _decide(s, ell).drop == "gopher_symbol_word_ratio"


def test_gopher_bullet_lines_boundary():
    s = GopherQuality(_only(GopherQualityConfig, max_bullet_lines_frac=0.9))
    ok = "\n".join(["• item one"] * 9 + ["plain line"])
    bad = "\n".join(["- item one"] * 10)
    assert _decide(s, ok).kept
    assert _decide(s, bad).drop == "gopher_bullet_lines"


def test_gopher_ellipsis_lines_boundary():
    s = GopherQuality(_only(GopherQualityConfig, max_ellipsis_lines_frac=0.3))
    ok = "\n".join(["and then…"] * 3 + ["a full line."] * 7)
    bad = "\n".join(["and then..."] * 4 + ["a full line."] * 6)
    assert _decide(s, ok).columns["gopher_ellipsis_lines_frac"] == pytest.approx(0.3)
    assert _decide(s, ok).kept
    assert _decide(s, bad).drop == "gopher_ellipsis_lines"


def test_gopher_alpha_words_boundary():
    s = GopherQuality(_only(GopherQualityConfig, min_alpha_words_frac=0.8))
    assert _decide(s, _words(8) + " 12 34").kept
    assert _decide(s, _words(7) + " 12 34 56").drop == "gopher_alpha_words"


def test_gopher_stop_words_boundary():
    s = GopherQuality(_only(GopherQualityConfig, min_stop_words=2))
    assert _decide(s, _words(10) + " the with").kept
    assert _decide(s, _words(10) + " The.").drop == "gopher_stop_words"


def test_gopher_disabled_rule_still_scores():
    s = GopherQuality(_only(GopherQualityConfig))
    d = _decide(s, "")
    assert d.kept and d.columns["gopher_n_words"] == 0


# --------------------------------------------------------------------------- Gopher repetition


def test_repetition_defaults_match_table_a1():
    c = GopherRepetitionConfig()
    assert (c.max_dup_line_frac, c.max_dup_para_frac) == (0.3, 0.3)
    assert (c.max_dup_line_char_frac, c.max_dup_para_char_frac) == (0.2, 0.2)
    assert dict(c.max_top_ngram_char_frac) == {2: 0.2, 3: 0.18, 4: 0.16}
    assert dict(c.max_dup_ngram_char_frac) == {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11,
                                               10: 0.1}


def _distinct_lines(n: int) -> list[str]:
    return [f"line {_w(i, 6)} here" for i in range(n)]  # all the same length


def test_dup_line_fraction_boundary():
    s = GopherRepetition(_only(GopherRepetitionConfig, max_dup_line_frac=0.3))
    ok = _distinct_lines(7) + _distinct_lines(3)  # 3 of 10 lines repeat
    bad = _distinct_lines(6) + _distinct_lines(4)
    assert _decide(s, "\n".join(ok)).kept
    assert _decide(s, "\n".join(bad)).drop == "gopher_dup_lines"


def test_dup_paragraph_fraction_boundary():
    s = GopherRepetition(_only(GopherRepetitionConfig, max_dup_para_frac=0.3))
    ok = _distinct_lines(7) + _distinct_lines(3)
    bad = _distinct_lines(6) + _distinct_lines(4)
    assert _decide(s, "\n\n".join(ok)).kept
    assert _decide(s, "\n\n".join(bad)).drop == "gopher_dup_paragraphs"
    # single newlines do not separate paragraphs
    assert _decide(s, "\n".join(bad)).kept


def test_dup_line_and_paragraph_char_fraction_boundary():
    s = GopherRepetition(_only(GopherRepetitionConfig, max_dup_line_char_frac=0.2,
                               max_dup_para_char_frac=0.2))
    ok = _distinct_lines(4) + _distinct_lines(1)  # 1 of 5 equal-length lines: 0.2 of chars
    bad = _distinct_lines(3) + _distinct_lines(1)  # 0.25
    assert _decide(s, "\n".join(ok)).columns["gopher_dup_line_char_frac"] == pytest.approx(0.2)
    assert _decide(s, "\n".join(ok)).kept
    assert _decide(s, "\n".join(bad)).drop == "gopher_dup_line_chars"
    assert _decide(s, "\n\n".join(bad)).drop == "gopher_dup_line_chars"
    s2 = GopherRepetition(_only(GopherRepetitionConfig, max_dup_para_char_frac=0.2))
    assert _decide(s2, "\n\n".join(ok)).kept
    assert _decide(s2, "\n\n".join(bad)).drop == "gopher_dup_paragraph_chars"


def test_top_ngram_boundary():
    # "zz yy" twice (8 chars) among 2-char distinct fillers: 8 / 40 = 0.2 exactly.
    fill = [_w(i, 2) for i in range(16)]
    ok = ["zz", "yy"] + fill[:8] + ["zz", "yy"] + fill[8:16]
    bad = ["zz", "yy"] + fill[:8] + ["zz", "yy"] + fill[8:15]
    assert top_ngram_char_fraction(ok, 2) == pytest.approx(0.2)
    s = GopherRepetition(_only(GopherRepetitionConfig, max_top_ngram_char_frac=((2, 0.2),)))
    assert _decide(s, " ".join(ok)).kept
    assert _decide(s, " ".join(bad)).drop == "gopher_top_2gram"
    # an n-gram that occurs once is not repetition
    assert top_ngram_char_fraction(["ab", "cd"], 2) == 0.0


def test_dup_ngram_boundary():
    phrase = ["pa", "pb", "pc", "pd", "pe"]  # 10 chars; its repeat is the duplicate part
    fill = [_w(i, 2) for i in range(15)]
    ok = phrase + fill + phrase  # 10 / 50 = 0.2
    bad = phrase + fill[:14] + phrase  # 10 / 48
    assert duplicate_ngram_char_fraction(ok, 5) == pytest.approx(0.2)
    s = GopherRepetition(_only(GopherRepetitionConfig, max_dup_ngram_char_frac=((5, 0.2),)))
    assert _decide(s, " ".join(ok)).kept
    assert _decide(s, " ".join(bad)).drop == "gopher_dup_5gram"
    # overlapping repeats count each word once: "a a a a a a" -> 5-grams at 0 and 1 overlap
    assert duplicate_ngram_char_fraction(["aa"] * 6, 5) == pytest.approx(5 / 6)


def test_duplicate_fraction_helper():
    assert duplicate_fraction([]) == (0.0, 0.0)
    assert duplicate_fraction(["a", "bb", "a"]) == (pytest.approx(1 / 3), pytest.approx(1 / 4))


# --------------------------------------------------------------------------- C4


def _sentences(n: int) -> list[str]:
    return [f"This is sentence number {_w(i)} here." for i in range(n)]


def test_c4_defaults_match_paper():
    c = C4Config()
    assert c.min_words_per_line == 3 and c.min_sentences == 5
    assert c.terminal_punctuation and c.drop_javascript_lines and c.drop_lorem_ipsum
    assert c.drop_curly_bracket and c.drop_policy_lines


def test_c4_line_rules_rewrite_text():
    text = "\n".join(_sentences(5) + [
        "A line without an end mark",
        "Two words.",
        "Please enable JavaScript to view this page.",
        "Read our privacy policy for details.",
        'He said "three words here."',
    ])
    d = _decide(C4Filter(), text)
    assert d.kept
    c = d.columns
    assert c["c4_lines"] == 10
    assert c["c4_lines_no_terminal_punct"] == 1
    assert c["c4_lines_too_few_words"] == 1
    assert c["c4_lines_javascript"] == 1
    assert c["c4_lines_policy"] == 1
    assert c["text"] == "\n".join(_sentences(5) + ['He said "three words here."'])


def test_c4_min_words_per_line_boundary():
    s = C4Filter(_only(C4Config, min_words_per_line=3))
    d = _decide(s, "Three words here.\nTwo words.")
    assert d.columns["c4_lines_too_few_words"] == 1
    assert d.columns["text"] == "Three words here."


def test_c4_min_sentences_boundary():
    s = C4Filter(_only(C4Config, min_sentences=5))
    assert _decide(s, " ".join(_sentences(5))).kept
    assert _decide(s, " ".join(_sentences(4))).drop == "c4_too_few_sentences"
    assert count_sentences("One. Two! Three? Four...") == 4


def test_c4_page_rules():
    base = "\n".join(_sentences(6))
    assert _decide(C4Filter(), base + "\nLorem ipsum dolor sit amet.").drop == "c4_lorem_ipsum"
    assert _decide(C4Filter(), base + "\nfunction f() { return 1; }.").drop == "c4_curly_bracket"
    assert _decide(C4Filter(), "no punctuation anywhere\nat all").drop == "c4_no_lines_left"
    off = C4Filter(_only(C4Config))
    assert _decide(off, "Lorem ipsum { }").kept


def test_c4_no_rewrite_keeps_text():
    text = "\n".join(_sentences(5) + ["bad line"])
    d = _decide(C4Filter(C4Config(rewrite_lines=False)), text)
    assert d.kept and "text" not in d.columns and d.columns["c4_lines_no_terminal_punct"] == 1


# --------------------------------------------------------------------------- FineWeb


def test_fineweb_defaults_match_paper():
    c = FineWebConfig()
    assert (c.min_line_punct_frac, c.max_dup_line_char_frac, c.max_short_line_frac) == (
        0.12, 0.1, 0.67)
    assert c.short_line_chars == 30 and c.max_newline_ratio == 0.3


def _long_lines(n: int, end: str = "") -> list[str]:
    return [f"a fairly long line number {_w(i, 8)} of text{end}" for i in range(n)]


def test_fineweb_line_punct_boundary():
    s = FineWebFilter(_only(FineWebConfig, min_line_punct_frac=0.12))
    at = _long_lines(12, ".") + _long_lines(88)  # exactly 0.12 -> removed (paper: <= 0.12)
    above = _long_lines(13, ".") + _long_lines(87)
    # make the lines distinct across the two groups
    at = [f"{i} {ln}" for i, ln in enumerate(at)]
    above = [f"{i} {ln}" for i, ln in enumerate(above)]
    assert _decide(s, "\n".join(at)).drop == "fineweb_line_punct"
    assert _decide(s, "\n".join(above)).kept


def test_fineweb_dup_line_chars_boundary():
    s = FineWebFilter(_only(FineWebConfig, max_dup_line_char_frac=0.1))
    lines = _long_lines(10)  # equal lengths
    at = lines[:9] + lines[:1]  # 1 of 10 equal-length lines repeated: exactly 0.1 -> removed
    below = lines + lines[:1]  # 1 of 11: 0.0909
    assert _decide(s, "\n".join(at)).columns["fineweb_dup_line_char_frac"] == pytest.approx(0.1)
    assert _decide(s, "\n".join(at)).drop == "fineweb_dup_line_chars"
    assert _decide(s, "\n".join(below)).kept


def test_fineweb_short_lines_boundary():
    s = FineWebFilter(_only(FineWebConfig, max_short_line_frac=0.67))
    short = [f"short {i}" for i in range(67)]
    at = short + _long_lines(33)  # 0.67 -> removed (paper: >= 0.67)
    below = short[:66] + _long_lines(34)
    assert _decide(s, "\n".join(at)).drop == "fineweb_short_lines"
    assert _decide(s, "\n".join(below)).kept
    # exactly 30 characters is not short
    assert _decide(s, "x" * 30).columns["fineweb_short_line_frac"] == 0.0
    assert _decide(s, "x" * 29).columns["fineweb_short_line_frac"] == 1.0


def test_fineweb_newline_ratio_boundary():
    s = FineWebFilter(_only(FineWebConfig, max_newline_ratio=0.3))
    ws = _words(10).split()
    ok = " ".join(ws[:3]) + "\n" + " ".join(ws[3:6]) + "\n" + " ".join(ws[6:9]) + "\n" + ws[9]
    bad = "\n".join([" ".join(ws[:2]), " ".join(ws[2:4]), " ".join(ws[4:6]),
                     " ".join(ws[6:8]), " ".join(ws[8:])])
    assert _decide(s, ok).columns["fineweb_newline_ratio"] == pytest.approx(0.3)
    assert _decide(s, ok).kept
    assert _decide(s, bad).drop == "fineweb_newline_ratio"


# --------------------------------------------------------------------------- bad input


BAD_TEXTS = {
    "empty": "",
    "whitespace": " \n\t\n ",
    "binary_garbage": bytes(range(256)).decode("latin-1") * 20,
    "surrogates": "abc \udcff\udcfe def",
    "nul_bytes": "\x00" * 1000,
    "long_line": ("word " * 400_000).strip(),
    "long_token": "x" * 2_000_000,
}


@pytest.mark.parametrize("scorer", [GopherQuality(), GopherRepetition(), C4Filter(),
                                    FineWebFilter()], ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("name", sorted(BAD_TEXTS))
def test_bad_input_is_scored_not_crashed(scorer, name):
    d = _decide(scorer, BAD_TEXTS[name])
    for col in scorer.columns:
        assert col in d.columns
    junk = ("empty", "whitespace", "nul_bytes", "binary_garbage", "long_token")
    if name in junk and not isinstance(scorer, GopherRepetition):
        # every content suite removes junk; the repetition suite only judges repetition
        assert not d.kept
    if name == "binary_garbage":
        assert not d.kept  # 20 copies of the same garbage is also repetition


def test_non_string_text_raises_type_error():
    with pytest.raises(TypeError, match="must be a string"):
        GopherQuality().process({"id": "x", "text": b"bytes", "source": "t"})


def _naive_dup_ngram(tokens, n):
    total = sum(len(t) for t in tokens)
    if total == 0 or len(tokens) < n:
        return 0.0
    seen, covered = set(), [False] * len(tokens)
    for i in range(len(tokens) - n + 1):
        g = tuple(tokens[i : i + n])
        if g in seen:
            for j in range(i, i + n):
                covered[j] = True
        seen.add(g)
    return sum(len(t) for t, c in zip(tokens, covered) if c) / total


@given(st.lists(st.sampled_from(["a", "bb", "ccc", "d", "ee"]), max_size=60))
@settings(max_examples=200, deadline=None)
def test_fast_dup_ngram_matches_naive(tokens):
    ns = [1, 2, 5, 6, 7, 8, 9, 10]
    fast = duplicate_ngram_char_fractions(tokens, ns)
    for n in ns:
        assert fast[n] == pytest.approx(_naive_dup_ngram(tokens, n))


def _naive_top(tokens, n):
    total = sum(len(t) for t in tokens)
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    if not grams or total == 0:
        return 0.0
    counts = {g: grams.count(g) for g in grams}
    top = max(counts.values())
    if top < 2:
        return 0.0
    return min(1.0, top * max(sum(map(len, g)) for g, c in counts.items() if c == top) / total)


@given(st.lists(st.sampled_from(["a", "bb", "ccc", "d", "ee"]), max_size=40),
       st.integers(min_value=1, max_value=5))
@settings(max_examples=200, deadline=None)
def test_fast_top_ngram_matches_naive(tokens, n):
    assert top_ngram_char_fraction(tokens, n) == pytest.approx(_naive_top(tokens, n))
