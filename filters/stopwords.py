"""Stop-word lists per language, offline.

* English Gopher rule: the eight words of Rae et al. 2021, A.1.1 ("the, be, to, of, and,
  that, have, with") -- the list the paper's threshold (at least 2) was set for.
* Every other language: the Stopwords ISO collection (``stopwordsiso`` package, MIT licence,
  58 languages keyed by ISO 639-1 code), shipped inside the package, nothing downloaded.

:func:`stop_list` returns ``(name, words)``; ``words`` is ``None`` when no list exists for the
language, and callers must then skip (and report) the stop-word rule rather than apply the
English list to another language.
"""

from __future__ import annotations

from functools import lru_cache

from filters.text_stats import GOPHER_STOP_WORDS

GOPHER_LIST = "gopher-en"


def base_language(code: str | None) -> str | None:
    """``en-GB`` / ``zh_Hant`` / ``EN`` -> ``en`` / ``zh`` / ``en``."""
    if not code:
        return None
    return code.replace("_", "-").split("-", 1)[0].strip().lower() or None


@lru_cache(maxsize=256)
def iso_stop_words(lang: str) -> frozenset[str] | None:
    try:
        import stopwordsiso
    except ImportError:
        return None
    if not stopwordsiso.has_lang(lang):
        return None
    words = frozenset(w.lower() for w in stopwordsiso.stopwords(lang))
    return words or None


def stop_list(lang: str | None) -> tuple[str, frozenset[str] | None]:
    """(list name for stats, stop words or None) for a language code."""
    base = base_language(lang)
    if base == "en":
        return GOPHER_LIST, GOPHER_STOP_WORDS
    if base is None:
        return "none", None
    words = iso_stop_words(base)
    return (f"stopwords-iso:{base}", words) if words else ("none", None)
