"""Embedder (filters/embedding.py) and the ``embed`` stage on real text."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from pipelines.stages.testing import run_stage
from tests.test_embedding_corpus import stdlib_paragraphs

pytestmark = pytest.mark.embed
pytest.importorskip("sentence_transformers")


@pytest.fixture(scope="module")
def texts():
    return [t for _, t in stdlib_paragraphs(24)]


def test_unit_vectors_deterministic_and_batch_invariant(texts):
    from filters.embedding import Embedder

    a = Embedder(batch_size=64).encode(texts)
    b = Embedder(batch_size=5).encode(texts)
    assert a.shape == (len(texts), 384) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_array_equal(a, Embedder(batch_size=64).encode(texts))


def test_model_is_loaded_once_and_shared_across_threads(texts):
    from filters.embedding import Embedder, load_model

    models = []

    def work():
        e = Embedder()
        e.setup()
        models.append(e.model)
        e.encode(texts[:3])

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(m) for m in models}) == 1
    assert load_model(None) is models[0]


def test_empty_text_policies():
    from filters.embedding import Embedder, EmptyTextError

    with pytest.raises(EmptyTextError) as err:
        Embedder().encode(["a real sentence about files", "   ", ""])
    assert err.value.positions == [1, 2]
    z = Embedder(empty_text="zero").encode(["a real sentence about files", "  "])
    assert np.all(z[1] == 0) and abs(float(np.linalg.norm(z[0])) - 1) < 1e-5
    with pytest.raises(ValueError, match="empty_text"):
        Embedder(empty_text="skip")


def test_truncation_ignores_text_after_the_limit(texts):
    from filters.embedding import Embedder

    e = Embedder(max_seq_length=16)
    prefix = " ".join(texts[:4])  # well over 16 word pieces
    a, b = e.encode([prefix + " cats and dogs", prefix + " a completely different ending"])
    assert float(a @ b) > 0.9999
    full = Embedder()  # default limit 256: the endings matter
    c, d = full.encode([texts[0] + " cats and dogs", texts[0] + " stock markets crashed"])
    assert float(c @ d) < 0.99
    assert e.seq_length == 16 and full.seq_length == 256
    assert e.truncated_count([prefix, "short"]) == 1
    with pytest.raises(ValueError, match="max_seq_length"):
        Embedder(max_seq_length=100_000).setup()


def test_embed_stage_dead_letters_and_persists(tmp_path, texts):
    from filters.embedding import Embedder, load_embeddings

    recs = [{"id": f"t{i:02d}", "text": t, "source": "stdlib"} for i, t in enumerate(texts[:8])]
    recs += [{"id": "empty", "text": "  \n", "source": "x"},
             {"id": "notstr", "text": 42, "source": "x"}]
    out = run_stage({"stage": "embed", "batch_size": 3, "persist": "parquet"}, recs,
                    output_dir=str(tmp_path))
    assert [r["id"] for r in out["kept"]] == [f"t{i:02d}" for i in range(8)]
    assert {d["id"]: d["reason"].split(":")[0] for d in out["dead"]} == {
        "empty": "empty_text", "notstr": "bad_text"}
    ref = Embedder().encode(texts[:8])
    got = np.asarray([r["embedding"] for r in out["kept"]], dtype=np.float32)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    assert out["stats"]["embedded"] == [8]
    ids, mat = load_embeddings(tmp_path / "embeddings" / "embed")
    assert ids == [r["id"] for r in out["kept"]]
    np.testing.assert_allclose(mat, got, atol=1e-6)


def test_embed_stage_zero_policy_keeps_empty_text():
    recs = [{"id": "a", "text": "Open a file and return a stream.", "source": "s"},
            {"id": "b", "text": "", "source": "s"}]
    recs.append({"id": "c", "text": " ".join(["word"] * 400), "source": "s"})
    out = run_stage({"stage": "embed", "empty_text": "zero", "count_truncated": True}, recs)
    assert not out["dead"] and out["stats"]["truncated"] == [1]
    assert out["kept"][1]["id"] == "b" and not any(out["kept"][1]["embedding"])
    assert len(out["kept"][0]["embedding"]) == 384


def test_unknown_model_name_fails_without_downloading(monkeypatch):
    from filters.embedding import Embedder

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(OSError, match="no-such-model-xyz.*neither a local directory"):
        Embedder("datamill-test/no-such-model-xyz").setup()
