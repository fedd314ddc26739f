"""``datamill train-lm CONFIG.yaml``: train the Kneser-Ney n-gram model used by ``perplexity``.

Holds out ``test_fraction`` of the documents and reports their perplexity (and, as a sanity
reference, the perplexity of the same held-out words shuffled, which a useful model must
rate much higher).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from pipelines.core.settings import ConfigError, load_yaml, validate_model


class TrainLMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    corpus_paths: list[str] = Field(min_length=1, description="Globs of JSONL or text files.")
    text_field: str = "text"
    order: int = Field(default=3, ge=1, le=6)
    min_count: int = Field(default=2, ge=1, description="Rarer words become <unk>.")
    max_docs: int | None = Field(default=None, ge=2)
    test_fraction: float = Field(default=0.1, ge=0, lt=1)
    seed: int = 0
    output: str = Field(description="Model file to write (gzip'd JSON, e.g. lm.json.gz).")


def train_from_config(cfg: TrainLMConfig) -> dict:
    import random

    from filters.ngram_lm import KneserNeyLM, corpus_perplexity
    from filters.quality_classifier import read_texts

    try:
        docs = read_texts(cfg.corpus_paths, cfg.text_field)
    except FileNotFoundError as e:
        raise ConfigError(f"corpus_paths: {e}") from None
    if len(docs) < 2:
        raise ConfigError(f"corpus_paths: found {len(docs)} non-empty documents; need at least 2")
    rng = random.Random(cfg.seed)
    rng.shuffle(docs)
    if cfg.max_docs:
        docs = docs[: cfg.max_docs]
    n_test = int(len(docs) * cfg.test_fraction)
    test, train = docs[:n_test], docs[n_test:]
    lm = KneserNeyLM.train(train, order=cfg.order, min_count=cfg.min_count)
    info = {
        "order": cfg.order,
        "min_count": cfg.min_count,
        "n_train_docs": len(train),
        "n_test_docs": len(test),
        "n_train_tokens": lm.n_train_tokens,
        "vocab_size": len(lm.vocab),
        "discounts": lm.discounts,
    }
    if test:
        info["heldout_perplexity"] = corpus_perplexity(lm, test)
        words = " ".join(test).split()
        rng.shuffle(words)
        info["heldout_shuffled_perplexity"] = corpus_perplexity(lm, [" ".join(words)])
    save_lm(lm, cfg.output, extra={"training": info, "corpus_paths": cfg.corpus_paths})
    return info


def save_lm(lm, path: str, extra: dict | None = None) -> str:
    """Write ``lm`` as the model file ``path`` (atomically: a reader sees the old file or the
    new one)."""
    from pipelines.core.fs import write_bytes

    write_bytes(str(path), lm.to_bytes(extra))
    return str(path)


def register(app) -> None:
    import typer

    @app.command("train-lm")
    def train_lm(
        config: Path | None = typer.Argument(None, help="Training config YAML (or use options)."),
        corpus: list[str] | None = typer.Option(None, help="Corpus glob (repeatable)."),
        output: str | None = typer.Option(None, help="Model file to write (.json.gz)."),
        order: int = typer.Option(3, help="n-gram order."),
        min_count: int = typer.Option(2, help="Rarer words become <unk>."),
        text_field: str = typer.Option("text", help="JSONL field holding the text."),
    ) -> None:
        """Train a Kneser-Ney word n-gram model for the perplexity stage."""
        try:
            if config is not None:
                cfg = validate_model(TrainLMConfig, load_yaml(config))
            else:
                cfg = validate_model(TrainLMConfig, {
                    "corpus_paths": corpus or [], "output": output, "order": order,
                    "min_count": min_count, "text_field": text_field})
            info = train_from_config(cfg)
        except ConfigError as e:
            typer.echo(f"config error: {e}", err=True)
            raise typer.Exit(2) from None
        msg = (f"trained {info['order']}-gram model on {info['n_train_docs']} docs "
               f"({info['n_train_tokens']} tokens, vocab {info['vocab_size']}); saved {cfg.output}")
        if "heldout_perplexity" in info:
            msg += (f"; held-out perplexity {info['heldout_perplexity']:.1f} "
                    f"(shuffled words: {info['heldout_shuffled_perplexity']:.1f})")
        typer.echo(msg)
