"""``datamill train-classifier CONFIG.yaml``: train and save a quality classifier artifact.

The config names positive and negative reference sets (globs of JSONL or text files), the
feature type and the split; the command trains, evaluates on the held-out split (accuracy,
ROC AUC), saves the artifact directory and prints the metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pipelines.core.settings import ConfigError, load_yaml, validate_model


class TrainClassifierConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    positive_paths: list[str] = Field(min_length=1, description="Globs of positive documents.")
    negative_paths: list[str] = Field(min_length=1, description="Globs of negative documents.")
    text_field: str = Field(default="text", description="JSONL field holding the text.")
    feature: Literal["hashed_ngrams", "embeddings"] = "hashed_ngrams"
    ngram_max: int = Field(default=2, ge=1, le=5, description="hashed_ngrams: largest n.")
    n_features: int = Field(default=2**18, ge=2**10, le=2**24, description="Hash buckets.")
    embedding_model: str | None = Field(
        default=None, description="embeddings: local sentence-transformers path (default: "
        "bundled all-MiniLM-L6-v2 from the embed extra).")
    max_chars: int = Field(default=5000, ge=100, description="Characters used per document.")
    max_docs_per_class: int | None = Field(
        default=None, ge=2, description="Cap each class (first N after a seeded shuffle).")
    test_fraction: float = Field(default=0.2, gt=0, lt=1)
    seed: int = 0
    C: float = Field(default=1.0, gt=0, description="Inverse L2 regularisation strength.")
    output: str = Field(description="Artifact directory to write.")


def train_from_config(cfg: TrainClassifierConfig) -> dict:
    """Train, evaluate and save; returns the metadata written next to the model."""
    import random

    from filters.quality_classifier import (
        FeatureSettings,
        QualityClassifier,
        read_texts,
    )

    try:
        pos = read_texts(cfg.positive_paths, cfg.text_field)
        neg = read_texts(cfg.negative_paths, cfg.text_field)
    except FileNotFoundError as e:
        raise ConfigError(f"positive_paths/negative_paths: {e}") from None
    for name, docs in (("positive_paths", pos), ("negative_paths", neg)):
        if len(docs) < 2:
            raise ConfigError(
                f"{name}: found {len(docs)} non-empty documents; need at least 2 "
                f"(check the globs and text_field={cfg.text_field!r})"
            )
    if cfg.max_docs_per_class:
        rng = random.Random(cfg.seed)
        rng.shuffle(pos)
        rng.shuffle(neg)
        pos, neg = pos[: cfg.max_docs_per_class], neg[: cfg.max_docs_per_class]
    settings = FeatureSettings(feature=cfg.feature, ngram_max=cfg.ngram_max,
                               n_features=cfg.n_features, embedding_model=cfg.embedding_model,
                               max_chars=cfg.max_chars)
    try:
        clf, _ = QualityClassifier.train(pos, neg, settings, test_fraction=cfg.test_fraction,
                                         seed=cfg.seed, C=cfg.C)
    except ValueError as e:
        raise ConfigError(f"positive_paths/negative_paths/test_fraction: {e}") from None
    clf.metadata["positive_paths"] = cfg.positive_paths
    clf.metadata["negative_paths"] = cfg.negative_paths
    save_classifier(clf, cfg.output)
    return clf.metadata


def save_classifier(clf, folder: str) -> str:
    """Write ``clf``'s artifact folder (each file atomically, the metadata last: a folder with
    metadata.json has its model)."""
    from filters.quality_classifier import META_FILE
    from pipelines.core.fs import write_bytes

    files = clf.artifact_files()
    for name in sorted(files, key=lambda n: n == META_FILE):
        write_bytes(f"{str(folder).rstrip('/')}/{name}", files[name])
    return str(folder)


# --------------------------------------------------------------------------- demo reference sets

_DEMO_MODULES = ["json", "inspect", "argparse", "logging", "collections", "functools", "pathlib",
                 "subprocess", "threading", "re", "os", "email.message", "csv", "shutil",
                 "tarfile", "zipfile", "socket", "datetime", "decimal", "fractions"]
_NAV = ["Home", "About us", "Contact", "Login", "Sign up", "Cart", "Shop now", "FAQ", "Blog",
        "Careers", "Press", "Terms", "Privacy", "Sitemap", "Follow us", "Subscribe", "Next »",
        "« Prev", "Read more", "Share", "Tweet", "Copyright 2024", "All rights reserved"]


def demo_reference_texts(n: int = 300, seed: int = 0) -> tuple[list[str], list[str]]:
    """A toy positive/negative pair built on this machine, for demos and tests.

    Positives: standard-library docstrings (edited English prose). Negatives, generated
    deterministically: word salad from the positives' own vocabulary, navigation/boilerplate
    lines, and raw code lines from standard-library sources (a third each). A classifier
    trained on this separates fluent prose from these kinds of junk; it says nothing about
    web-scale quality (for that, use real reference sets, e.g. DCLM's or FineWeb-Edu's).
    """
    import importlib
    import inspect
    import random

    rng = random.Random(seed)
    pos: set[str] = set()
    code_lines: list[str] = []
    for m in _DEMO_MODULES:
        mod = importlib.import_module(m)
        for _, obj in inspect.getmembers(mod):
            d = inspect.getdoc(obj)
            if d and len(d.split()) >= 25:
                pos.add(d)
        try:
            code_lines += [ln for ln in inspect.getsource(mod).splitlines() if len(ln) > 20]
        except (OSError, TypeError):
            pass
    positives = sorted(pos)
    rng.shuffle(positives)
    positives = positives[:n]
    vocab = " ".join(positives).split()
    negatives = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            negatives.append(" ".join(rng.choice(vocab) for _ in range(rng.randint(30, 120))))
        elif kind == 1:
            negatives.append("\n".join(" | ".join(rng.sample(_NAV, 5))
                                       for _ in range(rng.randint(3, 8))))
        else:
            start = rng.randrange(max(1, len(code_lines) - 20))
            negatives.append("\n".join(code_lines[start : start + rng.randint(5, 20)]))
    return positives, negatives


def write_demo_reference_sets(out_dir: str | Path, n: int = 300, seed: int = 0) -> dict:
    import json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pos, neg = demo_reference_texts(n, seed)
    for name, docs in (("positive.jsonl", pos), ("negative.jsonl", neg)):
        (out / name).write_text("".join(json.dumps({"text": t}) + "\n" for t in docs),
                                encoding="utf-8")
    return {"positive": str(out / "positive.jsonl"), "negative": str(out / "negative.jsonl"),
            "n_positive": len(pos), "n_negative": len(neg)}


def register(app) -> None:
    import typer

    @app.command("quality-demo-data")
    def quality_demo_data(
        out_dir: Path = typer.Argument(..., help="Directory for positive.jsonl/negative.jsonl."),
        n: int = typer.Option(300, help="Documents per class."),
        seed: int = typer.Option(0),
    ) -> None:
        """Write a toy positive/negative reference pair (stdlib docstrings vs generated junk)."""
        info = write_demo_reference_sets(out_dir, n, seed)
        typer.echo(f"wrote {info['n_positive']} positives to {info['positive']} and "
                   f"{info['n_negative']} negatives to {info['negative']}")

    @app.command("train-classifier")
    def train_classifier(config: Path = typer.Argument(..., help="Training config YAML.")) -> None:
        """Train a quality classifier (positive vs negative reference sets) and save it."""
        try:
            cfg = validate_model(TrainClassifierConfig, load_yaml(config))
            meta = train_from_config(cfg)
        except ConfigError as e:
            typer.echo(f"config error: {e}", err=True)
            raise typer.Exit(2) from None
        m = meta["metrics"]
        typer.echo(
            f"trained on {meta['n_train']} docs, held out {meta['n_test']}: "
            f"accuracy={m['accuracy']:.4f} auc={m['auc']:.4f}; saved to {cfg.output}"
        )
