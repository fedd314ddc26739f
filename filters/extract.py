"""HTML -> main text, plain Python (no Beam): decoding, language hints and the extractors.

Two well-kept extractors are supported, chosen per source (``extractor`` in the config):

* ``resiliparse`` (default): ``resiliparse.extract.html2text.extract_plain_text`` with
  ``main_content=True`` (Bevendorff et al.'s Resiliparse, the extractor of the OWT/ChatNoir
  pipelines; C++ HTML parser, fast).
* ``trafilatura``: ``trafilatura.extract`` (Barbaresi 2021), the extractor used by RefinedWeb
  and FineWeb; slower, more aggressive boilerplate removal.

Decoding is strict and never guesses silently over a declared charset: a charset declared by
the HTTP ``Content-Type`` header (or, failing that, a ``<meta charset>`` in the first 4 KiB)
must decode the whole body, otherwise the page is :class:`Undecodable`. Without a declaration
the body must be valid UTF-8, or valid in the encoding ``uchardet`` detects (via Resiliparse).
An unknown charset *name* counts as no declaration.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable

EXTRACTORS = ("resiliparse", "trafilatura")
HTML_CONTENT_TYPES = ("text/html", "application/xhtml+xml")

_META_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{1,40})""", re.IGNORECASE
)
_HTML_LANG = re.compile(r"""<html\b[^>]*?\blang\s*=\s*["']?\s*([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*)""",
                        re.IGNORECASE)


class Undecodable(ValueError):
    """The body cannot be decoded to text (reason in the message)."""


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name.strip().strip("\"'")).name
    except LookupError:
        return None


def meta_charset(body: bytes) -> str | None:
    """Charset named by a ``<meta charset=...>`` / ``http-equiv`` tag in the first 4 KiB."""
    m = _META_CHARSET.search(body[:4096])
    return m.group(1).decode("ascii") if m else None


def decode_html(body: bytes, declared: str | None = None) -> tuple[str, str]:
    """(text, codec used). Raises :class:`Undecodable` (see the module docstring)."""
    codec = _codec(declared) or _codec(meta_charset(body))
    if codec is not None:
        try:
            return body.decode(codec), codec
        except UnicodeDecodeError as err:
            raise Undecodable(
                f"declared charset {codec} fails at byte {err.start}: {err.reason}") from None
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as utf_err:
        from resiliparse.parse.encoding import detect_encoding

        guess = _codec(detect_encoding(body))
        if guess is not None and guess != "utf-8":
            try:
                return body.decode(guess), guess
            except UnicodeDecodeError:
                pass
        raise Undecodable(
            f"no charset declared, not UTF-8 (byte {utf_err.start}) and not {guess}") from None


def html_lang(html: str) -> str | None:
    """The ``lang`` attribute of the ``<html>`` element (e.g. ``en-GB``), if any."""
    m = _HTML_LANG.search(html[:8192])
    return m.group(1).replace("_", "-") if m else None


def mime_type(content_type: str | None) -> str | None:
    """``text/html; charset=utf-8`` -> ``text/html`` (lower case); None when absent."""
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def header_charset(content_type: str | None) -> str | None:
    if not content_type:
        return None
    m = re.search(r"charset\s*=\s*[\"']?([^\s;\"']+)", content_type, re.IGNORECASE)
    return m.group(1) if m else None


def _resiliparse() -> Callable[[str], str]:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    def run(html: str) -> str:
        tree = HTMLTree.parse(html)
        return extract_plain_text(tree, preserve_formatting=True, main_content=True,
                                  list_bullets=True, alt_texts=False, links=False,
                                  form_fields=False, noscript=False, comments=False)

    return run


def _trafilatura() -> Callable[[str], str]:
    import trafilatura

    def run(html: str) -> str:
        # deduplicate=False: no state carried between documents (deterministic per page)
        out = trafilatura.extract(html, include_comments=False, include_tables=True,
                                  include_images=False, include_links=False,
                                  deduplicate=False, with_metadata=False, fast=False)
        return out or ""

    return run


def make_extractor(name: str) -> Callable[[str], str]:
    """A function html -> main text (``""`` when no main text was found)."""
    if name == "resiliparse":
        return _resiliparse()
    if name == "trafilatura":
        return _trafilatura()
    raise ValueError(f"unknown extractor {name!r}; allowed: {', '.join(EXTRACTORS)}")


def check_extractor(name: str) -> str | None:
    """None when the extractor's package imports, else an error message with the fix."""
    try:
        make_extractor(name)
    except ImportError as err:
        return (f"extractor {name!r} is not installed ({err}); "
                f"install it with: pip install 'datamill[web]'")
    return None


def clean_extracted(text: str) -> str:
    """Strip trailing spaces of lines and blank lines at the ends (not inside the text)."""
    return "\n".join(ln.rstrip() for ln in text.split("\n")).strip("\n")
