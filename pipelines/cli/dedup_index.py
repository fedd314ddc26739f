"""``datamill dedup-index``: build and inspect LSHBloom near-duplicate indexes.

    datamill dedup-index build last_month.jsonl index.npz --expected-docs 50000000
    datamill dedup-index inspect index.npz

An index built here is what the ``minhash_dedup`` stage loads with ``mode: lshbloom`` and
``index_in``; build it with the same ``threshold``/``num_perm``/``ngram``/``seed`` settings.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer


def _open_text(path: Path):
    if path.suffix == ".gz":
        import gzip

        return gzip.open(path, "rt", encoding="utf-8")
    if path.suffix == ".zst":
        import io

        import zstandard

        return io.TextIOWrapper(
            zstandard.ZstdDecompressor().stream_reader(path.open("rb")), encoding="utf-8"
        )
    return path.open("r", encoding="utf-8")


def build_index(
    inputs: list[Path],
    out: str,
    expected_docs: int,
    threshold: float = 0.8,
    num_perm: int = 128,
    ngram: int = 5,
    char_ngrams: bool = False,
    seed: int = 1,
    fp_rate: float = 1e-6,
    text_field: str = "text",
    batch: int = 2048,
    fp_weight: float = 0.1,
    fn_weight: float = 0.9,
) -> dict:
    """Insert every document of the JSONL ``inputs`` into a new index saved at ``out``."""
    from apache_beam.io.filesystems import FileSystems

    from filters.lsh import BloomIndex, band_hashes, has_shingles, optimal_params
    from filters.minhash import MinHashConfig, MinHasher

    cfg = MinHashConfig(num_perm, ngram, char_ngrams, seed)
    b, r = optimal_params(threshold, num_perm, fp_weight, fn_weight)
    index = BloomIndex.create(cfg, b, r, expected_docs, fp_rate)
    mh = MinHasher(cfg)
    skipped = 0

    def flush(texts):
        sigs = mh.signatures(texts)
        index.insert(band_hashes(sigs[has_shingles(sigs)], b, r))

    texts: list[str] = []
    for path in inputs:
        with _open_text(path) as f:
            for line in f:
                try:
                    t = json.loads(line)[text_field]
                    if not isinstance(t, str):
                        raise TypeError
                except (ValueError, KeyError, TypeError):
                    skipped += 1
                    continue
                texts.append(t)
                if len(texts) >= batch:
                    flush(texts)
                    texts = []
    if texts:
        flush(texts)
    with FileSystems.create(out) as f:
        index.save(f)
    return {**describe(index), "skipped_lines": skipped}


def describe(index) -> dict:
    p = index.params
    return {
        "bands": p.bands,
        "rows": p.rows,
        "minhash": p.minhash,
        "docs_in_index": index.inserted,
        "expected_docs": p.expected_items,
        "bits_per_band": p.bits,
        "probes": p.probes,
        "bytes": index.nbytes,
        "fill_ratio": round(index.fill_ratio(), 6),
        "estimated_band_fp_rate": index.estimated_fp_rate(),
    }


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Build and inspect LSHBloom near-duplicate indexes (minhash_dedup).")

    @sub.command("build")
    def build_cmd(
        inputs: list[Path] = typer.Argument(  # noqa: B008 - typer's declaration style
            ..., exists=True, help="JSONL files (.gz/.zst ok)."
        ),
        out: str = typer.Argument(..., help="Index file to write (.npz)."),
        expected_docs: int = typer.Option(..., min=1, help="Capacity (size for future growth)."),
        threshold: float = typer.Option(0.8, min=0.01, max=0.99),
        num_perm: int = typer.Option(128, min=16, max=1024),
        ngram: int = typer.Option(5, min=1, max=64),
        char_ngrams: bool = typer.Option(False),
        seed: int = typer.Option(1, min=0),
        fp_rate: float = typer.Option(1e-6, min=1e-15, max=0.1),
        text_field: str = typer.Option("text"),
        fp_weight: float = typer.Option(0.1, min=0.0, max=1.0, help="Stage default: 0.1."),
        fn_weight: float = typer.Option(0.9, min=0.0, max=1.0, help="Stage default: 0.9."),
    ) -> None:
        """Insert every document of INPUTS into a new LSHBloom index."""
        res = build_index(
            inputs,
            out,
            expected_docs,
            threshold,
            num_perm,
            ngram,
            char_ngrams,
            seed,
            fp_rate,
            text_field,
            fp_weight=fp_weight,
            fn_weight=fn_weight,
        )
        typer.echo(json.dumps(res, indent=1))

    @sub.command("inspect")
    def inspect_cmd(path: str = typer.Argument(..., help="Index file.")) -> None:
        """Print an index's settings, size, fill ratio and implied false-positive rate."""
        from apache_beam.io.filesystems import FileSystems

        from filters.lsh import BloomIndex

        try:
            with FileSystems.open(path) as f:
                index = BloomIndex.load(f)
        except Exception as e:  # noqa: BLE001 - report, do not trace back
            typer.echo(f"error: cannot read LSHBloom index {path!r}: {e}", err=True)
            raise typer.Exit(2) from None
        typer.echo(json.dumps(describe(index), indent=1))

    app.add_typer(sub, name="dedup-index")
