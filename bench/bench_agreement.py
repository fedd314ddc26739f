"""Keep/drop agreement of datamill's heuristic suites with datatrove's, every disagreement named.

    python bench/bench_agreement.py                                # man pages + HTML docs here
    python bench/bench_agreement.py --corpus /work/corpora/100k.jsonl --limit 20000
    python bench/bench_agreement.py --config defaults              # each tool at its defaults

Peer: datatrove 0.10.1 (``GopherQualityFilter``, ``GopherRepetitionFilter``, ``C4QualityFilter``,
``FineWebQualityFilter``, their defaults) runs in a bench-only virtualenv (``--peer-python``,
as in ``bench/bench_peers.py``), never in the project's environment. datamill's scorers
(``filters/heuristics_*.py``) run here.

Sample (no ``--corpus``): every non-English man page under ``/usr/share/man`` (23 languages),
a seeded sample of English ones (``--english-man``) and every HTML page under
``/usr/share/doc``, rendered by ``bench/make_corpus.py``'s helpers (man pages keep their
lines; HTML blocks are separated by blank lines). Each document is labelled by source and
language (``man:<lang>/...``, ``html:...``).

Configuration (``--config``):

* ``matched`` (default): datatrove at its defaults, datamill set to the same reading wherever it
  has a parameter: every document English (datatrove's default language; no language column),
  C4 page rules on kept lines (datamill's default, the reference ``clean_page`` order, as
  datatrove), FineWeb ``max_dup_line_char_frac: 0.01`` (datatrove's default) and
  ``line_end_punctuation: unicode`` (datatrove's default ``stop_chars`` are its
  ``TERMINAL_PUNCTUATION`` set, not FineWeb's ``. ' " ! ?``);
* ``defaults``: datamill's stage defaults with each document's language in the ``language``
  column (as ``language_id`` would set it).

Every disagreement gets a class by a chain of variants computed in the peer process: step 0
is datatrove's own statistics (recomputed with datatrove's functions, checked against its
filter's decision), and each later step replaces one datatrove definition by datamill's (using
datamill's own helpers from ``filters/``). The class is the first step at which datatrove's
decision becomes datamill's, with the rule(s) whose verdict changed at that step. A
disagreement that no step explains (or whose step-0 recomputation differs from datatrove's
filter) is ``unexplained``. The script asserts the agreement floors and the unexplained bound
below, so it works as a check (a bench, not a CI test: it needs the peer venv).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_peers import _run
from bench_pii_precision import _call, _html_doc, _man_text
from make_corpus import DOC_ROOT, MAN_ROOT

SUITES = ("gopher_quality", "gopher_repetition", "c4_filter", "fineweb_filter")

# Floors measured on the man-page/HTML sample and on 20k of /work/corpora/100k.jsonl (matched
# configuration; bench/README.md section 20): a drop below them means a scorer changed.
FLOORS = {"gopher_quality": 0.33, "gopher_repetition": 0.88, "c4_filter": 0.98,
          "fineweb_filter": 0.93}
MAX_UNEXPLAINED = 0.005  # share of all documents, per suite

# Steps of each suite's chain (index 0 = datatrove as is). Labels name the definition that the
# step switches from datatrove's to datamill's; sources in docs/quality.md.
STEPS = {
    "gopher_quality": [
        ("datatrove", ""),
        ("G1 stop-word case", ("stop words matched case-insensitively (datatrove: exact case, "
         "'The' is not 'the')")),
        ("G2 punctuation tokens", ("punctuation-only spaCy tokens not counted as words "
         "(datatrove counts them as words without a letter)")),
        ("G3 whitespace words", ("words are whitespace words, edge punctuation stripped for "
         "lengths and stop words (datatrove: spaCy tokens)")),
        ("G4 bullet marks", ("a bullet line starts with a bullet mark and a space (datatrove: "
         "any line starting with '-' or '•', e.g. '--help')")),
        ("G5 blank lines", "line fractions over non-blank lines (datatrove: blank lines count)"),
    ],
    "gopher_repetition": [
        ("datatrove", ""),
        ("R1 paragraphs", ("paragraphs split at blank lines (whitespace-only too), stripped; "
         "characters over paragraph characters (datatrove: \\n{2,} split, over len(text))")),
        ("R2 lines", ("lines stripped, blank lines dropped; characters over line characters "
         "(datatrove: \\n+ split, indentation and whitespace-only lines kept, over len(text))")),
        ("R3 n-gram tokens", ("lower-cased whitespace words (datatrove: case-sensitive spaCy "
         "tokens, punctuation marks are tokens)")),
        ("R4 n-gram characters", ("word characters of repeated n-grams only (top n-gram seen at "
         "least twice; each word once) over word characters (datatrove: n-grams joined with "
         "spaces, a top n-gram seen once counts, greedy skip, over len(text))")),
    ],
    "c4_filter": [
        ("datatrove", ""),
        ("C1 line splitting", ("lines split at \\n only (datatrove and the reference: "
         "str.splitlines)")),
        ("C2 end marks", "end marks . ? ! \" ” (datatrove: . ? ! \" ')"),
        ("C3 citation case", "citations matched case-insensitively"),
        ("C4 sentence count", ("regex count per kept line, at least 1 (datatrove: spaCy "
         "sentencizer; the reference: NLTK Punkt)")),
    ],
    "fineweb_filter": [
        ("datatrove", ""),
        ("F1 line-end set", ("datamill's set (datatrove 0.10.1: TERMINAL_PUNCTUATION, without "
         "quotes)")),
        ("F2 stripped lines", "lines stripped (datatrove: leading and trailing whitespace kept)"),
        ("F3 short line", "fewer than 30 characters (datatrove: <= 30)"),
        ("F4 dup-char denominator", "line characters (datatrove: the text without newlines)"),
        ("F5 newline-ratio tokens", "regex word tokens (datatrove: spaCy tokens)"),
        ("F6 comparisons", ("keep when punct > 0.12, short < 0.67, dup < threshold (FineWeb "
         "paper's wording; datatrove: >=, <=, <=)")),
    ],
}
FINAL_MATCHED = "unexplained"
FINAL_DEFAULTS = "T default thresholds"  # datamill's numbers (e.g. FineWeb dup 0.1 vs 0.01)
LANGUAGE_STEP = "L per-document language"  # Stopwords ISO, segmentation, per_language, punctuation

# --------------------------------------------------------------------------- peer process

DATATROVE_AGREEMENT = r"""
import json, re, sys
from multiprocessing import Pool

root, docs_path, out_path, mode, workers = sys.argv[1:6]
sys.path.insert(0, root)
from datatrove.data import Document
from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter,
                                        GopherQualityFilter, GopherRepetitionFilter)
from datatrove.pipeline.filters import (c4_filters, fineweb_quality_filter,
                                        gopher_quality_filter, gopher_repetition_filter)
from datatrove.pipeline.filters.gopher_quality_filter import STOP_WORDS
from datatrove.pipeline.filters.gopher_repetition_filter import (find_all_duplicate,
    find_duplicates, find_top_duplicate, get_n_grams)
from datatrove.utils import text as dt_text
from datatrove.utils.text import PUNCTUATION_SET, TERMINAL_PUNCTUATION
# datamill's definitions, from its own helpers (pure Python + numpy + regex)
from filters import text_stats as dm
from filters.heuristics_c4 import CITATION, TERMINAL_PUNCT, line_sentences
from filters.heuristics_fineweb import FineWebConfig, FineWebFilter, word_token_count

_words_cache = {}
_real_split = dt_text.split_into_words

def split_words(text, language="eng"):
    # datatrove's tokenizer, memoised per document (a pure function): each filter calls it
    key = (text, language)
    if key not in _words_cache:
        _words_cache.clear()
        _words_cache[key] = _real_split(text, language)
    return _words_cache[key]

for mod in (gopher_quality_filter, gopher_repetition_filter, fineweb_quality_filter):
    mod.split_into_words = split_words

_sent_cache = {}
_real_sents = c4_filters.split_into_sentences

def split_sents(line, language="eng"):
    if line not in _sent_cache:
        _sent_cache[line] = _real_sents(line, language)
    return _sent_cache[line]

c4_filters.split_into_sentences = split_sents
STOP = set(STOP_WORDS)
GQ = GopherQualityFilter(); GR = GopherRepetitionFilter(); C4 = C4QualityFilter()
FW = FineWebQualityFilter()
DM_FW = FineWebFilter(FineWebConfig(line_end_punctuation="unicode" if mode == "matched"
                                    else "auto", language_column="language"))

def verdict(doc):
    r = doc if isinstance(doc, tuple) else (doc, None)
    return None if r[0] is True else (r[1] or "dropped")

def frac(num, den):
    return num / den if den else 0.0

def has_alpha(w):
    return any(c.isalpha() for c in w)

def gq_chain(text):
    words = split_words(text)
    n = len(words) or 1
    nonsym = [w for w in words if any(ch not in PUNCTUATION_SET for ch in w)]
    ws = text.split()
    nws = len(ws) or 1
    stripped = [w.strip(dm.PUNCT) for w in ws]
    nonempty = [s for s in stripped if s]
    raw_lines = text.splitlines()
    nl = len(raw_lines) or 1
    dm_lines = dm.lines(text)
    ndl = len(dm_lines) or 1
    hashes, ells = text.count("#"), text.count("...") + text.count("…")
    mean_nonsym = sum(map(len, nonsym)) / len(nonsym) if nonsym else float("nan")
    v = {
        "words": [len(nonsym)] * 3 + [len(ws)] * 3,
        "mean_word_length": [mean_nonsym] * 3 + [sum(map(len, nonempty)) / len(nonempty)
                                                 if nonempty else 0.0] * 3,
        "symbol_ratio": [max(hashes, ells) / n] * 3 + [max(hashes, ells) / nws] * 3,
        "bullet_lines": [frac(sum(s.lstrip().startswith(("•", "-")) for s in raw_lines), nl)] * 4
                        + [frac(sum(s.lstrip().startswith(dm.BULLETS) for s in raw_lines), nl),
                           frac(sum(s.startswith(dm.BULLETS) for s in dm_lines), ndl)],
        "ellipsis_lines": [frac(sum(s.rstrip().endswith(dm.ELLIPSES) for s in raw_lines), nl)] * 5
                          + [frac(sum(s.endswith(dm.ELLIPSES) for s in dm_lines), ndl)],
        "alpha_words": [sum(map(has_alpha, words)) / n] * 2
                       + [frac(sum(map(has_alpha, nonsym)), len(nonsym))] * 1
                       + [frac(sum(1 for w in ws if has_alpha(w)), len(ws))] * 3,
        "stop_words": [len(STOP & set(words))] + [len(STOP & {w.lower() for w in words})] * 2
                      + [len(STOP & {s.lower() for s in nonempty})] * 3,
    }
    ok = {"words": lambda x: 50 <= x <= 100000, "mean_word_length": lambda x: not (x < 3 or x > 10),
          "symbol_ratio": lambda x: x <= 0.1, "bullet_lines": lambda x: x <= 0.9,
          "ellipsis_lines": lambda x: x <= 0.3, "alpha_words": lambda x: x >= 0.8,
          "stop_words": lambda x: x >= 2}
    return [sorted(f for f in v if not ok[f](v[f][k])) for k in range(6)]

def gr_chain(text):
    L = len(text) or 1
    paras = re.split(r"\n{2,}", text.strip())
    pd, pc = find_duplicates(paras)
    dparas = dm.paragraphs(text)
    dpf, dpc = dm.duplicate_fraction(dparas)
    lines = re.split("\n+", text)
    ld, lc = find_duplicates(lines)
    dlf, dlc = dm.duplicate_fraction(dm.lines(text))
    dt_words = split_words(text)
    ws = [w.lower() for w in text.split()]
    idx = dm.NgramIndex(ws)
    top = {2: 0.2, 3: 0.18, 4: 0.16}
    dup = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}

    def top_dt(words, n):
        grams = get_n_grams(words, n)
        return find_top_duplicate(grams) / L if grams else 0.0

    v = {"dup_para_frac": [pd / len(paras)] + [dpf] * 4,
         "dup_para_char_frac": [pc / L] + [dpc] * 4,
         "dup_line_frac": [ld / len(lines)] * 2 + [dlf] * 3,
         "dup_line_char_frac": [lc / L] * 2 + [dlc] * 3}
    dm_dup = idx.dup_fractions(sorted(dup))
    for n in top:
        v[f"top_{n}gram"] = [top_dt(dt_words, n)] * 3 + [top_dt(ws, n), idx.top_fraction(n)]
    for n in dup:
        v[f"dup_{n}gram"] = ([find_all_duplicate(dt_words, n) / L] * 3
                             + [find_all_duplicate(ws, n) / L, dm_dup[n]])
    thr = {"dup_para_frac": 0.3, "dup_para_char_frac": 0.2, "dup_line_frac": 0.3,
           "dup_line_char_frac": 0.2, **{f"top_{n}gram": t for n, t in top.items()},
           **{f"dup_{n}gram": t for n, t in dup.items()}}
    return [sorted(f for f in v if v[f][k] > thr[f]) for k in range(5)]

SPLITLINES_ONLY = str.maketrans({c: " " for c in "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"})

def c4_chain(text):
    out = [verdict(C4.filter(Document(text=text, id="x")))]
    saved = (c4_filters.END_PUNCTUATION, c4_filters.CITATION_REGEX,
             c4_filters.split_into_sentences)
    text = text.translate(SPLITLINES_ONLY)
    try:
        out.append(verdict(C4.filter(Document(text=text, id="x"))))
        c4_filters.END_PUNCTUATION = TERMINAL_PUNCT
        out.append(verdict(C4.filter(Document(text=text, id="x"))))
        c4_filters.CITATION_REGEX = CITATION
        out.append(verdict(C4.filter(Document(text=text, id="x"))))
        c4_filters.split_into_sentences = lambda line, lang: [line] * line_sentences(line)
        out.append(verdict(C4.filter(Document(text=text, id="x"))))
    finally:
        (c4_filters.END_PUNCTUATION, c4_filters.CITATION_REGEX,
         c4_filters.split_into_sentences) = saved
    return [[r] if r else [] for r in out]

def fw_chain(text):
    raw = [ln for ln in text.split("\n") if ln.strip() != ""]
    st = [ln.strip() for ln in raw]
    n = len(raw) or 1
    dm_set = DM_FW.punctuation_for(None)  # as English (the per-language set: a later class)
    tp = tuple(TERMINAL_PUNCTUATION)
    punct = [frac(sum(ln.endswith(tp) for ln in raw), n),
             frac(sum(ln.endswith(dm_set) for ln in raw), n)] + [
             frac(sum(ln.endswith(dm_set) for ln in st), n)] * 5
    short = [frac(sum(len(ln) <= 30 for ln in raw), n)] * 2 + [
             frac(sum(len(ln) <= 30 for ln in st), n)] + [frac(sum(len(ln) < 30 for ln in st), n)] * 4
    nonl = len(text.replace("\n", "")) or 1
    dup = [find_duplicates(raw)[1] / nonl] * 2 + [find_duplicates(st)[1] / nonl] * 2 + [
           frac(find_duplicates(st)[1], sum(map(len, st)))] * 3
    nw = len(split_words(text)) or 1
    newline = [text.count("\n") / nw] * 5 + [text.count("\n") / (word_token_count(text) or 1)] * 2
    out = []
    for k in range(7):
        f = []
        if not raw:
            f.append("empty")
        if (punct[k] < 0.12) if k < 6 else (punct[k] <= 0.12):
            f.append("line_punct")
        if (short[k] > 0.67) if k < 6 else (short[k] >= 0.67):
            f.append("short_lines")
        if (dup[k] > 0.01) if k < 6 else (dup[k] >= 0.01):
            f.append("dup_line_chars")
        if newline[k] > 0.3:
            f.append("newline_ratio")
        out.append(f)
    return out

def one(line):
    d = json.loads(line)
    text = d["text"]
    rec = {"id": d["id"]}
    for name, filt, chain in (("gopher_quality", GQ, gq_chain),
                              ("gopher_repetition", GR, gr_chain),
                              ("fineweb_filter", FW, fw_chain)):
        reason = verdict(filt.filter(Document(text=text, id=d["id"])))
        steps = chain(text)
        rec[name] = {"reason": reason, "steps": steps}
    steps = c4_chain(text)
    rec["c4_filter"] = {"reason": steps[0][0] if steps[0] else None, "steps": steps}
    _sent_cache.clear()
    return json.dumps(rec)

if __name__ == "__main__":
    with open(docs_path) as fh, open(out_path, "w") as out:
        lines = fh.readlines()
        if int(workers) > 1:
            with Pool(int(workers)) as pool:
                for r in pool.imap(one, lines, chunksize=8):
                    out.write(r + "\n")
        else:
            for line in lines:
                out.write(one(line) + "\n")
"""


# --------------------------------------------------------------------------- sample


def _lang_of(doc_id: str) -> str:
    if doc_id.startswith("man:"):
        part = Path(doc_id[4:]).relative_to(MAN_ROOT).parts[0]
        return "en" if part.startswith("man") else part.split("_")[0]
    return "en"


def build_sample(english_man: int, seed: int, workers: int, cache: Path | None) -> list[dict]:
    if cache and cache.exists():
        with gzip.open(cache, "rt", encoding="utf-8") as f:
            return [json.loads(line) for line in f]
    files = sorted(str(p) for p in MAN_ROOT.rglob("*") if p.is_file() and not p.is_symlink())
    other = [f for f in files if not Path(f).relative_to(MAN_ROOT).parts[0].startswith("man")]
    english = sorted(set(files) - set(other))
    english = sorted(random.Random(seed).sample(english, min(english_man, len(english))))
    html = sorted(str(p) for p in DOC_ROOT.rglob("*")
                  if p.is_file() and p.name.endswith((".html", ".htm", ".html.gz")))
    jobs = [(_man_text, f) for f in other + english] + [(_html_doc, f) for f in html]
    print(f"rendering {len(other):,} non-English + {len(english):,} English man pages and "
          f"{len(html):,} HTML pages ...", file=sys.stderr)
    with ProcessPoolExecutor(workers) as ex:
        docs = [{"id": d[0], "text": d[1], "lang": _lang_of(d[0])}
                for d in ex.map(_call, jobs, chunksize=16) if d and d[1].strip()]
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(cache, "wt", encoding="utf-8") as f:
            for d in docs:
                f.write(json.dumps(d, ensure_ascii=False) + "\n")
    return docs


def read_corpus(path: str, limit: int) -> list[dict]:
    docs = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            docs.append({"id": str(d["id"]), "text": d["text"], "lang": d.get("lang") or "en"})
            if len(docs) >= limit:
                break
    return docs


# --------------------------------------------------------------------------- datamill


def datamill_decisions(docs: list[dict], config: str) -> dict[str, list[str | None]]:
    """Drop reason (None = kept) of each datamill suite per document; with ``defaults``
    also the decisions with every document English (``<suite>@en``)."""
    from filters.heuristics_c4 import C4Config, C4Filter
    from filters.heuristics_fineweb import FineWebConfig, FineWebFilter
    from filters.heuristics_gopher import GopherQuality, GopherRepetition

    def suites(lang_col):
        fw = (FineWebConfig(line_end_punctuation="unicode", max_dup_line_char_frac=0.01,
                            language_column=lang_col) if config == "matched"
              else FineWebConfig(language_column=lang_col))
        return {"gopher_quality": GopherQuality(language_column=lang_col),
                "gopher_repetition": GopherRepetition(language_column=lang_col),
                "c4_filter": C4Filter(C4Config(language_column=lang_col, rewrite_lines=False)),
                "fineweb_filter": FineWebFilter(fw)}

    runs = {"": suites(None)}
    if config == "defaults":
        runs["@lang"] = suites("language")
    recs = [{"id": d["id"], "text": d["text"], "language": d["lang"]} for d in docs]
    out: dict[str, list[str | None]] = {}
    for tag, ss in runs.items():
        for name, s in ss.items():
            out[name + tag] = [s.process(r).drop for r in recs]
    return out


# --------------------------------------------------------------------------- classes


def _family(rule: str) -> str:
    """n-gram rules of every size as one family (``dup_7gram`` -> ``dup_ngram``)."""
    for kind in ("top", "dup"):
        if rule.startswith(kind + "_") and rule.endswith("gram") and rule[len(kind) + 1:-4].isdigit():
            return f"{kind}_ngram"
    return rule


def classify(suite: str, peer: dict, dm_en_drop: bool, config: str) -> str:
    """The class of one disagreement (see the module docstring). ``dm_en_drop``: datamill's
    decision with every document English (the decision itself in ``matched``)."""
    steps = peer["steps"]
    dt_drop = peer["reason"] is not None
    if bool(steps[0]) != dt_drop:
        return "unexplained: datatrove's statistics not reproduced"
    if dm_en_drop == dt_drop:  # defaults: datamill as English agrees, its languages do not
        return LANGUAGE_STEP
    labels = STEPS[suite]
    for k in range(1, len(steps)):
        if bool(steps[k]) == dm_en_drop:
            changed = sorted({_family(r) for r in set(steps[k]) ^ set(steps[k - 1])})
            return f"{labels[k][0]} [{', '.join(changed)}]"
    return FINAL_DEFAULTS if config == "defaults" else FINAL_MATCHED


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", help="JSONL ({id, text, lang}); default: the man/HTML sample")
    ap.add_argument("--limit", type=int, default=20_000, help="first N documents of --corpus")
    ap.add_argument("--english-man", type=int, default=1000,
                    help="English man pages sampled (all non-English ones are used)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir())
                    / "datamill-agreement-sample.jsonl.gz", help="rendered sample cache")
    ap.add_argument("--config", choices=("matched", "defaults"), default="matched")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--peer-python", default="/work/bench-venv-perf/bin/python",
                    help="bench-only venv with datatrove==0.10.1, spaCy and pyarrow")
    ap.add_argument("--examples", type=int, default=1, help="example ids per class")
    ap.add_argument("--no-check", dest="check", action="store_false",
                    help="report only, no assertion of the floors")
    a = ap.parse_args()

    t0 = time.perf_counter()
    docs = (read_corpus(a.corpus, a.limit) if a.corpus
            else build_sample(a.english_man, a.seed, a.workers, a.cache))
    langs = Counter(d["lang"] for d in docs)
    what = a.corpus or "man pages + HTML docs installed here"
    print(f"{len(docs):,} documents ({what}); {len(langs)} languages: "
          f"{', '.join(f'{k} {v}' for k, v in langs.most_common())}; config {a.config}; "
          f"load {os.getloadavg()[0]:.1f}", flush=True)

    t1 = time.perf_counter()
    dm = datamill_decisions(docs, a.config)
    t_dm = time.perf_counter() - t1
    with tempfile.TemporaryDirectory(prefix="datamill-agree-") as work:
        path, out = Path(work) / "docs.jsonl", Path(work) / "peer.jsonl"
        with open(path, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(d, ensure_ascii=False) + "\n" for d in docs)
        script = Path(work) / "peer.py"
        script.write_text(DATATROVE_AGREEMENT)
        t1 = time.perf_counter()
        _run([a.peer_python, str(script), str(ROOT), str(path), str(out), a.config,
              str(a.workers)], cwd=work)
        t_dt = time.perf_counter() - t1
        peer = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [p["id"] for p in peer] == [d["id"] for d in docs]
    print(f"datamill {t_dm:.1f} s (1 process), datatrove + variant chains {t_dt:.1f} s "
          f"({a.workers} processes); load {os.getloadavg()[0]:.1f}", flush=True)

    print("\nclasses: the first step that turns datatrove's decision into datamill's [rules whose "
          "verdict changed at that step]")
    for suite in SUITES:
        for key, text in STEPS[suite][1:]:
            print(f"  {key}: {text}")
    failures = []
    n = len(docs)
    for suite in SUITES:
        lang_tag = "@lang" if a.config == "defaults" else ""
        dm_drops = dm[suite + lang_tag]
        dm_en = dm[suite]
        classes: Counter = Counter()
        examples: dict[str, list[str]] = defaultdict(list)
        agree = 0
        dir_counts = Counter()
        for d, p, dm_r, dm_en_r in zip(docs, peer, dm_drops, dm_en):
            pr = p[suite]
            dt_drop = pr["reason"] is not None
            if dt_drop == (dm_r is not None):
                agree += 1
                continue
            dir_counts["datatrove drops, datamill keeps" if dt_drop
                       else "datamill drops, datatrove keeps"] += 1
            c = classify(suite, pr, dm_en_r is not None, a.config)
            classes[c] += 1
            if len(examples[c]) < a.examples:
                examples[c].append(f"{d['id']} (dt: {pr['reason']}; dm: {dm_r})")
        # step 0 must reproduce datatrove's filter on every document, not only disagreements
        not_reproduced = sum(1 for p in peer
                             if bool(p[suite]["steps"][0]) != (p[suite]["reason"] is not None))
        kept_dt = sum(1 for p in peer if p[suite]["reason"] is None)
        kept_dm = sum(1 for r in dm_drops if r is None)
        print(f"\n### {suite}: {agree / n:.1%} agreement on {n:,} docs (kept: datatrove "
              f"{kept_dt:,}, datamill {kept_dm:,}; {'; '.join(f'{k} {v:,}' for k, v in dir_counts.items())}; datatrove's decision "
              f"not reproduced by step 0 on {not_reproduced} docs)")
        print("| class | docs | % of docs | example |\n|---|---:|---:|---|")
        unexplained = 0
        for c, cnt in classes.most_common():
            if c.startswith("unexplained"):
                unexplained += cnt
            print(f"| {c} | {cnt:,} | {cnt / n:.1%} | {'; '.join(examples[c])} |")
        if not any(c.startswith("unexplained") for c in classes):
            print("| unexplained | 0 | 0.0% | |")
        if a.check and a.config == "matched":
            if agree / n < FLOORS[suite]:
                failures.append(f"{suite}: agreement {agree / n:.1%} < floor {FLOORS[suite]:.0%}")
            if unexplained / n > MAX_UNEXPLAINED:
                failures.append(f"{suite}: unexplained {unexplained / n:.2%} > "
                                f"{MAX_UNEXPLAINED:.1%}")
    print(f"\nwall {time.perf_counter() - t0:.1f} s; load {os.getloadavg()[0]:.1f}")
    assert not failures, "; ".join(failures)


if __name__ == "__main__":
    main()
