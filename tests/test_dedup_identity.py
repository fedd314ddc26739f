"""Hostile input for the dedup stages (issues 22, 23): ids that collide across sources.

A record's identity inside ``minhash_dedup`` and ``exact_dedup`` is its place (spill file,
position), not the user's id: two sources that both number their documents from 0 are 2 x n
documents, never dead-lettered for sharing an id. Equal ids *and* equal texts are one
duplicate group with a survivor chosen deterministically (id, then source). Also: exact_dedup's
key buckets (planned from the input size, same output for any count) and its
``keep: highest_score`` check at planning.
"""

from __future__ import annotations

import filecmp
import json
import random
from pathlib import Path

import pytest

from pipelines.core.settings import ConfigError
from pipelines.stages.base import StageContext
from pipelines.stages.registry import load_stages, parse_stages
from pipelines.stages.testing import run_stage
from tests.buildutil import build, config, read_jsonl_gz, read_output, write_jsonl

N = 300


def _texts(n: int, seed: int) -> list[str]:
    """``n`` texts of 60 random words from a 20,000-word vocabulary: no two are near copies."""
    rng = random.Random(seed)
    vocab = [f"w{rng.getrandbits(40):x}" for _ in range(20_000)]
    return [" ".join(rng.choice(vocab) for _ in range(60)) for _ in range(n)]


def _sources(tmp: Path, texts_a: list[str], texts_b: list[str]) -> list[dict]:
    out = []
    for name, texts in (("a", texts_a), ("b", texts_b)):
        path = write_jsonl(tmp / f"{name}.jsonl", [{"id": i, "text": t}
                                                  for i, t in enumerate(texts)])
        out.append({"name": name, "type": "jsonl", "path": str(path), "id_field": "id"})
    return out


def _build(tmp: Path, sources, stages, out: str, workers: int = 1):
    cfg = config(sources, stages, tmp / out, shards=2, write_removed=True)
    if workers > 1:
        cfg["runner"] = {"direct_num_workers": workers, "direct_running_mode": "multi_processing"}
    res = build(cfg)
    return res, tmp / out


def _dead(out: Path) -> list[dict]:
    folder = out / "dead_letter"
    return read_jsonl_gz(folder) if folder.exists() else []


def _removed(out: Path) -> list[dict]:
    """The removed records (``removed/`` rows are ``{"stage", "reason", "record"}``)."""
    folder = out / "removed"
    return [r["record"] for r in read_jsonl_gz(folder)] if folder.exists() else []


@pytest.fixture(scope="module")
def texts():
    t = _texts(2 * N, seed=7)
    return t[:N], t[N:]


# ------------------------------------------------------------------ equal ids, distinct texts


@pytest.mark.parametrize("stages", [
    [{"stage": "minhash_dedup"}],
    [{"stage": "minhash_dedup", "mode": "lshbloom", "expected_docs": 1000}],
    [{"stage": "exact_dedup"}, {"stage": "minhash_dedup"}],
], ids=["minhash", "lshbloom", "exact+minhash"])
def test_equal_ids_from_two_sources_are_distinct_documents(tmp_path, texts, stages):
    a, b = texts
    res, out = _build(tmp_path, _sources(tmp_path, a, b), stages, "out")
    kept = read_output(out)
    assert len(kept) == 2 * N
    assert not _dead(out) and not _removed(out)
    # ids are not rewritten: every id 0..299 twice, once per source
    assert sorted((r["id"], r["source"]) for r in kept) == sorted(
        (str(i), s) for i in range(N) for s in ("a", "b"))
    st = res.stats["stages"]
    assert st["minhash_dedup"]["out"] == 2 * N


# ------------------------------------------------------------------ equal ids, equal texts


def test_equal_ids_and_texts_keep_one_per_group_chosen_by_source(tmp_path, texts):
    """Source b repeats source a exactly (same ids, same texts) and adds 50 documents of its
    own under ids that a also uses: one copy per group survives, the one of source a (the id
    ties, the source decides); b's own documents are kept although their ids collide."""
    a, other = texts
    b = a[: N - 50] + other[:50]  # ids 0..249: copies of a; ids 250..299: distinct texts
    sources = _sources(tmp_path, a, b)
    for stage in ("minhash_dedup", "exact_dedup"):
        res, out = _build(tmp_path, sources, [{"stage": stage}], stage)
        kept = read_output(out)
        removed = _removed(out)
        assert not _dead(out)
        assert len(kept) == N + 50 and len(removed) == N - 50, stage
        assert {(r["id"], r["source"]) for r in kept} == (
            {(str(i), "a") for i in range(N)} | {(str(i), "b") for i in range(N - 50, N)})
        assert {(r["id"], r["source"]) for r in removed} == {(str(i), "b")
                                                              for i in range(N - 50)}
        if stage == "minhash_dedup":  # the kept document's id: here the removed one's own
            assert all(r["near_dup_of"] == r["id"] for r in removed)
            assert all(r["dup_cluster_size"] == 2 for r in removed)
        else:
            dup = {r["id"]: r["dup_count"] for r in kept if r["source"] == "a"}
            assert [dup[str(i)] for i in range(N)] == [2] * (N - 50) + [1] * 50


def test_minhash_survivor_order_is_id_then_source(texts):
    """Within one cluster the survivor is the lowest id, then the smallest source; with
    ``longest``, ties of length fall back to the same order."""
    a, _ = texts
    recs = [{"id": "7", "text": a[0], "source": "zeta"},
            {"id": "7", "text": a[0], "source": "alpha"},
            {"id": "8", "text": a[0], "source": "aaa"}]
    for keep in ("lowest_id", "longest"):
        for order in (recs, list(reversed(recs))):
            out = run_stage({"stage": "minhash_dedup", "keep": keep}, order)
            assert [(r["id"], r["source"]) for r in out["kept"]] == [("7", "alpha")]
            assert sorted((r["id"], r["source"], r["near_dup_of"]) for _, r in out["removed"]) \
                == [("7", "zeta", "7"), ("8", "aaa", "7")]
            assert not out["dead"]


# ------------------------------------------------------------------ 1 and 2 workers


def _same_files(x: Path, y: Path) -> None:
    for sub in ("data", "removed", "dead_letter"):
        if not (x / sub).exists():
            assert not (y / sub).exists(), sub
            continue
        names = sorted(p.name for p in (x / sub).iterdir())
        assert names == sorted(p.name for p in (y / sub).iterdir()), sub
        _, mismatch, errors = filecmp.cmpfiles(x / sub, y / sub, names, shallow=False)
        assert not mismatch and not errors, (sub, mismatch, errors)


@pytest.mark.slow
def test_colliding_ids_same_output_with_one_and_two_workers(tmp_path, texts, monkeypatch):
    """Colliding ids, exact and near copies across sources, small spill files (many places):
    the output files are byte-identical with 1 and 2 worker processes."""
    from pipelines.stages.dedup import exact_dedup, minhash_passes

    monkeypatch.setattr(exact_dedup, "SPILL_BYTES", 6_000)
    monkeypatch.setattr(minhash_passes, "SPILL_BYTES", 6_000)
    a, other = texts
    rng = random.Random(3)
    near = [" ".join(w if rng.random() > 0.02 else "edited" for w in t.split()) for t in a[:40]]
    b = a[:60] + near + other[: N - 100]  # ids 0..59 exact copies, 60..99 near copies of 0..39
    sources = _sources(tmp_path, a, b)
    stages = [{"stage": "exact_dedup"}, {"stage": "minhash_dedup"}]
    _, one = _build(tmp_path, sources, stages, "one", workers=1)
    _, two = _build(tmp_path, sources, stages, "two", workers=2)
    _same_files(one, two)
    kept = read_output(one)
    removed = _removed(one)
    assert len(kept) + len(removed) == 2 * N and not _dead(one)
    assert len(removed) >= 60  # the exact copies at least


# ------------------------------------------------------------------ exact_dedup buckets


def test_exact_dedup_buckets_follow_the_input_size(tmp_path):
    from pipelines.stages.dedup.exact_dedup import (DOCS_PER_BUCKET, MAX_BUCKETS, MIN_BUCKETS,
                                                    planned_buckets)

    assert planned_buckets(None) == MIN_BUCKETS == 64
    assert planned_buckets(1000) == 64
    assert planned_buckets(64 * DOCS_PER_BUCKET) == 64
    assert planned_buckets(64 * DOCS_PER_BUCKET + 1) == 65
    assert planned_buckets(10**9) == 5000
    assert planned_buckets(10**13) == MAX_BUCKETS
    # planned from the build's sources; `buckets:` overrides; validated
    path = write_jsonl(tmp_path / "in.jsonl", [{"text": f"doc {i}"} for i in range(100)])
    from pipelines.build.config import build_config_from_dict

    cfg = build_config_from_dict(config([{"name": "s", "type": "jsonl", "path": str(path)}],
                                        [{"stage": "exact_dedup"}], tmp_path / "o"))
    cls = load_stages()["exact_dedup"]
    (sp,) = parse_stages([{"stage": "exact_dedup"}])
    stage = cls(sp, StageContext("exact_dedup", 0, str(tmp_path / "o"), {}, config=cfg))
    assert stage.buckets == 64 and 90 <= stage.docs_estimate <= 110
    assert stage.static_stats()["buckets"]["buckets"] == 64
    (sp,) = parse_stages([{"stage": "exact_dedup", "buckets": 3}])
    assert cls(sp, StageContext("exact_dedup", 0, str(tmp_path), {}, config=cfg)).buckets == 3
    for bad in (0, -1, MAX_BUCKETS + 1, "many"):
        with pytest.raises(ConfigError, match="buckets"):
            parse_stages([{"stage": "exact_dedup", "buckets": bad}])


def test_exact_dedup_output_does_not_depend_on_buckets(texts):
    a, b = texts
    recs = [{"id": str(i % 50), "text": t, "source": s}
            for s, part in (("a", a[:120]), ("b", a[:60] + b[:60])) for i, t in enumerate(part)]
    recs += [dict(r, text=r["text"].upper()) for r in recs[:20]]  # equal under "lower"
    for keep in ("lowest_id", "longest"):
        for canon in ("whitespace", "lower"):
            outs = [run_stage({"stage": "exact_dedup", "keep": keep, "canonicalize": canon,
                               "buckets": n}, recs) for n in (1, 7, 64, 1000)]
            ref = outs[0]
            assert len(ref["kept"]) + len(ref["removed"]) == len(recs) and not ref["dead"]
            for o in outs[1:]:
                for part in ("kept", "removed", "dead"):
                    assert o[part] == ref[part], (keep, canon, part)
                assert o["stats"]["groups"] == ref["stats"]["groups"]
                assert o["stats"]["by_source"] == ref["stats"]["by_source"]


def test_exact_dedup_decisions_go_only_to_the_files_holding_a_copy():
    """``Duplicated`` sends each duplicated key's decision to the spill files that hold a copy
    of it, and to no other file; unique keys send nothing (no broadcast of all decisions)."""
    from apache_beam import pvalue

    from pipelines.stages.dedup.exact_dedup import _duplicated

    def cand(file_id: int, pos: int, rid: str) -> tuple:
        return ((rid,), (0, "src"), file_id, pos)

    lists = [  # one list per spill file: (key, that file's best copy, copies in the file)
        [(b"k1", cand(1, 0, "a"), 2), (b"k2", cand(1, 1, "b"), 1), (b"solo", cand(1, 2, "c"), 1)],
        [(b"k1", cand(2, 5, "0"), 1), (b"k3", cand(2, 0, "d"), 1)],
        [(b"k2", cand(3, 9, "e"), 1), (b"only", cand(3, 1, "f"), 1)],
        [(b"k3", cand(4, 4, "g"), 3)],
    ]
    out = list(_duplicated((0, lists)))
    main = [x for x in out if not isinstance(x, pvalue.TaggedOutput)]
    route = sorted(x.value for x in out if isinstance(x, pvalue.TaggedOutput))
    assert all(x.tag == "route" for x in out if isinstance(x, pvalue.TaggedOutput))
    # winners: the smallest candidate ("0" < "a"; "b" < "e"; "d" < "g"), copies summed
    assert main == [(b"k1", (2, 5, 3, "src")), (b"k2", (1, 1, 2, "src")),
                    (b"k3", (2, 0, 4, "src"))]
    assert route == [(1, (b"k1", (2, 5, 3, "src"))), (1, (b"k2", (1, 1, 2, "src"))),
                     (2, (b"k1", (2, 5, 3, "src"))), (2, (b"k3", (2, 0, 4, "src"))),
                     (3, (b"k2", (1, 1, 2, "src"))), (4, (b"k3", (2, 0, 4, "src")))]


def test_exact_dedup_decide_has_no_side_input_of_decisions():
    """The routing step's only side input is the bounded set of groups shown in the report;
    the decisions reach it keyed by spill file (a CoGroupByKey), not as a side input."""
    import apache_beam as beam
    from apache_beam.portability.api import beam_runner_api_pb2

    from pipelines.stages.testing import local_pipeline

    (sp,) = parse_stages([{"stage": "exact_dedup"}])
    stage = load_stages()["exact_dedup"](sp, StageContext("exact_dedup", 0, "/tmp/dm", {}))
    p = local_pipeline()
    stage.expand(p | beam.Create([{"id": "1", "text": "a"}]))
    proto = p.to_runner_api()
    pardos = [t for t in proto.components.transforms.values()
              if t.spec.urn == "beam:transform:pardo:v1"
              and t.unique_name in ("Decide", "Decide/ParDo(_Decide)")]
    assert len(pardos) == 1, [t.unique_name for t in pardos]
    payload = beam_runner_api_pb2.ParDoPayload.FromString(pardos[0].spec.payload)
    assert list(payload.side_inputs) and len(payload.side_inputs) == 1, payload.side_inputs


@pytest.mark.parametrize("params", [
    {"stage": "minhash_dedup"},
    {"stage": "minhash_dedup", "mode": "lshbloom", "expected_docs": 100},
], ids=["lsh", "lshbloom"])
def test_minhash_dedup_gathers_nothing_per_document_on_one_worker(params):
    """Both modes run the sharded passes: the only global steps are the ones whose input is
    bounded by something other than the corpus, and the records are routed with their own
    file's decisions (a CoGroupByKey), the report's sample being the one side input. The
    one-table design failed this: ``AllSketches`` (every document's sketch in one list),
    ``AllHits`` and the decision map as ``Apply``'s side input; so did an index combined
    whole on one worker (``BuildIndex``)."""
    import apache_beam as beam
    from apache_beam.portability.api import beam_runner_api_pb2

    from pipelines.stages.testing import local_pipeline

    (sp,) = parse_stages([params])
    stage = load_stages()["minhash_dedup"](sp, StageContext("minhash_dedup", 0, "/tmp/dm", {}))
    p = local_pipeline()
    stage.expand(p | beam.Create([{"id": "1", "text": "a"}]))
    proto = p.to_runner_api()
    ts = proto.components.transforms
    combines = {t.unique_name.split("/")[0] for t in ts.values()
                if t.spec.urn == "beam:transform:combine_per_key:v1"}
    allowed = {"AllEdges",  # a spanning forest of the verified pairs: O(clustered documents)
               "PairGather",  # the report's pair sample: <= 2 x 8 records
               "CountDocs"}  # one integer per spill file
    if params.get("mode") == "lshbloom":
        allowed |= {"AllBands",  # one (band, path, count) per band: the index is per band
                    "CountHits"}  # one integer per spill file
    assert combines == allowed
    (apply,) = [t for t in ts.values() if t.unique_name == "Apply/ParDo(ApplyFile)"]
    payload = beam_runner_api_pb2.ParDoPayload.FromString(apply.spec.payload)
    (side,) = payload.side_inputs
    producer = {out: t.unique_name for t in ts.values() for out in t.outputs.values()}
    assert producer[apply.inputs[side]].startswith("Sample")
    main = next(v for k, v in apply.inputs.items() if k != side)
    assert producer[main].startswith("DecisionsByFile")


# ------------------------------------------------------------------ keep: highest_score


@pytest.mark.parametrize("stage", ["exact_dedup", "minhash_dedup"])
def test_missing_score_column_is_a_planning_error(stage):
    (sp,) = parse_stages([{"stage": stage, "keep": "highest_score", "score_column": "qualty"}])
    ctx = StageContext("dd", 2, "/tmp/dm", {"quality": "float64"})
    with pytest.raises(ConfigError, match=r"stages\[2\] \(dd\)\.score_column: 'qualty'") as e:
        load_stages()[stage](sp, ctx)
    msg = str(e.value)
    assert "quality" in msg and "Fix:" in msg
    load_stages()[stage](parse_stages([{"stage": stage, "keep": "highest_score",
                                        "score_column": "quality"}])[0], ctx)  # exists: fine


def test_exact_dedup_missing_score_column_fails_validate_and_build(tmp_path):
    """``datamill validate`` and ``build`` refuse it (exit 2) instead of falling back to the
    lowest id."""
    from typer.testing import CliRunner

    from pipelines.cli.main import app

    path = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": f"doc {i}"} for i in range(3)])
    cfg = config([{"name": "s", "type": "jsonl", "path": str(path), "id_field": "id"}],
                 [{"stage": "exact_dedup", "keep": "highest_score", "score_column": "nope"}],
                 tmp_path / "out")
    f = tmp_path / "cfg.yaml"
    f.write_text(json.dumps(cfg))
    for cmd in ("validate", "build"):
        res = CliRunner().invoke(app, [cmd, str(f)])
        assert res.exit_code == 2, (cmd, res.output)
        assert "score_column" in res.output and "'nope'" in res.output, res.output
    assert not (tmp_path / "out" / "data").exists()


def test_sharded_candidates_give_the_same_output_for_any_shard_count(tmp_path, monkeypatch):
    """Issue 22: candidate generation is sharded by band key; how many shards (1, 3, 17)
    changes where buckets are formed, never which documents are removed."""
    from pipelines.stages.testing import run_stage

    base = ("the quick brown fox jumps over the lazy dog while the cat sleeps on the warm "
            "mat and the bird sings in the tall green tree near the old stone house")
    recs = []
    for i in range(120):
        words = base.split()
        words[i % len(words)] = f"w{i % 7}"  # 7 families of near copies
        recs.append({"id": f"{i:04d}", "text": " ".join(words) + f" tail{i % 3}",
                     "source": "a" if i % 2 else "b"})
    recs += [{"id": f"u{i}", "text": f"unique document number {i} " + " ".join(
        f"t{i}x{j}" for j in range(30)), "source": "a"} for i in range(40)]
    outs = {}
    from pipelines.stages.dedup import minhash_dedup

    # band entries and pairs through the shuffle (small slices, as on a distributed runner)
    # or, with the inline limit at 0 (the local runner), from their files by (path, start,
    # stop) reference: the same decisions
    for shards, inline in ((1, None), (3, None), (17, None), (3, 0), (17, 0)):
        monkeypatch.setattr(minhash_dedup, "inline_limit", lambda ctx, limit=inline: limit)
        out = run_stage({"stage": "minhash_dedup", "threshold": 0.7,
                         "candidate_shards": shards}, recs,
                        output_dir=str(tmp_path / f"s{shards}-{inline}"))
        shards = (shards, inline)
        outs[shards] = (sorted((r["id"], r["near_dup_of"], r["dup_cluster_size"])
                               for r in out["kept"]),
                        sorted((reason, r["id"], r["near_dup_of"]) for reason, r in
                               out["removed"]))
        assert out["entry"]["stats"]["edges"]["candidate_shards"] == shards[0]
    assert len({repr(v) for v in outs.values()}) == 1, outs.keys()
    kept, removed = outs[(1, None)]
    assert len(removed) >= 20  # the near copies (threshold 0.7) are found in every setting
    assert {f"u{i}" for i in range(40)} <= {k[0] for k in kept}  # unique documents stay


def test_slices_stay_in_files_on_the_local_runner(tmp_path):
    """The local runner holds whatever crosses a shuffle in memory until its consumer runs:
    there every slice of band entries (and band keys) stays in its file and only a (path,
    start, stop) reference crosses; on a distributed runner slices under 64 KB travel
    themselves."""
    from types import SimpleNamespace

    from apache_beam import pvalue

    from filters.minhash import MinHashConfig
    from pipelines.core.settings import RunnerConfig
    from pipelines.stages.dedup import minhash_passes as mb
    from pipelines.stages.dedup.minhash_dedup import inline_limit

    def ctx(name):
        return SimpleNamespace(config=SimpleNamespace(runner=RunnerConfig(name=name)))

    assert inline_limit(ctx("DirectRunner")) == 0
    assert inline_limit(SimpleNamespace(config=None)) == 0  # a stage run alone: locally
    assert inline_limit(ctx("DataflowRunner")) is None
    texts = _texts(40, seed=3)
    rows = [{"id": str(i), "text": t, "source": "s"} for i, t in enumerate(texts)]
    for limit, is_ref in ((0, True), (None, False)):
        fn = mb.SketchSpill("mh", MinHashConfig(), 14, 9, str(tmp_path / f"l{limit}"), 3,
                            band_keys=True, inline_bytes=limit)
        fn.setup()
        out = list(fn.flush_rows(rows))
        slices = [o.value[1][1] for o in out if isinstance(o, pvalue.TaggedOutput)
                  and o.tag in (mb.SHARDS, mb.BANDS)]
        assert len(slices) == 3 + 14
        assert all(isinstance(s, tuple) == is_ref for s in slices), limit
