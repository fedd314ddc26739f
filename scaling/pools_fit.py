"""Fit per-pool utilities from proxy runs (``datamill fit-pools``) and write a pools YAML.

Each pool's runs follow Goyal et al. 2024's quality-quantity law (``scaling.quality_quantity``):
the loss of a model trained on ``n`` tokens drawn from ``U`` unique tokens of the pool is
``d + (a n)^b`` in the first epoch, and each later pass ``k`` uses the decayed utility
``b 0.5^(k/tau)``. For the recommender the scale ``a`` is the base law's ``B^(-1/beta)`` (so a
pool with ``b = -beta`` and no decay *is* the base law's data term) and ``d`` absorbs
``E + A/N^alpha`` of the proxy model size; ``b`` (utility, < 0, more negative = more useful)
and ``tau`` (repetition half-life, epochs) are fitted per pool, with bootstrap intervals over
the pool's runs.

Proxy-run protocol (docs/scaling.md): one small model size for every pool; per pool at least
6 runs, at 3+ token counts on the full pool (single epoch) and 3+ runs on a subsample of the
pool that repeat it (2, 4, 8 and ideally 16 epochs) -- ``tau`` is only identified from runs
that repeat data. Plain numpy/scipy; no Beam.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from typing import Any

import numpy as np

from scaling.data_constrained import MUENNIGHOFF
from scaling.quality_quantity import fit_pool, lm_scale

KIND = "datamill.pools"
_ALIASES = {"pool": ("pool",), "N": ("N", "model_size", "params"),
            "tokens": ("tokens", "D", "tokens_seen"), "unique": ("unique_tokens", "U", "unique")}


def load_pool_runs_csv(path: str, metric: str = "loss") -> list[dict[str, Any]]:
    """Rows of ``pool, model_size (or N), tokens (or D), unique_tokens (or U), <metric>``."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = set(reader.fieldnames or [])
        col = {}
        for key, names in _ALIASES.items():
            found = [n for n in names if n in fields]
            if not found:
                raise ValueError(f"{path}: needs a column {' or '.join(names)} (found "
                                 f"{sorted(fields)})")
            col[key] = found[0]
        if metric not in fields:
            raise ValueError(f"{path}: no metric column {metric!r} (found {sorted(fields)})")
        rows = []
        for i, r in enumerate(reader, start=2):
            try:
                row = {"pool": r[col["pool"]].strip(), "N": float(r[col["N"]]),
                       "tokens": float(r[col["tokens"]]), "unique": float(r[col["unique"]]),
                       "loss": float(r[metric])}
            except (TypeError, ValueError) as err:
                raise ValueError(f"{path}: line {i}: {err}") from None
            if not row["pool"]:
                raise ValueError(f"{path}: line {i}: empty pool name")
            if min(row["N"], row["tokens"], row["unique"]) <= 0 or not math.isfinite(row["loss"]):
                raise ValueError(f"{path}: line {i}: N, tokens and unique_tokens must be > 0 "
                                 "and the metric finite")
            rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no runs")
    return rows


def fit_pools(rows: list[dict[str, Any]], *, B: float = MUENNIGHOFF["B"],
              beta: float = MUENNIGHOFF["beta"], n_bootstrap: int = 100, level: float = 0.9,
              seed: int = 0, grid_size: int = 32) -> dict[str, Any]:
    """Fit utility ``b`` and half-life ``tau`` per pool (shared scale ``a = B^(-1/beta)``).

    Returns the pools-file mapping (see :func:`write_pools_yaml`)."""
    by_pool: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_pool[r["pool"]].append(r)
    a = lm_scale(B, beta)
    rng = np.random.default_rng(seed)
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    out = []
    for name in sorted(by_pool):
        rs = by_pool[name]
        sizes = sorted({r["N"] for r in rs})
        if len(sizes) > 1:
            raise ValueError(f"pool {name!r}: runs use {len(sizes)} model sizes {sizes}; the "
                             "protocol uses one proxy size for every pool (d absorbs its "
                             "E + A/N^alpha): fit one size at a time")
        if len(rs) < 4:
            raise ValueError(f"pool {name!r}: {len(rs)} runs; need at least 4 (see the "
                             "proxy-run protocol in docs/scaling.md)")
        n = np.array([r["tokens"] for r in rs])
        U = np.array([r["unique"] for r in rs])
        y = np.array([r["loss"] for r in rs])
        f = fit_pool(n, U, y, a=a, grid_size=grid_size)
        bs, taus = [], []
        for _ in range(n_bootstrap):
            idx = rng.integers(0, len(rs), len(rs))
            if len(set(n[idx] / U[idx])) < 3:
                continue  # too few distinct runs to fit b, tau, d
            g = fit_pool(n[idx], U[idx], y[idx], a=a, start=f)
            bs.append(g.b)
            if g.tau_identified:
                taus.append(g.tau)
        entry: dict[str, Any] = {
            "name": name, "utility": f.b, "half_life": f.tau,
            "half_life_identified": f.tau_identified, "d": f.d, "runs": len(rs),
            "model_size": sizes[0], "max_epochs_in_runs": float((n / U).max()),
            "sse": f.sse, "notes": list(f.notes)}
        if bs:
            entry["utility_ci"] = [float(v) for v in np.percentile(bs, q)]
        if len(taus) >= max(5, n_bootstrap // 4):
            entry["half_life_ci"] = [float(v) for v in np.percentile(taus, q)]
        out.append(entry)
    return {"kind": KIND, "law": {"B": B, "beta": beta, "a": a},
            "ci_level": level, "bootstrap": n_bootstrap, "pools": out}


def write_pools_yaml(data: dict[str, Any], path: str, *, source: str | None = None) -> None:
    """Write (or update) a pools file; keeps an existing ``mixture_ranking`` section."""
    import os

    import yaml

    old: dict[str, Any] = {}
    if os.path.isfile(path):
        try:
            old = yaml.safe_load(open(path, encoding="utf-8")) or {}
        except yaml.YAMLError:
            old = {}
        if old.get("kind") != KIND:
            raise ValueError(f"{path} exists and is not a pools file; choose another path")
    merged = {**old, **data}
    if source:
        merged["fitted_from"] = source
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(_plain(merged), fh, sort_keys=False)


def add_mixture_ranking(path: str, ranking: dict[str, Any], *, source: str) -> None:
    """Store a ``rank-mixtures`` result in the pools file (created if missing), where
    ``recommend`` reads it. Mixture names that are pool names joined by '+' are matched to
    the recommender's pool sets."""
    import os

    import yaml

    data: dict[str, Any] = {"kind": KIND, "pools": []}
    if os.path.isfile(path):
        data = yaml.safe_load(open(path, encoding="utf-8")) or {}
        if data.get("kind") != KIND:
            raise ValueError(f"{path} exists and is not a pools file; choose another path")
    data["mixture_ranking"] = {
        "source": source, "method": ranking.get("method"), "stability": ranking.get("stability"),
        "compute": ranking.get("compute"),
        "ranking": [{"mixture": r["mixture"], "rank": r["rank"], "score": r["score"],
                     "p_first": r.get("p_first")} for r in ranking["ranking"]]}
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(_plain(data), fh, sort_keys=False)


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
