"""Answer extraction and equivalence: delimiters, placeholders, notations a model writes."""

from __future__ import annotations

from itertools import combinations

import pytest

from synth.math import (
    answers_equivalent,
    extract_answer_with_source,
    is_empty_set,
    is_placeholder,
    majority_vote,
    parse_number,
    solution_set,
)
from synth.prompts import get_template
from synth.tasks import MathSampling, is_integer_answer, screen_sample, verify_math

COT_RULES = get_template("math_cot_v1").system  # "... end with 'The answer is N.' ..."


@pytest.mark.parametrize("text,expected", [
    ("So the total is 24. The answer is \\(24\\).", "24"),
    ("The answer is \\[ 24 \\]", "24"),
    ("The answer is $24$.", "24"),
    ("The answer is $$24$$", "24"),
    ("Final answer: **\\(24\\)**", "24"),
    ("\\[\\boxed{24}\\]", "24"),
    ("The answer is \\(\\frac{3}{4}\\).", "\\frac{3}{4}"),
])
def test_latex_delimiters_are_removed_before_any_rule(text, expected):
    ans, _ = extract_answer_with_source(text)
    assert ans == expected
    assert is_integer_answer(ans) is (expected == "24")


def test_inline_delimited_integer_passes_the_integer_rule():
    s = MathSampling(n=4, integer_answers="always")
    v = verify_math([{"text": "3 * 8 = 24. The answer is \\(24\\).", "finish_reason": "stop",
                      "kind": "cot"}] * 4, None, s)
    assert v.keep and v.answer == "24"
    assert answers_equivalent("\\(24\\)", "24") and answers_equivalent("$$24$$", "\\[24\\]")


@pytest.mark.parametrize("ans", ["N", "X", "answer", "Answer", "your answer", "<answer>",
                                 "[answer]", "\\(N\\)", "$N$", "**N**", "...", "number",
                                 # seen in a SmolLM2-135M run (bench_synth_acceptance.py)
                                 "N, which is the number of miles Sophia can drive"])
def test_placeholders_are_not_answers(ans):
    assert is_placeholder(ans, COT_RULES)
    text = f"Tom has 3 apples and buys 4 more. The answer is {ans}."
    assert screen_sample(text, "stop", instructions=COT_RULES) == (None, "placeholder")
    assert not answers_equivalent(ans, ans)  # not even equal to itself


def test_placeholder_letters_from_the_format_instructions():
    rules = "End with 'Final: K' where K is the count."
    assert is_placeholder("K", rules) and not is_placeholder("K")
    assert not is_placeholder("A", COT_RULES)  # "a number": the article, not a lone letter
    assert not is_placeholder("x", COT_RULES) and not is_placeholder("24", COT_RULES)
    # a real answer earlier in the sample is kept; a placeholder after it is ignored
    assert screen_sample("The answer is 7. Template: The answer is N.", "stop",
                         instructions=COT_RULES) == ("7", "answer_is")


def test_vote_never_accepts_a_copied_placeholder():
    samples = [{"text": "I think. The answer is N.", "finish_reason": "stop", "kind": "cot"}] * 4
    v = verify_math(samples, None, MathSampling(n=4))
    assert not v.keep and v.checks == {"placeholder": 4}
    v = verify_math([{"kind": "pot", "answer": "N", "check": "ok"}] * 3, None, MathSampling())
    assert not v.keep


@pytest.mark.parametrize("a,b", [
    ("6.02 \\times 10^{23}", "6.02e23"), ("6.02e23", "602000000000000000000000"),
    ("6.02 \\cdot 10^{23}", "6.02E+23"), ("6.02 × 10^23", "6.02*10^23"), ("10^{5}", "100000"),
    ("1.5 \\times 10^{-3}", "0.0015"),
    ("x = 2 or x = 3", "3, 2"), ("2, 3", "\\{2, 3\\}"), ("x=-1 \\text{ or } x=4", "4, -1"),
    ("2 and 3", "x = 3, x = 2"),
    ("\\emptyset", "no solution"), ("\\varnothing", "\\{\\}"), ("∅", "There is no solution"),
    ("\\text{no solution}", "\\emptyset"),
    ("2.5 million", "2,500,000"), ("2.5 million dollars", "$2,500,000"),
    ("3 thousand", "3000"), ("1.2 billion", "1.2 \\times 10^{9}"),
])
def test_notations_that_are_equal(a, b):
    assert answers_equivalent(a, b) and answers_equivalent(b, a)


FALSE = [
    ("6.02e23", "6.02e22"), ("6.02 \\times 10^{23}", "6.02"), ("10^{5}", "10000"),
    ("x = 2 or x = 3", "3"), ("x = 2 or x = 3", "2"), ("2, 3", "2, 3, 4"), ("2, 3", "23"),
    ("\\emptyset", "0"), ("no solution", "0"), ("\\emptyset", "2, 3"),
    ("no real solution", "\\emptyset"),
    ("2.5 million", "2.5"), ("2.5 million", "2,500"), ("3 thousand", "3 million"),
    ("2.5 millions", "2.5"), ("3 hundred", "3"), ("2 dozen", "2"),
    ("(1, 2)", "(2, 1)"), ("N", "N"), ("answer", "answer"),
    ("\\(24\\)", "\\(25\\)"), ("24", "2.4"), ("1/2", "2"),
]


@pytest.mark.parametrize("a,b", FALSE)
def test_no_false_accepts(a, b):
    assert not answers_equivalent(a, b) and not answers_equivalent(b, a)


def test_equivalence_is_symmetric_over_all_pairs():
    forms = ["24", "\\(24\\)", "$24$", "24.0", "2.4 \\times 10^{1}", "x = 2 or x = 3", "3, 2",
             "\\emptyset", "no solution", "2.5 million", "2500000", "N", "\\frac{1}{2}", "0.5"]
    for a, b in combinations(forms, 2):
        assert answers_equivalent(a, b) == answers_equivalent(b, a), (a, b)


def test_set_and_number_parsing_details():
    assert solution_set("1,000") is None and solution_set("(1, 2)") is None
    assert solution_set("[1, 2]") is None and solution_set("5") is None
    assert solution_set("\\{5\\}") == {5}
    assert is_empty_set("\\{ \\}") and not is_empty_set("none")
    assert parse_number("6.02 \\times 10^{23}") == 602 * 10 ** 21
    assert parse_number("2.5 million") == 2_500_000 and parse_number("2 dozen eggs") == 24


def test_final_answer_restated_after_a_self_correction():
    text = ("5 - 3 = 2, so \\boxed{2}. Wait, actually I misread: she had 6. 6 - 3 = 3. "
            "The answer is 3.")
    assert extract_answer_with_source(text) == ("3", "answer_is")
    assert screen_sample(text, "stop") == ("3", "answer_is")
    # two boxed answers with a correction between them: the corrected one
    assert screen_sample("\\boxed{2}. Actually, I made a mistake: \\boxed{3}", "stop") == \
        ("3", "boxed")
    # no correction cue: two different final answers are a conflict, not a choice
    assert screen_sample("So \\boxed{2}. The answer is 3.", "stop") == \
        (None, "conflicting_answers")
    assert screen_sample("It is \\boxed{7}. Or maybe \\boxed{8}.", "stop") == \
        (None, "conflicting_boxed")
    # prose after "the answer is" is not a competing answer
    assert screen_sample("To get the answer is to add: 3 + 4 = 7. The answer is 7.",
                         "stop") == ("7", "answer_is")


@pytest.mark.parametrize("text,expected", [
    ("Janet sells 16 - 3 - 4 = 9 eggs for $2 each, so she makes 18 dollars.", "18"),
    ("She pays $1,250.50 in total.\nGreat job!", "1,250.50"),
    ("Each gets 3/4 of a pie.", "3/4"),
    ("So each part is \\frac{2}{3} of the whole.", "\\frac{2}{3}"),
    ("So she pays \\(24\\) dollars.", "24"),
    ("The temperature drops to -5 degrees.", "-5"),
    ("We use H2O and x^2 here; the result is 12 units.", "12"),
])
def test_last_number_fallback_on_the_final_sentence(text, expected):
    assert extract_answer_with_source(text, fallback_last_number=True) == (expected,
                                                                           "last_number")


def test_vote_with_new_notations():
    v = majority_vote(["x = 2 or x = 3", "3, 2", "\\{2, 3\\}", "3"], threshold=0.5)
    assert v.accepted and sorted(size for _, size in v.clusters) == [1, 3]
