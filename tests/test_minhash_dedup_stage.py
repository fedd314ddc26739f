"""The minhash_dedup stage end to end on real text (Python's pydoc topics)."""

import random
from pydoc_data.topics import topics

import apache_beam as beam
import pytest

from filters.lsh import BloomIndex
from pipelines.core.settings import ConfigError
from pipelines.stages.registry import parse_stages
from pipelines.stages.base import StageContext
from pipelines.stages.registry import load_stages
from pipelines.stages.testing import collect, collected, local_pipeline, run_stage

BASE = {"stage": "minhash_dedup"}


def base_docs(n=120, words=120):
    w = " ".join(topics[k] for k in sorted(topics)).split()
    docs, seen = [], set()
    for i in range(0, len(w) - words, words):
        t = " ".join(w[i : i + words])
        if t not in seen:
            seen.add(t)
            docs.append(t)
    return docs[:n]


def rec(i, text, **kw):
    return {"id": i, "text": text, "source": "t", **kw}


def small_edit(text, rng, k=1):
    toks = text.split()
    for _ in range(k):
        toks[rng.randrange(len(toks))] = "EDITED"
    return " ".join(toks)


@pytest.fixture(scope="module")
def corpus():
    rng = random.Random(0)
    docs = base_docs()
    recs = [rec(f"b{i:03d}", t) for i, t in enumerate(docs)]
    for i in range(0, 30, 3):  # 10 clusters of 3: original + 2 near copies
        recs.append(rec(f"c{i:03d}a", small_edit(docs[i], rng)))
        recs.append(rec(f"c{i:03d}b", small_edit(docs[i], rng)))
    return docs, recs


def _ids(rows):
    return sorted(r["id"] for r in rows)


def run_workers(params, records, num_workers):
    (sp,) = parse_stages([params])
    stage = load_stages()[sp.stage](sp, StageContext(sp.stage, 0, "/tmp/dm", {}))
    p = local_pipeline(num_workers=num_workers, mode="multi_threading")
    res = stage.expand(p | beam.Create(records))
    keys = {k: collect(getattr(res, k), k) for k in ("kept", "removed", "dead")}
    skeys = {k: collect(v, f"s_{k}") for k, v in res.stats.items()}
    p.run().wait_until_finish()
    out = {k: sorted(map(repr, collected(v))) for k, v in keys.items()}
    out["stats"] = {k: collected(v) for k, v in skeys.items()}
    return out


def test_removes_near_copies_keeps_one_per_cluster(corpus):
    _, recs = corpus
    out = run_stage(BASE, recs)
    removed = {r["id"]: (reason, r["near_dup_of"]) for reason, r in out["removed"]}
    for i in range(0, 30, 3):
        assert removed[f"c{i:03d}a"] == ("near_duplicate", f"b{i:03d}")
        assert removed[f"c{i:03d}b"] == ("near_duplicate", f"b{i:03d}")
    assert len(removed) == 20
    kept = {r["id"]: r for r in out["kept"]}
    assert kept["b000"]["dup_cluster_size"] == 3 and kept["b000"]["near_dup_of"] is None
    assert kept["b001"]["dup_cluster_size"] == 1
    (cl,) = out["stats"]["clusters"]
    assert cl["clusters"] == 10 and cl["cluster_size_histogram"] == {"3": 10}
    assert out["stats"]["removed"] == [{"docs_removed": 20}]
    lsh = out["stage"].static_stats()["lsh"]
    assert (lsh["bands"], lsh["rows"]) == (14, 9)  # fp_weight 0.1, fn_weight 0.9
    assert lsh["verify"] == "exact"
    # the build's per-stage entry: {"static": static_stats(), "stats": {name: value}}
    entry = {"static": {"lsh": lsh}, "stats": {k: v[0] for k, v in out["stats"].items()}}
    html = out["stage"].report_section(entry)
    assert "data:image/png;base64," in html and "b=14, r=9" in html


def test_one_and_two_workers_identical(corpus):
    _, recs = corpus
    one = run_workers(BASE, recs, 1)
    two = run_workers(BASE, recs, 2)
    assert one == two
    assert len(one["removed"]) == 20


def test_lshbloom_one_and_two_workers_identical(tmp_path, corpus):
    _, recs = corpus
    outs, blobs = [], []
    for workers in (1, 2):
        path = str(tmp_path / f"idx{workers}.npz")
        params = {
            **BASE,
            "mode": "lshbloom",
            "expected_docs": 500,
            "index_out": path,
            "verify": "estimated",
            "max_bucket_size": 2,
        }  # exercise the hot-key path too
        out = run_workers(params, recs, workers)
        for st in out["stats"]["index"]:
            st.pop("index_out")
        outs.append(out)
        with open(path, "rb") as fh:
            blobs.append(BloomIndex.load(fh).bits.tobytes())
    assert outs[0] == outs[1] and blobs[0] == blobs[1]
    assert len(outs[0]["removed"]) == 20
    assert outs[0]["stats"]["edges"][0]["hot_buckets"] > 0


@pytest.mark.parametrize("mode", [{}, {"mode": "lshbloom", "expected_docs": 100}],
                         ids=["lsh", "lshbloom"])
def test_long_chain_is_one_component(mode):
    # word-set documents sliding over a list of distinct real words: doc k and k+1 share 95 of
    # 105 words (J 0.90), k and k+2 J 0.82, k and k+3 J 0.74 -> one long path-like component
    # (in both modes: lshbloom's star test against a bucket's smallest member, before
    # 2026-12-07, kept every document more than two steps from p00)
    words = list(dict.fromkeys(" ".join(base_docs(n=40)).lower().split()))
    words = [w for w in words if w.isalpha()][:300]
    recs = [rec(f"p{k:02d}", " ".join(words[5 * k : 5 * k + 100])) for k in range(30)]
    out = run_stage({**BASE, "ngram": 1, **mode}, recs)
    (cs,) = out["stats"]["components"]
    assert cs["cc_path"] == "scipy_connected_components"
    assert _ids(out["kept"]) == ["p00"]
    assert {r["near_dup_of"] for _, r in out["removed"]} == {"p00"}
    assert out["stats"]["clusters"][0]["largest_clusters"] == [30]
    assert {r["dup_cluster_size"] for _, r in out["removed"]} == {30}


def test_chaining_guard(corpus):
    # A and B share a long boilerplate tail (Jaccard ~0.2): with very loose banding (64 bands of
    # 2 rows) they become LSH candidates. Unverified, the transitive closure glues the A and B
    # clusters together; verification rejects the false edge and keeps both clusters apart.
    docs, _ = corpus
    rng = random.Random(5)
    tail = " ".join(docs[50].split()[:60])
    a, b = docs[10] + " " + tail, docs[20] + " " + tail
    recs = [
        rec("a1", a),
        rec("a2", small_edit(a, rng)),
        rec("b1", b),
        rec("b2", small_edit(b, rng)),
    ]
    loose = {**BASE, "bands": 64, "rows": 2}
    none = run_stage({**loose, "verify": "none"}, recs)
    est = run_stage({**loose, "verify": "estimated"}, recs)
    exact = run_stage({**loose, "verify": "exact"}, recs)
    assert _ids(none["kept"]) == ["a1"]
    assert none["stats"]["clusters"][0]["largest_clusters"] == [4]
    assert _ids(est["kept"]) == _ids(exact["kept"]) == ["a1", "b1"]
    assert est["stats"]["clusters"][0]["largest_clusters"] == [2, 2]
    e = exact["stats"]["edges"][0]
    assert e["accepted_pairs"] < e["candidate_pairs"]


def test_hot_bucket_path_matches_grouping(corpus):
    docs, _ = corpus
    boiler = [rec(f"h{i:03d}", docs[0] + f" footer {i}") for i in range(40)]
    other = [rec(f"o{i:03d}", t) for i, t in enumerate(docs[1:20])]
    recs = boiler + other
    cold = run_stage({**BASE, "max_bucket_size": 1000}, recs)
    hot = run_stage({**BASE, "max_bucket_size": 5}, recs)
    assert hot["stats"]["edges"][0]["hot_buckets"] > 0
    assert hot["stats"]["edges"][0]["hot_bucket_pairs"] > 0
    assert cold["stats"]["edges"][0]["hot_buckets"] == 0
    # star edges instead of all pairs: fewer candidates, same clusters
    assert (
        hot["stats"]["edges"][0]["candidate_pairs"] < cold["stats"]["edges"][0]["candidate_pairs"]
    )
    assert _ids(hot["kept"]) == _ids(cold["kept"])
    assert len(hot["removed"]) == 39


def test_keep_longest_and_highest_score(corpus):
    docs, _ = corpus
    recs = [
        rec("a", docs[5], q=0.1),
        rec("b", docs[5] + " extra words here", q=0.9),
        rec("c", docs[5] + " x", q="bad"),
    ]
    longest = run_stage({**BASE, "keep": "longest"}, recs)
    assert _ids(longest["kept"]) == ["b"]
    best = run_stage({**BASE, "keep": "highest_score", "score_column": "q"}, recs,
                     columns={"q": "float64"})
    assert _ids(best["kept"]) == ["b"]
    low = run_stage(BASE, recs)
    assert _ids(low["kept"]) == ["a"]


def test_dead_letters_and_empty_docs(corpus):
    docs, _ = corpus
    recs = [
        rec("a", docs[0]),
        rec("b", None),
        {"text": "no id", "source": "t"},
        rec("e1", ""),
        rec("e2", "..."),
        rec("a", docs[1]),
    ]
    out = run_stage(BASE, recs)
    reasons = sorted(d["reason"].split(":")[0] for d in out["dead"])
    assert reasons == ["bad_record", "bad_record"]
    # two records with id "a" are two documents; empty docs are never near-duplicates
    assert _ids(out["kept"]) == ["a", "a", "e1", "e2"]


def test_mistyped_score_column_is_a_planning_error():
    (sp,) = parse_stages([{**BASE, "keep": "highest_score", "score_column": "qualty"}])
    ctx = StageContext("near", 3, "/tmp/dm", {"quality": "float64", "lang": "string"})
    with pytest.raises(ConfigError, match=r"stages\[3\] \(near\)\.score_column: 'qualty'") as e:
        load_stages()["minhash_dedup"](sp, ctx)
    msg = str(e.value)
    assert "quality" in msg and "lang" in msg and "id" in msg  # the columns that exist
    # a column that exists is accepted (base columns too)
    load_stages()["minhash_dedup"](sp.model_copy(update={"score_column": "quality"}), ctx)


def test_config_errors():
    with pytest.raises(ConfigError, match="score_column"):
        parse_stages([{**BASE, "keep": "highest_score"}])
    with pytest.raises(ConfigError, match="expected_docs"):
        parse_stages([{**BASE, "mode": "lshbloom"}])
    with pytest.raises(ConfigError, match="exceeds num_perm"):
        parse_stages([{**BASE, "bands": 20, "rows": 20}])
    with pytest.raises(ConfigError, match="threshold"):
        parse_stages([{**BASE, "threshold": 1.2}])


def test_lshbloom_save_load_and_incremental(tmp_path, corpus):
    docs, recs = corpus
    idx = str(tmp_path / "month1.npz")
    month1 = [r for r in recs if r["id"].startswith("b0")][:60]  # b000..b059
    p1 = {**BASE, "mode": "lshbloom", "expected_docs": 1000, "index_out": idx}
    out1 = run_stage(p1, month1 + [r for r in recs if r["id"].startswith("c")])
    assert len(out1["removed"]) == 20  # within-run copies
    assert out1["stats"]["index"][0]["docs_in_index"] == 80
    rng = random.Random(9)
    month2 = [rec(f"m{i:03d}", small_edit(docs[i], rng)) for i in range(0, 60, 7)]  # copies
    month2 += [rec(f"n{i:03d}", docs[i]) for i in range(60, 80)]  # new documents
    idx2 = str(tmp_path / "month2.npz")
    p2 = {**BASE, "mode": "lshbloom", "index_in": idx, "index_out": idx2}
    out2 = run_stage(p2, month2)
    removed = {r["id"]: r["near_dup_of"] for _, r in out2["removed"]}
    assert set(removed) == {f"m{i:03d}" for i in range(0, 60, 7)}
    assert set(removed.values()) == {"lshbloom_index"}
    # found in the index, not clustered with any document of this run
    assert {r["dup_cluster_size"] for _, r in out2["removed"]} == {1}
    assert out2["stats"]["lshbloom"] == [{"removed_by_index": 9, "removed_within_run": 0}]
    assert out2["stats"]["index"][0]["docs_in_index"] == 80 + len(month2)
    # the saved index now knows month 2 too; updating an index in place is allowed
    out3 = run_stage(
        {**p2, "index_in": idx2, "index_out": idx2}, [rec("z", docs[65]), rec("y", docs[90])]
    )
    assert [r["id"] for _, r in out3["removed"]] == ["z"]
    assert out3["stats"]["index"][0]["docs_in_index"] == 80 + len(month2) + 2
    out4 = run_stage({**p2, "index_in": idx2, "index_out": None}, [rec("y2", docs[90])])
    assert [r["id"] for _, r in out4["removed"]] == ["y2"]
    with pytest.raises(ValueError, match="num_perm"):
        run_stage({**p2, "num_perm": 64}, month2)
    with pytest.raises(ValueError, match="cannot read LSHBloom index"):
        run_stage({**p2, "index_in": str(tmp_path / "missing.npz")}, month2)


def test_memory_estimate_before_work_and_failure(tmp_path):
    import json
    from types import SimpleNamespace

    from pipelines.io.source_config import SourceConfig

    path = tmp_path / "c.jsonl"
    with open(path, "w") as f:
        for i, t in enumerate(base_docs(n=100)):
            f.write(json.dumps({"id": f"d{i}", "text": t}) + "\n")
    cfg = SimpleNamespace(sources=[SourceConfig(name="c", type="jsonl", path=str(path))])
    (sp,) = parse_stages([BASE])
    ctx = StageContext("near", 1, "/tmp/dm", {}, config=cfg)
    stage = load_stages()["minhash_dedup"](sp, ctx)
    est = stage.static_stats()["memory_estimate"]
    assert est["text_bytes"] == path.stat().st_size
    assert 90 <= est["docs"] <= 110  # from the line density of the file

    from pipelines.stages.dedup.minhash_passes import estimate_memory

    def estimate_memory_of(text_bytes):
        return estimate_memory(text_bytes, 10**5, 14, 128, "exact", 8)

    assert est["total_gb"] > 0 and set(est["phases_gb"]) >= {"shard", "components", "route_write"}
    big = estimate_memory_of(10**9)
    assert big["disk_gb"] >= 1.0  # the spill files hold the text
    assert est["free_disk_gb"] > 0
    from pipelines.stages.dedup import minhash_passes as mb

    real = mb.free_disk_gb
    try:  # not enough disk for the spill files: a planning error that names the fix
        mb.free_disk_gb = lambda folder: 1e-6
        with pytest.raises(ConfigError, match=r"spill files .* only 0\.0 GB is free.*larger disk"):
            load_stages()["minhash_dedup"](sp, ctx)
    finally:
        mb.free_disk_gb = real
    assert mb.free_disk_gb("gs://bucket/out") is None
    assert mb.free_disk_gb(str(tmp_path / "not" / "yet")) > 0  # nearest existing parent
    (tiny,) = parse_stages([{**BASE, "max_memory_gb": 0.01}])
    with pytest.raises(ConfigError, match=r"estimated peak memory .* exceeds 0\.01 GB") as e:
        load_stages()["minhash_dedup"](tiny, ctx)
    assert "verify: estimated" in str(e.value)  # names the knobs
    exact = estimate_memory(10**9, 10**6, 14, 128, "exact", 8)
    # the text is on disk: ten times the text per document adds nothing in memory
    wide = estimate_memory(10**10, 10**6, 14, 128, "exact", 8)
    assert wide["total_gb"] == exact["total_gb"]
    assert wide["disk_gb"] - exact["disk_gb"] >= 1.05 * 9  # the spill files hold the text
    # lshbloom: one band of the index (sized by expected_docs) twice, whatever the bands
    bloom = estimate_memory(10**9, 10**6, 14, 128, "exact", 8, index_band_bytes=10**9)
    assert bloom["parts_gb"]["index"] == 2.0 and "index" not in exact["parts_gb"]


def test_memory_estimate_covers_the_measured_peaks():
    # near-dup builds measured on the bench corpora (2.75 KB of text per document, RSS summed
    # over the process tree): the planning estimate must not be below any of them, nor far
    # above (docs/scale.md)
    from filters.minhash import MinHashConfig
    from pipelines.stages.dedup.minhash_passes import candidate_shards, estimate_memory

    for docs, text_bytes, peak_gb, over in SHARDED_PEAKS:
        est = estimate_memory(int(text_bytes), docs, 14, 128, "exact", candidate_shards(docs, 14))
        assert peak_gb <= est["total_gb"] <= over * peak_gb, (docs, est)
    # mode: lshbloom, a new index for expected_docs 1M (14 bands of 28,755,200 bits) written
    # at the end (bench/README.md section 26): the passes' phases plus one band twice
    band_bytes = BloomIndex.create(MinHashConfig(), 14, 9, 1_000_000, 1e-6).params.bits // 8
    for docs, text_bytes, peak_gb, over in LSHBLOOM_PEAKS:
        est = estimate_memory(int(text_bytes), docs, 14, 128, "exact",
                              candidate_shards(docs, 14), index_band_bytes=band_bytes)
        assert peak_gb <= est["total_gb"] <= over * peak_gb, (docs, est)


# (docs, text bytes, measured peak GB, allowed estimate / peak): at 100k the estimate is 1.56x
# the peak since the sink's sort buffer holds pickled rows (0.69 -> 0.57 GB): one candidate
# shard, and the planning assumption of 25 bucket pairs per document (the corpus has 3.3; 22 at
# 1M) makes its shard phase the largest; docs/scale.md says so
SHARDED_PEAKS = ((100_000, 276e6, 0.57, 1.6), (300_000, 826e6, 0.61, 1.5),
                 (1_000_000, 2753e6, 1.07, 1.5))
# mode: lshbloom, the index handled band by band (bench/README.md section 26); at 300k the
# same planning assumption of 25 bucket pairs per document puts the estimate at 1.53x
LSHBLOOM_PEAKS = ((300_000, 826e6, 0.59, 1.55), (1_000_000, 2753e6, 1.10, 1.5))


@pytest.mark.parametrize("mode", [{}, {"mode": "lshbloom", "expected_docs": 500}],
                         ids=["lsh", "lshbloom"])
def test_records_go_through_spill_files_that_are_removed_after(tmp_path, corpus, mode):
    """The records are written to spill files under ``_staging/`` and streamed back; every
    file the stage wrote (lshbloom: the built index too) is gone afterwards and nothing
    outside ``_staging`` is touched."""
    _, recs = corpus
    keep = tmp_path / "user-file.txt"
    keep.write_text("not the stage's")
    out = run_stage({**BASE, **mode}, recs, output_dir=str(tmp_path))
    assert len(out["kept"]) + len(out["removed"]) == len(recs) and not out["dead"]
    left = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert left == [keep]


def test_repeated_ids_are_distinct_documents_whatever_the_spill_layout(corpus, monkeypatch):
    """Records sharing an id are distinct documents (a record is its place in a spill file,
    not its id): nothing is dead-lettered for sharing an id; identical copies of one record
    are near-duplicates of each other; the output is the same for any spill-file size (one
    file per record up to one file for all)."""
    from pipelines.stages.dedup import minhash_passes as mb

    docs, recs = corpus
    dup = [dict(recs[3]), dict(recs[3]), {**recs[4], "text": docs[7] + " other text"},
           {**recs[130], "extra": 1}]  # recs[130] is a near copy (a cluster member)
    inp = recs + dup
    outs = []
    for spill_bytes in (1, 4000, mb.SPILL_BYTES):
        monkeypatch.setattr(mb, "SPILL_BYTES", spill_bytes)
        outs.append(run_stage(BASE, inp))
    ref = outs[0]
    for o in outs[1:]:
        for part in ("kept", "removed", "dead"):
            assert o[part] == ref[part], part
    assert not ref["dead"]
    assert len(ref["kept"]) + len(ref["removed"]) == len(inp)
    # the two exact copies of recs[3] are removed against the original (same id)
    copies = [r for _, r in ref["removed"] if r["id"] == recs[3]["id"]]
    assert len(copies) == 2 and all(r["near_dup_of"] == recs[3]["id"] for r in copies)
    assert sum(r["id"] == recs[3]["id"] for r in ref["kept"]) == 1
    # recs[4] with another text is another document: kept unless it has near-duplicates
    routed = ref["kept"] + [r for _, r in ref["removed"]]
    assert sum(r["id"] == recs[4]["id"] for r in routed) == 2


def test_hold_field_is_rejected_with_a_fix():
    with pytest.raises(ConfigError, match=r"'hold' \('zstd'\) was removed.*delete the 'hold'"):
        parse_stages([{**BASE, "hold": "zstd"}])


def test_index_built_band_by_band_equals_the_whole_index(tmp_path, corpus, monkeypatch):
    """Each band of the index is queried and built on its own (one band's filter in memory):
    the written index is bit for bit the one ``BloomIndex`` builds from every document's band
    keys at once, unioned with ``index_in``; what it finds is what ``BloomIndex.query``
    finds."""
    import numpy as np

    from filters.lsh import band_hashes, has_shingles
    from filters.minhash import MinHashConfig, MinHasher
    from pipelines.stages.dedup import minhash_passes as mb

    docs, recs = corpus
    first, second = recs[:70], recs[70:]

    def keys_of(rows):
        sigs = MinHasher(MinHashConfig()).signatures([r["text"] for r in rows])
        return band_hashes(sigs, 14, 9)[has_shingles(sigs)]

    idx1, idx2 = str(tmp_path / "a.npz"), str(tmp_path / "b.npz")
    base = {**BASE, "mode": "lshbloom", "expected_docs": 300, "index_fp_rate": 1e-3}
    run_stage({**base, "index_out": idx1}, first)
    # small spill files: many band-key files, one slice of each per band
    monkeypatch.setattr(mb, "SPILL_BYTES", 6000)
    out = run_stage({**base, "index_in": idx1, "index_out": idx2}, second)
    with open(idx1, "rb") as fh:
        one = BloomIndex.load(fh)
    with open(idx2, "rb") as fh:
        two = BloomIndex.load(fh)
    ref = BloomIndex(one.params)
    ref.insert(keys_of(first))
    assert np.array_equal(one.bits, ref.bits) and one.inserted == ref.inserted == 70
    found = one.query(keys_of(second))
    ref.insert(keys_of(second))
    assert np.array_equal(two.bits, ref.bits) and two.inserted == len(recs)
    by_index = {r["id"] for _, r in out["removed"] if r["near_dup_of"] == "lshbloom_index"}
    assert by_index == {r["id"] for r, f in zip(second, found) if f}
    assert out["stats"]["lshbloom"][0]["removed_by_index"] == len(by_index) > 0
