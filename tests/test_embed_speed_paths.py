"""The ``embed`` stage's length grouping: every flush path gives the same vectors as encoding
each text alone, no record is lost, windows survive, config mistakes fail early."""

from __future__ import annotations

import apache_beam as beam
import numpy as np
import pytest

from pipelines.stages.testing import collect, collected, local_pipeline, run_stage
from tests.test_embedding_corpus import stdlib_paragraphs

pytestmark = pytest.mark.embed
pytest.importorskip("sentence_transformers")


@pytest.fixture(scope="module")
def mixed():
    """Real docstring paragraphs of very different lengths (a few words to hundreds)."""
    paras = [t for _, t in stdlib_paragraphs(40)]
    long = " ".join(paras)  # well over 256 word pieces: truncated
    texts = paras + [p.split(".")[0] for p in paras[:10]] + [long, long[:700]]
    return [{"id": f"m{i:03d}", "text": t, "source": "stdlib"} for i, t in enumerate(texts)]


def test_bucket_edges_grow_and_cover_truncated_texts():
    from pipelines.stages.embed.embed import length_bucket_edges

    e = length_bucket_edges(256)
    assert e[0] == 32 and all(b > a for a, b in zip(e, e[1:]))
    assert e[-1] < 8 * 256 <= int(e[-1] * 1.25) + 1
    assert all(b / a <= 1.26 for a, b in zip(e, e[1:]))
    assert len(length_bucket_edges(16)) < len(e)


@pytest.mark.parametrize("batch_size,sort_buffer", [
    (512, 4096),  # everything held to the end of the bundle: one sort over all texts
    (4, 4096),    # buckets fill up and are encoded as they fill
    (3, 5),       # the buffer cap forces the fullest bucket out
])
def test_every_flush_path_matches_encoding_alone(mixed, batch_size, sort_buffer):
    from filters.embedding import Embedder

    recs = list(mixed)
    recs[5:5] = [{"id": "empty", "text": "   ", "source": "x"},
                 {"id": "notstr", "text": None, "source": "x"}, "not a dict"]
    out = run_stage({"stage": "embed", "batch_size": batch_size, "sort_buffer": sort_buffer,
                     "encode_batch_size": 2, "count_truncated": True}, recs)
    assert [r["id"] for r in out["kept"]] == [r["id"] for r in mixed]
    assert sorted(d["reason"].split(":")[0] for d in out["dead"]) == [
        "bad_text", "bad_text", "empty_text"]
    assert not out["removed"]
    assert out["stats"]["embedded"] == [len(mixed)]
    e = Embedder()
    assert out["stats"]["truncated"] == [e.truncated_count([r["text"] for r in mixed])] == [1]
    alone = np.stack([e.encode([r["text"]])[0] for r in mixed])
    got = np.asarray([r["embedding"] for r in out["kept"]], dtype=np.float32)
    np.testing.assert_allclose(got, alone, atol=1e-5)
    assert all(r["text"] == m["text"] and r["source"] == m["source"]
               for r, m in zip(out["kept"], mixed))


def test_a_failing_text_is_dead_lettered_alone(mixed, monkeypatch):
    from filters import embedding

    orig = embedding.Embedder.encode

    def encode(self, texts):
        if any("POISON" in t for t in texts):
            raise RuntimeError("cannot embed POISON")
        return orig(self, texts)

    monkeypatch.setattr(embedding.Embedder, "encode", encode)
    recs = mixed[:12] + [{"id": "poison", "text": "POISON " + mixed[0]["text"], "source": "x"}]
    out = run_stage({"stage": "embed", "batch_size": 8, "encode_batch_size": 4}, recs)
    assert [r["id"] for r in out["kept"]] == [r["id"] for r in mixed[:12]]
    assert [(d["id"], d["reason"]) for d in out["dead"]] == [
        ("poison", "exception: RuntimeError: cannot embed POISON")]
    assert out["stats"]["embedded"] == [12]


def test_windows_and_timestamps_are_kept(mixed):
    from apache_beam.transforms import window

    from pipelines.stages.registry import parse_stages
    from pipelines.stages.embed.embed import _EmbedBatches

    # the DoFn alone: the stage's global counting stats need the global window
    (sp,) = parse_stages([{"stage": "embed", "batch_size": 5}])
    recs = mixed[:20]

    class _Where(beam.DoFn):
        def process(self, r, w=beam.DoFn.WindowParam, ts=beam.DoFn.TimestampParam):
            yield r["id"], int(w.start), int(ts), len(r["embedding"])

    p = local_pipeline()
    stamped = (p | beam.Create(list(enumerate(recs)))
               | beam.Map(lambda ir: window.TimestampedValue(ir[1], 10 * ir[0] + 3))
               | beam.WindowInto(window.FixedWindows(40)))
    key = collect(stamped | beam.ParDo(_EmbedBatches("embed", sp)) | beam.ParDo(_Where()),
                  "where")
    p.run().wait_until_finish()
    got = sorted(collected(key))
    assert got == [(r["id"], (10 * i + 3) // 40 * 40, 10 * i + 3, 384)
                   for i, r in enumerate(recs)]


def test_sort_buffer_smaller_than_a_batch_fails_before_any_work():
    from pipelines.stages.registry import parse_stages

    with pytest.raises(Exception, match=r"sort_buffer \(100\) must be >= batch_size \(512\)"):
        parse_stages([{"stage": "embed", "sort_buffer": 100}])
