"""exact_dedup: batched content keys (numpy whitespace canonicalization), the stage's stats
(duplicate groups, sizes, examples, per source), its report section, and the Beam
introspection memoization used by local builds."""

from __future__ import annotations

import inspect
import json
import random
import re

import pytest

from filters.text_hash import canonical, canonical_utf8_batch, content_digests, content_key
from pipelines.stages.testing import run_stage

WHITESPACE = [chr(i) for i in range(0x110000) if chr(i).isspace()]


def _docs(n=80):
    import collections
    import functools
    import textwrap

    out = []
    for mod in (collections, functools, json, textwrap, inspect, re):
        for _name, obj in sorted(vars(mod).items()):
            doc = inspect.getdoc(obj) if callable(obj) else None
            if doc and len(doc.split()) > 8:
                out.append(doc)
    return sorted(set(out))[:n]


# --------------------------------------------------------------------------- batched keys


def test_whitespace_table_is_pythons():
    # the characters str.split() splits on; the batch code hard-codes their UTF-8 forms
    handled = [*range(0x09, 0x0E), *range(0x1C, 0x21), 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
               0x2028, 0x2029, 0x202F, 0x205F, 0x3000]
    assert [ord(c) for c in WHITESPACE] == handled


def test_batch_canonical_equals_str_split_on_real_text_with_every_whitespace():
    docs = _docs()
    variants = [d.replace(" ", WHITESPACE[i % len(WHITESPACE)] * (1 + i % 3)) for i, d in enumerate(docs)]
    samples = docs + variants + ["", " ", "".join(WHITESPACE), "".join(WHITESPACE) + "a",
                                 "x\u200by\ufeffz", "Ünïcödé\u00a0\u00a0text\u3000end",
                                 "\x00nul\x00", "tab\tsep\x1cfile\x1frecord"]
    got = canonical_utf8_batch([s.encode("utf-8") for s in samples])
    assert got == [canonical(s).encode("utf-8") for s in samples]
    for mode in ("none", "whitespace", "lower"):
        assert [d.hex() for d in content_digests([s.encode() for s in samples], mode,
                                                 batch_bytes=500)] == \
            [content_key(s, mode) for s in samples]


def test_batch_canonical_fuzz_against_the_regex_definition():
    rnd = random.Random(7)
    # whitespace, near-misses that share UTF-8 lead bytes (U+2080, U+200B, U+205E, U+3001),
    # lone lead-byte-like code points and multi-byte text
    alphabet = WHITESPACE + list("ab\u00e9\u4e2d\U0001F600\u2019\u201c") + [
        chr(c) for c in (0x80, 0x9A, 0xC2, 0xE1, 0x200B, 0x2080, 0x2081, 0x205E, 0x3001,
                         0x168F, 0x20AC)]
    for _ in range(1500):
        docs = ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 14)))
                for _ in range(rnd.randint(1, 7))]
        want = [re.sub(r"\s+", " ", d).strip().encode() for d in docs]
        assert canonical_utf8_batch([d.encode() for d in docs]) == want, docs


def test_content_digests_rejects_unknown_mode_and_handles_empty_input():
    assert content_digests([], "whitespace") == []
    assert canonical_utf8_batch([]) == []
    with pytest.raises(ValueError, match="unknown canonicalization"):
        content_digests([b"x"], "upper")


# --------------------------------------------------------------------------- stage + stats


def _records():
    docs = _docs(30)
    recs = [{"id": f"a{i:03d}", "text": t, "source": "books"} for i, t in enumerate(docs)]
    # a hot boilerplate group across two sources, smallest id in "web"
    recs += [{"id": f"h{i:03d}", "text": "Accept cookies  |\nPrivacy", "source":
              "web" if i % 3 else "forum"} for i in range(12)]
    # whitespace variants of three documents (same canonical text, larger ids)
    recs += [{"id": f"b{i:03d}", "text": docs[i].replace(" ", "\u00a0 ", 3) + "\n",
              "source": "web"} for i in range(3)]
    return docs, recs


def test_stats_groups_sizes_examples_and_sources(tmp_path):
    docs, recs = _records()
    res = run_stage({"stage": "exact_dedup"}, recs, output_dir=str(tmp_path))
    assert len(res["kept"]) == len(docs) + 1 and len(res["removed"]) == 11 + 3
    (groups,) = res["stats"]["groups"]
    assert groups["groups"] == 4 and groups["docs_in_groups"] == 12 + 6
    assert groups["copies_removed"] == 14 == len(res["removed"])
    assert groups["size_bins"] == {"2": 3, "9-16": 1}
    top = groups["largest"][0]
    assert top["copies"] == 12 and top["kept"]["id"] == "h000"
    assert top["kept"]["source"] == "forum" and top["kept"]["text"] == "Accept cookies |\nPrivacy"
    assert top["removed"] == 11 and len(top["removed_ids"]) == 10  # a sample of the 11
    removed_h = {r["id"] for _, r in res["removed"] if r["id"].startswith("h")}
    assert {rid for rid, _src in top["removed_ids"]} < removed_h
    assert [g["copies"] for g in groups["largest"]] == [12, 2, 2, 2]
    assert all(g["kept"]["id"].startswith("a") for g in groups["largest"][1:])
    assert groups["random"] == []  # every group is already among the largest
    (by_source,) = res["stats"]["by_source"]
    assert by_source["web"] == {"removed": 8 + 3, "kept_with_copies": 0,
                                "removed_by_kept_source": {"forum": 8, "books": 3}}
    assert by_source["forum"]["removed"] == 3 and by_source["forum"]["kept_with_copies"] == 1
    assert by_source["books"] == {"removed": 0, "kept_with_copies": 3,
                                  "removed_by_kept_source": {}}
    assert "shown" not in groups  # internal, not written to stats.json
    json.dumps(res["stats"])  # JSON-able as written into stats.json


def test_examples_are_the_same_in_any_input_order_and_sampled_groups_are_seeded(tmp_path):
    docs = _docs(60)
    recs = []
    for i, t in enumerate(docs):  # 40 groups of 2..5 copies
        for c in range(2 + i % 4 if i < 40 else 1):
            recs.append({"id": f"d{i:03d}-{c}", "text": t + " " * c, "source": "s"})
    a = run_stage({"stage": "exact_dedup"}, recs, output_dir=str(tmp_path / "a"))
    b = run_stage({"stage": "exact_dedup"}, list(reversed(recs)), output_dir=str(tmp_path / "b"))
    assert a["stats"] == b["stats"]
    (g,) = a["stats"]["groups"]
    assert g["groups"] == 40 and len(g["largest"]) == 10 and len(g["random"]) == 5
    assert all(x["copies"] == 5 for x in g["largest"])
    shown = {x["key"] for x in g["largest"]} | {x["key"] for x in g["random"]}
    assert len(shown) == 15  # the random draw excludes groups already shown as largest
    for x in g["largest"] + g["random"]:
        assert x["kept"]["id"].endswith("-0") and x["removed"] == x["copies"] - 1


def test_no_duplicates_gives_empty_stats_and_a_short_section(tmp_path):
    docs = _docs(10)
    res = run_stage({"stage": "exact_dedup"}, [{"id": str(i), "text": t, "source": "s"}
                                               for i, t in enumerate(docs)],
                    output_dir=str(tmp_path))
    (groups,) = res["stats"]["groups"]
    assert groups["groups"] == 0 and groups["largest"] == [] and groups["size_bins"] == {}
    html = res["stage"].report_section(res["entry"])
    assert "0 duplicate groups" in html and "Largest groups" not in html


def test_report_section_escapes_text_and_keeps_line_breaks(tmp_path):
    hostile = "<script>alert(1)</script>\nsecond line & more"
    recs = [{"id": f"x{i}", "text": hostile, "source": "<b>src</b>"} for i in range(3)]
    res = run_stage({"stage": "exact_dedup"}, recs, output_dir=str(tmp_path))
    assert res["entry"]["params"]["keep"] == "lowest_id"
    html = res["stage"].report_section(res["entry"])
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "&lt;b&gt;src&lt;/b&gt;" in html and "<b>src</b>" not in html
    assert "alert(1)&lt;/script&gt;\nsecond line &amp; more" in html  # line break kept
    assert "3 records" in html and "2 copies removed" in html
    assert res["stage"].report_section({"stats": {}}) is None


def test_dead_letters_a_record_whose_text_is_not_a_string(tmp_path):
    recs = [{"id": "1", "text": "fine text", "source": "s"},
            {"id": "2", "text": 42, "source": "s"},
            {"id": "3", "source": "s"},
            {"id": "4", "text": "fine  text", "source": "s"}]
    res = run_stage({"stage": "exact_dedup"}, recs, output_dir=str(tmp_path))
    assert [r["id"] for r in res["kept"]] == ["1"] and res["kept"][0]["dup_count"] == 2
    assert sorted(d["reason"].split(":")[1].strip() for d in res["dead"]) == \
        ["KeyError", "TypeError"]


def test_same_id_and_text_with_different_fields_keeps_a_fixed_copy(tmp_path):
    recs = [{"id": "1", "text": "same", "source": "s", "url": u} for u in ("b", "a", "c")]
    kept = {run_stage({"stage": "exact_dedup"}, order, output_dir=str(tmp_path / str(i)))
            ["kept"][0]["url"] for i, order in enumerate([recs, recs[::-1], recs[1:] + recs[:1]])}
    assert len(kept) == 1  # the tie covers the other fields, not the spill position


def test_build_report_has_the_exact_dedup_section(tmp_path):
    from tests.buildutil import build, config, write_jsonl

    docs = _docs(20)
    rows = [{"id": f"r{i}", "text": t} for i, t in enumerate(docs)]
    rows += [{"id": f"z{i}", "text": docs[i]} for i in range(4)]
    write_jsonl(tmp_path / "in.jsonl", rows)
    res = build(config([{"name": "src", "type": "jsonl", "path": str(tmp_path / "in.jsonl"),
                         "id_field": "id"}], [{"stage": "exact_dedup"}], tmp_path / "out"))
    st = res.stats["stages"]["exact_dedup"]["stats"]
    groups = st["groups"][0] if isinstance(st["groups"], list) else st["groups"]
    assert groups["groups"] == 4 and groups["copies_removed"] == 4
    page = (tmp_path / "out" / "report.html").read_text()
    assert "Stage exact_dedup (exact_dedup)" in page and "Largest groups" in page
    assert "4 duplicate groups of 8 records" in page


# --------------------------------------------------------------------------- beam speed-ups


def test_memoized_dofn_specs_match_beam_for_stateful_and_plain_dofns():
    import apache_beam as beam
    from apache_beam.transforms import userstate
    from apache_beam.transforms.userstate import ReadModifyWriteStateSpec

    from pipelines.core import beam_speedups

    beam_speedups.install()
    original = userstate.get_dofn_specs.__wrapped__

    class Stateful(beam.DoFn):
        SPEC = ReadModifyWriteStateSpec("n", beam.coders.VarIntCoder())

        def process(self, kv, state=beam.DoFn.StateParam(SPEC)):
            yield kv

    class Plain(beam.DoFn):
        def process(self, x):
            yield x

    class Holder(beam.DoFn):  # a bound method stored on the instance is inspected too
        def __init__(self, fn):
            self.fn = fn

        def process(self, x):
            yield x

    for dofn in (Stateful(), Stateful(), Plain(), Holder(Stateful().process)):
        assert userstate.get_dofn_specs(dofn) == original(dofn)
    assert userstate.is_stateful_dofn(Stateful()) and not userstate.is_stateful_dofn(Plain())
    assert userstate.is_stateful_dofn(Holder(Stateful().process))


def test_memoized_views_share_options_like_beams():
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    from pipelines.core import beam_speedups

    beam_speedups.install()
    opts = PipelineOptions(["--streaming"])
    a, b = opts.view_as(StandardOptions), opts.view_as(StandardOptions)
    assert a is b and a.streaming
    a.streaming = False
    assert opts.view_as(StandardOptions).streaming is False
    assert PipelineOptions([]).view_as(StandardOptions).streaming is False


# --------------------------------------------------------------------------- redistribution


def test_spill_redistribute_returns_every_record_once_and_deletes_its_files(tmp_path):
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to

    from pipelines.build.redistribute import SpillRedistribute
    from pipelines.stages.testing import local_pipeline

    recs = [{"id": str(i), "text": t, "source": "s"} for i, t in enumerate(_docs(40))]
    folder = tmp_path / "_staging" / "spill" / "redistribute-x"
    p = local_pipeline()
    out = p | beam.Create(recs) | SpillRedistribute(str(folder), spill_bytes=2000)
    assert_that(out, equal_to(recs))
    p.run().wait_until_finish()
    assert not (tmp_path / "_staging").exists()  # files and the folders only they used


def test_redistribution_only_where_it_spreads_work(tmp_path):
    from pipelines.build import redistribute
    from pipelines.build.config import build_config_from_dict
    from pipelines.build.plan import plan_build
    from tests.buildutil import config, write_jsonl

    write_jsonl(tmp_path / "in.jsonl", [{"id": "1", "text": "one two three"}])
    src = [{"name": "s", "type": "jsonl", "path": str(tmp_path / "in.jsonl"), "id_field": "id"}]

    def plan(stages, workers, extra=None):
        cfg = config(src, stages, tmp_path / "out")
        cfg["runner"] = {"direct_num_workers": workers}
        return plan_build(build_config_from_dict(cfg), extra, use_checkpoints=False)

    marker = object()

    class Fake:
        def __or__(self, other):
            return marker

    heur = [{"stage": "gopher_quality"}]
    assert redistribute.maybe_redistribute(plan(heur, 1), Fake()) is not marker
    assert redistribute.workers(plan(heur, 1, ["--direct_num_workers=2"])) == 2
    assert redistribute.maybe_redistribute(plan(heur, 2), Fake()) is marker
    assert redistribute.maybe_redistribute(plan([{"stage": "exact_dedup"}], 2), Fake()) \
        is not marker
