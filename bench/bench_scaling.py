"""Timings of the Chinchilla fit (one BLAS thread vs default threads) and the recommender;
token-count throughput and tokens per word; the plan table of docs/scaling.md.

    python bench/bench_scaling.py [--csv ../shared/data/chinchilla/svg_extracted_data.csv]
    python bench/bench_scaling.py --tokens     # tokenizer throughput, batched vs one by one
    python bench/bench_scaling.py --plans      # 3 budgets x 3 pool sizes (docs/scaling.md)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import scaling.chinchilla as ch  # noqa: E402
from scaling.recommend import load_config, recommend  # noqa: E402


def timed(f, *a, **k):
    t0 = time.perf_counter()
    r = f(*a, **k)
    return time.perf_counter() - t0, r


def fits(csv: str) -> None:
    N, D, L = ch.load_chinchilla_csv(csv)
    raw = ch.fit_chinchilla.__wrapped__
    for name, fn in (("one BLAS thread (shipped)", ch.fit_chinchilla),
                     ("default BLAS threads (baseline)", raw)):
        dt, f = timed(fn, N, D, L, n_starts=64)
        print(f"fit_chinchilla n_starts=64 [{name}]: {dt:.2f} s, objective {f.objective:.7f}")
    dt, f = timed(ch.fit_chinchilla_runs, N, D, L, n_starts=None)
    print(f"besiroglu protocol, all 4500 starts: {dt:.1f} s, {f.params()}")
    dt, f = timed(ch.fit_chinchilla_runs, N, D, L, n_bootstrap=100)
    print(f"64 starts + 100 bootstrap refits: {dt:.1f} s")
    dt, _ = timed(recommend, load_config(str(ROOT / "configs/mixture_example.yaml")))
    print(f"recommend(configs/mixture_example.yaml): {dt:.2f} s")


def _texts() -> tuple[list[str], list[str]]:
    import inspect
    import pkgutil
    import importlib

    prose, code = [], []
    for m in sorted(pkgutil.iter_modules(), key=lambda m: m.name):
        if m.name.startswith("_") or m.name in ("antigravity", "this", "idlelib", "turtledemo"):
            continue
        if len(code) >= 120:
            break
        try:
            mod = importlib.import_module(m.name)
            src = inspect.getsource(mod)
        except Exception:  # noqa: BLE001 - some modules have no source or fail to import
            continue
        if getattr(mod, "__file__", "") and "site-packages" in mod.__file__:
            continue
        code.append(src)
        for _n, obj in sorted(vars(mod).items()):
            d = inspect.getdoc(obj) if getattr(obj, "__module__", None) == m.name else None
            if d and len(d.split()) > 20:
                prose.append(d)
    return prose, code


def tokens() -> None:
    from filters.tokens import load_token_counter

    c = load_token_counter()
    prose, code = _texts()
    for name, texts in (("docstrings", prose), ("python source", code)):
        n_tok = sum(c.count_batch(texts))
        n_words = sum(len(t.split()) for t in texts)
        print(f"{name}: {len(texts)} docs, {n_tok / n_words:.2f} tokens/word "
              f"(words x 1.3 off by {n_tok / (1.3 * n_words):.2f}x)")
    docs = (prose + code) * 3
    mb = sum(len(t.encode()) for t in docs) / 1e6
    for rnd in range(2):  # alternate A B A B
        t_b, _ = timed(lambda: [c.count_batch(docs[i:i + 512]) for i in range(0, len(docs), 512)])
        t_1, _ = timed(lambda: [c.count(t) for t in docs])
        print(f"round {rnd}: batched {len(docs) / t_b:,.0f} docs/s ({mb / t_b:.1f} MB/s), "
              f"one by one {len(docs) / t_1:,.0f} docs/s; ratio {t_1 / t_b:.2f}")


def plans() -> None:
    from scaling.recommend import plans_table

    print(plans_table(), end="")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv", default=str(ROOT.parent / "shared/data/chinchilla/svg_extracted_data.csv"))
    ap.add_argument("--tokens", action="store_true")
    ap.add_argument("--plans", action="store_true")
    args = ap.parse_args()
    if args.tokens:
        tokens()
    elif args.plans:
        plans()
    else:
        fits(args.csv)


if __name__ == "__main__":
    main()
