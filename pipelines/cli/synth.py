"""``datamill synth CONFIG.yaml``: generate problems and verified solutions (math or code)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("synth", context_settings={"allow_extra_args": True,
                                            "ignore_unknown_options": True})
    def synth(
        ctx: typer.Context,
        config: Path = typer.Argument(  # noqa: B008 - typer idiom
            ..., help="Synth config (YAML), e.g. configs/synth_math.yaml."),
        output: str | None = typer.Option(None, "--output", "-o", help="Override output_dir."),
        limit: int | None = typer.Option(None, "--limit", help="Override seeds.limit."),
    ) -> None:
        """Synthesize problems with verified solutions; resumable (reruns skip finished batches).

        Arguments after ``--`` go to Beam (e.g. ``-- --runner DataflowRunner``).
        """
        import logging

        from pipelines.core.settings import ConfigError
        from pipelines.jobs.synth import load_synth_config, run_synth

        for name in ("apache_beam", "root"):
            logging.getLogger(name).setLevel(logging.ERROR)
        overrides: dict = {}
        if output:
            overrides["output_dir"] = output
        if limit is not None:
            overrides["seeds.limit"] = limit
        try:
            cfg = load_synth_config(config, overrides)
        except ConfigError as e:
            typer.echo(f"config error: {e}", err=True)
            raise typer.Exit(2) from None
        from pipelines.build.errors import BuildError

        from synth.backends import BackendConfig, describe_generation

        b = cfg.backend
        typer.echo(describe_generation(BackendConfig(b.type, b.model, dict(b.options))),
                   err=True)
        try:
            stats = run_synth(cfg, extra_args=list(ctx.args))
        except ConfigError as e:  # e.g. a file datamill did not write where an output goes
            typer.echo(f"config error: {e}", err=True)
            raise typer.Exit(2) from None
        except BuildError as e:  # the output directory is locked by another run, disk full
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(e.exit_code) from None
        c = stats.get("counters", {})
        # stdout: the summary only (progress lines went to stderr during the run)
        fit = (stats.get("coverage") or {}).get("fit")
        typer.echo(
            f"{cfg.name}: kept {stats['kept']} problems, removed {stats['removed']}, "
            f"dead-letter {stats['dead_letter']}; batches generated {c.get('batches_generated', 0)}"
            f", resumed {c.get('batches_resumed', 0)}; mean pass rate "
            f"{stats['mean_pass_rate'] if stats['mean_pass_rate'] is None else round(stats['mean_pass_rate'], 3)}"
            + (f"; coverage fit c(k)=exp({fit['a']:.3f}*k^{fit['b']:.3f}), rmse {fit['rmse']:.4f}"
               if fit else "")
            + f"; wrote {cfg.output_dir} (stats.json: coverage, sample checks, counters)")
