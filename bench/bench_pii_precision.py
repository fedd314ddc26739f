"""Precision of the ``pii_redact`` detectors on real technical text (issue 26, item 6).

    python bench/bench_pii_precision.py                      # every English man page + HTML docs
    git show c2ca71b:filters/pii.py > /tmp/pii_before.py     # the detectors before issue 26
    python bench/bench_pii_precision.py --baseline /tmp/pii_before.py --dump /tmp/pii.jsonl

Text: every English man page under ``/usr/share/man/man1``..``man8`` (``--max-man`` for a
seeded sample) rendered with ``groff -k -t -man -Tutf8`` (lines kept, running header and
footer dropped), and every HTML page under ``/usr/share/doc`` stripped to text with the
stdlib parser of ``bench/make_corpus.py``. Documentation of this kind has almost no personal
data, so nearly every match of a number-based detector is a false positive: the right text
to measure precision on.

Every ``ip`` and ``phone`` match is classified by its context, with rules that do not use the
detector's own rules:

* ``ip`` is an address when, within 100 characters, the text speaks of networking (address,
  host, server, DNS, resolver, route, subnet, socket, port, connect, remote, proxy, ping,
  ``inet``, ``IPv4``/``IPv6``, a URL...) or the match is followed by ``:port`` or
  ``/prefix``; otherwise it is counted as a false positive;
* ``phone`` is a phone number when, within 100 characters, the text speaks of calling
  (phone, tel, fax, call, contact, mobile, dial, SMS...); otherwise a false positive.

Two shapes the issue names are counted on their own: *section numbers* (a four-part dotted
number alone at the start of a line followed by ``". "`` or by one or two spaces and a word,
or after section/chapter/clause/``§``, with no networking context) redacted as ``ip``, and
*plain integers* (a run of digits with no separator or ``+``) redacted as ``phone``. The
goal is zero of both.
``--dump`` writes every ip/phone match with its context and class (JSONL) for a manual
audit. E-mail matches are counted only (not changed by issue 26).
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import random
import re
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_corpus import DOC_ROOT, MAN_ROOT, html_file_text, man_lines

_NET = re.compile(
    r"(?<![a-z])(?:ips?|ipv4|ipv6|inet6?|address(?:es)?|addrs?|hosts?|hostname|servers?|dns|"
    r"nameserver|resolver|resolv|ping|route|routes|gateway|subnet|netmask|cidr|interface|"
    r"socket|connect|listen|bind|remote|peer|proxy|firewall|iptables|nft|port|tcp|udp|"
    r"network|multicast|blocklist|client|setservers|lookup|rrdatas?|endpoints?|nfs|tunnel|"
    r"getaddrinfo|inet_\w+|routing)(?![a-z])|://"
    r"|\b[\w-]+\.(?:org|com|net|edu|gov|io)\b", re.IGNORECASE)  # a host name beside it
_CALL = re.compile(
    r"(?<![a-z])(?:phone|telephone|tel|fax|call|contact|mobile|cell|dial|sms|hotline|voice)",
    re.IGNORECASE)
_SECTION_BEFORE = re.compile(r"(?:\b(?:sections?|chapters?|clauses?)|\u00a7)\s*$", re.IGNORECASE)
_FOUR = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


def _man_text(path: str) -> tuple[str, str] | None:
    lines = man_lines(path)
    if lines is None or len(lines) <= 4:
        return None
    return f"man:{path}", "\n".join(lines[1:-1])  # running header and footer dropped


def _html_doc(path: str) -> tuple[str, str] | None:
    text = html_file_text(path)
    return None if text is None else (f"html:{path}", text)


def _call(job):
    fn, arg = job
    return fn(arg)


def load_docs(max_man: int, seed: int, workers: int, cache: Path | None) -> list[tuple[str, str]]:
    if cache and cache.exists():
        with gzip.open(cache, "rt", encoding="utf-8") as f:
            return [tuple(json.loads(line)) for line in f]
    man = sorted(str(p) for d in sorted(MAN_ROOT.glob("man[1-8]")) for p in d.iterdir()
                 if p.is_file() and not p.is_symlink())
    if max_man and max_man < len(man):
        man = sorted(random.Random(seed).sample(man, max_man))
    html = sorted(str(p) for p in DOC_ROOT.rglob("*")
                  if p.is_file() and p.name.endswith((".html", ".htm", ".html.gz")))
    jobs = [(_man_text, f) for f in man] + [(_html_doc, f) for f in html]
    print(f"rendering {len(man):,} man pages and {len(html):,} HTML pages ...", file=sys.stderr)
    with ProcessPoolExecutor(workers) as ex:
        docs = [d for d in ex.map(_call, jobs, chunksize=16) if d]
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(cache, "wt", encoding="utf-8") as f:
            for d in docs:
                f.write(json.dumps(d) + "\n")
    return docs


def _load_module(path: str):
    spec = importlib.util.spec_from_file_location(f"pii_{abs(hash(path))}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def classify(kind: str, text: str, start: int, end: int) -> str:
    ctx = text[max(0, start - 100):end + 100]
    if kind == "ip":
        if _NET.search(ctx) or re.match(r"[:/]\d", text[end:end + 2]):
            return "address"
        return "false_positive"
    if kind == "phone":
        return "phone" if _CALL.search(ctx) else "false_positive"
    return "email"


def issue_shapes(kind: str, text: str, start: int, end: int) -> str | None:
    """'section_number' / 'plain_integer' when a match has a shape the issue names."""
    match = text[start:end]
    if kind == "phone" and match.isdigit():
        return "plain_integer"
    if kind == "ip" and _FOUR.match(match):
        # a numbered heading: alone at the start of a line, then ". " or one or two spaces
        # and a word (hosts-file lines, "1.2.3.4 $ cmd" and "- 8.8.8.8" list items are not)
        line_start = text.rfind("\n", 0, start) + 1
        heading = (not text[line_start:start].strip(" \t\u00a0")
                   and re.match(r"\.(?:\s|$)| {1,2}[A-Za-z][\w’'-]*(?:[\s,]|$)",
                                text[end:end + 40]))
        if heading or _SECTION_BEFORE.search(text[max(0, start - 20):start]):
            return "section_number"
    return None


def measure(name: str, redactor, docs, dump) -> dict:
    counts: Counter = Counter()
    classes: Counter = Counter()
    shapes: Counter = Counter()
    docs_with: Counter = Counter()
    chars = 0
    t0 = time.perf_counter()
    found = []
    for doc_id, text in docs:
        chars += len(text)
        found.append((doc_id, text, redactor.find(text)))
    seconds = time.perf_counter() - t0
    for doc_id, text, spans in found:
        part = doc_id.split(":", 1)[0]
        for kind in {s.kind for s in spans}:
            docs_with[kind] += 1
        for s in spans:
            counts[(part, s.kind)] += 1
            if s.kind == "email":
                continue
            cls = classify(s.kind, text, s.start, s.end)
            classes[(s.kind, cls)] += 1
            shape = issue_shapes(s.kind, text, s.start, s.end)
            if shape == "section_number" and cls != "false_positive":
                shape = None  # an address that starts a wrapped line, with network context
            if shape:
                shapes[shape] += 1
            if dump is not None:
                dump.write(json.dumps({
                    "detector": name, "doc": doc_id, "kind": s.kind, "class": cls,
                    "shape": shape, "match": text[s.start:s.end],
                    "context": text[max(0, s.start - 80):s.end + 80]}, ensure_ascii=False) + "\n")
    return {"seconds": seconds, "mb_per_s": chars / seconds / 1e6, "counts": counts,
            "classes": classes, "shapes": shapes, "docs_with": docs_with}


def _report(name: str, r: dict) -> None:
    print(f"\n[{name}] {r['seconds']:.1f} s, {r['mb_per_s']:.2f} MB/s")
    for part in ("man", "html"):
        row = ", ".join(f"{k}: {r['counts'][(part, k)]:,}" for k in ("email", "ip", "phone"))
        print(f"  {part:5} matches  {row}")
    for kind, good in (("ip", "address"), ("phone", "phone")):
        ok, bad = r["classes"][(kind, good)], r["classes"][(kind, "false_positive")]
        prec = f"{ok / (ok + bad):.3f}" if ok + bad else "n/a (no matches)"
        print(f"  {kind:5} {good} {ok:,}, false positive {bad:,}: precision {prec}")
    print(f"  section numbers redacted as ip: {r['shapes']['section_number']:,}; "
          f"plain integers redacted as phone: {r['shapes']['plain_integer']:,}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max-man", type=int, default=0, help="seeded sample of man pages (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2, help="groff processes")
    ap.add_argument("--cache", type=Path, default=None,
                    help="JSONL.gz of rendered text, written once and reused")
    ap.add_argument("--baseline", default=None,
                    help="another filters/pii.py to compare (e.g. from git show)")
    ap.add_argument("--regions", default="US", help="phone_regions, comma-separated")
    ap.add_argument("--dump", type=Path, default=None, help="write every ip/phone match here")
    args = ap.parse_args()
    docs = load_docs(args.max_man, args.seed, args.workers, args.cache)
    n_man = sum(d.startswith("man:") for d, _ in docs)
    chars = sum(len(t) for _, t in docs)
    print(f"{len(docs):,} documents ({n_man:,} man pages, {len(docs) - n_man:,} HTML), "
          f"{chars / 1e6:.1f} M characters")
    regions = args.regions.split(",")
    dump = args.dump.open("w", encoding="utf-8") if args.dump else None
    try:
        if args.baseline:
            base = _load_module(args.baseline)
            _report("baseline " + args.baseline,
                    measure("baseline", base.PiiRedactor(phone_regions=regions), docs, dump))
        from filters.pii import PiiRedactor

        _report("current filters/pii.py",
                measure("current", PiiRedactor(phone_regions=regions), docs, dump))
    finally:
        if dump:
            dump.close()


if __name__ == "__main__":
    main()
