"""Scale corpora from real text on this machine, with planted exact and near duplicates.

    python bench/make_corpus.py --docs 20000 100000 300000 1000000 --out /work/corpora

Text pool (built once, cached in ``<out>/_pool.jsonl.gz``; sorted file lists, so the pool
depends only on what is installed):

* man pages in every language under ``/usr/share/man`` rendered with
  ``groff -k -t -man -Tutf8`` (all non-English pages, plus a seeded sample of English ones,
  ``--max-man`` in total);
* HTML documentation under ``/usr/share/doc`` (and ``--html-dir``) stripped to text with the
  stdlib ``html.parser``;
* docstrings of the Python standard library, read with ``ast`` (nothing is imported).

Each source text is cut into paragraph *pieces* (blank-line separated, long paragraphs split
into <= 120-word pieces, pieces under 8 words dropped).

Documents: an *original* is 150-600 words (uniform): a run of consecutive pieces from one
random source (about 60 % of the words), topped up with random pieces from anywhere, the last
piece cut to the target length. Originals are regenerated from ``(seed, slot)``, so nothing is
held in memory. A slot is, independently with the given probabilities:

* ``exact``: a byte-identical copy of a random original;
* ``near``: an edited copy of a random original, or (``--chain-frac``) of an earlier near copy,
  with one edit kind: ``words`` (each word independently substituted / deleted / followed by an
  inserted word with total probability ``rate``, rate from ``--edit-rates``), ``drop_piece`` (one
  paragraph removed), ``append`` (a boilerplate paragraph appended) or ``reformat`` (line breaks
  and letter case changed: identical after normalization);
* ``hot``: an exact or lightly edited (rate 0.01) copy of one of ``--hot-docs`` popular originals
  (hundreds of copies each: exercises hot LSH buckets);
* otherwise ``orig``.

Outputs, per size N (``<out>/<name>.jsonl`` with name 20k/100k/300k/1m or the number):

* ``<name>.jsonl``: ``{"id", "text", "lang"}`` per line (ids ``s<N>-<slot>``, slot order);
* ``<name>.truth.jsonl``: per slot ``{"id", "kind", "group", "parent", "edit", "rate"}`` where
  ``group`` is the id of the original the slot derives from (itself for an original) and
  ``parent`` the slot it was copied from: the planted duplicate groups;
* ``<name>.manifest.json``: parameters, pool fingerprint, counts per kind, sha256 of the JSONL.

The same ``--seed`` and pool give byte-identical files. Exact pair truth for recall/precision is
computed separately (``bench/bench_scale.py truth``) by brute force over a sample, because
recombined originals can also overlap by chance.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import hashlib
import html.parser
import json
import os
import random
import re
import subprocess
import sys
import sysconfig
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

MAN_ROOT = Path("/usr/share/man")
DOC_ROOT = Path("/usr/share/doc")
_WS = re.compile(r"\s+")
_SECTIONS = re.compile(r"^man[0-9n]$")
MIN_PIECE_WORDS, MAX_PIECE_WORDS = 8, 120
SIZE_NAMES = {20_000: "20k", 100_000: "100k", 300_000: "300k", 1_000_000: "1m"}


# --------------------------------------------------------------------------- pool


def _pieces(text: str) -> list[str]:
    out = []
    for para in re.split(r"\n\s*\n", text):
        words = _WS.sub(" ", para).strip().split(" ")
        if len(words) < MIN_PIECE_WORDS:
            continue
        for i in range(0, len(words), MAX_PIECE_WORDS):
            chunk = words[i : i + MAX_PIECE_WORDS]
            if len(chunk) >= MIN_PIECE_WORDS:
                out.append(" ".join(chunk))
    return out


def man_lines(path: str) -> list[str] | None:
    """The lines of a (gzipped) man page rendered by groff as text, running header and
    footer included; None when it cannot be read or rendered."""
    try:
        raw = gzip.open(path).read() if path.endswith(".gz") else Path(path).read_bytes()
        r = subprocess.run(
            ["groff", "-k", "-t", "-man", "-Tutf8", "-P-cbou", "-rLL=100n"],
            input=raw,
            capture_output=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired, EOFError, gzip.BadGzipFile):
        return None
    return r.stdout.decode("utf-8", "replace").splitlines()


def _render_man(path: str) -> tuple[str, str, list[str]] | None:
    rel = Path(path).relative_to(MAN_ROOT).parts
    lang = "en" if _SECTIONS.match(rel[0]) else rel[0]
    lines = man_lines(path)
    if lines is None:
        return None
    # drop the running header/footer lines (page name and date)
    if len(lines) > 4:
        lines = lines[1:-1]
    # man output indents continuation lines; paragraphs are separated by blank lines already
    pieces = _pieces("\n".join(ln.strip() for ln in lines))
    return (f"man:{'/'.join(rel)}", lang, pieces) if pieces else None


class _HTMLText(html.parser.HTMLParser):
    BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "dt", "dd",
             "table", "section", "blockquote", "ul", "ol"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skip:
            self._skip -= 1
        elif tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def html_file_text(path: str) -> str | None:
    """The text of a (gzipped) HTML file, blocks separated by blank lines, scripts and
    styles dropped; None when it cannot be read or parsed."""
    try:
        raw = Path(path).read_bytes()
        if path.endswith(".gz"):
            raw = gzip.decompress(raw)
        p = _HTMLText()
        p.feed(raw.decode("utf-8", "replace"))
        p.close()
    except (OSError, EOFError, gzip.BadGzipFile, AssertionError):
        return None
    return "".join(p.parts)


def _html_text(path: str) -> tuple[str, str, list[str]] | None:
    text = html_file_text(path)
    if text is None:
        return None
    pieces = _pieces(text)
    return (f"html:{path}", "en", pieces) if pieces else None


def _docstrings(path: str) -> tuple[str, str, list[str]] | None:
    try:
        tree = ast.parse(Path(path).read_text("utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None
    docs = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            d = ast.get_docstring(node)
            if d:
                docs.append(d)
    pieces = _pieces("\n\n".join(docs))
    return (f"pydoc:{path}", "en", pieces) if pieces else None


def _man_files(max_man: int, seed: int) -> list[str]:
    files = sorted(str(p) for p in MAN_ROOT.rglob("*") if p.is_file() and not p.is_symlink())
    other = [f for f in files if not _SECTIONS.match(Path(f).relative_to(MAN_ROOT).parts[0])]
    english = [f for f in files if f not in set(other)]
    rng = random.Random(f"man:{seed}")
    n_en = max(0, max_man - len(other))
    return sorted(other[:max_man] + rng.sample(english, min(n_en, len(english))))


def build_pool(out: Path, max_man: int, seed: int, workers: int, html_dirs: list[Path]):
    """Render the text pool (cached). Returns the list of (name, lang, pieces)."""
    cache = out / f"_pool-man{max_man}-s{seed}.jsonl.gz"
    if cache.exists():
        with gzip.open(cache, "rt", encoding="utf-8") as f:
            return [tuple(json.loads(line)) for line in f]
    t0 = time.time()
    man = _man_files(max_man, seed)
    html_files = sorted(
        str(p) for d in [DOC_ROOT, *html_dirs] if d.exists() for p in d.rglob("*")
        if p.is_file() and p.name.endswith((".html", ".htm", ".html.gz"))
    )
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    py_files = sorted(
        str(p) for p in stdlib.rglob("*.py")
        if "site-packages" not in p.parts and "test" not in p.parts and "tests" not in p.parts
    )
    jobs = [(_render_man, f) for f in man] + [(_html_text, f) for f in html_files]
    jobs += [(_docstrings, f) for f in py_files]
    print(f"pool: {len(man)} man pages, {len(html_files)} html, {len(py_files)} py files",
          file=sys.stderr)
    with ProcessPoolExecutor(workers) as ex:
        results = list(ex.map(_call, jobs, chunksize=16))
    pool = [r for r in results if r]
    tmp = cache.with_suffix(".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as f:
        for r in pool:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, cache)
    print(f"pool built in {time.time() - t0:.0f}s: {len(pool)} texts", file=sys.stderr)
    return pool


def _call(job):
    fn, arg = job
    return fn(arg)


# --------------------------------------------------------------------------- documents


class Generator:
    def __init__(self, pool, seed: int):
        self.seed = seed
        self.pieces: list[str] = []
        self.lens: list[int] = []
        self.src_start: list[int] = []  # first piece index of the source of each piece
        self.src_end: list[int] = []
        self.src_lang: list[str] = []
        self.piece_src: list[int] = []
        for si, (_, lang, pcs) in enumerate(pool):
            s = len(self.pieces)
            self.pieces.extend(pcs)
            self.lens.extend(len(p.split(" ")) for p in pcs)
            self.src_start.append(s)
            self.src_end.append(len(self.pieces))
            self.src_lang.append(lang)
            self.piece_src.extend([si] * len(pcs))
        words = []
        rng = random.Random(f"vocab:{seed}")
        for i in rng.sample(range(len(self.pieces)), min(2000, len(self.pieces))):
            words.extend(self.pieces[i].split(" "))
        self.vocab = sorted(set(words))
        self.boiler = [self.pieces[i] for i in rng.sample(range(len(self.pieces)), 50)]
        digest = hashlib.sha256()
        for p in self.pieces:
            digest.update(p.encode())
            digest.update(b"\0")
        self.fingerprint = digest.hexdigest()[:16]

    def original(self, slot: int) -> tuple[list[str], str]:
        """Pieces (paragraphs) of original ``slot`` and its language."""
        rng = random.Random(f"orig:{self.seed}:{slot}")
        target = rng.randint(150, 600)
        first = rng.randrange(len(self.pieces))
        src = self.piece_src[first]
        out, n = [], 0
        i = first
        while n < 0.6 * target and i < self.src_end[src]:
            out.append(self.pieces[i])
            n += self.lens[i]
            i += 1
        while n < target:
            j = rng.randrange(len(self.pieces))
            out.append(self.pieces[j])
            n += self.lens[j]
        extra = n - target
        if extra:
            last = out[-1].split(" ")
            keep = len(last) - extra
            if keep > 0:
                out[-1] = " ".join(last[:keep])
            else:
                out.pop()
        return out, self.src_lang[src]

    def edit(self, pieces: list[str], kind: str, rate: float, rng: random.Random) -> list[str]:
        if kind == "words":
            new = []
            for p in pieces:
                ws = []
                for w in p.split(" "):
                    u = rng.random()
                    if u >= rate:
                        ws.append(w)
                    elif u < rate / 3:
                        ws.append(rng.choice(self.vocab))  # substitute
                    elif u < 2 * rate / 3:
                        pass  # delete
                    else:
                        ws.extend((w, rng.choice(self.vocab)))  # insert after
                if ws:
                    new.append(" ".join(ws))
            return new or pieces
        if kind == "drop_piece" and len(pieces) > 2:
            k = rng.randrange(len(pieces))
            return pieces[:k] + pieces[k + 1 :]
        if kind == "append":
            return pieces + [rng.choice(self.boiler)]
        if kind == "reformat":
            out = []
            for p in pieces:
                ws = p.split(" ")
                lines, cur = [], []
                for w in ws:
                    cur.append(w)
                    if rng.random() < 0.1:
                        lines.append(" ".join(cur))
                        cur = []
                if cur:
                    lines.append(" ".join(cur))
                t = "\n".join(lines)
                out.append(t.upper() if rng.random() < 0.2 else t)
            return out
        return pieces


def _doc_text(pieces: list[str]) -> str:
    return "\n\n".join(pieces)


def plan(n: int, args) -> list[tuple]:
    """Per slot: (kind, parent slot or -1, edit kind, rate). Deterministic in (seed, n)."""
    rng = random.Random(f"plan:{args.seed}:{n}")
    kinds = []
    for _ in range(n):
        u = rng.random()
        if u < args.exact_frac:
            kinds.append("exact")
        elif u < args.exact_frac + args.near_frac:
            kinds.append("near")
        elif u < args.exact_frac + args.near_frac + args.hot_frac:
            kinds.append("hot")
        else:
            kinds.append("orig")
    origs = [i for i, k in enumerate(kinds) if k == "orig"]
    hot = rng.sample(origs, min(args.hot_docs, len(origs))) if args.hot_frac > 0 else []
    out: list[tuple] = []
    near_so_far: list[int] = []
    edit_kinds = ["words"] * 6 + ["drop_piece", "append", "reformat"]
    for i, k in enumerate(kinds):
        if k == "orig":
            out.append(("orig", -1, "", 0.0))
        elif k == "exact":
            out.append(("exact", rng.choice(origs), "", 0.0))
        elif k == "hot":
            light = rng.random() < 0.5
            out.append(("hot", rng.choice(hot), "words" if light else "", 0.01 if light else 0.0))
        else:
            if near_so_far and rng.random() < args.chain_frac:
                parent = rng.choice(near_so_far)
            else:
                parent = rng.choice(origs)
            ek = rng.choice(edit_kinds)
            rate = rng.choice(args.edit_rates) if ek == "words" else 0.0
            out.append(("near", parent, ek, rate))
            near_so_far.append(i)
    return out


def write_corpus(gen: Generator, n: int, args, out: Path) -> dict:
    name = SIZE_NAMES.get(n, str(n))
    slots = plan(n, args)
    t0 = time.time()
    path, truth_path = out / f"{name}.jsonl", out / f"{name}.truth.jsonl"
    tmp, ttmp = path.with_suffix(".tmp"), truth_path.with_suffix(".tmp")
    sha = hashlib.sha256()
    counts: dict[str, int] = {}
    words = 0
    cache: dict[int, tuple[list[str], str]] = {}  # near copies that are parents of chains
    chained = {p for k, p, _, _ in slots if k == "near" and slots[p][0] == "near"}

    def pieces_of(slot: int) -> tuple[list[str], str]:
        kind, parent, ek, rate = slots[slot]
        if kind == "orig":
            return gen.original(slot)
        if slot in cache:
            return cache[slot]
        base, lang = pieces_of(parent)
        if ek:
            base = gen.edit(base, ek, rate, random.Random(f"edit:{args.seed}:{n}:{slot}"))
        if slot in chained:
            cache[slot] = (base, lang)
        return base, lang

    def group_of(slot: int) -> int:
        while slots[slot][0] != "orig":
            slot = slots[slot][1]
        return slot

    width = len(str(n - 1))
    with open(tmp, "w", encoding="utf-8") as f, open(ttmp, "w", encoding="utf-8") as tf:
        for i in range(n):
            pcs, lang = pieces_of(i)
            text = _doc_text(pcs)
            rid = f"s{name}-{i:0{width}d}"
            line = json.dumps({"id": rid, "text": text, "lang": lang}, ensure_ascii=False) + "\n"
            f.write(line)
            sha.update(line.encode())
            kind, parent, ek, rate = slots[i]
            tf.write(json.dumps({
                "id": rid, "kind": kind,
                "group": f"s{name}-{group_of(i):0{width}d}",
                "parent": None if parent < 0 else f"s{name}-{parent:0{width}d}",
                "edit": ek or None, "rate": rate,
            }) + "\n")
            counts[kind] = counts.get(kind, 0) + 1
            words += len(text.split())
    os.replace(tmp, path)
    os.replace(ttmp, truth_path)
    manifest = {
        "docs": n, "file": str(path), "truth": str(truth_path), "sha256": sha.hexdigest(),
        "bytes": path.stat().st_size, "words": words, "kinds": counts,
        "seed": args.seed, "pool_fingerprint": gen.fingerprint, "pool_pieces": len(gen.pieces),
        "params": {k: getattr(args, k) for k in
                   ("exact_frac", "near_frac", "hot_frac", "hot_docs", "chain_frac",
                    "edit_rates", "max_man")},
        "seconds": round(time.time() - t0, 1),
    }
    (out / f"{name}.manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, nargs="+", default=[20_000, 100_000, 300_000, 1_000_000])
    ap.add_argument("--out", type=Path, default=Path("/work/corpora"))
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--max-man", type=int, default=5000, help="man pages rendered into the pool")
    ap.add_argument("--html-dir", type=Path, action="append", default=[])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--exact-frac", type=float, default=0.05)
    ap.add_argument("--near-frac", type=float, default=0.10)
    ap.add_argument("--hot-frac", type=float, default=0.005)
    ap.add_argument("--hot-docs", type=int, default=5)
    ap.add_argument("--chain-frac", type=float, default=0.2)
    ap.add_argument("--edit-rates", type=float, nargs="+",
                    default=[0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2])
    args = ap.parse_args(argv)
    if args.exact_frac + args.near_frac + args.hot_frac >= 1:
        ap.error("--exact-frac + --near-frac + --hot-frac must be < 1")
    args.out.mkdir(parents=True, exist_ok=True)
    pool = build_pool(args.out, args.max_man, args.seed, args.workers, args.html_dir)
    gen = Generator(pool, args.seed)
    for n in sorted(args.docs):
        m = write_corpus(gen, n, args, args.out)
        print(json.dumps({k: m[k] for k in ("docs", "file", "bytes", "words", "kinds",
                                            "seconds")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
