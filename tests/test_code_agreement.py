"""Code answers beyond the given tests: behaviour agreement on derived inputs, inline tests."""

from __future__ import annotations

import json

import pytest
import yaml

from synth.code import (
    behaviour_vote,
    derive_inputs,
    extract_code,
    run_tests,
    split_asserts,
    split_solution_and_tests,
)
from synth.tasks import CodeSampling, task_entry_point, task_from_generation, verify_code
from tests.test_synth import _Server
from tests.buildutil import read_jsonl_gz

FB_TESTS = 'assert fizzbuzz(3) == "Fizz"\nassert fizzbuzz(5) == "Buzz"\nassert fizzbuzz(7) == "7"\n'
FB_GOOD = ("def fizzbuzz(n):\n    if n % 15 == 0:\n        return 'FizzBuzz'\n"
           "    if n % 3 == 0:\n        return 'Fizz'\n    if n % 5 == 0:\n        return 'Buzz'\n"
           "    return str(n)\n")
FB_GOOD2 = ("def fizzbuzz(n):\n    out = ''\n    if n % 3 == 0:\n        out += 'Fizz'\n"
            "    if n % 5 == 0:\n        out += 'Buzz'\n    return out or str(n)\n")
# passes the given tests, never says FizzBuzz
FB_WRONG = ("def fizzbuzz(n):\n    if n % 3 == 0:\n        return 'Fizz'\n"
            "    if n % 5 == 0:\n        return 'Buzz'\n    return str(n)\n")


def test_derived_inputs_cover_what_the_tests_do_not():
    ins = derive_inputs(FB_TESTS, "fizzbuzz")
    assert "((15,), {})" in ins and "((0,), {})" in ins  # 3*5 and the zero boundary
    assert "((3,), {})" not in ins  # the given calls are not repeated
    assert derive_inputs(FB_TESTS, "fizzbuzz") == ins  # deterministic
    s = derive_inputs("assert rev('abc') == 'cba'\nassert rev([1, 2]) == [2, 1]\n", "rev")
    assert "(('',), {})" in s and "(([],), {})" in s and "(([1, 2],), {})" not in s
    assert derive_inputs("assert f(x) == 1\n", "f") == []  # no literal arguments


# correct, but refuses negative numbers (outside fizzbuzz's spec): differs from FB_GOOD only
# on the derived negative inputs
FB_STRICT = ("def fizzbuzz(n):\n    if n < 0:\n        raise ValueError('negative')\n"
             "    if n % 15 == 0:\n        return 'FizzBuzz'\n    if n % 3 == 0:\n"
             "        return 'Fizz'\n    if n % 5 == 0:\n        return 'Buzz'\n"
             "    return str(n)\n")


def test_behaviour_vote_prefers_agreement_per_input_over_identical_vectors():
    """Three samples, no two identical: the largest-identical-group rule can only fall back
    to sample order (the wrong one first); agreement per input (MBR-exec) picks a correct
    one, because the two correct samples differ only on inputs outside the spec."""
    order, beh, note = behaviour_vote([FB_WRONG, FB_GOOD, FB_STRICT], "fizzbuzz", FB_TESTS,
                                      timeout_s=10)
    assert [len(g) for g in beh.groups] == [1, 1, 1]
    assert order == [1] and "DISAGREE" in note and "1 of 3" in note


def test_behaviour_vote_keeps_the_largest_agreeing_group():
    order, beh, note = behaviour_vote([FB_WRONG, FB_GOOD, FB_GOOD2], "fizzbuzz", FB_TESTS,
                                      timeout_s=10)
    assert order == [1, 2] and not beh.agree and "DISAGREE" in note and "2 of 3" in note
    i15 = beh.inputs.index("((15,), {})")
    assert beh.outputs[1][i15] == "= 'FizzBuzz'" and beh.outputs[0][i15] == "= 'Fizz'"
    order, beh, note = behaviour_vote([FB_GOOD, FB_GOOD2], "fizzbuzz", FB_TESTS, timeout_s=10)
    assert order == [0, 1] and beh.agree and note.startswith("all 2 passing samples agree")


def _fb_reply(user, i, body):
    return "```python\n" + (FB_WRONG if i == 0 else FB_GOOD if i == 1 else FB_GOOD2) + "```"


def test_job_chooses_the_chat_answer_by_evidence_and_marks_disagreement(tmp_path):
    from pipelines.jobs.synth import load_synth_config, run_synth

    srv = _Server(reply=_fb_reply)
    try:
        cfg = {"name": "fb", "task": "code",
               "backend": {"type": "openai", "model": "test",
                           "options": {"base_url": srv.url, "split_n": False}},
               "seeds": {"inline": [{"id": "fb", "question": "Write `fizzbuzz(n)`.",
                                     "tests": FB_TESTS}]},
               "code": {"n": 3, "timeout_s": 10}, "dedup": {"enabled": False},
               "output_dir": str(tmp_path / "out")}
        path = tmp_path / "fb.yaml"
        path.write_text(yaml.safe_dump(cfg))
        stats = run_synth(load_synth_config(path))
    finally:
        srv.close()
    rec = read_jsonl_gz(tmp_path / "out/jsonl")[0]
    # the first passing sample (wrong on 15) is not the answer any more
    assert "FizzBuzz" in rec["messages"][1]["content"] or "'Buzz'" in rec["messages"][1]["content"]
    assert rec["solutions"] == [FB_GOOD, FB_GOOD2]
    assert rec["evidence"] == "given_tests_disputed" and "DISAGREE" in rec["keep_reason"]
    assert stats["kept_because"] == {"given_tests_disputed": 1}
    assert stats["preference_pairs"] == 0  # an ambiguous task makes no DPO pairs


def test_extract_code_drops_the_samples_own_tests_and_main_block():
    text = "```python\n" + FB_GOOD + "\nassert fizzbuzz(3) == 'Fizz'\n\nif __name__ == '__main__':\n    print(fizzbuzz(int(input())))\n```"
    assert extract_code(text, "fizzbuzz") == FB_GOOD


IS_PRIME = ("def is_prime(n):\n    if n < 2:\n        return False\n"
            "    for i in range(2, int(n ** 0.5) + 1):\n        if n % i == 0:\n"
            "            return False\n    return True\n")
PRIME_ASSERTS = ["assert is_prime(2)", "assert is_prime(3)", "assert not is_prime(4)",
                 "assert is_prime(5)", "assert not is_prime(1)", "assert not is_prime(0)",
                 "assert is_prime(13)", "assert not is_prime(15)", "assert is_prime(97)"]


def test_asserts_in_the_same_block_as_the_function():
    text = "Here it is:\n```python\n" + IS_PRIME + "\n" + "\n".join(PRIME_ASSERTS) + "\n```\n"
    task = task_from_generation(text, "primes")
    assert task is not None and task["reference_solution"] == IS_PRIME
    assert task["tests"].splitlines() == PRIME_ASSERTS
    v = verify_code({"question": "q", "tests": task["tests"]}, [{"code": IS_PRIME}],
                    CodeSampling(timeout_s=10), tests_generated=False)
    assert v.keep


REV = "def reverse_words(s):\n    return ' '.join(s.split()[::-1])\n"


def test_asserts_inside_a_test_function_and_a_main_block():
    body = (REV + "\n\ndef test_reverse_words():\n    assert reverse_words('a b') == 'b a'\n"
            "    assert reverse_words('x') == 'x'\n    assert reverse_words('') == ''\n"
            "    assert reverse_words('a  b c') == 'c b a'\n\n"
            "if __name__ == '__main__':\n    test_reverse_words()\n    print('all passed')\n")
    task = task_from_generation("```python\n" + body + "```", "reverse words")
    assert task is not None and task["reference_solution"] == REV
    assert len(split_asserts(task["tests"])) == 4
    main_only = REV + "\nif __name__ == \"__main__\":\n    assert reverse_words('a b') == 'b a'\n    print(reverse_words('a b'))\n"
    sol, tests = split_solution_and_tests(main_only)
    assert sol == REV and tests == "assert reverse_words('a b') == 'b a'\n"
    # a test function that is not plain asserts is kept whole and called
    odd = REV + "\ndef test_loop():\n    for w in ['a', 'b']:\n        assert reverse_words(w) == w\n"
    sol, tests = split_solution_and_tests(odd)
    assert sol == REV and tests.rstrip().endswith("test_loop()")
    # a separate tests block that wraps its asserts in a test function
    two = ("```python\n" + REV + "```\n```python\ndef test_it():\n"
           "    assert reverse_words('a b') == 'b a'\n\ntest_it()\n```")
    assert task_from_generation(two, "t")["tests"] == "assert reverse_words('a b') == 'b a'\n"
    assert split_solution_and_tests(REV) is None  # no tests at all: still unusable
    assert task_from_generation("```python\n" + REV + "```", "t") is None


DOUBLE = "def double(x):\n    return 2 * x\n"
WRONG_DOUBLE = "def double(x):\n    return x * x\n"  # right for 0 and 2 only
SHAPES = {
    "unittest_class": DOUBLE + "\nimport unittest\n\nclass TestDouble(unittest.TestCase):\n"
    "    def test_small(self):\n        self.assertEqual(double(3), 6)\n"
    "    def test_zero(self):\n        self.assertEqual(double(0), 0)\n\n"
    "if __name__ == '__main__':\n    unittest.main()\n",
    "loop_at_top_level": DOUBLE + "\nfor a, b in [(1, 2), (3, 6), (0, 0)]:\n"
    "    assert double(a) == b\n",
    "loop_in_main": DOUBLE + "\nif __name__ == '__main__':\n    for a, b in [(1, 2), (3, 6)]:\n"
    "        assert double(a) == b\n    print('ok')\n",
    "check_helper_called_in_main": DOUBLE + "\ndef check():\n    assert double(3) == 6\n"
    "    assert double(-1) == -2\n\nif __name__ == '__main__':\n    check()\n",
    "check_helper_called_at_top": DOUBLE + "\ndef check_double():\n    for x in (1, 3):\n"
    "        assert double(x) == x + x\n\ncheck_double()\n",
}


@pytest.mark.parametrize("fence", ["python", "python3", "Python", "py", ""])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_generated_task_shapes_are_parsed_and_their_tests_run(shape, fence):
    """Issue 27 item 2: tests in the function's own block as a unittest class, a loop of
    asserts (top level or ``__main__``), or a helper with asserts called bare; any usual fence
    tag. The task keeps the reference alone, and its tests pass the reference and fail a
    wrong solution when run as the job runs them (one case per assert or loop)."""
    task = task_from_generation(f"Here it is:\n```{fence}\n" + SHAPES[shape] + "```", "double")
    assert task is not None, shape
    assert task["reference_solution"] == DOUBLE
    assert task["question"].startswith("Write a Python function `double(x)`")
    cases = split_asserts(task["tests"])
    assert cases
    assert all(run_tests(DOUBLE, c).passed for c in cases), (shape, cases)
    assert not all(run_tests(WRONG_DOUBLE, c).passed for c in cases), shape


def test_signature_with_parenthesised_defaults_and_several_lines():
    body = ("def clamp(\n    x: int,\n    bounds: tuple = (0, 10),\n) -> int:\n"
            "    return min(max(x, bounds[0]), bounds[1])\n\nassert clamp(11) == 10\n")
    task = task_from_generation("```python\n" + body + "```", "clamp")
    assert task["question"].startswith(
        "Write a Python function `clamp(x: int, bounds: tuple=(0, 10)) -> int`")
    assert task_entry_point(task) == "clamp"


# CodeT's known failure (Chen et al. 2022): the model writes mostly wrong tests together with a
# wrong reference, and two wrong samples agree with them. 4 samples x 5 generated tests: the
# wrong pair passes the 3 wrong tests (CodeT score 6), the one right sample the 2 right ones (2).
DBL_WRONG = "def double(x):\n    return 2 * x + 1\n"
DBL_WRONG2 = "def double(x):\n    return x + x + 1\n"
DBL_RIGHT = "def double(x):\n    return 2 * x\n"
DBL_TESTS = ("assert double(1) == 3\nassert double(2) == 5\nassert double(0) == 1\n"
             "assert double(3) == 6\nassert double(5) == 10\n")
DBL_TASK = {"question": "Write `double(x)`.", "tests": DBL_TESTS,
            "reference_solution": DBL_WRONG}


def _fence(code):
    return {"text": "```python\n" + code + "```"}


def test_codet_low_evidence_agreement_is_dropped_or_flagged():
    from synth.tasks import codet_evidence

    samples = [_fence(DBL_WRONG), _fence(DBL_WRONG2), _fence(DBL_RIGHT),
               {"text": "I cannot do that."}]
    v = verify_code(DBL_TASK, samples, CodeSampling(n=4, timeout_s=10), tests_generated=True)
    assert not v.keep and v.reason == "low_codet_evidence"
    assert v.codet["agreeing"] == 2 and v.codet["tests_passed"] == 3 and v.codet["tests"] == 5
    assert v.codet["evidence"] == pytest.approx(codet_evidence(2, 4, 3, 5)) == 0.3
    assert v.codet["runner_up_score"] == 2
    assert v.keep_reason.startswith("LOW EVIDENCE") and "2/4 x 3/5 = 0.30" in v.keep_reason
    # flag instead of drop: kept, but said so in keep_reason and the evidence key
    v = verify_code(DBL_TASK, samples, CodeSampling(n=4, timeout_s=10, on_low_evidence="flag"),
                    tests_generated=True)
    assert v.keep and v.evidence == "codet_consensus_low_evidence"
    assert v.keep_reason.startswith("LOW EVIDENCE") and v.chosen == [0, 1]
    # 0: the check is off and CodeT keeps the wrong pair with a plain keep_reason (the failure)
    v = verify_code(DBL_TASK, samples, CodeSampling(n=4, timeout_s=10, min_evidence=0),
                    tests_generated=True)
    assert v.keep and v.evidence == "codet_consensus" and "LOW" not in v.keep_reason
    # broad agreement on right tests is kept: 3 of 4 samples x 2 of 2 tests = 0.75
    right = {**DBL_TASK, "tests": "assert double(3) == 6\nassert double(5) == 10\n"}
    v = verify_code(right, [_fence(DBL_RIGHT)] * 3 + [_fence(DBL_WRONG)],
                    CodeSampling(n=4, timeout_s=10), tests_generated=True)
    assert v.keep and v.evidence == "codet_consensus"
    assert "3/4 x 2/2 = 0.75, min 0.35" in v.keep_reason


def _dbl_reply(user, i, body):
    if user.startswith("Write a small exercise"):
        return ("```python\n" + DBL_WRONG + "```\n```python\n" + DBL_TESTS + "```\n")
    if "double(x)" in user:
        return ["I cannot do that.", "```python\n" + DBL_WRONG + "```",
                "```python\n" + DBL_WRONG2 + "```", "```python\n" + DBL_RIGHT + "```"][i % 4]
    if "add(a, b)" in user:
        return "```python\ndef add(a, b):\n    return a + b\n```"
    return "I cannot do that."


@pytest.mark.parametrize("mode", ["drop", "flag"])
def test_job_counts_low_codet_evidence(tmp_path, mode):
    from pipelines.jobs.synth import load_synth_config, run_synth

    srv = _Server(reply=_dbl_reply)
    try:
        cfg = {"name": "dbl", "task": "code",
               "backend": {"type": "openai", "model": "test",
                           "options": {"base_url": srv.url, "split_n": False}},
               "seeds": {"inline": [{"id": "add", "tests": "assert add(2, 3) == 5\n",
                                     "question": "Write a Python function `add(a, b)`."}]},
               "code": {"n": 4, "timeout_s": 10, "topics": ["double a number"],
                        "on_low_evidence": mode},
               "dedup": {"enabled": False}, "output_dir": str(tmp_path / "out")}
        path = tmp_path / "dbl.yaml"
        path.write_text(yaml.safe_dump(cfg))
        stats = run_synth(load_synth_config(path))
    finally:
        srv.close()
    out = tmp_path / "out"
    kept = {r["id"]: r for r in read_jsonl_gz(out / "jsonl")}
    removed = {r["id"]: r for r in read_jsonl_gz(out / "removed")}
    if mode == "drop":
        assert stats["removed"].get("low_codet_evidence") == 1
        rec = removed["topic-0000"]
        assert rec["removal_reason"] == "low_codet_evidence"
    else:
        assert stats["kept_because"].get("codet_consensus_low_evidence") == 1
        rec = kept["topic-0000"]
        assert stats["preference_pairs"] == 0  # no DPO pairs on low evidence
    assert rec["keep_reason"].startswith("LOW EVIDENCE") and "= 0.30" in rec["keep_reason"]
    assert "min_evidence 0.35" in rec["provenance"]["verifier"]
    assert "this task 0.30" in rec["provenance"]["verifier"]


def test_on_disagreement_names_the_voted_rule_and_accepts_the_old_name():
    from pipelines.jobs.synth import CodeSection

    assert CodeSection().on_disagreement == "keep_voted"
    assert CodeSection(on_disagreement="keep_largest").on_disagreement == "keep_voted"
    with pytest.raises(ValueError):
        CodeSection(on_disagreement="keep_everything")
