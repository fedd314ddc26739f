"""Token counting (filters/tokens.py) and the token_count stage, on real text."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

from filters.tokens import DEFAULT_TOKENIZER, TokenizerError, load_token_counter
from pipelines.stages.testing import run_stage

ROOT = Path(__file__).resolve().parents[1]


def _stdlib_texts() -> tuple[list[str], list[str]]:
    """(English docstrings, Python source) from the standard library."""
    import argparse
    import json as json_mod
    import textwrap

    docs, code = [], []
    for mod in (argparse, json_mod, textwrap):
        code.append(inspect.getsource(mod))
        for _name, obj in sorted(vars(mod).items()):
            d = inspect.getdoc(obj)
            if d and len(d.split()) > 20 and getattr(obj, "__module__", None) == mod.__name__:
                docs.append(d)
    return docs, code


def test_default_is_offline_cl100k_in_a_clean_process(tmp_path):
    # No hub, an empty tiktoken cache and no proxy: the vocabulary must come from the package.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TIKTOKEN_CACHE_DIR": str(tmp_path),
           "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
           "PYTHONPATH": str(ROOT)}
    code = ("from filters.tokens import load_token_counter as l; c = l(); "
            "print(c.backend, c.count_batch(['hello world', 'Hello, world!']))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    # cl100k_base: "hello"+" world"; "Hello" "," " world" "!".
    assert out.stdout.split() == ["tiktoken", "[2,", "4]"]
    # (tiktoken copies even a local vocabulary file into its cache dir; the dead proxies and
    # HF_HUB_OFFLINE are what prove nothing was fetched.)


def test_tokens_per_word_differs_by_content():
    c = load_token_counter()
    docs, code = _stdlib_texts()
    assert docs and code
    prose = sum(c.count_batch(docs)) / sum(len(d.split()) for d in docs)
    src = sum(c.count_batch(code)) / sum(len(s.split()) for s in code)
    # English prose is ~1.2-1.5 tokens per word; Python source far more (punctuation, indents).
    assert 1.0 < prose < 1.7
    assert src > prose * 1.4
    # A Chinese sentence is one whitespace "word" but many tokens.
    zh = "数据处理流程会先读取每个文件，然后检查每一行是否有效。"
    assert len(zh.split()) == 1 and c.count(zh) > 10


def test_hostile_inputs():
    c = load_token_counter(DEFAULT_TOKENIZER)
    # Special-token strings in documents are ordinary text, not a crash or a single id.
    assert c.count("<|endoftext|>") > 1
    assert c.count_batch(["", " ", "\x00\ufffd"])[0] == 0
    assert c.count_batch([]) == []
    with pytest.raises(TypeError, match="text 1 is NoneType"):
        c.count_batch(["ok", None])


def _wordlevel_tokenizer(path: Path, padded: bool) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, "[PAD]": 1, "the": 2, "data": 3, "pipeline": 4}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if padded:  # like a model's tokenizer.json: counting must ignore both
        tok.enable_padding(length=16, pad_id=1, pad_token="[PAD]")
        tok.enable_truncation(max_length=4)
    tok.save(str(path))
    return path


def test_local_tokenizer_json_file_and_directory(tmp_path):
    f = _wordlevel_tokenizer(tmp_path / "tokenizer.json", padded=True)
    by_file = load_token_counter(str(f))
    by_dir = load_token_counter(str(tmp_path))
    text = "the data pipeline, the data!"
    # Whitespace pre-tokenizer: the data pipeline , the data !  -> 7
    assert by_file.backend == "tokenizers"
    assert by_file.count(text) == by_dir.count(text) == 7
    assert by_file.count_batch(["the " * 50]) == [50]


def test_tokenizer_errors_say_what_to_do(tmp_path):
    with pytest.raises(TokenizerError, match="does not exist"):
        load_token_counter(str(tmp_path / "nope.json"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(TokenizerError, match="has no tokenizer.json"):
        load_token_counter(str(tmp_path / "empty"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(TokenizerError, match="not a valid tokenizer.json"):
        load_token_counter(str(bad))
    with pytest.raises(TokenizerError, match="unknown tiktoken encoding"):
        load_token_counter("tiktoken:no_such_encoding")


def test_hub_name_offline_fails_cleanly(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path),
           "PYTHONPATH": str(ROOT)}
    code = ("from filters.tokens import load_token_counter as l, TokenizerError\n"
            "try:\n l('someorg/some-model')\nexcept TokenizerError as e:\n print('ERR', e)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert "ERR tokenizer: cannot load 'someorg/some-model'" in out.stdout, out.stderr
    assert "tiktoken:cl100k_base" in out.stdout


def test_stage_adds_tokens_and_totals_per_source_and_language():
    docs, code = _stdlib_texts()
    recs = [{"id": f"d{i}", "text": t, "source": "docs", "language": "en"}
            for i, t in enumerate(docs[:20])]
    recs += [{"id": f"c{i}", "text": t, "source": "code", "language": "py"}
             for i, t in enumerate(code)]
    recs.append({"id": "z", "text": "数据处理流程会先读取每个文件。", "source": "docs",
                 "language": "zh"})
    res = run_stage({"stage": "token_count", "batch_size": 7}, recs,
                    columns={"id": "string", "text": "string", "source": "string",
                             "language": "string"})
    assert not res["removed"] and not res["dead"]
    c = load_token_counter()
    by_id = {r["id"]: r for r in res["kept"]}
    for r in recs:
        assert by_id[r["id"]]["tokens"] == c.count(r["text"])
    s = {k: v[0] for k, v in res["stats"].items()}
    assert s["documents"] == len(recs)
    assert s["tokens_total"] == sum(c.count(r["text"]) for r in recs)
    assert s["tokens_by_source"] == {
        src: sum(c.count(r["text"]) for r in recs if r["source"] == src)
        for src in ("docs", "code")}
    assert set(s["tokens_by_language"]) == {"en", "py", "zh"}
    assert sum(s["tokens_by_language"].values()) == s["tokens_total"]
    html = res["stage"].report_section({"stats": s, "static": {"tokenizer": "tiktoken:x"}})
    assert "tokens in" in html and "<th>language</th>" in html and "zh" in html


def test_stage_without_language_column_has_no_language_totals():
    res = run_stage({"stage": "token_count"},
                    [{"id": "a", "text": "one two three", "source": "s"}],
                    columns={"id": "string", "text": "string", "source": "string"})
    assert "tokens_by_language" not in res["stats"]
    assert res["kept"][0]["tokens"] == 3


def test_bad_tokenizer_fails_at_config_time(tmp_path):
    from pipelines.stages.registry import parse_stages

    with pytest.raises(Exception) as err:
        parse_stages([{"stage": "token_count", "tokenizer": str(tmp_path / "x.json")}])
    assert "tokenizer" in str(err.value) and "does not exist" in str(err.value)
