"""Training-ready output through the Beam pipeline: judge step, chat formats, DPO pairs,
provenance and a declared Parquet schema that concatenates across runs (empty shards too)."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pytest
import pyarrow.parquet as pq
import yaml

from synth.output import MATH_SCHEMA, PAIR_SCHEMA, to_table
from tests.test_synth import _Server
from tests.buildutil import read_jsonl_gz

CLIPS = ("Natalia sold clips to 27 of her friends in April, and then she sold half as many "
         "clips in May. How many clips did Natalia sell in May?")
SARA = ("Sara has 3 pears in a basket and her friend gives her 4 more pears. How many pears "
        "does Sara have?")


def _reply(user, i, body):
    system = body["messages"][0]["content"]
    if system.startswith("You check math word problems"):
        return "VERDICT: FLAWED. 27 is odd." if "half as many" in user else "VERDICT: SOUND."
    if user.startswith("Here is an example problem"):
        return "Problem: " + (CLIPS if i == 0 else SARA)
    if "Tom" in user:
        return "The answer is 8." if i == 3 else "3 + 4 = 7. The answer is 7."
    if "half as many" in user:
        return "27 + 14 = 41. The answer is 41."
    if "Sara" in user:
        return "The answer is 9." if i == 3 else "The answer is \\boxed{7}."
    return "no idea"


def _run(tmp_path, name, server=None, **extra):
    from pipelines.jobs.synth import load_synth_config, run_synth

    srv = server or _Server(reply=_reply)
    try:
        cfg = {"name": name, "task": "math",
               "backend": {"type": "openai", "model": "test-model",
                           "options": {"base_url": srv.url, "max_concurrency": 4, "split_n": False,
                                       "backoff_s": 0.01}},
               "seeds": {"inline": [{"id": "s1", "question": "Tom has 3 apples and buys 4 "
                                     "more apples. How many apples does Tom have now?",
                                     "answer": "7"}]},
               "math": {"n": 4, "judge": {"enabled": True}},
               "output_dir": str(tmp_path / name)}
        cfg.update(extra)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return run_synth(load_synth_config(path)), tmp_path / name
    finally:
        if server is None:
            srv.close()


def test_judge_formats_pairs_provenance_and_schema(tmp_path):
    stats, out = _run(tmp_path, "full", problem_generation={
        "enabled": True, "mode": "seed", "per_item": 2, "keep_seeds": True})
    kept = {r["id"]: r for r in read_jsonl_gz(out / "jsonl")}
    removed = {r["id"]: r for r in read_jsonl_gz(out / "removed")}
    assert set(kept) == {"s1", "s1-g1"} and removed["s1-g0"]["removal_reason"] == "judge_flawed"
    assert removed["s1-g0"]["judge"]["verdict"] == "flawed"
    assert stats["removed"] == {"judge_flawed": 1}
    assert stats["kept_because"] == {"reference": 1, "majority_vote": 1}
    assert "judge: sound" in kept["s1-g1"]["keep_reason"]
    assert "reference answer" in kept["s1"]["keep_reason"]
    # chat formats
    s1 = kept["s1"]
    assert s1["messages"] == [{"role": "user", "content": s1["problem"]},
                              {"role": "assistant", "content": s1["solutions"][0]}]
    assert s1["conversations"][0] == {"from": "human", "value": s1["problem"]}
    assert s1["conversations"][1]["from"] == "gpt"
    # provenance
    prov = s1["provenance"]
    assert prov["backend"] == "openai" and prov["model"] == "test-model"
    assert prov["revision_kind"] == "remote" and prov["model_resolved"].endswith("#test-model")
    assert prov["template_version"].startswith("math_cot_v1@") and prov["datamill_version"]
    assert prov["sampling"]["max_tokens"] == 512 and prov["schema_version"]
    assert kept["s1-g1"]["provenance"]["judge_template"].startswith("math_judge_v1@")
    # DPO pairs: chosen verified correct, rejected verified wrong
    pairs = read_jsonl_gz(out / "preference_pairs/jsonl")
    by = {(p["id"], p["pair"]): p for p in pairs}
    p = by[("s1", 0)]
    assert p["chosen_answer"] == "7" and p["rejected_answer"] == "8"
    assert p["rejected_evidence"] == "reference" and p["prompt"][0]["role"] == "user"
    assert "The answer is 8." in p["rejected"][0]["content"]
    assert by[("s1-g1", 0)]["rejected_evidence"] == "majority_vote"
    assert stats["preference_pairs"] == len(pairs) == 2  # one wrong sample per problem
    # declared schema, no JSON strings, no list<null>
    t = pq.read_table(out / "data")
    assert t.schema.remove_metadata().equals(MATH_SCHEMA)
    assert pa.types.is_list(t.schema.field("messages").type)
    assert pa.types.is_struct(t.schema.field("provenance").type)
    assert not any("null" in str(f.type) for f in t.schema)
    assert pq.read_table(out / "preference_pairs/data").schema.remove_metadata().equals(
        PAIR_SCHEMA)


def test_empty_shard_keeps_the_schema_and_runs_concatenate(tmp_path):
    stats, out = _run(tmp_path, "empty", seeds={"inline": [
        {"id": "x", "question": "Tom has 3 apples and buys 4 more. How many apples now?",
         "answer": "999"}]})
    assert stats["kept"] == 0 and stats["removed"] == {"reference_mismatch": 1}
    empty = pq.read_table(out / "data")
    assert empty.num_rows == 0 and empty.schema.remove_metadata().equals(MATH_SCHEMA)
    # coverage: a mismatching reference verifies nothing
    assert stats["coverage"]["coverage"] == [0.0, 0.0, 0.0, 0.0]
    stats2, out2 = _run(tmp_path, "one")
    both = pa.concat_tables([empty, pq.read_table(out2 / "data")])
    assert both.num_rows == 1


def test_fields_outside_the_schema_are_an_error_not_lost():
    import pytest

    with pytest.raises(ValueError, match="outside the declared schema"):
        to_table([{"id": "a", "surprise": 1}], MATH_SCHEMA)


def test_unknown_template_fails_before_any_work(tmp_path):
    import pytest

    from pipelines.core.settings import ConfigError
    from pipelines.jobs.synth import load_synth_config

    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "o"),
                                 "seeds": {"inline": [{"question": "q"}]},
                                 "math": {"judge": {"enabled": True, "template": "nope_v9"}}}))
    with pytest.raises(ConfigError, match=r"math\.judge\.template.*nope_v9"):
        load_synth_config(p)
    assert not (tmp_path / "o").exists()


def test_synth_publishes_through_staging_lock_and_promotion(tmp_path, monkeypatch):
    """A synth run is published as a build is: staged, then swapped in; a failed run leaves
    the previous output visible and removes its staging; a locked output is refused."""
    from pipelines.build import promote
    from pipelines.build.errors import OutputLocked
    from pipelines.build.output_lock import OutputLock

    stats, out = _run(tmp_path, "pub")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["kind"] == "synth"
    assert (out / "current").is_symlink() and (out / "data").is_symlink()
    recorded = {o["path"] for o in manifest["outputs"]}
    assert {"stats.json", "manifest.json", "data/part-00000-of-00001.parquet",
            "jsonl/part-00000-of-00001.jsonl.gz"} <= recorded
    assert not (out / "_staging").exists()
    first = os.readlink(out / "current")

    # a run that fails after staging: nothing promoted, staging removed, old output intact
    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(promote, "_promote_swap", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        _run(tmp_path, "pub")
    monkeypatch.undo()
    assert os.readlink(out / "current") == first
    assert not (out / "_staging").exists()
    assert len(read_jsonl_gz(out / "jsonl")) == stats["kept"]

    # one run at a time per output directory
    with OutputLock(str(out), "20990101-000000-abcdef"), \
            pytest.raises(OutputLocked, match="in use by another build"):
        _run(tmp_path, "pub")

    # a file datamill did not write where an output goes is never replaced
    other = tmp_path / "other"
    other.mkdir()
    (other / "stats.json").write_text("{}")
    from pipelines.core.settings import ConfigError

    with pytest.raises(ConfigError, match="was not written by a datamill build"):
        _run(tmp_path, "other")
    assert (other / "stats.json").read_text() == "{}"


def test_resume_unit_is_smaller_than_a_batch(tmp_path):
    """A batch generates ``resume_every`` problems at a time and saves each unit: after a
    crash that lost one unit, only that unit is generated again and the output is the same."""
    seeds = [{"id": f"t{i}", "question": f"Tom has 3 apples and buys 4 more apples on day {i}. "
              "How many apples does Tom have now?", "answer": "7"} for i in range(5)]
    extra = {"seeds": {"inline": seeds}, "dedup": {"enabled": False}, "batch_size": 8,
             "resume_every": 2, "math": {"n": 4}}
    srv = _Server(reply=_reply)  # one server: its URL is part of the generations' identity
    extra["server"] = srv
    stats, out = _run(tmp_path, "units", **extra)
    units = sorted((out / "generations").glob("solve-*-u2-*.jsonl"))
    assert len(units) == 3  # 5 problems, 2 at a time, one batch
    assert stats["counters"]["resume_units_generated"] == 3 and stats["kept"] == 5
    kept = read_jsonl_gz(out / "jsonl")
    units[1].unlink()  # the unit a crash interrupted
    stats2, _ = _run(tmp_path, "units", **extra)
    assert stats2["counters"]["resume_units_generated"] == 1
    assert stats2["counters"].get("batches_resumed", 0) == 0
    assert read_jsonl_gz(out / "jsonl") == kept
    # nothing lost: every unit is read back on a third run
    stats3, _ = _run(tmp_path, "units", **extra)
    assert stats3["counters"].get("resume_units_generated", 0) == 0
    assert stats3["counters"]["batches_resumed"] == 1
    srv.close()
