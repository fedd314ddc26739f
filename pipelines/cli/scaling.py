"""Scaling-law commands: ``datamill recommend``, ``materialize`` and ``fit-chinchilla``.

Heavy imports (numpy/scipy fits, Beam) happen inside the commands.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

console = Console(stderr=True)


def _fail(msg: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {msg}", highlight=False)
    raise typer.Exit(code)


def _yaml_safe(obj):
    """numpy scalars/arrays and tuples -> plain Python for yaml.safe_dump."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _yaml_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_yaml_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def register(app: typer.Typer) -> None:
    @app.command("recommend")
    def recommend_cmd(
        config: Optional[Path] = typer.Argument(
            None, help="Mixture config (YAML), e.g. configs/mixture_example.yaml. Optional with "
            "--from-build and --flops."),
        out: Optional[Path] = typer.Option(None, "--out", "-o",
                                           help="Recommendation YAML (default: <name>.rec.yaml)."),
        plot: Optional[Path] = typer.Option(None, "--plot",
                                            help="Plot PNG (default: next to --out)."),
        from_build: Optional[Path] = typer.Option(
            None, "--from-build", help="A `datamill build` output directory: one pool per "
            "source with the token counts of its token_count stage (replaces "
            "pools_from_build.dir)."),
        flops: Optional[float] = typer.Option(None, "--flops", help="Compute budget (overrides "
                                              "the config's budget)."),
        pools_file: Optional[Path] = typer.Option(
            None, "--pools", help="Pools YAML from `datamill fit-pools` (fitted utilities)."),
    ) -> None:
        """Recommend model size, tokens, quality filter, epochs and weights for a budget."""
        import yaml

        from scaling.plots import save_frontier_plot
        from scaling.recommend import (
            PoolsFromBuild,
            RecommendConfigError,
            load_config,
            parse_config,
            recommend,
        )

        try:
            if config is not None:
                cfg = load_config(str(config))
            elif from_build is not None and flops is not None:
                name = f"{from_build.resolve().name}-plan"
                cfg = parse_config({"name": name, "budget": {"flops": flops},
                                    "pools_from_build": {"dir": str(from_build.resolve())}})
            else:
                _fail("give a config, or --from-build OUT_DIR with --flops")
                return
            if flops is not None:
                cfg.budget = cfg.budget.model_validate({"flops": flops})
            if from_build is not None:
                # Absolute: the plan's materialize block is read from other directories.
                if cfg.pools_from_build is None:
                    cfg.pools_from_build = PoolsFromBuild(dir=str(from_build.resolve()))
                else:
                    cfg.pools_from_build.dir = str(from_build.resolve())
            if pools_file is not None:
                cfg.pools_file = str(pools_file)
            rec = recommend(cfg)
        except RecommendConfigError as err:
            _fail(f"invalid config {config or from_build}:\n{err}")
            return
        out_path = out or Path(f"{cfg.name}.rec.yaml")
        plot_path = plot or out_path.with_suffix(".png")
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(yaml.safe_dump(_yaml_safe(rec.data), sort_keys=False),
                            encoding="utf-8")
        save_frontier_plot(rec.data, rec.sweep, str(plot_path))
        r = rec.data["recommendation"]
        typer.echo(f"compute: {r['compute_flops']:.4g} FLOPs (budget {r['compute_budget']:.4g})"
                   f"  model_params: {r['model_params']:.4g}  train_tokens: "
                   f"{r['train_tokens']:.4g}  include_tiers: {r['filter']['include_tiers']}")
        for p in r["pools"]:
            typer.echo(f"  {p['name']:<20} epochs {p['epochs']:7.3f}  weight "
                       f"{p['sampling_weight']:.3f}  tokens {p['tokens']:.4g}  utility "
                       f"{p['utility']:.4f} ({p['utility_kind']})")
        dl = r["data_limit"]
        if dl.get("saturation_compute"):
            typer.echo(f"data limit: more compute stops paying (< "
                       f"{dl['saturation_gain_per_doubling']:g} nats per doubling) beyond "
                       f"~{dl['saturation_compute']:.3g} FLOPs")
        typer.echo("")
        typer.echo(rec.explanation)
        for w in r.get("warnings", []):
            console.print(f"[yellow]warning:[/] {w}", highlight=False)
        typer.echo(f"\nwrote {out_path} and {plot_path}")

    @app.command("fit-pools")
    def fit_pools_cmd(
        runs: Path = typer.Argument(..., help="Proxy runs CSV: pool, model_size, tokens, "
                                    "unique_tokens and the metric column."),
        out: Path = typer.Option(Path("pools.yaml"), "--out", "-o", help="Pools YAML to write."),
        metric: str = typer.Option("loss", "--metric", help="Loss column (lower is better)."),
        bootstrap: int = typer.Option(100, "--bootstrap", "-b", min=0),
        level: float = typer.Option(0.9, "--level", help="Interval level."),
        chinchilla_csv: Optional[Path] = typer.Option(
            None, "--chinchilla-csv", help="Fit the base law (B, beta) here instead of using "
            "Muennighoff et al.'s published values."),
        seed: int = typer.Option(0, "--seed"),
    ) -> None:
        """Fit per-pool utility b and repetition half-life tau (Goyal et al. 2024) from proxy
        runs; `recommend --pools` or `pools_file:` reads the result."""
        from scaling.data_constrained import MUENNIGHOFF
        from scaling.pools_fit import fit_pools, load_pool_runs_csv, write_pools_yaml

        try:
            rows = load_pool_runs_csv(str(runs), metric=metric)
            B, beta, law_src = MUENNIGHOFF["B"], MUENNIGHOFF["beta"], "Muennighoff et al. 2023"
            if chinchilla_csv is not None:
                from scaling.chinchilla import fit_chinchilla_runs, load_chinchilla_csv

                f = fit_chinchilla_runs(*load_chinchilla_csv(str(chinchilla_csv)))
                B, beta, law_src = f.B, f.beta, f"fitted on {chinchilla_csv}"
            res = fit_pools(rows, B=B, beta=beta, n_bootstrap=bootstrap, level=level, seed=seed)
            res["law"]["source"] = law_src
            res["metric"] = metric
            write_pools_yaml(res, str(out), source=str(runs))
        except (OSError, ValueError) as err:
            _fail(str(err))
            return
        for p in res["pools"]:
            ci = p.get("utility_ci")
            tci = p.get("half_life_ci")
            typer.echo(f"{p['name']:<20} b {p['utility']:.4f}"
                       + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")
                       + f"  tau {p['half_life']:.3g}"
                       + (f" [{tci[0]:.3g}, {tci[1]:.3g}]" if tci else "")
                       + ("" if p["half_life_identified"] else " (not identified: no run "
                          "repeats data)") + f"  runs {p['runs']}")
        typer.echo(f"wrote {out}")

    @app.command("materialize", context_settings={"allow_extra_args": True,
                                                  "ignore_unknown_options": True})
    def materialize_cmd(
        ctx: typer.Context,
        recommendation: Path = typer.Argument(..., help="YAML written by `datamill recommend`."),
        out: Path = typer.Option(Path("mixture"), "--out", "-o", help="Output directory."),
    ) -> None:
        """Build the training mixture (Parquet shards + manifest.json) from a recommendation.

        Arguments after ``--`` go to Beam, e.g. ``-- --runner DataflowRunner --project p``.
        """
        import logging

        import yaml

        from pipelines.jobs.materialize import MaterializeError, materialize

        for name in ("apache_beam", "root"):
            logging.getLogger(name).setLevel(logging.ERROR)
        if not recommendation.is_file():
            _fail(f"{recommendation} does not exist")
        try:
            rec = yaml.safe_load(recommendation.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            _fail(f"{recommendation}: not valid YAML: {err}")
            return
        try:
            manifest = materialize(rec, str(out), pipeline_args=list(ctx.args))
        except MaterializeError as err:
            _fail(str(err))
            return
        for p in manifest["pools"]:
            typer.echo(f"{p['name']:<20} target {p['target_tokens']:12.1f}  achieved "
                       f"{p['achieved_tokens']:12.1f}  docs {p['documents']}")
        if manifest["dead_letter"]["count"]:
            console.print(f"[yellow]{manifest['dead_letter']['count']} bad rows skipped:[/] "
                          f"{manifest['dead_letter']['reasons']}")
        manifest_path = os.path.join(str(out), "manifest.json")
        typer.echo(f"wrote {len(manifest['files'])} shards and {manifest_path}")

    @app.command("rank-mixtures")
    def rank_mixtures_cmd(
        csv: Path = typer.Argument(..., help="Small runs: columns mixture, N, D and the metric."),
        metric: str = typer.Option("loss", "--metric", help="Column to rank by."),
        higher_is_better: bool = typer.Option(False, "--higher-is-better"),
        method: str = typer.Option("single_scale", "--method",
                                   help="single_scale or extrapolate."),
        target_compute: Optional[float] = typer.Option(
            None, "--target-compute", help="FLOPs to extrapolate to (method extrapolate)."),
        bootstrap: int = typer.Option(500, "--bootstrap", "-b", min=1),
        seed: int = typer.Option(0, "--seed"),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
        pools_out: Optional[Path] = typer.Option(
            None, "--pools-out", help="Also store the ranking in this pools YAML (the file "
            "`recommend --pools` reads; mixtures named 'poolA+poolB' match its pool sets)."),
    ) -> None:
        """Rank candidate mixtures from small runs and report how stable the ranking is."""
        from scaling.small_scale import load_runs_csv, rank_mixtures

        try:
            rows = load_runs_csv(str(csv), metric=metric)
            res = rank_mixtures(rows, metric=metric, higher_is_better=higher_is_better,
                                method=method, target_compute=target_compute,
                                n_bootstrap=bootstrap, seed=seed)
        except (OSError, ValueError) as err:
            _fail(str(err))
            return
        if pools_out is not None:
            from scaling.pools_fit import add_mixture_ranking

            try:
                add_mixture_ranking(str(pools_out), {**res, "method": method,
                                                     "compute": target_compute},
                                    source=str(csv))
            except (OSError, ValueError) as err:
                _fail(str(err))
                return
        if as_json:
            typer.echo(json.dumps(_yaml_safe(res), indent=2))
            return
        for r in res["ranking"]:
            ci = r.get("score_ci")
            ci_s = f"  95% [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else ""
            typer.echo(f"{r['rank']:>2}. {r['mixture']:<24} {metric} {r['score']:.4g}{ci_s}  "
                       f"P(first) {r.get('p_first', float('nan')):.2f}")
        for p in res["pairs"]:
            if p["agreement"] < 0.9:
                typer.echo(f"   unstable: {p['better']} vs {p['worse']} agree in only "
                           f"{p['agreement']:.0%} of resamples")
        typer.echo(f"ranking stability (mean pairwise agreement): {res['stability']:.2f}")

    @app.command("fit-chinchilla")
    def fit_chinchilla_cmd(
        csv: Path = typer.Argument(..., help="Runs CSV: 'Model Size','Training FLOP','loss' "
                                   "(Epoch AI format) or 'N','D','loss'."),
        bootstrap: int = typer.Option(100, "--bootstrap", "-b", min=0,
                                      help="Bootstrap resamples for the intervals."),
        starts: int = typer.Option(64, "--starts", min=1,
                                   help="L-BFGS starts from the best grid points (4500 = all)."),
        all_runs: bool = typer.Option(
            False, "--all-runs", help="Fit every run. Default: Besiroglu et al.'s protocol, "
            "which leaves out the 5 highest-loss runs."),
        compute: float = typer.Option(1e24, "--compute", help="C for N*(C), D*(C)."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
        seed: int = typer.Option(0, "--seed"),
    ) -> None:
        """Fit L = E + A/N^alpha + B/D^beta (Besiroglu et al. protocol) with bootstrap CIs."""
        from scaling.chinchilla import (
            BESIROGLU,
            HOFFMANN,
            fit_chinchilla_runs,
            huber_objective,
            load_chinchilla_csv,
        )

        protocol = "all" if all_runs else "besiroglu"
        try:
            N, D, L = load_chinchilla_csv(str(csv))
            fit = fit_chinchilla_runs(N, D, L, protocol=protocol, n_starts=starts,
                                      n_bootstrap=bootstrap, seed=seed)
        except (OSError, ValueError) as err:
            _fail(str(err))
            return
        keep = [i for i in range(len(N)) if i not in set(fit.excluded)]
        Nk, Dk, Lk = N[keep], D[keep], L[keep]
        n_opt, d_opt = fit.compute_optimal(compute)
        out = {"n_runs": len(N), "n_fitted": fit.n_points, "protocol": protocol,
               "excluded_runs": [{"row": i + 2, "N": float(N[i]), "D": float(D[i]),
                                  "loss": float(L[i])} for i in fit.excluded],
               "params": fit.params(), "ci": fit.ci,
               "ci_level": fit.ci_level, "huber_objective": fit.objective,
               # Objectives of the published parameters on the *same* runs as ours.
               "huber_objective_besiroglu": huber_objective(BESIROGLU, Nk, Dk, Lk),
               "huber_objective_hoffmann": huber_objective(HOFFMANN, Nk, Dk, Lk),
               "compute": compute, "N_opt": float(n_opt), "D_opt": float(d_opt),
               "tokens_per_param": float(d_opt / n_opt)}
        if bootstrap:
            out["compute_optimal_ci"] = fit.compute_optimal_ci(compute)
        if as_json:
            typer.echo(json.dumps(_yaml_safe(out), indent=2))
            return
        if fit.excluded:
            typer.echo(f"protocol besiroglu: fitting {fit.n_points} of {len(N)} runs; left out "
                       f"the {len(fit.excluded)} highest-loss runs (CSV rows "
                       f"{', '.join(str(i + 2) for i in fit.excluded)}); --all-runs fits all")
        else:
            typer.echo(f"fitting all {fit.n_points} runs")
        typer.echo(f"Huber objective {fit.objective:.6g} on these runs (published Besiroglu et "
                   f"al. params: {out['huber_objective_besiroglu']:.6g}; Hoffmann et al.: "
                   f"{out['huber_objective_hoffmann']:.6g})")
        for k, v in fit.params().items():
            ci = fit.ci.get(k)
            ci_s = f"  [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else ""
            typer.echo(f"  {k:<6} {v:.5g}{ci_s}")
        line = (f"compute-optimal at C={compute:.3g}: N*={float(n_opt):.4g}, D*={float(d_opt):.4g}"
                f" ({float(d_opt / n_opt):.1f} tokens/param)")
        if bootstrap:
            c = out["compute_optimal_ci"]
            line += (f"  (N* [{c['N'][0]:.3g}, {c['N'][1]:.3g}], D* [{c['D'][0]:.3g}, "
                     f"{c['D'][1]:.3g}])")
        typer.echo(line)
