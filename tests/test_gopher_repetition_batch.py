"""GopherRepetition.process_batch (n-gram statistics of a whole batch at once) gives exactly
the Decisions of process (per document, NgramIndex) and of a brute-force reference."""

from __future__ import annotations

import struct
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from filters.heuristics_gopher import GopherRepetition, GopherRepetitionConfig
from filters.text_stats import NgramIndex, ngram_fractions_batch
from tests.buildutil import stdlib_doc_rows

EDGE = ["", " ", "\n\n\t  \n", "a", "a b", "a b c", "A a A", "word " * 50, "the " * 300,
        "line one\nline one\nline two\n", "para a\n\npara a\n\npara b", "x\n" * 100,
        " ".join(f"w{i % 7}" for i in range(3000)), " ".join(f"t{i}" for i in range(3000)),
        "ΑΣ ΑΣ Σ σ ς İ İ ß ẞ ΑΣ", "a b a b a b a b a b a b a b", "x y z x y z x y z x y z",
        "日本語の文章です。日本語の文章です。", "这是一个测试。这是一个测试。", "ภาษาไทย ภาษาไทย"]
LANGS = ["en", "zh", "ja", "de", "th", "fr", "", None]


def _bits(decision):
    """Drop reason and every column, floats by their bits."""
    return (decision.drop, [(k, type(v).__name__,
                             struct.pack("<d", v) if isinstance(v, float) else v)
                            for k, v in decision.columns.items()])


def _records():
    rows = stdlib_doc_rows(("json", "csv", "argparse", "textwrap", "collections", "os",
                            "logging", "pathlib"))
    texts = [r["text"] for r in rows] + EDGE
    return [{"id": str(i), "text": t, "language": LANGS[i % len(LANGS)]}
            for i, t in enumerate(texts)]


def test_batch_matches_process_mixed_languages():
    records = _records()
    assert len(records) > 100
    configs = [GopherRepetitionConfig(),
               GopherRepetitionConfig(max_top_ngram_char_frac=((1, 0.5), (2, 0.2), (0, 0.1)),
                                      max_dup_ngram_char_frac=((1, 0.3), (3, 0.2), (12, 0.1)),
                                      char_token_ngrams="apply")]
    for config in configs:
        for column in ("language", None):
            scorer = GopherRepetition(config, language_column=column)
            expected = [_bits(scorer.process(r)) for r in records]
            for size in (1, 7, len(records)):
                got = []
                for b in range(0, len(records), size):
                    got.extend(scorer.process_batch(records[b:b + size]))
                assert [_bits(d) for d in got] == expected
    # the edge cases and the stdlib text exercise every outcome
    drops = {d.drop for d in GopherRepetition(language_column="language").process_batch(records)}
    assert None in drops and len(drops) > 2


def _reference(tokens, top_ns, dup_ns):
    index = NgramIndex(tokens)
    return ([index.top_fraction(n) for n in top_ns],
            [index.dup_fractions(dup_ns)[n] for n in dup_ns])


def _naive_dup(tokens, n):
    total = sum(map(len, tokens))
    covered = [False] * len(tokens)
    seen = set()
    for i in range(len(tokens) - n + 1):
        g = tuple(tokens[i:i + n])
        if g in seen:
            covered[i:i + n] = [True] * n
        seen.add(g)
    return sum(len(t) for t, c in zip(tokens, covered) if c) / total if total else 0.0


@given(st.lists(st.lists(st.sampled_from(["a", "bb", "ccc", "d", "ee", "A"]), max_size=40),
                max_size=8))
@settings(max_examples=300, deadline=None)
def test_batch_fractions_match_per_document(docs):
    top_ns, dup_ns = [1, 2, 3, 4], [1, 2, 5, 6, 7, 8, 9, 10]
    top, dup = ngram_fractions_batch(docs, top_ns, dup_ns)
    for d, tokens in enumerate(docs):
        ref_top, ref_dup = _reference(tokens, top_ns, dup_ns)
        assert [top[n][d] for n in top_ns] == ref_top
        assert [dup[n][d] for n in dup_ns] == ref_dup
        for n in dup_ns:  # an independent brute force (exact: same integer ratio)
            assert dup[n][d] == _naive_dup(tokens, n)


def test_batch_fractions_known_values():
    docs = [["a", "b"] * 3, [], ["x"], ["a", "b", "c", "a", "b", "c"]]
    top, dup = ngram_fractions_batch(docs, [2], [3])
    assert top[2] == [1.0, 0.0, 0.0, 2 * 2 / 6]
    # doc 0: "a b a" repeats at 2 (covers tokens 2..4), "b a b" at 3 (3..5): 4 of 6 chars
    assert dup[3] == [4 / 6, 0.0, 0.0, 3 / 6]


def test_lower_then_split_is_split_then_lower():
    """process_batch lowers a whitespace-tokenised text before splitting it."""
    spaces = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    for c in spaces:
        assert c.lower() == c
        assert ("aΣ" + c + "b").lower()[1] == "ς"  # final sigma: the space ends the word
        assert ("a" + c + "Σ").lower()[-1] == "σ"
    lowered_space = [c for c in map(chr, range(sys.maxunicode + 1))
                     if not c.isspace() and any(x.isspace() for x in c.lower())]
    assert lowered_space == []
    text = "ΑΣ ΑΣ\u3000Σ\u2028σ ς İ\x85İ ß ẞ"
    assert text.lower().split() == [w.lower() for w in text.split()]
