"""Word segmentation per language, offline, for the quality rules.

Languages written with spaces use whitespace tokens (``str.split``, as the Gopher rules).
Languages written without spaces between words are segmented:

* ``zh``: jieba's dictionary segmenter via ``rjieba`` (the Rust port; dictionary compiled in);
* ``th``: PyThaiNLP's ``newmm`` dictionary segmenter (dictionary shipped in the package);
* ``ja``, ``lo``, ``km``, ``my``, ``bo`` (and zh/th when their package is missing):
  character fallback -- every character of a script written without spaces (Han, Hiragana,
  Katakana, Thai, Lao, Khmer, Myanmar, Tibetan) is one token, other runs stay whole. This is
  the unigram approximation used for CJK by many pipelines; word-length rules then measure
  characters, so their thresholds must be set per language (see ``docs/quality.md``).

Punctuation-only tokens produced by a segmenter are attached to the previous token, so that
``北京。`` counts like ``Beijing.`` does after whitespace splitting.
"""

from __future__ import annotations

from functools import lru_cache

import regex

from filters.stopwords import base_language

SPACELESS = frozenset({"zh", "ja", "th", "lo", "km", "my", "bo"})
_SPACELESS_CHAR = (r"\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}"
                   r"\p{Tibetan}")
_CHAR_TOKENS = regex.compile(rf"[{_SPACELESS_CHAR}]|[^\s{_SPACELESS_CHAR}]+")
_PUNCT_ONLY = regex.compile(r"^[\p{P}\p{S}]+$")


@lru_cache(maxsize=1)
def _rjieba():
    try:
        import rjieba
    except ImportError:
        return None
    return rjieba.cut


@lru_cache(maxsize=1)
def _thai():
    try:
        from pythainlp.tokenize import word_tokenize
    except ImportError:
        return None
    return lambda s: word_tokenize(s, engine="newmm", keep_whitespace=False)


def segmenter_name(lang: str | None) -> str:
    base = base_language(lang)
    if base == "zh" and _rjieba() is not None:
        return "jieba"
    if base == "th" and _thai() is not None:
        return "pythainlp-newmm"
    if base in SPACELESS:
        return "characters"
    return "whitespace"


def _attach_punct(tokens) -> list[str]:
    out: list[str] = []
    for t in tokens:
        if not t or t.isspace():
            continue
        if out and _PUNCT_ONLY.match(t):
            out[-1] += t
        else:
            out.append(t)
    return out


def char_tokens(text: str) -> list[str]:
    return _attach_punct(_CHAR_TOKENS.findall(text))


def words(text: str, lang: str | None = None) -> list[str]:
    """Word tokens of ``text`` for language ``lang`` (whitespace tokens when unknown)."""
    name = segmenter_name(lang)
    if name == "whitespace":
        return text.split()
    if name == "jieba":
        return _attach_punct(_rjieba()(text))
    if name == "pythainlp-newmm":
        return _attach_punct(_thai()(text))
    return char_tokens(text)


@lru_cache(maxsize=1)
def sentence_terminals() -> tuple[str, ...]:
    """Every character with the Unicode Sentence_Terminal property (. ! ? 。 ！ ？ । ...)."""
    import sys

    sterm = regex.compile(r"\p{Sentence_Terminal}")
    return tuple(sorted(chr(c) for c in range(sys.maxunicode + 1) if sterm.match(chr(c))))
