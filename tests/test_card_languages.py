"""The card's language table (issue 26, item 12): languages that kept nothing are listed, and
a row counts the records removed before language ID (they have no language)."""

from __future__ import annotations

from tests.buildutil import build, config, stdlib_doc_rows, write_jsonl


def _languages_table(text: str) -> dict[str, list[str]]:
    section = text.split("## Languages", 1)[1].split("\n## ", 1)[0]
    rows = [ln.strip("|").split("|") for ln in section.splitlines() if ln.startswith("| ")]
    return {r[0].strip(): [c.strip() for c in r[1:]] for r in rows[1:]}


def test_card_lists_languages_with_nothing_kept_and_records_removed_before_language_id(
        tmp_path):
    rows = stdlib_doc_rows(("json", "csv"))
    german = [{"id": f"de{i}", "text": "Dies ist ein deutscher Satz über die Datenverarbeitung "
               f"und die Qualität von Texten, Nummer {i}, mit genug Wörtern für die Erkennung."}
              for i in range(6)]
    write_jsonl(tmp_path / "a.jsonl", rows + german)
    res = build(config([{"name": "docs", "type": "jsonl", "path": str(tmp_path / "a.jsonl"),
                         "id_field": "id"}],
                       [{"stage": "length_filter", "min_words": 12},
                        {"stage": "language_id", "allowed_languages": ["en"]}],
                       tmp_path / "out"))
    by_lang = res.stats["breakdown"]["by_language"]
    assert by_lang["de"]["kept"] == 0 and by_lang["de"]["removed"] == 6
    assert by_lang["-"]["removed"] > 0  # short docstrings, removed by length_filter
    table = _languages_table((tmp_path / "out" / "README.md").read_text())
    assert table["de"][:2] == ["0", "6"]
    assert table["en"][0] == f"{by_lang['en']['kept']:,}"
    before = table["- (removed before language ID)"]
    assert before[:2] == ["0", f"{by_lang['-']['removed']:,}"]
    assert list(table)[-1] == "- (removed before language ID)"
    # the header's `language` still names only languages with kept records
    head = (tmp_path / "out" / "README.md").read_text().split("---\n")[1]
    assert "- en" in head and "- de" not in head
