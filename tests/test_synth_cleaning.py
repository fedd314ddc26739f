"""Cleaning generated problems: preambles, trailing solutions, ill-posed problems, seed copies.

The model outputs below are written in the shapes a small instruct model produces (issue 25:
chatty openers, "**Solution:**" after the problem, near-verbatim copies of the seed).
"""

from __future__ import annotations

import json

import pytest

from synth.dedup import dedup
from synth.tasks import clean_problem, clean_problem_details
from tests.buildutil import read_jsonl_gz

NATALIA = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many "
           "clips in May. How many clips did Natalia sell altogether in April and May?")
MUFFINS = ("Maria bakes 24 muffins and sells 3 boxes of 4 muffins each. How many muffins does "
           "she have left?")

STRIPPED = [
    # (model output, cleaned problem, edits)
    ("Here's a new, different word problem: " + MUFFINS, MUFFINS, ["stripped_preamble"]),
    ("Sure! Here is a new problem of similar difficulty:\n\n" + MUFFINS, MUFFINS,
     ["stripped_preamble"]),
    ("Certainly! Here's one:\n\n**Problem:** " + MUFFINS + "\n\n**Solution:**\nShe sells "
     "3 x 4 = 12 muffins, so 24 - 12 = 12 are left. The answer is 12.", MUFFINS,
     ["stripped_preamble", "stripped_solution"]),
    ("**New Problem:** " + MUFFINS + " **Solution:** 24 - 12 = 12.", MUFFINS,
     ["stripped_solution"]),
    ("### Problem\n" + MUFFINS + "\n\n### Solution\n24 - 3 * 4 = 12", MUFFINS,
     ["stripped_solution"]),
    (MUFFINS + "\nSolution: 3 boxes of 4 is 12 muffins; 24 - 12 = 12.", MUFFINS,
     ["stripped_solution"]),
    (MUFFINS + "\n\nAnswer: 12", MUFFINS, ["stripped_solution"]),
    (MUFFINS + "\n#### 12", MUFFINS, ["stripped_solution"]),
    (MUFFINS + "\n\nStep 1: Find how many muffins she sells: 3 x 4 = 12.", MUFFINS,
     ["stripped_solution"]),
    (MUFFINS + " The answer is \\boxed{12}.", MUFFINS, ["stripped_solution"]),
    (MUFFINS + "\n\nLet's solve it: 3 * 4 = 12.", MUFFINS, ["stripped_solution"]),
    ("Problem: " + MUFFINS, MUFFINS, []),
]

REJECTED = [
    # (model output, reason)
    ("", "problem_empty"),
    ("Sure!", "problem_too_short"),
    ("Maria went to the bakery with her mother on a sunny Saturday morning.",
     "problem_no_question"),
    ("A farmer has some cows and buys more cows at the market. How many cows does he have?",
     "problem_no_number"),
    ("A farmer has 12 cows and buys 8 more. How many cows does he have now? He has 20 cows.",
     "problem_contains_answer"),
    ("A farmer has 12 cows and buys 8 more. Find the total number of cows: 12 + 8 = 20",
     "problem_contains_answer"),
]


@pytest.mark.parametrize("raw,problem,edits", STRIPPED)
def test_preambles_and_trailing_solutions_are_stripped(raw, problem, edits):
    c = clean_problem_details(raw)
    assert (c.problem, c.reason, c.edits) == (problem, None, edits)
    assert clean_problem(raw) == problem


@pytest.mark.parametrize("raw,reason", REJECTED)
def test_ill_posed_or_self_answering_problems_are_rejected(raw, reason):
    c = clean_problem_details(raw)
    assert c.problem is None and c.reason == reason


@pytest.mark.parametrize("raw", [
    # words that look like markers inside a real problem are kept
    ("A chemist has two solutions. Solution A is 30% acid and Solution B is 10% acid. How many "
     "liters of A are needed for 10 liters of 20% acid?"),
    "Maya walks 4000 steps a day. How many steps does she walk in a week?",
    "Kim reads 20 pages a day. How many pages does she read in 7 days? Give your answer in pages.",
    "A train travels at sixty miles per hour for two hours. How far does it go?",
])
def test_conservative_on_real_problems(raw):
    assert clean_problem(raw) == raw


def test_seed_copies_are_removed_even_when_seeds_are_not_kept():
    items = [("s1-g0", NATALIA.replace("altogether in April and May", "in May")),
             ("s2-g0", NATALIA.replace("Natalia", "Maria")),
             ("s3-g0", MUFFINS),
             ("s4-g0", MUFFINS.replace("Maria", "maria  ")),  # exact after normalisation
             ("s5-g0", ("Natalia sold pins to 60 of her classmates in June, and then she sold "
                        "a third as many pins in July. How many pins did she sell in total?"))]
    kept, removed = dedup(items, 0.8, reference=[("seed-0", NATALIA)], reference_threshold=0.5)
    assert kept == ["s3-g0", "s5-g0"]
    assert removed == {"s1-g0": ("duplicate_of_seed", "seed-0"),
                       "s2-g0": ("duplicate_of_seed", "seed-0"),
                       "s4-g0": ("exact_duplicate", "s3-g0")}
    # the same items without the seeds in the set: the copies survive
    kept, _ = dedup(items, 0.8)
    assert "s1-g0" in kept and "s2-g0" in kept


def test_dedup_dofn_with_seeds_and_keep_seeds():
    from pipelines.jobs.synth import REMOVED, Dedup

    seeds = [("train-0", NATALIA)]
    gen = {"id": "train-0-g0", "problem": NATALIA.replace("Natalia", "Maria"),
           "source": "generated"}
    out = list(Dedup(0.8, 128, seeds, 0.5).process([gen]))  # keep_seeds: false
    assert len(out) == 1 and out[0].tag == REMOVED
    reason, rec = out[0].value
    assert reason == "duplicate_of_seed" and rec["duplicate_of"] == "train-0"
    seed = {"id": "train-0", "problem": NATALIA, "source": "seed"}
    out = list(Dedup(0.8, 128, seeds, 0.5).process([gen, seed]))  # keep_seeds: true
    kept = [o for o in out if not hasattr(o, "tag")]
    assert [r["id"] for r in kept] == ["train-0"]
    assert [o.value[0] for o in out if hasattr(o, "tag")] == ["duplicate_of_seed"]


SEEDS = {
    "s1": "Ann has 3 cats and 2 dogs. How many pets does Ann have?",
    "s2": NATALIA,
    "s3": "Tom has 5 red pens and 7 blue pens. How many pens does he have?",
    "s4": "A farmer has 12 cows and buys 8 more cows. How many cows are there now?",
    "s5": "Lisa walks 2 miles every day for 6 days. How far does she walk?",
    "s6": "Ben buys 4 books for $5 each. How much does he pay?",
}
REPLIES = {  # seed -> the "new problem" the model writes
    "s1": "Here's a new, different word problem: " + MUFFINS,
    "s2": NATALIA.replace("altogether in April and May", "in May")
          + "\n\n**Solution:** Natalia sold 24 clips in May.",
    "s3": "Tom has some pens and buys more pens at the shop. How many pens does he have?",
    "s4": "A farmer has 12 cows and buys 8 more. How many cows does he have now? He has 20.",
    "s5": "Lisa likes to walk in the park with her dog every morning before school.",
    "s6": "Sure! Here is a new problem:\n\n" + MUFFINS + "\n\nAnswer: 12",
}


def _reply(user, i, body):
    if user.startswith("Here is an example problem:"):
        return next(REPLIES[k] for k, v in SEEDS.items() if v in user)
    return "3 x 4 = 12 muffins sold, 24 - 12 = 12. The answer is 12."


def test_pipeline_counts_every_removal_reason(tmp_path, capsys):
    import yaml

    from pipelines.jobs.synth import load_synth_config, run_synth
    from tests.test_synth import _Server

    srv = _Server(reply=_reply)
    try:
        cfg = {
            "name": "clean", "task": "math",
            "backend": {"type": "openai", "model": "test",
                        "options": {"base_url": srv.url, "max_concurrency": 4,
                                    "split_n": False}},
            "seeds": {"inline": [{"id": k, "question": v} for k, v in SEEDS.items()]},
            "problem_generation": {"enabled": True, "mode": "seed", "keep_seeds": False},
            "math": {"n": 3},
            "batch_size": 4,
            "output_dir": str(tmp_path / "out"),
        }
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(cfg))
        stats = run_synth(load_synth_config(path))
    finally:
        srv.close()
    assert stats["removed"] == {"duplicate_of_seed": 1, "problem_no_number": 1,
                                "problem_contains_answer": 1, "problem_no_question": 1,
                                "exact_duplicate": 1}
    assert stats["kept"] == 1
    kept = read_jsonl_gz(tmp_path / "out/jsonl")
    assert kept[0]["problem"] == MUFFINS and kept[0]["id"] == "s1-g0"
    removed = {r["id"]: r for r in read_jsonl_gz(tmp_path / "out/removed")}
    assert removed["s2-g0"]["duplicate_of"] == "s2"
    assert removed["s6-g0"]["duplicate_of"] == "s1-g0"
    c = stats["counters"]
    assert c["problems_stripped_preamble"] == 2 and c["problems_stripped_solution"] == 2
    err = capsys.readouterr().err
    assert "[clean] problem generation: batch 2/2, 6/6 problems" in err
    assert "[clean] solve: batch 1/1, 1/1 problems, 3 samples, 1 kept" in err
