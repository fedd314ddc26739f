"""Code synthesis: picking the right fence, and keeping tasks only on independent evidence."""

from __future__ import annotations

from synth.code import entry_points, extract_code, pass_row
from synth.tasks import CodeSampling, verify_code

ADD = "def add(a, b):\n    return a + b\n"


def _resp(*blocks: str) -> str:
    return "Solution:\n" + "\nExample usage:\n".join(f"```python\n{b}```\n" for b in blocks)


def test_extraction_picks_the_block_defining_the_entry_point():
    # 4 correct samples; 3 of them end with an example-usage fence (the old last-fence rule
    # failed those three)
    samples = [_resp(ADD), _resp(ADD, "print(add(2, 3))\n"), _resp(ADD, "x = add(1, 1)\n"),
               _resp(ADD, "assert add(1, 2) == 3\nprint('ok')\n")]
    for text in samples:
        assert extract_code(text, "add") == ADD
    v = verify_code({"question": "add", "tests": "assert add(2, 3) == 5\n"},
                    [{"text": t} for t in samples], CodeSampling(timeout_s=5),
                    tests_generated=False)
    assert v.keep and v.pass_rate == 1.0 and len(v.kept_solutions) == 4


def test_extraction_combines_helper_definitions_but_not_calls():
    text = _resp("import math\n\ndef _sq(x):\n    return x * x\n",
                 "def hyp(a, b):\n    return math.sqrt(_sq(a) + _sq(b))\n",
                 "print(hyp(3, 4))\n")
    code = extract_code(text, "hyp")
    assert "def _sq" in code and "import math" in code and "print(" not in code
    row, r = pass_row(code, "assert hyp(3, 4) == 5.0\n", timeout_s=5)
    assert row == [True], r.error
    assert extract_code(_resp("print(1)\n"), "add") is None  # no definition: no program


def test_entry_points_from_tests():
    assert entry_points("from math import isclose\ndef helper(x):\n    return x\n"
                        "assert isclose(area(2), 4.0)\nassert helper(perim(1)) == 4\n") == \
        ["area", "perim"]


def test_pass_row_runs_every_assert_in_one_sandbox():
    row, r = pass_row(ADD, "import math\nassert add(1, 1) == 2\nassert add(1, 1) == 3\n"
                           "assert add(2, 2) == 4\n", timeout_s=5)
    assert row == [True, False, True] and r.details["statements"] == 4
    row, _ = pass_row(ADD, "import no_such_module\nassert add(1, 1) == 2\n", timeout_s=5)
    assert row == [False]  # a failed setup statement fails every assert


def _task(ref: str, tests: str) -> dict:
    return {"question": "sq", "reference_solution": ref, "tests": tests}


SQ_OK = "def sq(x):\n    return x * x\n"
SQ_BAD = "def sq(x):\n    return x + x\n"


def test_reference_alone_is_not_evidence():
    tests = "assert sq(3) == 9\nassert sq(4) == 16\n"
    # no sample produced code that agrees: only the model's own reference passes its tests
    v = verify_code(_task(SQ_OK, tests), [{"text": "I cannot"}, {"text": _resp(SQ_BAD)}],
                    CodeSampling(timeout_s=5), tests_generated=True)
    assert not v.keep and v.reason in ("only_reference_passes", "no_agreement")
    assert v.reason == "only_reference_passes"


def test_wrong_reference_with_matching_wrong_tests_keeps_the_correct_samples():
    # reference doubles, and two of the three tests were written to match it (wrong)
    tests = "assert sq(1) == 1\nassert sq(3) == 6\nassert sq(5) == 10\nassert sq(4) == 16\n"
    samples = [{"text": _resp(SQ_OK, "print(sq(3))\n")}, {"text": _resp(SQ_OK)},
               {"text": _resp(SQ_BAD)}]
    # CodeT's selection alone (min_evidence 0: the low-evidence check off)
    v = verify_code(_task(SQ_BAD, tests), samples,
                    CodeSampling(timeout_s=5, min_agreeing=2, min_evidence=0),
                    tests_generated=True)
    # x*x: 2 samples x 2 tests = 4 beats the wrong sample's 1 x 2 (the old code counted the
    # reference too: 2 x 2 for the wrong group, and kept it by the earliest-index tie break)
    assert v.keep and v.kept_solutions == [SQ_OK, SQ_OK]
    assert v.reference_agrees is False and "reference disagrees" in v.keep_reason
    assert len(v.kept_tests) == 2 and len(v.rejected_tests) == 2
    assert v.evidence == "codet_consensus" and "2 of 3 independent samples" in v.keep_reason
    # By default this is low evidence (2/3 samples x 2/4 tests = 0.33 < 0.35): the same
    # matrix shape as CodeT's failure with the roles swapped, so it is dropped.
    v = verify_code(_task(SQ_BAD, tests), samples, CodeSampling(timeout_s=5),
                    tests_generated=True)
    assert not v.keep and v.reason == "low_codet_evidence" and "0.33" in v.keep_reason


def test_single_agreeing_sample_is_not_enough_by_default():
    tests = "assert sq(3) == 9\n"
    v = verify_code(_task(SQ_OK, tests), [{"text": _resp(SQ_OK)}, {"text": _resp(SQ_BAD)}],
                    CodeSampling(timeout_s=5), tests_generated=True)
    assert not v.keep and v.reason == "no_agreement"
    v = verify_code(_task(SQ_OK, tests), [{"text": _resp(SQ_OK)}, {"text": _resp(SQ_OK)}],
                    CodeSampling(timeout_s=5), tests_generated=True)
    assert v.keep and v.reference_agrees is True and v.pass_rate == 1.0
