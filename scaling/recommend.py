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
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from scipy.optimize import minimize_scalar

from filters.tokens import DEFAULT_TOKENIZER, TokenizerError, load_token_counter
from scaling.chinchilla import load_chinchilla_csv
from scaling.data_constrained import MUENNIGHOFF, effective_params
from scaling.quality_quantity import Pool, calibrate_tau, lm_scale, mixture_reducible

# Muennighoff et al. 2023 ("Scaling Data-Constrained Language Models", NeurIPS): up to ~4
# epochs repeated tokens are worth almost as much as fresh ones; their fitted decay constant
# R*_D ~ 15.4 puts the point where further passes add little at ~16 epochs. Both thresholds
# hold at the default (calibrated) half-life; a pool with its own half-life scales them by
# tau / tau_default (the epoch where its utility has decayed as far).
DIMINISHING_EPOCHS = 4.0
NEAR_WORTHLESS_EPOCHS = 16.0
# Default cap on any pool's epochs: the near-worthless point above (scaled by the pool's own
# half-life when it has one). Plans never go past it unless max_epochs says so.
DEFAULT_MAX_EPOCHS = NEAR_WORTHLESS_EPOCHS


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
        default=0.0, ge=0, description="PLACEHOLDER utility gain per quality tier for pools "
        "without a fitted or published utility: a pool k tiers above the worst gets "
        "b = -beta - k * quality_step. 0 (default): such pools get the base law's b = -beta, "
        "i.e. no quality difference is assumed. Plans flag every pool that uses it.")
    chinchilla_csv: str | None = Field(
        default=None, description="Runs CSV to fit E, A, B, alpha, beta (with bootstrap) instead "
        "of the defaults.")
    chinchilla_protocol: Literal["besiroglu", "all"] = Field(
        default="besiroglu", description="Which runs of chinchilla_csv are fitted: "
        "'besiroglu' leaves out the 5 highest-loss runs as Besiroglu et al. 2024 do; 'all'.")


class PoolSpec(_Strict):
    name: str = Field(min_length=1)
    unique_tokens: float = Field(gt=0)
    quality_tier: int = Field(ge=0, description="0 = best.")
    utility: float | None = Field(default=None, lt=0, description="b (< 0); default by tier.")
    utility_source: str | None = Field(
        default=None, description="Where utility/half_life come from (a paper and table, a "
        "fit); shown in the plan.")
    half_life: float | None = Field(default=None, gt=0)
    max_epochs: float | None = Field(
        default=None, gt=0, description="Most epochs of this pool a plan may use (a "
        "constraint); default: search.max_epochs if set, else ~16 epochs (Muennighoff et al. "
        "2023) scaled by this pool's half-life relative to the default one.")
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
    bucket_by: BucketBy = Field(default_factory=lambda: BucketBy(source=True),
                                description="Default: one pool per source.")
    unique_token_multiplier: float = Field(
        default=1.0, gt=0, description="If the build is a sample of the full corpus, scale its "
        "token counts up by this factor (materialize still uses the files as they are).")


class Search(_Strict):
    n_min: float = Field(default=1e6, gt=0)
    n_max: float = Field(default=1e13, gt=0)
    n_points: int = Field(default=61, ge=5, le=2000)
    upsample_factors: list[float] = Field(default=[1.0, 1.5, 2.0, 3.0, 4.0], min_length=1)
    max_epochs: float | None = Field(
        default=None, gt=0, description="Most epochs any pool may be repeated: a constraint "
        "the plan is optimized within (a pool's own max_epochs wins). Default (unset): "
        "16 epochs, past which Muennighoff et al. 2023 find repetitions near worthless "
        "(R*_D ~ 15.4), scaled per pool by its half-life relative to the default half-life.")
    saturation_gain: float = Field(
        default=0.001, gt=0, description="Data-limited compute: the compute beyond which "
        "doubling compute lowers the predicted loss by less than this (nats). Budgets above "
        "it are planned at it, with a warning.")
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
    tokenizer: str = Field(
        default=DEFAULT_TOKENIZER, description="Counts tokens of pools_from_build when the "
        "build has no 'tokens' column (filters.tokens spec; use the build's token_count one).")
    pools: list[PoolSpec] = Field(default_factory=list)
    pools_from_build: PoolsFromBuild | None = None
    pools_file: str | None = Field(
        default=None, description="Pools YAML written by `datamill fit-pools`: fitted utility "
        "and half-life per pool name.")
    search: Search = Field(default_factory=Search)
    uncertainty: Uncertainty = Field(default_factory=Uncertainty)
    seed: int = 0
    shards: int = Field(default=8, ge=1, description="Materialize: output shards.")

    @model_validator(mode="before")
    @classmethod
    def _removed_fields(cls, data: Any) -> Any:
        if isinstance(data, dict) and "tokens_per_word" in data:
            raise ValueError("tokens_per_word was removed: tokens are counted with a real "
                             "tokenizer now; remove it (set 'tokenizer' to choose one)")
        return data

    @field_validator("tokenizer")
    @classmethod
    def _tokenizer_loads(cls, v: str) -> str:
        try:
            load_token_counter(v)
        except TokenizerError as err:
            raise ValueError(str(err)) from None
        return v

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
    if cfg.pools_file and not os.path.isabs(cfg.pools_file):
        cfg.pools_file = os.path.join(base, cfg.pools_file)
    return cfg


# --------------------------------------------------------------------------- pools from a build


def _build_stats(build_dir: str) -> dict[str, Any] | None:
    import json

    path = os.path.join(build_dir, "stats.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def token_totals_from_stats(stats: dict[str, Any]) -> dict[str, Any] | None:
    """Per-source token totals of a build's output from its ``token_count`` stage stats.

    Only valid when no stage after ``token_count`` removed or dead-lettered a record (then
    the totals are exactly those of the written data); returns None otherwise or when the
    build has no ``token_count`` stage."""
    stages = list((stats.get("stages") or {}).items())
    idx = [i for i, (_l, st) in enumerate(stages) if st.get("stage") == "token_count"]
    if not idx:
        return None
    i = idx[-1]
    for _label, st in stages[i + 1:]:
        if sum((st.get("removed") or {}).values()) or sum((st.get("dead_letter") or {}).values()):
            return None
    label, st = stages[i]
    s = st.get("stats") or {}
    by_src = s.get("tokens_by_source")
    if not isinstance(by_src, dict):
        return None
    return {"stage": label, "tokenizer": (st.get("static") or {}).get("tokenizer"),
            "by_source": {str(k): int(v) for k, v in by_src.items()},
            "by_language": s.get("tokens_by_language"), "total": s.get("tokens_total")}


def pools_from_build(spec: PoolsFromBuild, tokenizer: str = DEFAULT_TOKENIZER
                     ) -> tuple[list[PoolSpec], dict[str, Any]]:
    """Split a build's output into pools by score bucket or by source, with real token counts.

    Token counts, best first: the build's ``token_count`` stage totals in ``stats.json`` (per
    source, when no later stage removed records); else the ``tokens`` column of the shards;
    else the texts counted with ``tokenizer``. Returns the pools and a note of which was used.
    """
    import pyarrow.parquet as pq

    # Absolute: the plan's materialize block must work from any directory. A build with
    # output.partition_by writes data/<column>-<value>/part-*.parquet, one level down.
    root = os.path.abspath(spec.dir)
    layouts = [os.path.join(root, "data", "*.parquet"),
               os.path.join(root, "data", "*", "*.parquet")]
    found = [(pat, sorted(glob.glob(pat))) for pat in layouts]
    files = [f for _pat, fs in found for f in fs]
    if not files:
        raise RecommendConfigError(
            f"pools_from_build.dir: no Parquet shards under {os.path.join(root, 'data')!r} "
            "(looked for data/*.parquet and partitioned data/*/*.parquet); "
            "point it at a `datamill build` output directory")
    b = spec.bucket_by
    names = pq.read_schema(files[0]).names
    has_tokens = "tokens" in names
    cols = ["source"] + (["tokens"] if has_tokens else ["text"]) + ([b.column] if b.column else [])
    sources, tok_list, scores = [], [], []
    for f in files:
        schema = pq.read_schema(f)
        missing = [c for c in cols if c not in schema.names]
        if missing:
            raise RecommendConfigError(
                f"pools_from_build.bucket_by.column: {f} has no column(s) {missing} "
                f"(available: {sorted(schema.names)})")
        t = pq.read_table(f, columns=cols)
        sources.extend(t.column("source").to_pylist())
        if has_tokens:
            tok_list.extend(int(x or 0) for x in t.column("tokens").to_pylist())
        else:
            tok_list.extend(load_token_counter(tokenizer).count_batch(
                [x or "" for x in t.column("text").to_pylist()]))
        if b.column:
            scores.extend(t.column(b.column).to_pylist())
    tokens = np.array(tok_list, dtype=float)
    stats = _build_stats(root)
    totals = token_totals_from_stats(stats) if stats else None
    if has_tokens:
        used_tok = (totals or {}).get("tokenizer") or "the build's token_count stage"
        note = {"counted_by": f"'tokens' column of the build (tokenizer {used_tok})",
                "tokenizer": used_tok}
    else:
        note = {"counted_by": f"tokenizer {tokenizer} on the build's texts", "tokenizer": tokenizer}
    pattern = [pat for pat, fs in found if fs]
    pools: list[PoolSpec] = []
    if b.source:
        src = np.array(sources, dtype=object)
        if totals is not None and set(totals["by_source"]) == set(sources):
            note = {"counted_by": f"stats.json: token_count stage {totals['stage']!r} "
                    f"(tokenizer {totals['tokenizer']})", "tokenizer": totals["tokenizer"]}
            per_src = {k: float(v) for k, v in totals["by_source"].items()}
        else:
            per_src = {name: float(tokens[src == name].sum()) for name in set(sources)}
        for name in sorted(set(sources)):
            tier = b.source_tiers.get(name, 0)
            if per_src[name] <= 0:
                continue
            pools.append(PoolSpec(name=str(name), quality_tier=tier,
                                  unique_tokens=per_src[name] * spec.unique_token_multiplier,
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
    note["token_column"] = "tokens" if has_tokens else None
    note["build"] = root
    return pools, note


def load_pools_file(path: str) -> dict[str, Any]:
    """Read a pools YAML written by ``datamill fit-pools`` (``kind: datamill.pools``)."""
    import yaml

    if not os.path.isfile(path):
        raise RecommendConfigError(f"pools_file: {path!r} does not exist")
    try:
        data = yaml.safe_load(open(path, encoding="utf-8"))
    except yaml.YAMLError as err:
        raise RecommendConfigError(f"pools_file: {path}: not valid YAML: {err}") from None
    if not isinstance(data, dict) or data.get("kind") != "datamill.pools":
        raise RecommendConfigError(f"pools_file: {path} is not a pools file (expected "
                                   "'kind: datamill.pools', written by `datamill fit-pools`)")
    pools = data.setdefault("pools", [])
    if not isinstance(pools, list) or not all(isinstance(p, dict) and "name" in p and
                                              "utility" in p for p in pools):
        raise RecommendConfigError(f"pools_file: {path}: 'pools' must be a list of "
                                   "{name, utility, half_life, ...}")
    return data


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
    utility_source: str = ""
    utility_kind: str = ""  # fitted | given | base_law | placeholder
    half_life_source: str = ""
    max_epochs: float = DEFAULT_MAX_EPOCHS  # the plan's cap on this pool's epochs
    max_epochs_source: str = ""
    tau_default: float = 0.0  # the law's default half-life (the warnings' reference)


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


def _over_cap(strat: Strategy, D: float) -> bool:
    """Whether ``D`` tokens would repeat some pool past its ``max_epochs``."""
    caps = np.array([p.max_epochs for p in strat.pools])
    return bool((_epochs(strat, D) > caps * (1 + 1e-9)).any())


def _at_cap(strat: Strategy, D: float) -> list[ResolvedPool]:
    caps = np.array([p.max_epochs for p in strat.pools])
    return [p for p, e, c in zip(strat.pools, _epochs(strat, D), caps) if e >= c * 0.999]


def _max_tokens(strat: Strategy) -> float:
    """The most tokens a strategy can train on within every pool's ``max_epochs``."""
    return float(min(p.max_epochs * p.unique / w for p, w in zip(strat.pools, strat.weights)
                     if w > 0))


def _best_n(law: BaseLaw, strat: Strategy, C: float, search: Search,
            fixed_n: float | None, fixed_d: float | None, **kw) -> tuple[float, float, float]:
    """(N, D, loss) minimizing loss at compute C; inf loss if no feasible N."""
    if fixed_n is not None:
        D = fixed_d if fixed_d is not None else C / (6 * fixed_n)
        if _over_cap(strat, D):
            return fixed_n, D, math.inf
        return fixed_n, D, float(predict_loss(law, strat, fixed_n, D, **kw)[0])
    Ns = np.geomspace(search.n_min, search.n_max, search.n_points)
    d_cap = _max_tokens(strat)
    # The smallest model whose tokens stay within every pool's max_epochs: where the
    # constrained optimum lies when the law's own optimum would repeat data further.
    n_cap = C / (6 * d_cap)
    if search.n_min < n_cap < search.n_max:
        Ns = np.unique(np.append(Ns, n_cap))
    Ds = C / (6 * Ns)
    feasible = (Ds >= 1.0) & (Ds <= d_cap * (1 + 1e-9))
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
            if d > d_cap * (1 + 1e-9):
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
        from scaling.chinchilla import fit_chinchilla_runs

        try:
            N, D, loss = load_chinchilla_csv(L.chinchilla_csv)
            fit = fit_chinchilla_runs(N, D, loss, protocol=L.chinchilla_protocol,
                                      n_bootstrap=cfg.uncertainty.chinchilla_bootstrap,
                                      seed=cfg.seed)
        except (OSError, ValueError) as err:
            raise RecommendConfigError(f"law.chinchilla_csv: {err}") from None
        base = BaseLaw(fit.E, fit.A, fit.B, fit.alpha, fit.beta, L.r_star_n)
        boot = fit.bootstrap
        law_src = {"source": f"fitted on {L.chinchilla_csv} ({fit.n_points} of {len(N)} runs, "
                   f"protocol {L.chinchilla_protocol})", "fitted": True}
    else:
        base = BaseLaw(L.E, L.A, L.B, L.alpha, L.beta, L.r_star_n)
        published = L.model_fields_set.isdisjoint({"E", "A", "B", "alpha", "beta"})
        law_src = {"source": "published: Muennighoff et al. 2023 data-constrained fit "
                   "(A, B, E, alpha, beta, R*_N, R*_D)" if published else "given in the config",
                   "fitted": False, "published": published}
    if L.half_life:
        tau0, tau_src = L.half_life, "law.half_life (config)"
    else:
        tau0 = calibrate_tau(B=base.B, beta=base.beta, r_star_d=L.r_star_d)
        tau_src = (f"calibrated to Muennighoff et al.'s R*_D = {L.r_star_d:g} "
                   "(one repeated pool matches their effective-data law)")
    specs = list(cfg.pools)
    token_note = None
    if cfg.pools_from_build is not None:
        built, token_note = pools_from_build(cfg.pools_from_build, cfg.tokenizer)
        clash = {p.name for p in built} & {p.name for p in specs}
        if clash:
            raise RecommendConfigError(f"pools: names {sorted(clash)} clash with pools derived "
                                       "from pools_from_build; rename them")
        specs += built
    fitted: dict[str, dict[str, Any]] = {}
    if cfg.pools_file:
        pf = load_pools_file(cfg.pools_file)
        fitted = {str(p["name"]): p for p in pf["pools"]}
        law_src["pools_file"] = {"path": cfg.pools_file, "fitted_from": pf.get("fitted_from"),
                                 "law": pf.get("law"),
                                 "mixture_ranking": pf.get("mixture_ranking")}
        unknown = sorted(set(fitted) - {p.name for p in specs})
        if unknown and len(unknown) == len(fitted):
            raise RecommendConfigError(
                f"pools_file: none of its pools {unknown} is among the plan's pools "
                f"{sorted(p.name for p in specs)}; fit-pools pool names must match")
    tiers = sorted({p.quality_tier for p in specs})
    worst = len(tiers) - 1
    pools = []
    mult = cfg.pools_from_build.unique_token_multiplier if cfg.pools_from_build else 1.0
    for p in specs:
        steps = worst - tiers.index(p.quality_tier)
        f = fitted.get(p.name)
        tau, tau_s = p.half_life or tau0, "config" if p.half_life else tau_src
        b_sd = p.utility_sd if p.utility_sd is not None else cfg.uncertainty.utility_sd
        if p.utility is not None:
            b, kind = p.utility, "given"
            src = p.utility_source or "given in the config (no source named)"
        elif f is not None:
            b, kind = float(f["utility"]), "fitted"
            src = f"fitted by datamill fit-pools ({cfg.pools_file})"
            if f.get("half_life") is not None and not p.half_life:
                tau = float(f["half_life"])
                tau_s = ("fitted by datamill fit-pools" if f.get("half_life_identified", True)
                         else "fit-pools default (no repeated runs)")
            ci = f.get("utility_ci")
            if ci and p.utility_sd is None:
                b_sd = max((float(ci[1]) - float(ci[0])) / (2 * 1.645), 1e-6)
        elif L.quality_step > 0 and steps > 0:
            b, kind = -base.beta - steps * L.quality_step, "placeholder"
            src = (f"PLACEHOLDER: -beta - {steps} x law.quality_step ({L.quality_step:g}); "
                   "not a measurement, fit it with datamill fit-pools")
        else:
            b, kind = -base.beta, "base_law"
            src = ("base law: b = -beta (the data term of the law, no quality difference "
                   "assumed); fit per-pool utilities with datamill fit-pools")
        if p.max_epochs is not None:
            cap, cap_s = p.max_epochs, "pool max_epochs (config)"
        elif cfg.search.max_epochs is not None:
            cap, cap_s = cfg.search.max_epochs, "search.max_epochs (config)"
        elif tau != tau0:
            cap = DEFAULT_MAX_EPOCHS * tau / tau0
            cap_s = (f"default: ~{DEFAULT_MAX_EPOCHS:g} epochs (Muennighoff et al. 2023) x this "
                     f"pool's half-life {tau:.3g} / default {tau0:.3g} ({tau_s})")
        else:
            cap, cap_s = DEFAULT_MAX_EPOCHS, (
                f"default: ~{DEFAULT_MAX_EPOCHS:g} epochs, past which repetitions are near "
                "worthless (Muennighoff et al. 2023, R*_D ~ 15.4)")
        pools.append(ResolvedPool(
            name=p.name, tier=p.quality_tier, unique=p.unique_tokens, b=b, tau=tau, b_sd=b_sd,
            files=list(p.files), select=p.select,
            unique_counted=p.unique_tokens / mult if p.files else 0.0,
            utility_source=src, utility_kind=kind, half_life_source=tau_s,
            max_epochs=float(cap), max_epochs_source=cap_s, tau_default=float(tau0)))
    law_src.update({"E": base.E, "A": base.A, "B": base.B, "alpha": base.alpha,
                    "beta": base.beta, "r_star_n": base.r_star_n, "default_half_life": tau0,
                    "default_half_life_source": tau_src, "quality_step": L.quality_step})
    if token_note:
        law_src["tokens"] = token_note
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


def _rank(law: BaseLaw, strats: list[Strategy], C: float, search: Search,
          fixed_n: float | None, fixed_d: float | None
          ) -> list[tuple[float, Strategy, float, float]]:
    results = []
    for s in strats:
        n, d, loss = _best_n(law, s, C, search, fixed_n, fixed_d)
        results.append((loss, s, n, d))
    results.sort(key=lambda r: (r[0], len(r[1].tiers), r[1].upsample))
    return results


def chinchilla_compute_for_data(law: BaseLaw, U: float) -> float:
    """The compute whose Chinchilla-optimal token count is ``U`` (one epoch of the data)."""
    s = law.alpha + law.beta
    G = (law.alpha * law.A / (law.beta * law.B)) ** (1.0 / s)
    return 6.0 * (G * U) ** (s / law.alpha)


@dataclass
class Saturation:
    compute: float  # beyond it, doubling compute gains < gain (or the search hits its limits)
    loss: float  # predicted loss there
    gain: float
    limited_by: str  # "data" | "max_epochs" | "n_max"


def saturation_compute(law: BaseLaw, strat: Strategy, search: Search,
                       max_doublings: int = 80) -> Saturation:
    """Smallest compute (on a doubling grid from a quarter of the one-epoch Chinchilla
    compute) beyond which doubling compute lowers the predicted loss by less than
    ``search.saturation_gain``: more compute buys (almost) nothing for this data."""
    U = float(sum(p.unique for p in strat.pools))
    c = chinchilla_compute_for_data(law, U) / 4.0
    prev = _best_n(law, strat, c, search, None, None)[2]
    if not math.isfinite(prev):
        return Saturation(c, prev, search.saturation_gain, "max_epochs")
    for _ in range(max_doublings):
        nxt = _best_n(law, strat, 2 * c, search, None, None)
        if not math.isfinite(nxt[2]):
            return Saturation(c, prev, search.saturation_gain, "max_epochs")
        if prev - nxt[2] < search.saturation_gain:
            capped = bool(_at_cap(strat, nxt[1]))
            limit = ("n_max" if nxt[0] >= search.n_max * 0.999 else
                     "max_epochs" if capped else "data")
            return Saturation(c, prev, search.saturation_gain, limit)
        c, prev = 2 * c, nxt[2]
    return Saturation(c, prev, search.saturation_gain, "data")


def recommend(cfg: RecommendConfig) -> Recommendation:
    law, pools, law_src, boot = _resolve(cfg)
    budget = cfg.budget.compute()
    fixed_n = cfg.budget.model_size
    fixed_d = cfg.budget.tokens
    search = cfg.search
    strats = _strategies(pools, search.upsample_factors)
    warnings: list[str] = []
    results = _rank(law, strats, budget, search, fixed_n, fixed_d)
    C = budget
    sat = None
    if fixed_n is None:
        # Data-constrained allocation (Muennighoff et al. 2023): N and epochs are chosen
        # jointly by the optimizer; past the compute this data can use, plan there instead.
        full = max(strats, key=lambda s: (len(s.tiers), -s.upsample))
        cand = results[0][1] if math.isfinite(results[0][0]) else full
        sat = saturation_compute(law, cand, search)
        if budget > sat.compute * 1.000001 and math.isfinite(sat.loss):
            C = sat.compute
            results = _rank(law, strats, C, search, None, None)
            at_budget = _best_n(law, cand, budget, search, None, None)[2]
            gain = (sat.loss - at_budget) if math.isfinite(at_budget) else None
            warnings.append(
                f"data-limited: beyond ~{sat.compute:.3g} FLOPs more compute buys almost "
                f"nothing for these {_human(sum(p.unique for p in cand.pools))} unique tokens "
                f"(doubling it gains < {search.saturation_gain:g} nats); the plan uses "
                f"{sat.compute:.3g} of the {budget:.3g} FLOPs budget"
                + (f" (the full budget would gain {gain:.4f} nats)" if gain is not None else
                   " (the full budget would repeat a pool past its max_epochs)")
                + ". Get more unique data to use the rest.")
    best_loss, best, N, D = results[0]
    if not math.isfinite(best_loss):
        raise RecommendConfigError(
            "search: no strategy is feasible — every pool set would repeat a pool past its "
            "max_epochs ("
            + ", ".join(f"{p.name}: {p.max_epochs:.3g}" for p in pools)
            + f"; search.max_epochs or a pool's max_epochs) or the model-size range "
            f"[{search.n_min:g}, {search.n_max:g}] leaves < 1 token; raise max_epochs, widen "
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
        for c in budget * np.logspace(-search.sweep_decades, search.sweep_decades,
                                      search.sweep_points):
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
    for p, e in zip(best.pools, epochs):
        worthless, diminishing, basis = epoch_thresholds(p)
        if e > worthless * (1 + 1e-6):
            warnings.append(
                f"pool {p.name}: {e:.1f} epochs, past ~{worthless:.3g}: further "
                f"repetitions are close to worthless ({basis}); "
                "the plan is data-starved: find more unique data")
        elif e > diminishing * (1 + 1e-6):
            warnings.append(
                f"pool {p.name}: {e:.1f} epochs, past ~{diminishing:.3g}: diminishing "
                f"returns, each repeated token is worth noticeably less than a fresh one "
                f"({basis})")
    capped = _at_cap(best, D)
    if capped:
        warnings.append(
            "held at max_epochs: " + ", ".join(f"{p.name} ({p.max_epochs:.3g} epochs, "
                                               f"{p.max_epochs_source})" for p in capped)
            + "; the law alone would repeat more, but those repetitions add little: more "
            "unique data is the fix (or raise max_epochs)")
    kinds = sorted({p.utility_kind for p in best.pools})
    if "placeholder" in kinds:
        warnings.append("the plan rests on PLACEHOLDER utilities (law.quality_step) for "
                        + ", ".join(p.name for p in best.pools if p.utility_kind == "placeholder")
                        + ": not measurements; fit them with `datamill fit-pools`")
    if len(pools) > 1 and all(p.utility_kind == "base_law" for p in pools):
        warnings.append("no pool has a fitted or published utility: every pool is assumed to "
                        "be worth the same per token (b = -beta), so the plan cannot prefer "
                        "better pools; fit them with `datamill fit-pools`")
    excluded = [p.name for p in pools if p not in best.pools]
    plan_pools = []
    for p, w, e in zip(best.pools, best.weights, epochs):
        plan_pools.append({"name": p.name, "quality_tier": p.tier, "unique_tokens": p.unique,
                           "epochs": float(e), "sampling_weight": float(w),
                           "tokens": float(e * p.unique), "utility": p.b,
                           "utility_kind": p.utility_kind, "utility_source": p.utility_source,
                           "half_life": p.tau, "half_life_source": p.half_life_source,
                           "max_epochs": p.max_epochs,
                           "max_epochs_source": p.max_epochs_source})
    U_inc = float(sum(p.unique for p in best.pools))
    from scaling.chinchilla import compute_optimal

    n_c, d_c = compute_optimal(C, A=law.A, B=law.B, alpha=law.alpha, beta=law.beta)
    data_limit: dict[str, Any] = {
        "unique_tokens_included": U_inc,
        "max_epochs": float(epochs.max()),
        "unconstrained_optimum": {"model_params": float(n_c), "train_tokens": float(d_c),
                                  "epochs_it_would_need": float(d_c) / U_inc},
    }
    if sat is not None:
        data_limit.update({"saturation_compute": sat.compute,
                           "loss_at_saturation": sat.loss,
                           "saturation_gain_per_doubling": sat.gain,
                           "saturation_limited_by": sat.limited_by,
                           "budget_beyond_saturation": budget > sat.compute * 1.000001})
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
            "compute_budget": budget,
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
            "utilities": kinds,
            "data_limit": data_limit,
            "warnings": warnings,
        },
        "frontier": frontier,
        "compute_sweep": [{"flops": r["flops"], "best_set": r["best_set"],
                           "loss": {k: v["loss"] for k, v in r["sets"].items()}} for r in sweep],
        "law": law_src,
    }
    if all(p.files for p in best.pools):
        data["materialize"] = {
            "seed": cfg.seed, "shards": cfg.shards,
            "tokenizer": (law_src.get("tokens") or {}).get("tokenizer") or cfg.tokenizer,
            "token_column": (law_src.get("tokens") or {}).get("token_column"),
            "pools": [{"name": p.name, "files": p.files, "select": p.select,
                       "epochs": float(e), "unique_tokens": p.unique_counted,
                       "target_tokens": float(e * p.unique_counted)}
                      for p, e in zip(best.pools, epochs)]}
    ranking = (law_src.get("pools_file") or {}).get("mixture_ranking")
    if ranking and ranking.get("ranking"):
        top = min(ranking["ranking"], key=lambda r: r["rank"])
        chosen = _set_label(best)
        sets = {f["pools"] and "+".join(f["pools"]) for f in frontier}
        data["small_scale_ranking"] = {**ranking, "plan_pool_set": chosen}
        if top["mixture"] in sets and top["mixture"] != chosen:
            warnings.append(
                f"small-scale runs ({ranking.get('source')}) rank {top['mixture']} first "
                f"(P(first) {top.get('p_first') or float('nan'):.2f}) but the plan picks "
                f"{chosen} at {C:.3g} FLOPs: expected when filtering should loosen with "
                "compute (Goyal et al. 2024), otherwise check the fitted utilities")
    explanation = _explain(data, best, pools, sweep, law_src, stability)
    data["recommendation"]["explanation"] = explanation
    return Recommendation(data=data, sweep=sweep, explanation=explanation)


PLANS_TABLE_POOLS = (1e9, 1e11, 1e13)
PLANS_TABLE_BUDGETS = (1e21, 1e23, 1e25)


def plans_table() -> str:
    """docs/scaling.md's "Plans for three budgets and three pool sizes" (Markdown).

    One pool of U unique tokens, the published base law, default search (as
    ``datamill recommend`` with one pool of ``unique_tokens: U``); tests/test_docs.py keeps
    the docs equal to it (``python bench/bench_scaling.py --plans`` prints it)."""
    short = (("data-limited", "data-limited: plan stops at C_sat"),
             ("held at max_epochs", "held at max_epochs"),
             ("close to worthless", "past ~16 epochs: near worthless"),
             ("diminishing", "past ~4 epochs: diminishing"))
    lines = ["| unique tokens U | budget C | C used | N | D | epochs | loss | C_sat | warnings |",
             "|---|---|---|---|---|---|---|---|---|"]
    for U in PLANS_TABLE_POOLS:
        for C in PLANS_TABLE_BUDGETS:
            cfg = parse_config({"budget": {"flops": C}, "uncertainty": {"draws": 0},
                                "search": {"sweep_points": 3},
                                "pools": [{"name": "web", "unique_tokens": U,
                                           "quality_tier": 0}]})
            r = recommend(cfg).data["recommendation"]
            w = [next((t for k, t in short if k in x), x[:60]) for x in r["warnings"]
                 if not x.startswith("no pool has")]
            lines.append(
                f"| {U:.0e} | {C:.0e} | {r['compute_flops']:.2g} | {r['model_params']:.3g} | "
                f"{r['train_tokens']:.3g} | {r['pools'][0]['epochs']:.1f} | "
                f"{r['predicted_loss']['point']:.3f} | "
                f"{r['data_limit']['saturation_compute']:.2g} | {'; '.join(w) or '-'} |")
    return "\n".join(lines) + "\n"


def epoch_thresholds(p: ResolvedPool) -> tuple[float, float, str]:
    """(near-worthless, diminishing) epoch counts for a pool and what they rest on.

    Muennighoff et al.'s ~16 and ~4 epochs hold at the default half-life; a pool with its
    own (fitted or given) half-life ``tau`` gets them scaled by ``tau / tau_default``: the
    epochs at which its utility has decayed as far as the default pool's does at 16 and 4."""
    if p.tau_default > 0 and abs(p.tau - p.tau_default) > 1e-9 * p.tau_default:
        k = p.tau / p.tau_default
        return (NEAR_WORTHLESS_EPOCHS * k, DIMINISHING_EPOCHS * k,
                f"this pool's half-life {p.tau:.3g} epochs ({p.half_life_source}) vs the "
                f"default {p.tau_default:.3g}: Muennighoff et al. 2023's ~"
                f"{NEAR_WORTHLESS_EPOCHS:g}/~{DIMINISHING_EPOCHS:g} epochs x {k:.3g}")
    return (NEAR_WORTHLESS_EPOCHS, DIMINISHING_EPOCHS,
            "Muennighoff et al. 2023, R*_D ~ 15.4")


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
    dl = r.get("data_limit") or {}
    if dl.get("budget_beyond_saturation"):
        parts.append(f"This data saturates at ~{dl['saturation_compute']:.3g} FLOPs (of the "
                     f"{r['compute_budget']:.3g} budget): beyond it more compute buys almost "
                     "nothing, so the plan stops there.")
    elif dl.get("saturation_compute"):
        parts.append(f"More compute keeps paying for this data up to ~"
                     f"{dl['saturation_compute']:.3g} FLOPs.")
    law_txt = ("fitted to your runs" if law_src.get("fitted") else
               "the published Muennighoff et al. 2023 fit" if law_src.get("published") else
               "given in the config")
    kinds = r.get("utilities") or []
    util_txt = {"fitted": "fitted with fit-pools", "given": "given in the config",
                "base_law": "the base law's b = -beta (no quality difference assumed)",
                "placeholder": "PLACEHOLDERS (law.quality_step), not measurements"}
    parts.append(f"Base law: {law_txt}; pool utilities: "
                 + "; ".join(util_txt.get(k, k) for k in kinds) + ".")
    if not law_src.get("fitted") or set(kinds) - {"fitted"}:
        parts.append("Trust the ranking of options more than the absolute numbers, and fit "
                     "the base law and the pool utilities on small runs before a large run.")
    return " ".join(parts)
