"""Language ID: bundled offline model, columns, thresholds, bad input."""

from __future__ import annotations

import socket

import pytest

from filters.langid import UNDETERMINED, LanguageDetector, LanguageIdScorer
from pipelines.core.settings import ConfigError
from pipelines.stages.registry import parse_stages
from pipelines.stages.testing import run_stage

EN = ("The quick brown fox jumps over the lazy dog while the farmer watches from the "
      "porch and wonders whether it will rain before the harvest is finished.")
DE = ("Der schnelle braune Fuchs springt über den faulen Hund, während der Bauer von der "
      "Veranda aus zusieht und sich fragt, ob es vor der Ernte regnen wird.")
FR = ("Le renard brun rapide saute par-dessus le chien paresseux pendant que le fermier "
      "regarde depuis le porche et se demande s'il pleuvra avant la fin de la récolte.")


def test_model_loads_without_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("language ID tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    det = LanguageDetector()
    det.load()
    assert det.detect(EN)[0] == "en"
    scorer = LanguageIdScorer()  # the default backend ("cached") reads the same local file
    scorer.setup()
    assert scorer.process({"text": EN}).columns["language"] == "en"


@pytest.mark.parametrize("text,lang", [(EN, "en"), (DE, "de"), (FR, "fr")])
def test_detects_languages_confidently(text, lang):
    got, score = LanguageDetector().detect(text)
    assert got == lang and score > 0.8


@pytest.mark.parametrize("text", ["", "   \n\t", "1234 5678 !!!", "\x00\x01\x02\x03"])
def test_no_letters_is_undetermined(text):
    assert LanguageDetector().detect(text) == (UNDETERMINED, 0.0)


def test_scorer_reasons():
    s = LanguageIdScorer(["en"], min_score=0.5)
    assert s.process({"text": EN}).kept
    assert s.process({"text": DE}).drop == "language_not_allowed"
    assert LanguageIdScorer(None, 0.5).process({"text": ""}).drop == "language_low_confidence"
    assert LanguageIdScorer(None, None).process({"text": ""}).kept


def test_long_and_multiline_input():
    s = LanguageIdScorer(None, None, max_chars=500)
    d = s.process({"text": ("\n".join([DE] * 5000))})
    assert d.columns["language"] == "de"


def test_stage_columns_and_routing():
    recs = [{"id": "en", "text": EN, "source": "s"}, {"id": "de", "text": DE, "source": "s"},
            {"id": "fr", "text": FR, "source": "s"}, {"id": "empty", "text": "", "source": "s"},
            {"id": "bytes", "text": b"abc", "source": "s"}]
    out = run_stage({"stage": "language_id", "allowed_languages": ["en", "fr"],
                     "route_by_language": True}, recs)
    assert [r["id"] for r in out["kept"]] == ["en", "fr"]
    assert {r["id"]: reason for reason, r in out["removed"]} == {
        "de": "language_not_allowed", "empty": "language_not_allowed"}
    assert [d["id"] for d in out["dead"]] == ["bytes"]
    assert out["stats"]["languages"][0] == {"en": 1, "de": 1, "fr": 1, "und": 1}
    assert out["stage"].static_stats() == {"route_by": "language"}
    html = out["stage"].report_section(out["entry"])
    assert "<img" in html and "language_not_allowed" in html and "Languages" in html


def test_bad_language_codes_rejected():
    with pytest.raises(ConfigError, match="allowed_languages"):
        parse_stages([{"stage": "language_id", "allowed_languages": ["en us"]}])
