"""Generated documentation stays in sync with the code."""

from pathlib import Path

from pipelines.stages.docs import stages_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_stage_reference_is_current():
    current = (ROOT / "docs" / "stages.md").read_text(encoding="utf-8")
    assert current == stages_markdown(), (
        "docs/stages.md is stale: run `datamill stages --markdown > docs/stages.md`")


def test_every_stage_has_a_description():
    from pipelines.stages.registry import load_stages

    missing = [n for n, c in load_stages().items()
               if not c.description and not c.__module__.startswith("tests.")]
    assert not missing


def test_scaling_plans_table_is_current():
    from scaling.recommend import plans_table

    text = (ROOT / "docs" / "scaling.md").read_text(encoding="utf-8")
    start = text.index("<!-- plans:")
    start = text.index("\n", start) + 1
    end = text.index("<!-- /plans -->")
    assert text[start:end] == plans_table(), (
        "docs/scaling.md's plan table is stale: replace it with "
        "`python bench/bench_scaling.py --plans`")
