"""13-gram decontamination against GSM8K test and problem dedup."""

from __future__ import annotations

import inspect
import json

from synth.decontam import NgramIndex, ngrams, tokens
from synth.dedup import dedup


def test_gsm8k_test_items_are_caught_and_train_items_mostly_not(shared_dir):
    idx = NgramIndex(13)
    n = idx.add_jsonl(shared_dir / "data/gsm8k/test.jsonl", field="question")
    assert n > 1000
    test_rows = [json.loads(ln) for ln in (shared_dir / "data/gsm8k/test.jsonl").open()][:50]
    for i, r in enumerate(test_rows):
        hit = idx.check(r["question"])
        assert hit is not None and hit.benchmark == "test"
        assert hit.item == i or idx.check(r["question"]).overlap >= 1
    # light rewording of a test item keeps long shared spans -> still caught
    q = test_rows[0]["question"]
    reworded = "Here is a puzzle. " + q.replace("How much", "Tell me how much")
    assert idx.check(reworded) is not None
    train = [json.loads(ln)["question"]
             for ln in (shared_dir / "data/gsm8k/train.jsonl").open()][:300]
    flagged = sum(idx.check(t) is not None for t in train)
    assert flagged < 15  # GSM8K train/test share few 13-grams


def test_short_and_unrelated_texts():
    idx = NgramIndex(13)
    idx.add("bench", 0, "What is two plus two?")
    assert idx.check("what is two plus two") is not None  # shorter than n: whole sequence
    assert idx.check("What is three plus two?") is None
    doc = inspect.getdoc(json) or ""
    assert idx.check(doc) is None
    assert tokens("Hello, World!") == ["hello", "world"]
    assert len(ngrams(tokens("a b c d e"), 3)) == 3


def test_min_overlap_threshold():
    idx = NgramIndex(3)
    idx.add("b", 0, "the quick brown fox jumps over the lazy dog")
    assert idx.check("a quick brown fox sleeps", min_overlap=1) is not None
    assert idx.check("a quick brown fox sleeps", min_overlap=2) is None


def test_dedup_exact_and_near_duplicates():
    base = inspect.getdoc(json.dumps)
    items = [
        ("a", base),
        ("b", base.upper()),  # same after normalisation -> exact
        ("c", base.replace("Serialize", "Serialise", 1)),  # one word changed -> near
        ("d", inspect.getdoc(inspect.getsource)),
    ]
    kept, removed = dedup(items, threshold=0.8)
    assert kept == ["a", "d"]
    assert removed == {"b": ("exact_duplicate", "a"), "c": ("near_duplicate", "a")}
    # order independent: same result from shuffled input
    assert dedup(list(reversed(items)), threshold=0.8) == (kept, removed)
