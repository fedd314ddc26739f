"""The dataset card (README.md beside the data) and the per-source/per-language breakdown."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.report.card import size_category
from tests.buildutil import build, config, stdlib_doc_rows, write_jsonl


def _header(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_card_header_loads_with_datasets_and_body_has_the_numbers(tmp_path):
    rows = stdlib_doc_rows(("json", "csv", "argparse", "logging"))
    german = [{"id": f"de{i}", "text": "Dies ist ein deutscher Satz über die Datenverarbeitung "
               f"und die Qualität von Texten, Nummer {i}, mit genug Wörtern für die Erkennung."}
              for i in range(6)]
    write_jsonl(tmp_path / "a.jsonl", rows)
    write_jsonl(tmp_path / "b.jsonl", german + [b"{broken"])
    cfg = config([{"name": "docs", "type": "jsonl", "path": str(tmp_path / "a.jsonl"),
                   "id_field": "id"},
                  {"name": "web", "type": "jsonl", "path": str(tmp_path / "b.jsonl"),
                   "id_field": "id"}],
                 [{"stage": "language_id"},
                  {"stage": "length_filter", "min_words": 12}],
                 tmp_path / "out", license="cc-by-4.0")
    res = build(cfg, command="datamill build card.yaml")
    text = (tmp_path / "out" / "README.md").read_text()
    head = _header(text)
    counts = res.stats["counts"]
    assert head["license"] == "cc-by-4.0"
    assert head["size_categories"] == [size_category(counts["kept"])]
    assert head["configs"][0]["data_files"] == [{"split": "train", "path": "data/*.parquet"}]
    assert "en" in head["language"] and "de" in head["language"]
    # the header is what the Hub and `datasets` read: loading the folder finds exactly the data
    import datasets

    ds = datasets.load_dataset(str(tmp_path / "out"), split="train")
    assert len(ds) == counts["kept"]
    # body: stages in pipeline order with parameters, reasons, per-source table, the command
    assert text.index("`language_id`") < text.index("`length_filter`")
    assert '"min_words": 12' in text and "datamill build card.yaml" in text
    assert "bad_json" in text or "invalid" in text
    bd = res.stats["breakdown"]
    assert bd["by_source"]["web"]["kept"] + bd["by_source"]["docs"]["kept"] == counts["kept"]
    removed = sum(v["removed"] for v in bd["by_source"].values())
    assert removed == counts["removed"]
    assert bd["by_language"]["de"]["kept"] == 6


def test_size_categories_follow_the_hub_buckets():
    assert size_category(0) == "n<1K"
    assert size_category(999) == "n<1K"
    assert size_category(1000) == "1K<n<10K"
    assert size_category(2_500_000) == "1M<n<10M"


@pytest.fixture(scope="module")
def no_card_build(tmp_path_factory):
    """One build with the card switched off, shared by the two tests below."""
    root = tmp_path_factory.mktemp("nocard")
    rows = stdlib_doc_rows(("json", "csv", "argparse"))
    write_jsonl(root / "a.jsonl", rows)
    cfg = config([{"name": "docs", "type": "jsonl", "path": str(root / "a.jsonl"),
                   "id_field": "id"}],
                 [{"stage": "language_id", "min_score": 0.9}], root / "out", card=False)
    return root, build(cfg)


def test_card_can_be_switched_off(no_card_build):
    root, res = no_card_build
    assert res.stats["conservation_ok"] and (root / "out" / "data").is_dir()
    assert not (root / "out" / "README.md").exists()


def test_report_has_contents_breakdown_tables_and_kept_vs_removed_overlays(no_card_build,
                                                                          tmp_path):
    root, res = no_card_build
    st = res.stats["stages"]["language_id"]["stats"]
    assert "removed_histograms" in st  # the removed part is drawn over the full histogram
    page = (root / "out" / "report.html").read_text()
    assert '<nav class=toc>' in page and 'href="#per-source-and-language"' in page
    assert '<h2 id="per-source-and-language">' in page and "<h3>Per language</h3>" in page
    assert 'href="#stage-language-id' in page
    _check_in_a_real_browser(root / "out" / "report.html", tmp_path)


def _check_in_a_real_browser(page: Path, tmp_path: Path) -> None:
    """Headless Chromium (Debian's `chromium`, when installed) parses the report, every figure
    decodes, nothing runs off the page, and a screenshot renders. Skipped quietly where no
    browser is installed."""
    import shutil

    from tests.browserutil import page_facts, screenshot

    if shutil.which("chromium") is None and shutil.which("chromium-browser") is None:
        return
    facts = page_facts(page, tmp_path)
    assert facts["images"] >= 3 and facts["broken"] == 0
    assert facts["toc"] == facts["h2"] >= 5
    # layout (issue 26 item 11): no table widens the page, no cell's text runs into the next
    assert facts["pageOverflow"] <= 0 and all(t["boxFits"] for t in facts["tables"])
    assert not [t["spilling"] for t in facts["tables"] if t["spilling"]]
    funnel = [t for t in facts["tables"] if t["heading"] == "Funnel"]
    assert funnel and "resumed" not in funnel[0]["header"]  # a fresh build: no such column
    shot = screenshot(page, tmp_path)
    assert shot.stat().st_size > 20_000
