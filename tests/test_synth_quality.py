"""Problems worth keeping: sample filters, integer answers, LLM-as-judge, DART allocation,
and coverage that counts only verified samples. Scripted OpenAI-protocol server, no model."""

from __future__ import annotations

import pytest

from synth.backends import OpenAICompatibleBackend
from synth.tasks import (
    MathSampling,
    dart_allocation,
    judge_problems,
    needs_integer,
    parse_judge,
    sample_math,
    screen_sample,
    verify_math,
)
from tests.test_synth import _Server


def _smp(text, finish="stop"):
    return {"text": text, "finish_reason": finish, "kind": "cot"}


@pytest.mark.parametrize("text,finish,expected", [
    ("so 3 + 4 = 7. The answer is 7.", "stop", ("7", "answer_is")),
    ("3 + 4 = 7, and then we add the", "length", (None, "truncated")),
    ("It is \\boxed{7}. Or maybe \\boxed{8}.", "stop", (None, "conflicting_boxed")),
    ("\\boxed{7} which is \\boxed{7.0}", "stop", ("7.0", "boxed")),
    ("The answer is 100 + 50 =", "stop", (None, "incomplete")),
    ("I do not know.", "stop", (None, "no_answer")),
    ("She has 3 + 4 = 7 apples.", "stop", ("7", "last_number")),
])
def test_screen_sample(text, finish, expected):
    assert screen_sample(text, finish) == expected


def test_last_number_fallback_can_be_turned_off():
    assert screen_sample("She has 3 + 4 = 7 apples.", "stop", fallback_last_number=False) == \
        (None, "no_answer")


def test_truncated_samples_carry_no_vote_and_are_counted():
    s = MathSampling(n=4)
    samples = [_smp("The answer is 7.", "length")] * 3 + [_smp("The answer is 7.")]
    v = verify_math(samples, None, s)
    assert not v.keep and v.reason == "no_agreement" and v.checks == {"truncated": 3,
                                                                       "answer_is": 1}
    v = verify_math([_smp("The answer is 7.", "length")] * 2, None, s)
    assert v.reason == "all_truncated"


def test_rejected_vote_verifies_nothing_for_coverage():
    # two of four agree on 5, but the vote threshold is 0.75: nothing is verified correct
    samples = [_smp(f"The answer is {a}.") for a in ("5", "5", "6", "7")]
    v = verify_math(samples, None, MathSampling(n=4, vote_threshold=0.75))
    assert not v.keep and v.n_correct == 0 and v.pass_rate == 0.0
    v = verify_math(samples, None, MathSampling(n=4, vote_threshold=0.5))
    assert v.keep and v.n_correct == 2 and v.pass_rate == 0.5 and v.wrong == [2, 3]


def test_counting_problem_with_fractional_answer_is_rejected():
    clips = ("Natalia sold clips to 27 of her friends in April, and then she sold half as many "
             "clips in May. How many clips did Natalia sell in May?")
    samples = [_smp("27 / 2 = 13.5. The answer is 13.5.")] * 4
    s = MathSampling(n=4, integer_answers="counting")
    v = verify_math(samples, None, s, problem=clips)
    assert not v.keep and v.reason == "non_integer_answer"
    assert verify_math(samples, None, MathSampling(n=4), problem=clips).keep  # when off
    assert needs_integer(clips, "counting") and not needs_integer("What is 1/2 + 1/4?",
                                                                   "counting")
    assert needs_integer("What is 1/2 + 1/4?", "always")


def test_drop_problems_every_sample_solves_when_configured():
    samples = [_smp("The answer is 7.")] * 4
    assert verify_math(samples, "7", MathSampling(n=4)).keep
    v = verify_math(samples, "7", MathSampling(n=4, drop_all_correct=True))
    assert not v.keep and v.reason == "all_samples_correct"


def test_dart_prop2diff_allocation():
    assert dart_allocation([1.0, 0.5, 0.0], budget=6, cap=16) == [0, 2, 4]
    assert dart_allocation([0.0, 0.0], budget=5, cap=2) == [2, 2]  # capped
    assert dart_allocation([1.0, 1.0], budget=4, cap=4) == [0, 0]
    assert sum(dart_allocation([0.1, 0.2, 0.3], budget=7, cap=10)) == 7


def _reply(user, i, body):
    system = body["messages"][0]["content"]
    if system.startswith("You check math word problems"):
        if "half as many" in user:
            return "VERDICT: FLAWED. The number of clips is not a whole number."
        if "gibberish" in user:
            return "I think it might be fine?"
        return "VERDICT: SOUND. Every quantity is given."
    if "Tom" in user:
        return "The answer is 7."
    if "hard" in user:
        return f"The answer is {i % 3}."
    return "The answer is 1."


@pytest.fixture
def backend():
    srv = _Server(reply=_reply)
    yield OpenAICompatibleBackend("test", srv.url, max_concurrency=4, backoff_s=0.01,
                                  split_n=False), srv
    srv.close()


def test_prop2diff_gives_hard_problems_more_samples(backend):
    b, _ = backend
    probs = [{"id": "easy", "problem": "Tom has 3 apples and buys 4. How many?", "reference": "7"},
             {"id": "hard", "problem": "a hard one", "reference": "2"}]
    out = sample_math(b, probs, MathSampling(n=3, allocation="prop2diff", extra_per_problem=3,
                                             max_extra=8))
    assert len(out["easy"]) == 3  # solved by every sample: no extra budget
    assert len(out["hard"]) == 3 + 6 and {x["round"] for x in out["hard"]} == {0, 1}
    with pytest.raises(ValueError):
        sample_math(b, probs, MathSampling(n=1, allocation="nope"))


def test_llm_judge_verdicts(backend):
    b, srv = backend
    items = [{"id": "clips", "problem": "27 clips, then half as many. How many?",
              "solution": "The answer is 41."},
             {"id": "ok", "problem": "Tom has 3 apples and buys 4. How many?",
              "solution": "The answer is 7."},
             {"id": "junk", "problem": "gibberish", "solution": "The answer is 1."}]
    out = judge_problems(b, items, n=3, temperature=0.7)
    assert {k: v["verdict"] for k, v in out.items()} == {"clips": "flawed", "ok": "sound",
                                                         "junk": "unparseable"}
    judge_calls = [c for c in srv.calls if c["messages"][0]["content"].startswith("You check")]
    assert len(judge_calls) == 3 and all(c["n"] == 3 for c in judge_calls)
    assert parse_judge("VERDICT: SOUND ... on reflection VERDICT: flawed") == "flawed"
    assert parse_judge("**VERDICT:** SOUND") == "sound"


def test_pipeline_verification_uses_the_last_number_fallback():
    samples = [_smp("3 + 4 = 7 apples in total."), _smp("So Tom has 7 apples."),
               _smp("The answer is 7.")]
    v = verify_math(samples, "7", MathSampling(n=3))
    assert v.keep and v.n_correct == 3 and v.checks == {"last_number": 2, "answer_is": 1}
    v = verify_math(samples, "7", MathSampling(n=3, fallback_last_number=False))
    assert v.n_correct == 1 and v.checks["no_answer"] == 2
