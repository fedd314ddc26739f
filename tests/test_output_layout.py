"""The one path to read (issue 26, item 9): a build's output folder also holds the previous
build, checkpoints, a report and a card, so generic readers pointed at the whole folder fail or
count records several times. ``OUT/data`` holds exactly the kept records; the card (OUT/README.md)
and README say so, with snippets for pandas, pyarrow, duckdb and ``datasets``; this test runs
the snippets the card shows, after a first build and after a second one (old builds and
checkpoints must not be counted), and with a changed build name (logged)."""

from __future__ import annotations

import glob
import importlib.util
import re
from pathlib import Path

import pytest

from pipelines.report.card import reading_snippets
from tests.buildutil import build, config, stdlib_doc_rows, write_jsonl

ROOT = Path(__file__).resolve().parents[1]


def _card_blocks(out: Path) -> list[str]:
    text = (out / "README.md").read_text()
    section = text.split("## Reading the data", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)\n```", section, re.S)


def _run_card_snippets(out: Path) -> dict[str, int]:
    """Execute the card's code blocks as a user would copy them; rows each reader saw."""
    blocks = _card_blocks(out)
    assert len(blocks) == 1 + len(reading_snippets())
    ns: dict = {}
    exec(blocks[0], ns)  # OUT = '...'
    assert Path(ns["OUT"]) == out
    seen = {}
    for name, block in zip(reading_snippets(), blocks[1:]):
        if importlib.util.find_spec(name) is None:
            continue
        exec(block, ns)
        seen[name] = {"pandas": lambda: len(ns["df"]), "pyarrow": lambda: ns["table"].num_rows,
                      "duckdb": lambda: len(ns["rows"]),
                      "datasets": lambda: len(ns["dset"])}[name]()
    return seen


def _check_readers(out: Path, kept: int) -> None:
    seen = _run_card_snippets(out)
    assert {"pandas", "pyarrow"} <= set(seen)
    assert seen == {k: kept for k in seen}, seen
    if importlib.util.find_spec("datasets") is not None:
        from datasets import load_dataset

        # the other form README names
        assert len(load_dataset("parquet", data_dir=f"{out}/data", split="train")) == kept


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("layout")
    rows = stdlib_doc_rows(("json", "csv", "argparse"))
    write_jsonl(root / "a.jsonl", rows + rows[:10])  # 10 exact duplicates
    return root


def _cfg(root: Path, min_words: int, name: str = "test", **output) -> dict:
    cfg = config([{"name": "docs", "type": "jsonl", "path": str(root / "a.jsonl"),
                   "id_field": "id"}],
                 [{"stage": "exact_dedup", "checkpoint": True},
                  {"stage": "length_filter", "min_words": min_words}],
                 root / "out", **output)
    cfg["name"] = name
    return cfg


def test_card_snippets_read_exactly_the_kept_records_after_each_build(corpus):
    out = corpus / "out"
    first = build(_cfg(corpus, 5))
    _check_readers(out, first.stats["counts"]["kept"])
    logs: list[str] = []
    second = build(_cfg(corpus, 20, name="other"), log=logs.append)
    kept = second.stats["counts"]["kept"]
    assert kept != first.stats["counts"]["kept"]
    # the folder now holds two builds and a checkpoint: a glob over all of it over-counts,
    # which is why the card names data/ as the one path to read
    assert len(list((out / "_builds").iterdir())) == 2 and (out / "checkpoints").is_dir()
    everything = glob.glob(f"{out}/**/*.parquet", recursive=True)
    assert len(everything) > len(glob.glob(f"{out}/data/**/*.parquet", recursive=True))
    _check_readers(out, kept)
    # replacing a build of another name says so, in one line
    said = [ln for ln in logs if "holds build 'test'" in ln]
    assert len(said) == 1 and "'other' replaces it" in said[0]
    third_logs: list[str] = []
    build(_cfg(corpus, 21, name="other"), log=third_logs.append)
    assert not any("holds build" in ln for ln in third_logs)  # same name: nothing to say
    # the same config and inputs under another name is not "up to date": its card and report
    # would carry the old name
    renamed = build(_cfg(corpus, 21, name="renamed"))
    assert not renamed.skipped and renamed.stats["name"] == "renamed"
    assert build(_cfg(corpus, 21, name="renamed")).skipped


def test_readme_documents_the_one_path_with_the_card_snippets():
    readme = (ROOT / "README.md").read_text()
    for code in reading_snippets().values():
        assert code in readme, code


def _dead_cfg(root: Path, rows: list, **output) -> dict:
    if not (root / "in.jsonl").exists():  # rewritten, it would be a changed input
        write_jsonl(root / "in.jsonl", rows)
    return config([{"name": "s", "type": "jsonl", "path": str(root / "in.jsonl"),
                    "id_field": "id"}],
                  [{"stage": "normalize", "checkpoint": True},
                   {"stage": "length_filter", "min_words": 3}], root / "out", **output)


def test_a_build_that_dead_lettered_everything_leaves_no_checkpoint(tmp_path):
    from pipelines.build.accounting import DeadLetterError

    rows = [{"id": r["id"], "body": r["text"]} for r in stdlib_doc_rows(("json",))]
    logs: list[str] = []
    with pytest.raises(DeadLetterError):  # wrong text_field: every record dead-lettered
        build(_dead_cfg(tmp_path, rows), log=logs.append)
    assert not (tmp_path / "out" / "checkpoints").exists()
    assert not list((tmp_path / "out").rglob("*.jsonl.gz"))
    assert any("removed the 1 checkpoint(s) this run wrote" in ln for ln in logs)


def test_a_build_that_failed_on_the_dead_letter_share_keeps_a_checkpoint_a_rerun_uses(tmp_path):
    from pipelines.build.accounting import DeadLetterError

    good = stdlib_doc_rows(("json",))[:5]
    rows = good + [b"{broken %d" % i for i in range(10)]
    logs: list[str] = []
    with pytest.raises(DeadLetterError):  # 10 of 15 dead: over the default 0.5
        build(_dead_cfg(tmp_path, rows), log=logs.append)
    assert (tmp_path / "out" / "checkpoints" / "00-normalize" / "manifest.json").is_file()
    assert any("kept the 1 checkpoint(s) this run wrote" in ln and "resumes from" in ln
               for ln in logs)
    logs.clear()
    res = build(_dead_cfg(tmp_path, rows, max_dead_letter_fraction=0.9), log=logs.append)
    assert any(ln.startswith("resuming from checkpoint") for ln in logs), logs
    assert res.stats["counts"]["dead_letter"] == 10 and res.stats["conservation_ok"]
