"""FusedRecordStages: same kept / removed / dead / stats as applying the stages one by one."""

import inspect

import apache_beam as beam

from pipelines.stages.registry import parse_stages
from pipelines.stages.record_stage import FusedRecordStages, fusible_runs
from pipelines.stages.base import StageContext
from pipelines.stages.registry import load_stages
from pipelines.stages.testing import collect, collected, local_pipeline


def _records():
    import collections
    import json

    out = []
    for mod in (collections, json, inspect):
        for name, obj in sorted(vars(mod).items()):
            doc = inspect.getdoc(obj) if callable(obj) else None
            if doc:
                out.append({"id": f"{mod.__name__}.{name}", "text": doc, "source": "py"})
    out.append({"id": "blank", "text": " \x00 \n", "source": "py"})  # normalize: empty
    out.append({"id": "short", "text": "two words", "source": "py"})  # length: too few
    out.append({"id": "bad", "text": 42, "source": "py"})  # not a string: dead
    return out


SPECS = [{"stage": "normalize", "batch_size": 7},
         {"stage": "length_filter", "min_words": 5, "batch_size": 7},
         {"stage": "gopher_quality", "annotate_only": True}]


def _stages():
    reg = load_stages()
    return [reg[sp.stage](sp, StageContext(sp.stage, i, "/tmp/fusion-test", {}))
            for i, sp in enumerate(parse_stages(SPECS))]


class _Scope(beam.PTransform):
    def __init__(self, stage):
        super().__init__()
        self._stage = stage

    def expand(self, pc):
        res = self._stage.expand(pc)
        return {"kept": res.kept, "removed": res.removed, "dead": res.dead, **res.stats}


def _run(fused: bool):
    recs = _records()
    p = local_pipeline()
    pc = p | beam.Create(recs)
    stages = _stages()
    keys = {}
    if fused:
        outs = pc | "F" >> FusedRecordStages(stages)
        kept = outs[-1]["kept"]
        for st, o in zip(stages, outs):
            keys[st.label] = (collect(o["removed"], f"r{st.label}"),
                              collect(o["dead"], f"d{st.label}"))
        would = collect(outs[-1]["stat:would_remove"], "would")
    else:
        for st in stages:
            res = pc | st.label >> _Scope(st)
            keys[st.label] = (collect(res["removed"], f"r{st.label}"),
                              collect(res["dead"], f"d{st.label}"))
            pc = res["kept"]
            if st.params.annotate_only:
                would = collect(res["would_remove"], "would")
        kept = pc
    kk = collect(kept, "kept")
    p.run().wait_until_finish()
    out = {"kept": sorted(collected(kk), key=lambda r: r["id"]), "would": collected(would)}
    for label, (r, d) in keys.items():
        out[f"removed/{label}"] = sorted(collected(r), key=lambda x: (x[1]["id"], x[0]))
        out[f"dead/{label}"] = sorted(collected(d), key=lambda x: str(x.get("id")))
    return out


def test_fused_equals_one_by_one():
    a, b = _run(False), _run(True)
    assert a == b
    assert [r["id"] for _, r in a["removed/normalize"]] == ["blank"]
    assert "short" in [r["id"] for _, r in a["removed/length_filter"]]
    assert [d["id"] for d in a["dead/normalize"]] == ["bad"]
    assert a["kept"] and all("gopher_quality_pass" in r or len(r) > 5 for r in a["kept"])


def test_fusible_runs_groups_plain_record_stages_and_respects_checkpoints():
    reg = load_stages()
    specs = parse_stages([{"stage": "normalize"}, {"stage": "length_filter"},
                          {"stage": "exact_dedup"}, {"stage": "normalize", "label": "n2"},
                          {"stage": "length_filter", "label": "l2", "checkpoint": True},
                          {"stage": "normalize", "label": "n3"}])
    stages = [reg[sp.stage](sp, StageContext(sp.label or sp.stage, i, "/tmp/x", {}))
              for i, sp in enumerate(specs)]
    runs = fusible_runs(stages, [sp.checkpoint for sp in specs])
    assert runs == [[0, 1], [2], [3, 4], [5]]
