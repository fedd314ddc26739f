"""URL blocklists: blocked domains (with their subdomains) and blocked URL substrings.

Plain Python. Lists are text files, one entry per line; blank lines and lines starting with
``#`` are ignored; entries are compared case-insensitively. A domain entry ``example.com``
blocks ``example.com`` and every subdomain (``www.example.com``, ``a.b.example.com``) but not
``notexample.com``. A substring entry blocks every URL containing it (e.g. ``/wp-login``).
Hosts are normalised by ``urllib.parse`` (port, user info and a trailing dot removed; IDNA
hosts compared in the form the URL gives).

Reasons, checked in this order: ``url_missing`` (no URL and ``missing: remove``),
``url_unparsable`` (no host), ``url_blocked_domain``, ``url_blocked_substring``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

from filters.base import Decision, Record, RecordScorer


def read_list(path: str | Path) -> list[str]:
    """Entries of a blocklist file (lower case, stripped, without comments and blanks)."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        entry = line.strip()
        if entry and not entry.startswith("#"):
            out.append(entry.lower())
    return out


def url_host(url: str) -> str | None:
    """Lower-case host of ``url`` (``None`` when it has none or cannot be parsed)."""
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        return None
    return host.rstrip(".") if host else None


class UrlBlocklist(RecordScorer):
    columns: ClassVar[dict[str, str]] = {"url_block_match": "string"}

    def __init__(self, domains: Iterable[str] = (), substrings: Iterable[str] = (),
                 url_column: str = "url", missing: str = "keep"):
        self.domains = frozenset(d.lower().strip(".") for d in domains if d.strip("."))
        self.substrings = tuple(sorted({s.lower() for s in substrings if s}))
        self.url_column = url_column
        self.missing = missing

    def blocked_domain(self, host: str) -> str | None:
        """The blocklist entry that ``host`` equals or is a subdomain of, if any."""
        parts = host.split(".")
        for i in range(len(parts)):
            cand = ".".join(parts[i:])
            if cand in self.domains:
                return cand
        return None

    def check(self, url: str | None) -> tuple[str | None, str | None]:
        """(drop reason or None, matching entry or None)."""
        if not url:
            return ("url_missing" if self.missing == "remove" else None), None
        host = url_host(url)
        if host is None:
            return "url_unparsable", None
        hit = self.blocked_domain(host)
        if hit is not None:
            return "url_blocked_domain", hit
        low = url.lower()
        for s in self.substrings:
            if s in low:
                return "url_blocked_substring", s
        return None, None

    def process(self, record: Record) -> Decision:
        url = record.get(self.url_column)
        if url is not None and not isinstance(url, str):
            raise TypeError(f"column {self.url_column!r} must be a string, got "
                            f"{type(url).__name__}")
        reason, hit = self.check(url)
        return Decision(reason, {"url_block_match": hit})
