"""Per-batch synthesis logic: DART-style adaptive rounds, program of thought, problem/task generation.

A local test server speaking the OpenAI protocol returns scripted replies, so these tests run the
real OpenAICompatibleBackend, answer extraction, voting and the sandbox deterministically.
"""

from __future__ import annotations

import pytest

from synth.backends import OpenAICompatibleBackend
from synth.tasks import (
    MathSampling,
    clean_problem,
    generate_problems,
    pot_answer,
    sample_math,
    task_from_generation,
    verify_math,
)
from tests.test_synth import _Server
from tests.buildutil import read_jsonl_gz


def _math_reply(user, i, body):
    system = body["messages"][0]["content"]
    if "Python program" in system:
        return "```python\nprint(3 + 4)\n```"
    if "Tom" in user:  # easy: always right
        return "3 + 4 = 7. The answer is 7."
    if "hard" in user:  # never states an answer
        return "Hmm, I am not sure."
    if "split" in user:  # disagreement: answer depends on the sample index
        return f"The answer is {i}."
    if "concepts" in user or "example problem" in user:
        return "Problem: A shop sells 4 pens for $2 each. How much do 4 pens cost?"
    return "The answer is 1."


@pytest.fixture
def backend():
    srv = _Server(reply=_math_reply)
    yield OpenAICompatibleBackend("test", srv.url, max_concurrency=4, backoff_s=0.01,
                                  split_n=False), srv
    srv.close()


def test_adaptive_rounds_only_for_hard_problems(backend):
    b, srv = backend
    probs = [{"id": "easy", "problem": "Tom has 3 apples and buys 4. How many?", "reference": "7"},
             {"id": "hard", "problem": "a hard one", "reference": "12"}]
    s = MathSampling(n=3, adaptive=True, min_correct=2, max_rounds=3)
    out = sample_math(b, probs, s)
    assert len(out["easy"]) == 3 and {x["round"] for x in out["easy"]} == {0}
    assert len(out["hard"]) == 9 and {x["round"] for x in out["hard"]} == {0, 1, 2}
    hard_seeds = {c["seed"] for c in srv.calls if c["messages"][-1]["content"] == "a hard one"}
    assert len(hard_seeds) == 3  # a fresh seed per round
    v = verify_math(out["easy"], "7", s)
    assert v.keep and v.pass_rate == 1.0 and v.verified == [0, 1, 2]
    v = verify_math(out["hard"], "12", s)
    assert not v.keep and v.reason == "no_answer" and v.n_samples == 9
    # without the adaptive option there is a single round
    out = sample_math(b, probs, MathSampling(n=3))
    assert len(out["hard"]) == 3


def test_program_of_thought_answers_join_the_vote(backend):
    b, _ = backend
    s = MathSampling(n=2, pot_n=2)
    out = sample_math(b, [{"id": "p", "problem": "Tom: 3 + 4?"}], s)
    kinds = [x["kind"] for x in out["p"]]
    assert kinds.count("pot") == 2 and kinds.count("cot") == 2
    assert all(x["answer"] == "7" for x in out["p"])
    v = verify_math(out["p"], None, s)
    assert v.keep and v.answer == "7" and v.agreement == 1.0


def test_vote_without_reference_needs_agreement(backend):
    b, _ = backend
    s = MathSampling(n=4, vote_threshold=0.5)
    out = sample_math(b, [{"id": "q", "problem": "split decision"}], s)
    v = verify_math(out["q"], None, s)
    assert [x["answer"] for x in out["q"]] == ["0", "1", "2", "3"]
    assert not v.keep and v.reason == "no_agreement" and v.agreement == 0.25


def test_pot_answer_runs_in_the_sandbox():
    assert pot_answer("```python\nx = 6 * 7\nprint('x =', x)\nprint(x)\n```") == ("42", "ok")
    assert pot_answer("no code here") == (None, "no_code")
    ans, how = pot_answer("```python\nwhile True:\n    pass\n```", timeout_s=1)
    assert ans is None and how in ("timeout", "cpu_limit")


def test_problem_generation_from_concepts_is_seeded(backend):
    b, srv = backend
    concepts = ["fractions", "percentages", "area of a rectangle", "unit rates", "ratios"]
    items = [{"id": f"c{i}"} for i in range(4)]
    a = generate_problems(b, items, mode="concepts", per_item=2, temperature=0.9, top_p=0.95,
                          max_tokens=64, seed=3, concepts=concepts, concepts_per_problem=2)
    prompts = [c["messages"][-1]["content"] for c in srv.calls]
    assert len(a) == 8 and all(x["problem"].startswith("A shop sells") for x in a)
    assert all(sum(c in p for c in concepts) >= 2 for p in prompts)
    srv.calls.clear()
    generate_problems(b, items, mode="concepts", per_item=2, temperature=0.9, top_p=0.95,
                      max_tokens=64, seed=3, concepts=concepts)
    assert sorted(c["messages"][-1]["content"] for c in srv.calls) == sorted(prompts)
    seeded = generate_problems(b, [{"id": "s", "problem": "Tom has 3 apples."}], mode="seed",
                               per_item=1, temperature=0.9, top_p=0.95, max_tokens=64, seed=0)
    assert seeded[0]["parent"] == "s" and seeded[0]["template"] == "math_problem_from_seed_v1"
    with pytest.raises(ValueError):
        generate_problems(b, items, mode="concepts", per_item=1, temperature=1, top_p=1,
                          max_tokens=8, seed=0, concepts=[])


def test_clean_problem_and_task_parsing():
    assert clean_problem("**Problem:** Ann has 3 cats and 2 dogs. How many pets?\n\nSolution: 5") \
        == "Ann has 3 cats and 2 dogs. How many pets?"
    assert clean_problem("ok") is None
    t = task_from_generation("```python\ndef f(x: int) -> int:\n    return x\n```\n"
                             "```python\nassert f(1) == 1\n```", "identity")
    assert t["question"].startswith("Write a Python function `f(x: int) -> int`")
    assert t["tests"] == "assert f(1) == 1\n"
    assert task_from_generation("no code", "x") is None


def test_pipeline_concept_generation_dedups_and_votes(tmp_path):
    """Concept-sampled problems -> dedup -> majority vote, through the Beam pipeline."""
    import json

    import yaml

    from pipelines.jobs.synth import load_synth_config, run_synth

    srv = _Server(reply=_math_reply)
    try:
        cfg = {
            "name": "concepts", "task": "math", "seed": 1,
            "backend": {"type": "openai", "model": "test",
                        "options": {"base_url": srv.url, "max_concurrency": 4,
                                    "split_n": False}},
            "problem_generation": {"enabled": True, "mode": "concepts", "n_prompts": 3,
                                   "per_item": 2, "concepts": ["fractions", "ratios", "area"]},
            "math": {"n": 3},
            "batch_size": 2,
            "output_dir": str(tmp_path / "out"),
        }
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(cfg))
        stats = run_synth(load_synth_config(path))
    finally:
        srv.close()
    kept = read_jsonl_gz(tmp_path / "out/jsonl")
    # the scripted server writes the same problem 6 times: one survives dedup, answered "1" x3
    assert stats["removed"] == {"exact_duplicate": 5}
    assert len(kept) == 1 and kept[0]["id"] == "concept-000000-g0"
    r = kept[0]
    assert r["answer"] == "1" and r["agreement"] == 1.0 and r["reference"] is None
    assert r["provenance"]["problem_template"] == "math_problem_from_concept_v1"
    assert r["provenance"]["parent"] == "concept-000000" and r["source"] == "generated"
    assert r["text"].startswith("A shop sells 4 pens")
