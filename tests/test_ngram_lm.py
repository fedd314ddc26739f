"""Kneser-Ney n-gram LM: normalisation, held-out behaviour, persistence, stage and CLI."""

from __future__ import annotations

import importlib
import inspect
import math
import random

import pytest
import yaml

from filters.ngram_lm import UNK, KneserNeyLM, PerplexityScorer, corpus_perplexity
from pipelines.cli.train_lm import TrainLMConfig, save_lm, train_from_config
from pipelines.core.settings import ConfigError
from pipelines.stages.registry import parse_stages
from pipelines.stages.testing import run_stage


def _docs() -> list[str]:
    out = set()
    for m in ["json", "inspect", "argparse", "logging", "collections", "functools", "pathlib",
              "subprocess", "threading", "re", "os", "email.message", "csv"]:
        for _, obj in inspect.getmembers(importlib.import_module(m)):
            d = inspect.getdoc(obj)
            if d and len(d) > 200:
                out.add(d)
    docs = sorted(out)
    random.Random(0).shuffle(docs)
    return docs


@pytest.fixture(scope="module")
def split():
    docs = _docs()
    k = int(0.8 * len(docs))
    return docs[:k], docs[k:]


@pytest.fixture(scope="module")
def lm(split):
    return KneserNeyLM.train(split[0], order=3, min_count=2)


@pytest.mark.parametrize("history", [[], ["the"], ["of", "the"], ["never", "seenword"]])
def test_distribution_sums_to_one(lm, history):
    total = sum(lm.prob(w, history) for w in lm.vocab)
    assert total == pytest.approx(1.0, abs=1e-9)


def test_heldout_prose_beats_shuffled_words(lm, split):
    test = split[1]
    ppl = corpus_perplexity(lm, test)
    words = " ".join(test).split()
    random.Random(1).shuffle(words)
    shuffled = corpus_perplexity(lm, [" ".join(words)])
    assert math.isfinite(ppl) and shuffled > 2 * ppl


def test_higher_order_fits_training_data_better(split):
    uni = KneserNeyLM.train(split[0], order=1)
    tri = KneserNeyLM.train(split[0], order=3)
    assert corpus_perplexity(tri, split[0][:50]) < corpus_perplexity(uni, split[0][:50])


def test_unknown_words_map_to_unk(lm):
    assert UNK in lm.vocab
    assert lm.prob("qwertyuiopasdf", ["the"]) == lm.prob(UNK, ["the"]) > 0


def test_save_load_round_trip(lm, split, tmp_path):
    path = save_lm(lm, tmp_path / "lm.json.gz")
    again = KneserNeyLM.load(path)
    assert corpus_perplexity(again, split[1][:20]) == pytest.approx(
        corpus_perplexity(lm, split[1][:20]), rel=1e-12)
    with pytest.raises(FileNotFoundError, match="train-lm"):
        KneserNeyLM.load(tmp_path / "missing.json.gz")


def test_scorer_bad_input(lm, tmp_path):
    path = save_lm(lm, tmp_path / "lm.json.gz")
    s = PerplexityScorer(path, max_perplexity=1e4)
    assert s.process({"text": ""}).drop == "perplexity_no_tokens"
    d = s.process({"text": bytes(range(256)).decode("latin-1")})
    assert d.columns["perplexity"] > 0
    d = s.process({"text": "word " * 500_000})  # truncated to max_chars, still scored
    assert math.isfinite(d.columns["perplexity"])
    with pytest.raises(TypeError):
        s.process({"text": None})


def test_train_command_and_stage(split, tmp_path):
    corpus = tmp_path / "ref.jsonl"
    import json

    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in split[0]))
    cfg = TrainLMConfig(corpus_paths=[str(corpus)], order=3, output=str(tmp_path / "m.json.gz"))
    info = train_from_config(cfg)
    assert info["heldout_shuffled_perplexity"] > info["heldout_perplexity"]
    recs = [{"id": f"t{i}", "text": t, "source": "s"} for i, t in enumerate(split[1][:10])]
    words = " ".join(split[1][:10]).split()
    random.Random(2).shuffle(words)
    recs.append({"id": "zshuffled", "text": " ".join(words), "source": "s"})
    out = run_stage({"stage": "perplexity", "model": cfg.output}, recs)
    ppl = {r["id"]: r["perplexity"] for r in out["kept"]}
    assert "held-out perplexity" in out["stage"].report_section(out["entry"])
    assert ppl["zshuffled"] > max(v for k, v in ppl.items() if k != "zshuffled")
    out = run_stage({"stage": "perplexity", "model": cfg.output,
                     "max_perplexity": ppl["zshuffled"] - 1}, recs)
    assert [(reason, r["id"]) for reason, r in out["removed"]] == [
        ("perplexity_too_high", "zshuffled")]


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="train-lm"):
        parse_stages([{"stage": "perplexity", "model": str(tmp_path / "nope.json.gz")}])
    bad = tmp_path / "c.yaml"
    bad.write_text(yaml.safe_dump({"corpus_paths": [str(tmp_path / "none*.jsonl")],
                                   "output": str(tmp_path / "o.json.gz")}))
    from pipelines.core.settings import load_yaml, validate_model

    cfg = validate_model(TrainLMConfig, load_yaml(bad))
    with pytest.raises(ConfigError, match="no files match"):
        train_from_config(cfg)
