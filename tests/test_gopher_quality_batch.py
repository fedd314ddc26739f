"""GopherQuality.process_batch (word and line statistics of a whole batch by Arrow and numpy)
gives exactly the Decisions of process (per document, plain Python), and the Arrow kernels it
relies on agree with Python's string methods on every code point."""

from __future__ import annotations

import struct
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import filters.heuristics_gopher as gopher
from filters.heuristics_gopher import GopherQuality, GopherQualityConfig
from filters.text_stats import BULLETS, PUNCT
from tests.buildutil import stdlib_doc_rows

EDGE = ["", " ", "\n\n\t  \n", "...", "!!! ??? ,,, ... “” — –", "• a\n• b\n• c", "•",
        "- x\n- y\n* z\n– w\n— v\n-\n*", "line one...\nline two…\nthree ...\n....\n…",
        "# # # # hash #tag ## the of and", "#" * 300, "… … … … the of", "• " * 50,
        "Éléphant naïve café déjà vu ÜBER straße İstanbul ǅemal ΑΣ Σ σ ς ΌΣΟΣ",
        "e\u0301 a\u0308 n\u0303 \u0301\u0301 the\u0301 of", "123 456 7.89 1,000 42% ١٢٣ ٤٥",
        "😀 🎉🎉 👍🏽 the 😀of 𝔄𝔅 𝐀𝐁 ʰᵃᵇ ǈ ǋ ᾈ Ⅻ ② ㊀", "the " * 20000 + "of",
        "English 中文 日本語 ไทย 한국어 русский العربية the and of и в не",
        "\x1c\x1d\x1e\x1f a\x1cb\x85c\xa0d\u2028e\u3000f\u2009g\u202fthe\u205fof",
        "«the» “of” ‘and’ —that— –with– …have… the.of,and THE. Of!",
        "THE The tHe OF Of \u212a \u0130 \u0131 SS \u1e9e der DIE und",
        "\t\v\f\r the\r\nof\r\n and \x0b that", "x" * 5000, "a\ud800b the of and",
        "für die Straße, und der Mann; le la les et à être",
        # pyarrow's utf8_split_whitespace mis-splits these (not used)
        " \u20030\x80\x80\x80\x80\U0001ab74  00\x89¤  \u2003\u2003 ", " ...     ",
        "\x80\u2003", "0\x89.\xa0\x80  ", "a\x89\n  ¤\x80¤\n "]
LANGS = ["en", "de", "fr", "zh", "ja", "th", "ko", "ru", "zh-Hant", "", None]


def _bits(decision):
    """Drop reason, note and every column with its type, floats by their bits."""
    return (decision.drop, decision.note,
            [(k, type(v).__name__, struct.pack("<d", v) if isinstance(v, float) else v)
             for k, v in decision.columns.items()])


def _records():
    rows = stdlib_doc_rows(("json", "csv", "argparse", "textwrap", "collections", "os",
                            "logging", "pathlib", "string", "re"))
    texts = [r["text"] for r in rows] + EDGE
    return [{"id": str(i), "text": t, "language": LANGS[i % len(LANGS)]}
            for i, t in enumerate(texts)]


def _same(scorer, records, sizes):
    expected = [_bits(scorer.process(r)) for r in records]
    for size in sizes:
        got = []
        for b in range(0, len(records), size):
            got.extend(scorer.process_batch(records[b:b + size]))
        assert [_bits(d) for d in got] == expected


def test_batch_matches_process_real_text_and_edge_cases():
    records = _records()
    assert len(records) > 200
    scorers = [GopherQuality(), GopherQuality(language_column="language"),
               GopherQuality(language_column="language", default_language=None),
               GopherQuality(GopherQualityConfig(min_words=5, max_words=300,
                                                 max_symbol_word_ratio=None),
                             language_column="language",
                             per_language={"de": {"min_stop_words": 4}, "en-GB": {}})]
    for scorer in scorers:
        _same(scorer, records, (1, 7, 64, len(records)))
    decisions = GopherQuality(language_column="language").process_batch(records)
    # the documents exercise many outcomes and several stop-word lists
    assert len({d.drop for d in decisions}) >= 5
    assert {d.columns["gopher_stop_list"] for d in decisions} >= {"gopher-en", "stopwords-iso:de"}


def test_mixed_languages_in_one_batch():
    text = ("Der Mann und die Frau sind in der Stadt, the cat and the dog. "
            "Le chat et le chien sont à la maison. " * 20)
    records = [{"id": str(i), "text": text, "language": lang}
               for i, lang in enumerate(["en", "de", "fr", "de-AT", "EN", "zh", "ja", "xx",
                                         "", None, "pt_BR", "en"])]
    scorer = GopherQuality(language_column="language")
    _same(scorer, records, (len(records),))
    stops = [d.columns["gopher_stop_words"] for d in scorer.process_batch(records)]
    assert stops[0] == 2 and stops[1] > 2 and stops[7] is None


def test_bad_records_raise_like_process():
    scorer = GopherQuality()
    for bad in ({"id": "x"}, {"id": "x", "text": None}, {"id": "x", "text": b"bytes"}):
        with pytest.raises(TypeError) as single:
            scorer.process(bad)
        with pytest.raises(TypeError) as batch:
            scorer.process_batch([{"id": "ok", "text": "fine text"}, bad])
        assert str(batch.value) == str(single.value)
    assert scorer.process_batch([]) == []


def _code_points():
    return [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]


def test_arrow_kernels_agree_with_python_on_every_code_point():
    chars = _code_points()
    inner = pa.array(["a" + c + "b" for c in chars])
    # whitespace: ascii_split_whitespace splits on Python's less _OTHER_WHITESPACE
    python_ws = {c for c in chars if len(("a" + c + "b").split()) == 2}
    ascii_ws = {c for c, parts in zip(chars, pc.ascii_split_whitespace(inner).to_pylist())
                if len(parts) == 2}
    other = {chr(c) for c in gopher._OTHER_WHITESPACE.tolist()}
    assert ascii_ws | other == python_ws and not ascii_ws & other
    for c in python_ws:
        found = gopher._has_other_whitespace(pa.array(["x", "é" + c + "ü"], pa.large_string()))
        assert found == (c in other)
    assert not gopher._has_other_whitespace(pa.array(chars, pa.large_string()).filter(
        pa.array([c not in other for c in chars])))
    # strip: utf8_trim(PUNCT) is str.strip(PUNCT), utf8_trim_whitespace is str.strip()
    ends = [c + "x" + c + c for c in chars]
    assert pc.utf8_trim(pa.array(ends), characters=PUNCT).to_pylist() == \
        [s.strip(PUNCT) for s in ends]
    assert pc.utf8_trim_whitespace(pa.array(ends)).to_pylist() == [s.strip() for s in ends]
    # length
    assert pc.utf8_length(pa.array(chars)).to_pylist() == [1] * len(chars)
    # no punctuation character is a letter (a token has one exactly when it stripped has)
    assert not any(c.isalpha() for c in PUNCT)
    # ASCII: a letter exactly where ascii_lower and ascii_upper differ; ascii_lower is lower
    ascii_chars = pa.array([chr(c) for c in range(128)])
    assert pc.not_equal(pc.ascii_lower(ascii_chars), pc.ascii_upper(ascii_chars)).to_pylist() \
        == [chr(c).isalpha() for c in range(128)]
    assert pc.ascii_lower(ascii_chars).to_pylist() == [chr(c).lower() for c in range(128)]
    # bullets and ellipses (regex of literal code points)
    lines = pa.array([b + "x" for b in BULLETS] + ["x" + b for b in BULLETS] + ["x...", "x…"])
    assert pc.match_substring_regex(lines, gopher._BULLET_RE).to_pylist() == \
        [True] * len(BULLETS) + [False] * len(BULLETS) + [False, False]
    assert pc.match_substring_regex(lines, gopher._ELLIPSIS_RE).to_pylist() == \
        [False] * len(BULLETS) + [b.endswith(("...", "…")) for b in BULLETS] + [True, True]


_PIECES = st.sampled_from([" ", "  ", "\n", "\n\n", "\t", "\r\n", "\x1c", "\x85", "\xa0",
                           "\u2003", "\u3000", ".", "...", "…", "#", "•", "- ", "* ", "— ",
                           "“", "”", "'", "!", ",", "the", "The", "OF", "and", "und", "die",
                           "le", "et", "Σ", "ς", "İ", "\u212a", "é", "e\u0301", "١", "😀",
                           "中文", "ไทย", "word", "x", "7"])
_TEXT = st.lists(st.one_of(_PIECES, st.text(max_size=6)), max_size=40).map("".join)


@given(st.lists(st.tuples(_TEXT, st.sampled_from(LANGS)), min_size=1, max_size=12))
@settings(max_examples=300, deadline=None)
def test_batch_matches_process_random_text(docs):
    records = [{"id": str(i), "text": t, "language": lang} for i, (t, lang) in enumerate(docs)]
    for scorer in (GopherQuality(GopherQualityConfig(min_words=3), language_column="language"),
                   GopherQuality()):
        expected = [_bits(scorer.process(r)) for r in records]
        assert [_bits(d) for d in scorer.process_batch(records)] == expected
