"""Acceptance of answers without a reference: margin, independent solvers, judges, DPO pairs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from synth.output import preference_pairs
from synth.tasks import MathSampling, decidably_different, verify_math
from tests.test_synth import _Server
from tests.buildutil import read_jsonl_gz

ROOT = Path(__file__).resolve().parents[1]


def _cot(*answers):
    return [{"text": f"Steps. The answer is {a}.", "finish_reason": "stop", "kind": "cot"}
            for a in answers]


def test_margin_and_min_votes():
    # 3 of 6 on 5, 2 on 6: the old rule (threshold 0.5, 2 votes) accepted it
    samples = _cot(5, 5, 5, 6, 6, 7)
    assert verify_math(samples, None, MathSampling(n=6, min_margin=1)).keep
    v = verify_math(samples, None, MathSampling(n=6, min_margin=2))
    assert not v.keep and v.reason == "low_margin" and v.margin == 1 and v.n_correct == 0
    v = verify_math(_cot(5, 5, 6, 7), None, MathSampling(n=4, min_votes=3))
    assert not v.keep and v.reason == "no_agreement"
    v = verify_math(_cot(5, 5, 6, 6), None, MathSampling(n=4))  # a tie is no majority
    assert not v.keep and v.reason == "low_margin"
    v = verify_math(_cot(5, 5, 5, 5, 6), None, MathSampling(n=5, min_votes=3, min_margin=2))
    assert v.keep and v.margin == 3 and "margin 3" in v.evidence


def test_program_of_thought_must_agree_when_required():
    pot_ok = [{"kind": "pot", "answer": "5", "check": "ok"}]
    pot_bad = [{"kind": "pot", "answer": "9", "check": "ok"}]
    s = MathSampling(n=4, pot_n=1, pot_min_agree=1)
    v = verify_math(_cot(5, 5, 5, 6) + pot_ok, None, s)
    assert v.keep and v.pot_agree == 1 and "1 of 1 executed program-of-thought" in v.evidence
    v = verify_math(_cot(5, 5, 5, 6) + pot_bad, None, s)
    assert not v.keep and v.reason == "no_pot_agreement"
    # with a reference the reference decides, not the vote
    assert verify_math(_cot(5, 6, 7, 8) + pot_bad, "5", s).keep


def test_rejected_samples_must_be_decidably_wrong():
    assert decidably_different("5", "6") and decidably_different("5", "x = 2 or x = 3")
    assert not decidably_different("5", "5.0") and not decidably_different("5", "N")
    assert not decidably_different("5", "\\sqrt{x}") and not decidably_different("5", None)
    v = verify_math(_cot(5, 5, 5, "a lot", 6), None, MathSampling(n=5))
    assert v.keep and v.wrong == [4]  # "a lot" is not verified wrong
    pairs = preference_pairs("p", "q", [("c", "5")], [("r1", "6"), ("r2", "N")], "majority_vote",
                             {}, 5, rejected_wrong=decidably_different)
    assert [p["rejected_answer"] for p in pairs] == ["6"]
    assert preference_pairs("p", "q", [("c", "5")], [("r", "6")], "x", {}, 5,
                            chosen_kept=False) == []


def _reply(user, i, body):
    system = body["messages"][0]["content"]
    if system.startswith("You check math word problems"):
        return "VERDICT: SOUND."
    if user.startswith("Here is an example problem"):
        return "Problem: Sara has 3 boxes with 4 pens each and gives away 5 pens. How many?"
    if "Sara" in user:  # 2 of 4 agree on a wrong 12, the right 7 twice -> no majority
        return ["The answer is 12.", "The answer is 12.", "The answer is 7.",
                "The answer is 7."][i]
    return "3 + 4 = 7. The answer is 7." if i < 3 else "The answer is 8."


def _run(tmp_path, name, math):
    from pipelines.jobs.synth import load_synth_config, run_synth

    srv = _Server(reply=_reply)
    try:
        cfg = {"name": name, "task": "math",
               "backend": {"type": "openai", "model": "solver",
                           "options": {"base_url": srv.url, "split_n": False}},
               "seeds": {"inline": [{"id": "s1", "question": "Tom has 3 apples and buys 4 "
                                     "more apples. How many apples does Tom have now?"}]},
               "problem_generation": {"enabled": True, "keep_seeds": True},
               "math": math, "dedup": {"enabled": False},
               "output_dir": str(tmp_path / name)}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        stats = run_synth(load_synth_config(path))
    finally:
        srv.close()
    return stats, tmp_path / name


def test_job_defaults_reject_a_two_two_split_and_label_a_same_model_judge(tmp_path):
    _stats, out = _run(tmp_path, "a", {"n": 4, "judge": {"enabled": True, "applies_to": "all"}})
    kept = {r["id"]: r for r in read_jsonl_gz(out / "jsonl")}
    removed = {r["id"]: r for r in read_jsonl_gz(out / "removed")}
    assert set(kept) == {"s1"} and removed["s1-g0"]["removal_reason"] in ("no_agreement",
                                                                          "low_margin")
    assert "margin 2" in kept["s1"]["keep_reason"]
    assert "the solver model itself: a filter, not evidence" in kept["s1"]["keep_reason"]


def test_independent_judge_backend_and_required_judge(tmp_path):
    from pipelines.core.settings import ConfigError
    from pipelines.jobs.synth import load_synth_config

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"task": "math", "seeds": {"inline": [{"question": "q?"}]},
                                    "math": {"judge": {"enabled": True, "required": True}},
                                    "output_dir": str(tmp_path / "o")}))
    with pytest.raises(ConfigError, match="judge.required"):
        load_synth_config(path)
    path.write_text(yaml.safe_dump({"task": "math", "seeds": {"inline": [{"question": "q?"}]},
                                    "math": {"pot_min_agree": 1},
                                    "output_dir": str(tmp_path / "o")}))
    with pytest.raises(ConfigError, match="pot_min_agree"):
        load_synth_config(path)
    srv = _Server(reply=_reply)  # a second server plays the independent judge
    try:
        _stats, out = _run(tmp_path, "b", {"n": 4, "judge": {
            "enabled": True, "applies_to": "all", "required": True,
            "backend": {"type": "openai", "model": "judge-model",
                        "options": {"base_url": srv.url, "split_n": False}}}})
        judge_calls = len(srv.calls)
    finally:
        srv.close()
    kept = {r["id"]: r for r in read_jsonl_gz(out / "jsonl")}
    assert judge_calls == 1 and set(kept) == {"s1"}
    assert kept["s1"]["keep_reason"].endswith("judge: sound")


def _bench():
    spec = importlib.util.spec_from_file_location("bench_acc",
                                                  ROOT / "bench/bench_synth_acceptance.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def test_false_accept_rate_of_each_rule_is_computable_offline():
    b = _bench()
    items = b.simulate_items(300, 16, 2, seed=1)
    res = {name: b._score(items, o) for name, o in b.rules().items()}
    old = res["old (n4, 0.5, 2 votes)"]
    shipped = next(r for name, r in res.items() if name.startswith("shipped"))
    assert old["kept"] > 0 and shipped["kept"] > 0
    # the shipped rule is stricter than the old one: fewer wrong answers kept per kept
    assert shipped["false_accept"] < old["false_accept"]
    # a replayed record file (references hidden from the verifier, used to score) works too
    rec = [{"id": "a", "question": "", "reference": "7", "samples": _cot(7, 7, 7, 7, 7, 7)},
           {"id": "b", "question": "", "reference": "7", "samples": _cot(9, 9, 9, 9, 9, 1)}]
    r = b._score(rec, dict(n=6, vote_threshold=0.5, min_votes=3, min_margin=2,
                           pot_min_agree=0))
    assert r == {"problems": 2, "kept": 2, "kept_wrong": 1, "false_accept": 0.5,
                 "yield": 1.0, "right_yield": 0.5}


def test_resume_fingerprint_and_provenance_include_generation_options(monkeypatch):
    from pipelines.jobs.synth import SynthConfig, backend_fingerprint
    from synth import backends
    from synth.backends import BackendConfig, generation_options, model_provenance

    def cfg(**opts):
        return SynthConfig.model_validate({"seeds": {"inline": [{"question": "q?"}]},
                                           "output_dir": "o",
                                           "backend": {"type": "transformers",
                                                       "model": "/nonexistent",
                                                       "options": opts}})

    base = backend_fingerprint(cfg(threads=1))
    assert backend_fingerprint(cfg(threads=2)) == base  # speed only
    assert backend_fingerprint(cfg(batch_size=4)) != base
    assert backend_fingerprint(cfg(dtype="float32")) != backend_fingerprint(cfg(dtype="bfloat16"))
    monkeypatch.setattr(backends, "cpu_supports_bf16", lambda: True)
    assert generation_options(BackendConfig("transformers", "m", {}))["dtype"] == "bfloat16"
    assert backend_fingerprint(cfg()) == backend_fingerprint(cfg(dtype="bfloat16"))
    monkeypatch.setattr(backends, "cpu_supports_bf16", lambda: False)
    assert backends.resolve_dtype("auto") == "float32"
    assert backends.resolve_dtype("auto", "cuda") == "bfloat16"
    prov = model_provenance(BackendConfig("openai", "m", {"base_url": "http://x/v1",
                                                          "api_key": "secret"}))
    assert {o["key"] for o in prov["generation_options"]} == {"base_url", "split_n", "chat"}


def test_a_resumed_run_never_pairs_new_problems_with_old_generations(tmp_path):
    """Issue 27 item 4: problem generation settings changed between two runs into the same
    output: the generated problem (same id) has another text, so its solve batch is another
    batch and is generated again; the record's answer is that of the new problem. Records
    carry the settings that decided them (provenance.settings)."""
    import re

    from pipelines.jobs.synth import load_synth_config, run_synth

    def reply(user, i, body):
        if user.startswith("Here is an example problem"):
            a, b = (2, 3) if body["temperature"] > 0.7 else (10, 20)
            return f"Ann has {a} pens and buys {b} more pens. How many pens does Ann have now?"
        if user.startswith("Problem:"):
            return "VERDICT: SOUND. fine"
        return f"Add them. The answer is {sum(int(x) for x in re.findall(r'[0-9]+', user))}."

    srv = _Server(reply=reply)

    def run(temperature):
        cfg = {"name": "stale", "task": "math",
               "backend": {"type": "openai", "model": "m",
                           "options": {"base_url": srv.url, "split_n": False}},
               "seeds": {"inline": [{"id": "s1", "question": "Tom has 3 apples and buys 4 "
                                     "more apples. How many apples does Tom have now?",
                                     "answer": "7"}]},
               "problem_generation": {"enabled": True, "mode": "seed", "per_item": 1,
                                      "keep_seeds": False, "temperature": temperature},
               "math": {"n": 4, "judge": {"enabled": False}}, "dedup": {"enabled": False},
               "output_dir": str(tmp_path / "out")}
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(cfg))
        run_synth(load_synth_config(path))
        return list(read_jsonl_gz(tmp_path / "out" / "jsonl"))

    try:
        first = run(0.9)
        second = run(0.5)
    finally:
        srv.close()
    assert [(r["problem"].split()[2], r["answer"]) for r in first] == [("2", "5")]
    assert [(r["problem"].split()[2], r["answer"]) for r in second] == [("10", "30")]
    settings = {s["key"]: json.loads(s["value"]) for s in second[0]["provenance"]["settings"]}
    assert settings["problem_generation"]["temperature"] == 0.5
    assert settings["math"]["n"] == 4 and settings["resume_every"] == 2


def test_the_chosen_dtype_and_its_reason_are_said(monkeypatch):
    """Issue 27 item 5: ``datamill synth`` prints how generations are made (the stats.json
    ``generation`` line): the dtype ``auto`` chose on this CPU and why."""
    from synth import backends
    from synth.backends import BackendConfig, describe_generation

    monkeypatch.setattr(backends, "cpu_supports_bf16", lambda: True)
    line = describe_generation(BackendConfig("transformers", "m", {"batch_size": 4}))
    assert line.startswith("transformers backend, model m: dtype bfloat16 (auto: this CPU has "
                           "bf16 matrix instructions)") and "batch_size 4" in line
    monkeypatch.setattr(backends, "cpu_supports_bf16", lambda: False)
    assert "dtype float32 (auto: this CPU has no bf16" in describe_generation(
        BackendConfig("transformers", "m", {}))
    assert "dtype float32 (requested)" in describe_generation(
        BackendConfig("transformers", "m", {"dtype": "float32"}))
