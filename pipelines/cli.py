"""``datamill`` command line (typer + rich).

Core commands live here; other areas add theirs from modules in ``pipelines/commands/`` that
define ``register(app)``. Anything after ``--`` on ``datamill build`` is passed to Beam as
pipeline arguments, e.g. ``datamill build c.yaml -- --runner DataflowRunner --project p``.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import pkgutil
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

os.environ.setdefault("HF_HUB_OFFLINE", "1")

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="datamill: config-driven curation, pruning, synthesis and scaling for LLM training data.",
)
console = Console(stderr=True)


def _fail(msg: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {msg}", highlight=False)
    raise typer.Exit(code)


def _quiet_beam() -> None:
    for name in ("apache_beam", "root"):
        logging.getLogger(name).setLevel(logging.ERROR)


@app.command("build", context_settings={"allow_extra_args": True,
                                        "ignore_unknown_options": True})
def build(
    ctx: typer.Context,
    config: Path = typer.Argument(..., help="Build config (YAML)."),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Override output.dir."),
    workers: Optional[int] = typer.Option(
        None, "--workers", "-w", help="DirectRunner workers (multi-processing when > 1)."),
    force: bool = typer.Option(False, "--force", help="Ignore checkpoints and rebuild."),
) -> None:
    """Run a curation build: read sources, apply stages, write Parquet, stats and report.

    Exit codes: 0 success; 2 config error (before any work); 3 record accounting does not
    balance or a counting stat is missing; 4 too many records went to dead_letter
    (output.max_dead_letter_fraction, or every record); 5 an input file changed during the
    build. Nothing is promoted to the output directory on a non-zero exit.
    """
    from pipelines.accounting import AccountingError
    from pipelines.config import ConfigError, load_build_config
    from pipelines.graph import run_build

    _quiet_beam()
    overrides: dict = {}
    if output:
        overrides["output.dir"] = output
    if workers is not None:
        overrides["runner.direct_num_workers"] = workers
        if workers > 1:
            overrides["runner.direct_running_mode"] = "multi_processing"
    try:
        cfg = load_build_config(config, overrides)
    except ConfigError as err:
        _fail(f"invalid config {err}")
        return
    t0 = time.perf_counter()
    try:
        with console.status(f"[bold]building[/] {cfg.name} -> {cfg.output.dir}") as status:
            def log(msg: str) -> None:
                console.log(msg)
                status.update(f"[bold]{msg}")

            result = run_build(cfg, extra_args=list(ctx.args), force=force, log=log)
    except ConfigError as err:
        _fail(str(err))
        return
    except AccountingError as err:  # issue 10: 3 imbalance, 4 dead letter, 5 changed input
        _fail(str(err), code=err.exit_code)
        return
    _print_summary(result.stats, result.out, time.perf_counter() - t0, result.skipped)


def _print_summary(stats: dict, out: str, seconds: float, skipped: bool) -> None:
    c = stats["counts"]
    table = Table(title=f"datamill build {stats['name']}" + (" (up to date)" if skipped else ""))
    for col in ("stage", "in", "removed", "dead-letter", "out"):
        table.add_column(col, justify="right" if col != "stage" else "left")
    read_dead = sum(stats["read"]["dead_letter"].values())
    table.add_row("read", f"{c['input']:,}", "0", f"{read_dead:,}", f"{c['input'] - read_dead:,}")
    for label, st in stats["stages"].items():
        table.add_row(label, f"{st.get('in', 0):,}", f"{sum(st['removed'].values()):,}",
                      f"{sum(st['dead_letter'].values()):,}", f"{st.get('out', 0):,}")
    console.print(table)
    ok = "[green]balanced[/]" if stats["conservation_ok"] else "[red]NOT balanced[/]"
    console.print(f"accounting {ok}: input {c['input']:,} = kept {c['kept']:,} + removed "
                  f"{c['removed']:,} + dead-letter {c['dead_letter']:,}")
    if not skipped:
        console.print(f"{stats['wall_seconds']:.1f} s pipeline time, "
                      f"{stats.get('docs_per_second') or 0:,.0f} docs/s; total {seconds:.1f} s")
    console.print(f"output: {out}/data  stats: {out}/stats.json  report: {out}/report.html")


@app.command("validate")
def validate(config: Path = typer.Argument(..., help="Build config (YAML).")) -> None:
    """Check a build config without running anything.

    Runs the build's planner (sources listed, stages instantiated, output columns resolved), so
    it rejects what ``datamill build`` would reject before doing any work."""
    from pipelines.config import ConfigError, load_build_config
    from pipelines.graph import plan_build

    try:
        cfg = load_build_config(config)
    except ConfigError as err:
        _fail(f"invalid config {err}")
        return
    try:
        plan = plan_build(cfg, use_checkpoints=False)
    except (ConfigError, ValueError) as err:  # issue 10: what the build would reject
        _fail(f"invalid config {config}:\n{err}")
        return
    n_files = sum(len(sp.files or []) for sp in plan.sources)
    skipped = [s for sp in plan.sources for s in getattr(sp, "skipped", [])]
    for s in skipped[:20]:
        console.print(f"[yellow]skipped[/] {s.path}: {s.reason}", highlight=False)
    console.print(f"[green]ok[/]: {len(cfg.sources)} source(s), {n_files} file(s)"
                  f"{f', {len(skipped)} skipped' if skipped else ''}, stages: "
                  f"{', '.join(plan.labels) or '(none)'}")


@app.command("stages")
def stages(
    markdown: bool = typer.Option(False, "--markdown", help="Print the docs/stages.md reference."),
) -> None:
    """List the available stages and their parameters."""
    from pipelines.stage import load_stages

    if markdown:
        from pipelines.stage_docs import stages_markdown

        sys.stdout.write(stages_markdown())
        return
    table = Table(title="stages")
    table.add_column("name")
    table.add_column("description")
    table.add_column("parameters")
    for name, cls in sorted(load_stages().items()):
        fields = [f for f in cls.Params.model_fields if f not in ("stage",)]
        table.add_row(name, cls.description, ", ".join(fields))
    console.print(table)


@app.command("demo-corpus")
def demo_corpus(
    out_dir: Path = typer.Argument(Path("data/demo_corpus"), help="Where to write the corpus."),
    docs: int = typer.Option(3000, help="Number of base documents."),
) -> None:
    """Generate the demo corpus from this Python installation's docstrings."""
    from pipelines.demo_corpus import write_corpus

    info = write_corpus(out_dir, docs)
    console.print_json(json.dumps(info))


@app.command("report")
def report(out_dir: str = typer.Argument(..., help="A build's output directory.")) -> None:
    """Re-render report.html from a finished build's stats.json."""
    from pipelines.config import build_config_from_dict
    from pipelines.graph import plan_build
    from pipelines.report import render

    stats_path = Path(out_dir) / "stats.json"
    if not stats_path.is_file():
        _fail(f"{stats_path} not found: is {out_dir} a finished build?")
    stats = json.loads(stats_path.read_text())
    manifest = json.loads((Path(out_dir) / "manifest.json").read_text())
    cfg = build_config_from_dict(manifest["config"])
    plan = plan_build(cfg, use_checkpoints=False)
    (Path(out_dir) / "report.html").write_text(render(stats, out_dir, plan.stages))
    console.print(f"wrote {out_dir}/report.html")


def _register_plugins() -> None:
    import pipelines.commands as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        try:
            module = importlib.import_module(f"{pkg.__name__}.{info.name}")
        except ImportError as err:  # an optional extra is missing: keep the core CLI working
            console.print(f"[yellow]note:[/] commands from {info.name} unavailable: {err}")
            continue
        register = getattr(module, "register", None)
        if register is None:
            continue
        before = len(app.registered_commands)
        try:
            register(app)
            typer.main.get_command(app)  # surfaces broken signatures now, not at dispatch
        except Exception as err:  # noqa: BLE001 - one broken plugin must not take the CLI down
            del app.registered_commands[before:]
            console.print(f"[yellow]note:[/] commands from {info.name} unavailable: "
                          f"{type(err).__name__}: {err}")


def main() -> None:
    _register_plugins()
    app(prog_name="datamill")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
