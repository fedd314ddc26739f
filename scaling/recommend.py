"""Compute-aware mixture recommender: model size, tokens, quality filter, epochs and weights.

Loss model (documented in docs/scaling.md):

    L(N, D, mixture) = E + A / N'^alpha + r_mix(D)

* ``E, A, alpha`` and the effective parameters ``N'`` come from the data-constrained law
  (Muennighoff et al. 2023): parameters beyond what the included unique tokens can feed lose
  value (``R*_N``).
* ``r_mix(D)`` is the quality-quantity data term (Goyal et al. 2024): each pool has a utility
  ``b_i`` and a repetition half-life ``tau_i``; with ``b = -beta``, ``a = B^(-1/beta)`` and no
  decay it is exactly the Chinchilla data term ``B / D^beta``. Better quality tiers get more
  negative utilities; repeated passes decay them.

Candidate strategies: every *quality threshold* (include tiers ``0..t``, tier 0 = best) times
every *upsampling factor* ``g`` (a tier ``j`` steps above the worst included one is sampled
``g^j`` times as often per unique token). For each strategy the model size is optimized for the
compute budget (``C = 6 N D``). Pure Python (numpy/scipy/pyarrow); no Beam.
"""

from __future__ import annotations

import glob
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from scipy.optimize import minimize_scalar

from scaling.chinchilla import load_chinchilla_csv
from scaling.data_constrained import MUENNIGHOFF, effective_params
from scaling.quality_quantity import Pool, calibrate_tau, lm_scale, mixture_reducible


class RecommendConfigError(ValueError):
    """A mistake in a recommender config; the message names the field, the value and the fix."""


# --------------------------------------------------------------------------- config models


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Budget(_Strict):
    flops: float | None = Field(default=None, gt=0, description="Training compute C = 6 N D.")
    gpu_hours: float | None = Field(default=None, gt=0)
    gpu_flops_per_s: float | None = Field(
        default=None, gt=0, description="Peak FLOP/s of one GPU (e.g. 9.89e14 for H100 bf16).")
    mfu: float = Field(default=0.4, gt=0, le=1, description="Model FLOPs utilization.")
    model_size: float | None = Field(default=None, gt=0, description="Fix N (parameters).")
    tokens: float | None = Field(default=None, gt=0, description="With model_size: fix D too.")

    @model_validator(mode="after")
    def _one_budget(self) -> Budget:
        has_gpu = self.gpu_hours is not None or self.gpu_flops_per_s is not None
        if has_gpu and (self.gpu_hours is None or self.gpu_flops_per_s is None):
            raise ValueError("gpu_hours and gpu_flops_per_s go together; give both")
        given = sum([self.flops is not None, self.gpu_hours is not None,
                     self.tokens is not None])
        if given != 1:
            raise ValueError("give exactly one of: flops, gpu_hours (+ gpu_flops_per_s, mfu), "
                             "tokens (+ model_size)")
        if self.tokens is not None and self.model_size is None:
            raise ValueError("tokens needs model_size (otherwise give flops)")
        return self

    def compute(self) -> float:
        if self.flops is not None:
            return float(self.flops)
        if self.gpu_hours is not None:
            return float(self.gpu_hours * 3600.0 * self.gpu_flops_per_s * self.mfu)
        return 6.0 * float(self.model_size) * float(self.tokens)


class Law(_Strict):
    """Base law; defaults are the Muennighoff et al. (2023) published fit."""

    E: float = Field(default=MUENNIGHOFF["E"], gt=0)
    A: float = Field(default=MUENNIGHOFF["A"], gt=0)
    B: float = Field(default=MUENNIGHOFF["B"], gt=0)
    alpha: float = Field(default=MUENNIGHOFF["alpha"], gt=0)
    beta: float = Field(default=MUENNIGHOFF["beta"], gt=0)
    r_star_n: float = Field(default=MUENNIGHOFF["r_star_n"], gt=0)
    r_star_d: float = Field(default=MUENNIGHOFF["r_star_d"], gt=0,
                            description="Only used to calibrate the default half-life.")
    half_life: float | None = Field(
        default=None, gt=0, description="Default repetition half-life (epochs) for pools that "
        "give none; default: calibrated so one repeated pool matches Muennighoff's R*_D.")
    quality_step: float = Field(
        default=0.02, ge=0, description="Default utility gain per quality tier: a pool k tiers "
        "above the worst tier gets b = -beta - k * quality_step (a placeholder; refit).")
    chinchilla_csv: str | None = Field(
        default=None, description="Runs CSV to fit E, A, B, alpha, beta (with bootstrap) instead "
        "of the defaults.")


class PoolSpec(_Strict):
    name: str = Field(min_length=1)
    unique_tokens: float = Field(gt=0)
    quality_tier: int = Field(ge=0, description="0 = best.")
    utility: float | None = Field(default=None, lt=0, description="b (< 0); default by tier.")
    half_life: float | None = Field(default=None, gt=0)
    utility_sd: float | None = Field(default=None, ge=0)
    files: list[str] = Field(default_factory=list)
    select: dict[str, Any] | None = None


class BucketBy(_Strict):
    column: str | None = Field(default=None, description="Score column to bucket on.")
    quantiles: list[float] | None = Field(default=None, description="Inner edges as quantiles.")
    edges: list[float] | None = Field(default=None, description="Inner edges as values.")
    higher_is_better: bool = True
    source: bool = Field(default=False, description="One pool per 'source' value instead.")
    source_tiers: dict[str, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _mode(self) -> BucketBy:
        if self.source:
            if self.column or self.quantiles or self.edges:
                raise ValueError("source: true cannot be combined with column/quantiles/edges")
            return self
        if not self.column:
            raise ValueError("give column (a score column) with quantiles or edges, "
                             "or source: true")
        if (self.quantiles is None) == (self.edges is None):
            raise ValueError("give exactly one of quantiles or edges")
        inner = self.quantiles if self.quantiles is not None else self.edges
        if not inner or any(b <= a for a, b in zip(inner, inner[1:])):
            raise ValueError(f"edges must be a non-empty increasing list (got {inner})")
        if self.quantiles is not None and not all(0 < q < 1 for q in self.quantiles):
            raise ValueError(f"quantiles must lie strictly between 0 and 1 (got {self.quantiles})")
        return self


class PoolsFromBuild(_Strict):
    dir: str = Field(description="A `datamill build` output directory (reads data/*.parquet).")
    bucket_by: BucketBy
    unique_token_multiplier: float = Field(
        default=1.0, gt=0, description="If the build is a sample of the full corpus, scale its "
        "token counts up by this factor (materialize still uses the files as they are).")


class Search(_Strict):
    n_min: float = Field(default=1e6, gt=0)
    n_max: float = Field(default=1e13, gt=0)
    n_points: int = Field(default=61, ge=5, le=2000)
    upsample_factors: list[float] = Field(default=[1.0, 1.5, 2.0, 3.0, 4.0], min_length=1)
    max_epochs: float = Field(default=64.0, gt=0)
    sweep_decades: float = Field(default=2.0, gt=0, le=6)
    sweep_points: int = Field(default=17, ge=3, le=200)

    @model_validator(mode="after")
    def _ok(self) -> Search:
        if self.n_max <= self.n_min:
            raise ValueError(f"n_max ({self.n_max:g}) must exceed n_min ({self.n_min:g})")
        if any(g < 1 for g in self.upsample_factors):
            raise ValueError(f"upsample_factors must all be >= 1 (got {self.upsample_factors})")
        return self


class Uncertainty(_Strict):
    draws: int = Field(default=64, ge=0, le=5000)
    utility_sd: float = Field(default=0.01, ge=0, description="Default sd of each pool's b.")
    half_life_rel_sd: float = Field(default=0.3, ge=0, description="Log-normal sd of tau.")
    level: float = Field(default=0.9, gt=0, lt=1)
    chinchilla_bootstrap: int = Field(default=100, ge=0)


class RecommendConfig(_Strict):
    name: str = "mixture"
    budget: Budget
    law: Law = Field(default_factory=Law)
    tokens_per_word: float = Field(default=1.3, gt=0, description="Token estimate per word.")
    pools: list[PoolSpec] = Field(default_factory=list)
    pools_from_build: PoolsFromBuild | None = None
    search: Search = Field(default_factory=Search)
    uncertainty: Uncertainty = Field(default_factory=Uncertainty)
    seed: int = 0
    shards: int = Field(default=8, ge=1, description="Materialize: output shards.")

    @model_validator(mode="after")
    def _pools(self) -> RecommendConfig:
        if not self.pools and self.pools_from_build is None:
            raise ValueError("give pools (by hand) or pools_from_build")
        names = [p.name for p in self.pools]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"pool names must be unique; repeated: {dup}")
        return self


def _fmt_error(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        where = ".".join(str(x) for x in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown field (remove it or check its spelling)")
        else:
            got = e.get("input")
            shown = repr(got)[:120] if got is not None else "nothing"
            lines.append(f"{where}: {e['msg']} (got {shown})")
    return "\n".join(lines)


def parse_config(data: Any) -> RecommendConfig:
    if not isinstance(data, dict):
        raise RecommendConfigError(f"the top level must be a mapping (got {type(data).__name__})")
    try:
        return RecommendConfig.model_validate(data)
    except ValidationError as err:
        raise RecommendConfigError(_fmt_error(err)) from None


def load_config(path: str) -> RecommendConfig:
    import yaml

    if not os.path.isfile(path):
        raise RecommendConfigError(f"config file {path!r} does not exist")
    try:
        data = yaml.safe_load(open(path, encoding="utf-8"))
    except yaml.YAMLError as err:
        raise RecommendConfigError(f"{path}: not valid YAML: {err}") from None
    cfg = parse_config(data)
    base = os.path.dirname(os.path.abspath(path))
    # Relative paths in the config are relative to the config file.
    if cfg.pools_from_build and not os.path.isabs(cfg.pools_from_build.dir):
        cfg.pools_from_build.dir = os.path.join(base, cfg.pools_from_build.dir)
    if cfg.law.chinchilla_csv and not os.path.isabs(cfg.law.chinchilla_csv):
        cfg.law.chinchilla_csv = os.path.join(base, cfg.law.chinchilla_csv)
    return cfg


# --------------------------------------------------------------------------- pools from a build


def count_tokens(text: str, tokens_per_word: float) -> float:
    """Token estimate: whitespace-separated words times ``tokens_per_word``."""
    return len(text.split()) * tokens_per_word


def pools_from_build(spec: PoolsFromBuild, tokens_per_word: float) -> list[PoolSpec]:
    """Read a build's Parquet shards and split them into pools by score bucket or by source."""
    import pyarrow.parquet as pq

    files = sorted(glob.glob(os.path.join(spec.dir, "data", "*.parquet")))
    if not files:
        raise RecommendConfigError(
            f"pools_from_build.dir: no Parquet shards under {os.path.join(spec.dir, 'data')!r}; "
            "point it at a `datamill build` output directory")
    b = spec.bucket_by
    cols = ["text", "source"] + ([b.column] if b.column else [])
    texts, sources, scores = [], [], []
    for f in files:
        schema = pq.read_schema(f)
        missing = [c for c in cols if c not in schema.names]
        if missing:
            raise RecommendConfigError(
                f"pools_from_build.bucket_by.column: {f} has no column(s) {missing} "
                f"(available: {sorted(schema.names)})")
        t = pq.read_table(f, columns=cols)
        texts.extend(t.column("text").to_pylist())
        sources.extend(t.column("source").to_pylist())
        if b.column:
            scores.extend(t.column(b.column).to_pylist())
    tokens = np.array([count_tokens(x or "", tokens_per_word) for x in texts])
    pattern = [os.path.join(spec.dir, "data", "*.parquet")]
    pools: list[PoolSpec] = []
    if b.source:
        src = np.array(sources, dtype=object)
        for name in sorted(set(sources)):
            tier = b.source_tiers.get(name, 0)
            pools.append(PoolSpec(name=str(name), quality_tier=tier,
                                  unique_tokens=float(tokens[src == name].sum())
                                  * spec.unique_token_multiplier,
                                  files=pattern, select={"source": name}))
    else:
        s = np.array([np.nan if v is None else float(v) for v in scores])
        ok = np.isfinite(s)
        if not ok.any():
            raise RecommendConfigError(f"pools_from_build.bucket_by.column: {b.column!r} has no "
                                       "numeric values")
        inner = (list(np.quantile(s[ok], b.quantiles)) if b.quantiles is not None
                 else list(b.edges))
        bounds = [-math.inf] + [float(x) for x in inner] + [math.inf]
        n_b = len(bounds) - 1
        for i in range(n_b):
            lo, hi = bounds[i], bounds[i + 1]
            mask = ok & (s >= lo) & (s < hi)
            tier = (n_b - 1 - i) if b.higher_is_better else i
            sel = {"column": b.column, "min": None if math.isinf(lo) else lo,
                   "max": None if math.isinf(hi) else hi}
            toks = float(tokens[mask].sum())
            if toks <= 0:
                continue  # an empty bucket (repeated quantile values) is not a pool
            pools.append(PoolSpec(name=f"{b.column}_q{i}", quality_tier=tier,
                                  unique_tokens=toks * spec.unique_token_multiplier,
                                  files=pattern, select=sel))
    if not pools:
        raise RecommendConfigError("pools_from_build: every bucket is empty")
    return pools


# --------------------------------------------------------------------------- model


@dataclass
class BaseLaw:
    E: float
    A: float
    B: float
    alpha: float
    beta: float
    r_star_n: float


@dataclass
class ResolvedPool:
    name: str
    tier: int
    unique: float
    b: float
    tau: float
    b_sd: float
    files: list[str] = field(default_factory=list)
    select: dict[str, Any] | None = None
    unique_counted: float = 0.0  # tokens in the files (before unique_token_multiplier)


@dataclass
class Strategy:
    tiers: tuple[int, ...]
    upsample: float
    pools: list[ResolvedPool]
    weights: np.ndarray  # sampling weight per pool (sums to 1)


def _strategies(pools: list[ResolvedPool], factors: list[float]) -> list[Strategy]:
    tiers = sorted({p.tier for p in pools})
    out = []
    for k in range(1, len(tiers) + 1):
        inc = tiers[:k]
        sel = [p for p in pools if p.tier in inc]
        for g in sorted(set(factors)) if k > 1 else [1.0]:
            mult = np.array([g ** (k - 1 - inc.index(p.tier)) for p in sel])
            w = np.array([p.unique for p in sel]) * mult
            out.append(Strategy(tuple(inc), float(g), sel, w / w.sum()))
    return out


def predict_loss(law: BaseLaw, strat: Strategy, N: Any, D: Any, *,
                 b: np.ndarray | None = None, tau: np.ndarray | None = None) -> np.ndarray:
    """Predicted loss for a strategy at model size(s) ``N`` and token count(s) ``D``."""
    N = np.atleast_1d(np.asarray(N, dtype=float))
    D = np.atleast_1d(np.asarray(D, dtype=float))
    b = np.array([p.b for p in strat.pools]) if b is None else b
    tau = np.array([p.tau for p in strat.pools]) if tau is None else tau
    pools = [Pool(p.unique, float(bi), float(ti), float(w))
             for p, bi, ti, w in zip(strat.pools, b, tau, strat.weights)]
    U = sum(p.unique for p in strat.pools)
    Np = effective_params(N, U, A=law.A, B=law.B, alpha=law.alpha, beta=law.beta,
                          r_star_n=law.r_star_n)
    order = np.argsort(D)
    r = np.empty_like(D)
    r[order] = mixture_reducible(D[order], pools, lm_scale(law.B, law.beta))
    return law.E + law.A / Np**law.alpha + r


def _epochs(strat: Strategy, D: float) -> np.ndarray:
    return D * strat.weights / np.array([p.unique for p in strat.pools])


def _best_n(law: BaseLaw, strat: Strategy, C: float, search: Search,
            fixed_n: float | None, fixed_d: float | None, **kw) -> tuple[float, float, float]:
    """(N, D, loss) minimizing loss at compute C; inf loss if no feasible N."""
    if fixed_n is not None:
        D = fixed_d if fixed_d is not None else C / (6 * fixed_n)
        if _epochs(strat, D).max() > search.max_epochs:
            return fixed_n, D, math.inf
        return fixed_n, D, float(predict_loss(law, strat, fixed_n, D, **kw)[0])
    Ns = np.geomspace(search.n_min, search.n_max, search.n_points)
    Ds = C / (6 * Ns)
    feasible = (Ds >= 1.0) & (np.array([_epochs(strat, d).max() for d in Ds])
                              <= search.max_epochs)
    if not feasible.any():
        return math.nan, math.nan, math.inf
    L = np.full(len(Ns), np.inf)
    L[feasible] = predict_loss(law, strat, Ns[feasible], Ds[feasible], **kw)
    i = int(np.argmin(L))
    lo, hi = math.log(Ns[max(i - 1, 0)]), math.log(Ns[min(i + 1, len(Ns) - 1)])
    best = (float(Ns[i]), float(Ds[i]), float(L[i]))
    if hi > lo:
        def f(lx):
            n = math.exp(lx)
            d = C / (6 * n)
            if _epochs(strat, d).max() > search.max_epochs:
                return 1e30  # infeasible; finite so the bounded search stays well-defined
            return float(predict_loss(law, strat, n, d, **kw)[0])

        res = minimize_scalar(f, bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
        if res.fun < best[2]:
            n = math.exp(res.x)
            best = (n, C / (6 * n), float(res.fun))
    return best


# --------------------------------------------------------------------------- recommend


@dataclass
class Recommendation:
    data: dict[str, Any]
    sweep: list[dict[str, Any]]
    explanation: str


def _resolve(cfg: RecommendConfig) -> tuple[BaseLaw, list[ResolvedPool], dict[str, Any],
                                            np.ndarray | None]:
    law_src: dict[str, Any]
    boot = None
    L = cfg.law
    if L.chinchilla_csv:
        from scaling.chinchilla import fit_chinchilla

        try:
            N, D, loss = load_chinchilla_csv(L.chinchilla_csv)
        except (OSError, ValueError) as err:
            raise RecommendConfigError(f"law.chinchilla_csv: {err}") from None
        fit = fit_chinchilla(N, D, loss, n_bootstrap=cfg.uncertainty.chinchilla_bootstrap,
                             seed=cfg.seed)
        base = BaseLaw(fit.E, fit.A, fit.B, fit.alpha, fit.beta, L.r_star_n)
        boot = fit.bootstrap
        law_src = {"source": f"fitted on {L.chinchilla_csv} ({fit.n_points} runs)",
                   "fitted": True}
    else:
        base = BaseLaw(L.E, L.A, L.B, L.alpha, L.beta, L.r_star_n)
        law_src = {"source": "defaults: Muennighoff et al. 2023 published fit"
                   if L.model_fields_set.isdisjoint({"E", "A", "B", "alpha", "beta"})
                   else "given in the config", "fitted": False}
    tau0 = L.half_life or calibrate_tau(B=base.B, beta=base.beta, r_star_d=L.r_star_d)
    specs = list(cfg.pools)
    if cfg.pools_from_build is not None:
        built = pools_from_build(cfg.pools_from_build, cfg.tokens_per_word)
        clash = {p.name for p in built} & {p.name for p in specs}
        if clash:
            raise RecommendConfigError(f"pools: names {sorted(clash)} clash with pools derived "
                                       "from pools_from_build; rename them")
        specs += built
    tiers = sorted({p.quality_tier for p in specs})
    worst = len(tiers) - 1
    pools = []
    mult = cfg.pools_from_build.unique_token_multiplier if cfg.pools_from_build else 1.0
    for p in specs:
        steps = worst - tiers.index(p.quality_tier)
        b = p.utility if p.utility is not None else -base.beta - steps * L.quality_step
        pools.append(ResolvedPool(
            name=p.name, tier=p.quality_tier, unique=p.unique_tokens, b=b,
            tau=p.half_life or tau0,
            b_sd=p.utility_sd if p.utility_sd is not None else cfg.uncertainty.utility_sd,
            files=list(p.files), select=p.select,
            unique_counted=p.unique_tokens / mult if p.files else 0.0))
    law_src.update({"E": base.E, "A": base.A, "B": base.B, "alpha": base.alpha,
                    "beta": base.beta, "r_star_n": base.r_star_n, "default_half_life": tau0,
                    "quality_step": L.quality_step})
    return base, pools, law_src, boot


def _draws(cfg: RecommendConfig, pools: list[ResolvedPool], law: BaseLaw,
           boot: np.ndarray | None) -> list[tuple[BaseLaw, dict[str, float], dict[str, float]]]:
    rng = np.random.default_rng(cfg.seed)
    out = []
    for i in range(cfg.uncertainty.draws):
        if boot is not None and len(boot):
            A, B, E, al, be = boot[rng.integers(0, len(boot))]
            lw = BaseLaw(E, A, B, al, be, law.r_star_n)
        else:
            lw = law
        b = {p.name: min(p.b + rng.normal(0, p.b_sd), -1e-4) for p in pools}
        t = {p.name: p.tau * math.exp(rng.normal(0, cfg.uncertainty.half_life_rel_sd))
             for p in pools}
        out.append((lw, b, t))
    return out


def recommend(cfg: RecommendConfig) -> Recommendation:
    law, pools, law_src, boot = _resolve(cfg)
    C = cfg.budget.compute()
    fixed_n = cfg.budget.model_size
    fixed_d = cfg.budget.tokens
    search = cfg.search
    strats = _strategies(pools, search.upsample_factors)
    results = []
    for s in strats:
        n, d, loss = _best_n(law, s, C, search, fixed_n, fixed_d)
        results.append((loss, s, n, d))
    results.sort(key=lambda r: (r[0], len(r[1].tiers), r[1].upsample))
    best_loss, best, N, D = results[0]
    if not math.isfinite(best_loss):
        raise RecommendConfigError(
            "search: no strategy is feasible — every pool set would need more than "
            f"search.max_epochs={search.max_epochs:g} epochs (or the model-size range "
            f"[{search.n_min:g}, {search.n_max:g}] leaves < 1 token); raise max_epochs, widen "
            "the range, add pools or lower the budget")

    # Uncertainty: loss of the chosen plan under parameter draws, and how often the chosen
    # pool set stays best (each set at its own best N for the draw, coarse grid).
    draws = _draws(cfg, pools, law, boot)
    coarse = search.model_copy(update={"n_points": max(15, search.n_points // 4)})
    losses, wins = [], 0
    by_set: dict[tuple[int, ...], list[Strategy]] = {}
    for s in strats:
        by_set.setdefault(s.tiers, []).append(s)
    for lw, bd, td in draws:
        kw = {"b": np.array([bd[p.name] for p in best.pools]),
              "tau": np.array([td[p.name] for p in best.pools])}
        losses.append(float(predict_loss(lw, best, N, D, **kw)[0]))
        per_set = {}
        for tiers, ss in by_set.items():
            per_set[tiers] = min(
                _best_n(lw, s, C, coarse, fixed_n, fixed_d,
                        b=np.array([bd[p.name] for p in s.pools]),
                        tau=np.array([td[p.name] for p in s.pools]))[2] for s in ss)
        wins += int(min(per_set, key=lambda t: (per_set[t], len(t))) == best.tiers)
    level = cfg.uncertainty.level
    if losses:
        lo, hi = np.percentile(losses, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
        pred = {"point": best_loss, "low": float(lo), "high": float(hi), "level": level}
        stability = wins / len(draws)
    else:
        pred = {"point": best_loss, "low": None, "high": None, "level": level}
        stability = None

    # Compute sweep: best strategy per pool set at budgets around C (for the plot/frontier).
    sweep = []
    if fixed_n is None or fixed_d is None:
        for c in C * np.logspace(-search.sweep_decades, search.sweep_decades, search.sweep_points):
            row = {"flops": float(c), "sets": {}}
            for tiers, ss in by_set.items():
                cand = [(_best_n(law, s, c, search, fixed_n, None), s) for s in ss]
                (n_, d_, l_), s_ = min(cand, key=lambda x: x[0][2])
                if math.isfinite(l_):
                    row["sets"][_set_label(s_)] = {"loss": l_, "N": n_, "D": d_,
                                                   "upsample": s_.upsample}
            finite = {k: v for k, v in row["sets"].items() if math.isfinite(v["loss"])}
            row["best_set"] = min(finite, key=lambda k: finite[k]["loss"]) if finite else None
            sweep.append(row)

    warnings = []
    d_min = 1.0 / lm_scale(law.B, law.beta)
    if D < d_min:
        warnings.append(
            f"train_tokens {D:.3g} is below B^(1/beta) = {d_min:.3g}: the data term (a D)^b is "
            "outside the regime it was fitted in (a D < 1) and the prediction is not meaningful; "
            "use a larger budget, or unique_token_multiplier if the pools are a sample")
    if len(best.tiers) > 1 and len(set(search.upsample_factors)) > 1 and \
            best.upsample == max(search.upsample_factors):
        warnings.append(
            f"the best upsampling factor is the largest searched ({best.upsample:g}); the "
            "optimum may lie beyond it: add larger values to search.upsample_factors")
    epochs = _epochs(best, D)
    excluded = [p.name for p in pools if p not in best.pools]
    plan_pools = []
    for p, w, e in zip(best.pools, best.weights, epochs):
        plan_pools.append({"name": p.name, "quality_tier": p.tier, "unique_tokens": p.unique,
                           "epochs": float(e), "sampling_weight": float(w),
                           "tokens": float(e * p.unique), "utility": p.b, "half_life": p.tau})
    frontier = []
    for loss, s, n, d in results:
        if not math.isfinite(loss):
            continue
        frontier.append({"pools": [p.name for p in s.pools], "upsample": s.upsample,
                         "model_params": n, "train_tokens": d, "predicted_loss": loss,
                         "delta_vs_best": loss - best_loss,
                         "epochs": {p.name: float(e) for p, e in zip(s.pools, _epochs(s, d))}})
    data: dict[str, Any] = {
        "name": cfg.name,
        "recommendation": {
            "compute_flops": C,
            "model_params": N,
            "train_tokens": D,
            "tokens_per_param": D / N,
            "filter": {"include_tiers": list(best.tiers),
                       "excluded_pools": excluded,
                       **_threshold(best)},
            "upsample_per_tier": best.upsample,
            "pools": plan_pools,
            "predicted_loss": pred,
            "decision_stability": stability,
            "warnings": warnings,
        },
        "frontier": frontier,
        "compute_sweep": [{"flops": r["flops"], "best_set": r["best_set"],
                           "loss": {k: v["loss"] for k, v in r["sets"].items()}} for r in sweep],
        "law": law_src,
    }
    if all(p.files for p in best.pools):
        data["materialize"] = {
            "seed": cfg.seed, "shards": cfg.shards, "tokens_per_word": cfg.tokens_per_word,
            "pools": [{"name": p.name, "files": p.files, "select": p.select,
                       "epochs": float(e), "unique_tokens": p.unique_counted,
                       "target_tokens": float(e * p.unique_counted)}
                      for p, e in zip(best.pools, epochs)]}
    explanation = _explain(data, best, pools, sweep, law_src, stability)
    data["recommendation"]["explanation"] = explanation
    return Recommendation(data=data, sweep=sweep, explanation=explanation)


def _set_label(s: Strategy) -> str:
    return "+".join(p.name for p in s.pools)


def _threshold(s: Strategy) -> dict[str, Any]:
    sels = [p.select for p in s.pools if p.select and "column" in p.select]
    if sels and len(sels) == len(s.pools):
        mins = [x["min"] for x in sels]
        thr = None if any(m is None for m in mins) else min(mins)
        return {"score_column": sels[0]["column"], "keep_at_or_above": thr}
    return {}


def _human(x: float) -> str:
    for unit, v in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= v:
            return f"{x / v:.3g}{unit}"
    return f"{x:.3g}"


def _explain(data, best: Strategy, pools, sweep, law_src, stability) -> str:
    r = data["recommendation"]
    parts = [f"With {r['compute_flops']:.3g} FLOPs, train a {_human(r['model_params'])}-parameter "
             f"model on {_human(r['train_tokens'])} tokens ({r['tokens_per_param']:.1f} tokens "
             "per parameter)."]
    inc = ", ".join(f"{p['name']} ({p['epochs']:.2f} epochs)" for p in r["pools"])
    excl = r["filter"]["excluded_pools"]
    parts.append(f"Keep quality tiers {r['filter']['include_tiers']}: {inc}" +
                 (f"; leave out {', '.join(excl)}." if excl else "; every pool is used."))
    if best.upsample != 1:
        parts.append(f"Each better tier is sampled {best.upsample:g}x as often per unique token "
                     "as the tier below it.")
    others = [f for f in data["frontier"] if f["pools"] != [p.name for p in best.pools]]
    if others:
        alt = min(others, key=lambda f: f["predicted_loss"])
        top_epochs = max(p["epochs"] for p in r["pools"])
        if len(alt["pools"]) > len(best.pools):
            why = ("the included pools cover the whole run without repetition, so lower-quality "
                   "tokens would only dilute them" if top_epochs <= 1 else
                   f"repeating the better pools (up to {top_epochs:.2f} epochs) is still worth "
                   "more than fresh lower-quality tokens")
        else:
            alt_epochs = max(alt["epochs"].values())
            why = (f"the better pools alone would have to be repeated {alt_epochs:.2f} times, "
                   "past the point where repetition pays more than fresh data")
        parts.append(f"The best alternative pool set ({'+'.join(alt['pools'])}) is predicted "
                     f"{alt['delta_vs_best']:.4f} worse in loss: at this budget {why}.")
    changes = []
    for a, b in zip(sweep, sweep[1:]):
        if a["best_set"] != b["best_set"] and b["best_set"] is not None:
            changes.append(f"{b['best_set']} from ~{b['flops']:.2g} FLOPs")
    if changes:
        parts.append("Across budgets the best pool set changes: " + "; ".join(changes) + ".")
    pl = r["predicted_loss"]
    if pl["low"] is not None:
        parts.append(f"Predicted loss {pl['point']:.3f} ({pl['level']:.0%} interval "
                     f"{pl['low']:.3f}-{pl['high']:.3f} over parameter draws); the chosen pool set "
                     f"stays best in {stability:.0%} of draws.")
    else:
        parts.append(f"Predicted loss {pl['point']:.3f}.")
    if not law_src.get("fitted"):
        parts.append("The law constants are published defaults and placeholder quality "
                     "utilities, not fits to your data: trust the ranking of options more than "
                     "the absolute numbers, and refit on small runs before a large training run.")
    return " ".join(parts)
