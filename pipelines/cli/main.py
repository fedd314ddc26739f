"""``datamill`` command line (typer + rich).

Core commands live here; other areas add theirs from modules in ``pipelines/cli/`` that
define ``register(app)``. Anything after ``--`` on ``datamill build`` is passed to Beam as
pipeline arguments, e.g. ``datamill build c.yaml -- --runner DataflowRunner --project p``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import pkgutil
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

os.environ.setdefault("HF_HUB_OFFLINE", "1")

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="datamill: config-driven curation, pruning, synthesis and scaling for LLM training data.",
    # plain click help: paragraphs re-wrapped to the terminal (rich mode kept the docstrings'
    # line breaks and broke lines mid-sentence) and flags without a "<bool>" type column
    rich_markup_mode=None,
)
# log_path=False: log lines carry the time, not the source location (run.py:354) of the call
console = Console(stderr=True, log_path=False)


def _fail(msg: str, code: int = 2, wrap: bool = True) -> None:
    console.print(f"[bold red]error:[/] {msg}", highlight=False, soft_wrap=not wrap)
    raise typer.Exit(code)


VERBOSE = False  # set by the global --verbose flag (parsed in main before Beam is imported)


def _quiet_beam() -> None:
    if VERBOSE:
        return
    for name in ("apache_beam", "root"):
        logging.getLogger(name).setLevel(logging.ERROR)


class _HeldErrors(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.records) < 50:
            self.records.append(record)


@contextlib.contextmanager
def _beam_errors_held(explained: tuple[type[BaseException], ...]):
    """Beam logs a failing step's exception (ERROR and its traceback) before it reaches us. A
    failure datamill explains in one line (disk full, Ctrl-C, a changed input...) is shown as
    that line only; any other failure gets Beam's lines too, after the fact. ``--verbose``
    shows everything as it happens."""
    if VERBOSE:
        yield
        return
    from pipelines.core.beam_speedups import QUIET_WORKERS
    from pipelines.core.runner import environment

    beam_log = logging.getLogger("apache_beam")
    held = _HeldErrors()
    propagate = beam_log.propagate
    beam_log.addHandler(held)
    beam_log.propagate = False
    try:
        # local worker processes (-w 2) print nothing either: pipelines/core/beam_speedups
        with environment(**{QUIET_WORKERS: "1"}):
            yield
    except explained:
        raise
    except BaseException:
        for record in held.records:
            logging.getLogger().handle(record)
        raise
    finally:
        beam_log.removeHandler(held)
        beam_log.propagate = propagate


def _beam_log_args() -> list[str]:
    """Pipeline args that keep SDK worker processes (``-w 2``) quiet: a failing step's error
    reaches this process with the worker's traceback in it (shown unless datamill explains the
    failure in one line, :func:`_beam_errors_held`), so the workers need not print it too."""
    return [] if VERBOSE else ["--default_sdk_harness_log_level=CRITICAL"]


@app.callback()
def _global(verbose: bool = typer.Option(
        False, "--verbose", help="Show Beam's and the workers' log lines (quiet by default).")
        ) -> None:
    """datamill: config-driven curation, pruning, synthesis and scaling for LLM training data."""


_BUILD_EPILOG = (
    "Beam pipeline arguments go after `--` and are passed to the runner unchanged, e.g. "
    "`datamill build c.yaml -- --runner PortableRunner --job_endpoint=embed "
    "--environment_type=EXTERNAL --environment_config=localhost:50000` or "
    "`-- --runner DataflowRunner --project P --region R --temp_location gs://b/tmp "
    "--setup_file ./setup.py`. See README 'Runners'.")


@app.command("build", context_settings={"allow_extra_args": True,
                                        "ignore_unknown_options": True},
             epilog=_BUILD_EPILOG)
def build(
    ctx: typer.Context,
    config: Path = typer.Argument(..., metavar="CONFIG", help="Build config (YAML)."),
    output: Optional[str] = typer.Option(None, "--output", "-o", metavar="DIR",
                                          help="Override output.dir."),
    workers: Optional[int] = typer.Option(
        None, "--workers", "-w", metavar="N", help="DirectRunner workers (multi-processing when > 1)."),
    force: bool = typer.Option(False, "--force", help="Ignore checkpoints and rebuild."),
    progress_every: float = typer.Option(
        10.0, "--progress-every", metavar="SECONDS", help="Seconds between progress lines when stderr is not a "
        "terminal (a terminal gets a live table); 0 turns progress off."),
) -> None:
    """Run a curation build: read sources, apply stages, write Parquet, stats and report.

    Exit codes: 0 success; 2 config error (before any work); 3 record accounting does not
    balance or a counting stat is missing; 4 too many records went to dead_letter
    (output.max_dead_letter_fraction, or every record); 5 an input file changed during the
    build; 74 disk full, or remote storage (gs://...) not reachable within
    DATAMILL_REMOTE_TIMEOUT seconds (default 20) or no credentials for it; 75 the output
    directory is locked by another build; 130/143 interrupted (Ctrl-C / SIGTERM). Nothing is
    promoted to the output directory on a non-zero exit; a signal that arrives during the
    short final promotion waits for it, and the build then exits 0 saying so (it is
    published). With `-- --dry_run=True` nothing is run or written (README "Runners").
    """
    try:  # Ctrl-C while importing Beam or loading the config: nothing started yet
        from pipelines.build.accounting import AccountingError
        from pipelines.build.errors import BuildError
        from pipelines.core.remote import RemoteUnreachable
        from pipelines.core.settings import ConfigError
        from pipelines.build.config import load_build_config

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
    except KeyboardInterrupt:
        _fail("interrupted by SIGINT: nothing was started", code=130, wrap=False)
        return
    t0 = time.perf_counter()
    try:
        with _beam_errors_held((RemoteUnreachable, ConfigError, AccountingError, BuildError,
                                KeyboardInterrupt)):
            result = _run_with_progress(cfg, [*_beam_log_args(), *ctx.args], force,
                                        progress_every)
    except RemoteUnreachable as err:  # gs://... no answer in time / no credentials: one line
        _fail(str(err), code=err.exit_code, wrap=False)
        return
    except ConfigError as err:
        _fail(str(err))
        return
    except AccountingError as err:  # issue 10: 3 imbalance, 4 dead letter, 5 changed input
        _fail(str(err), code=err.exit_code)
        return
    except BuildError as err:  # lock held, disk full, Ctrl-C/SIGTERM: one line, documented code
        _fail(str(err), code=err.exit_code, wrap=False)
        return
    except KeyboardInterrupt:  # Ctrl-C outside run_build's own handler (before it installs it)
        _fail("interrupted by SIGINT: nothing was promoted", code=130, wrap=False)
        return
    try:
        if result.dry_run:  # pipelines/build/dry_run.py logged what a real run would write
            console.print(f"dry run done in {time.perf_counter() - t0:.1f} s: nothing was "
                          "submitted, run or written", highlight=False, soft_wrap=True)
            return
        _print_summary(result.stats, result.out, time.perf_counter() - t0, result.skipped,
                       report=cfg.output.report)
    except KeyboardInterrupt:  # the build is published: exit 0 (a non-zero exit never is)
        console.print(f"interrupted while printing the summary: the build is published in "
                      f"{result.out} (exit 0)", highlight=False, soft_wrap=True)


def _run_with_progress(cfg, extra_args: list[str], force: bool, every: float):
    """Run the build showing live progress: a rich live table on a terminal, one plain line
    every ``every`` seconds otherwise (logs, pipes, CI)."""
    from pipelines.build.run import run_build
    from pipelines.core.progress import plain_line, rich_table

    if every <= 0:
        return run_build(cfg, extra_args=extra_args, force=force, log=console.log,
                         command=_command_line())
    if console.is_terminal:
        from rich.live import Live

        with Live(console=console, refresh_per_second=2, transient=True) as live:
            def log(msg: str) -> None:
                live.console.log(msg)

            return run_build(cfg, extra_args=extra_args, force=force, log=log,
                             command=_command_line(),
                             on_progress=lambda s: live.update(rich_table(s)),
                             progress_interval=0.5)

    def line(s: dict) -> None:
        console.print(plain_line(s), highlight=False, soft_wrap=True)

    return run_build(cfg, extra_args=extra_args, force=force, log=console.log,
                     command=_command_line(), on_progress=line, progress_interval=every)


def _command_line() -> str:
    """The command as the user typed it (for the dataset card)."""
    import shlex

    return "datamill " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _print_summary(stats: dict, out: str, seconds: float, skipped: bool,
                   report: bool = True) -> None:
    from pipelines.report.render import ordered_stages

    c = stats["counts"]
    table = Table(title=f"datamill build {stats['name']}" + (" (up to date)" if skipped else ""))
    for col in ("stage", "in", "removed", "dead-letter", "out"):
        table.add_column(col, justify="right" if col != "stage" else "left")
    read_dead = sum(stats["read"]["dead_letter"].values())
    table.add_row("read", f"{c['input']:,}", "0", f"{read_dead:,}", f"{c['input'] - read_dead:,}")
    for label, st in ordered_stages(stats):
        table.add_row(label, f"{st.get('in', 0):,}", f"{sum(st['removed'].values()):,}",
                      f"{sum(st['dead_letter'].values()):,}", f"{st.get('out', 0):,}")
    console.print(table)
    ok = "[green]balanced[/]" if stats["conservation_ok"] else "[red]NOT balanced[/]"
    console.print(f"accounting {ok}: input {c['input']:,} = kept {c['kept']:,} + removed "
                  f"{c['removed']:,} + dead-letter {c['dead_letter']:,}")
    if not skipped:
        console.print(f"{stats['wall_seconds']:.1f} s pipeline time, "
                      f"{stats.get('docs_per_second') or 0:,.0f} docs/s; total {seconds:.1f} s")
    where = f"output: {out}/data  stats: {out}/stats.json"
    console.print(where + (f"  report: {out}/report.html" if report else ""))


def _config_kind(data: object) -> str | None:
    """Which command a config belongs to, from its top-level keys."""
    if not isinstance(data, dict):
        return None
    keys = set(data)
    for kind, marks in CONFIG_KINDS:
        if keys & marks:
            return kind
    return None


# kind -> top-level keys that only that kind of config has (checked in this order)
CONFIG_KINDS: list[tuple[str, set[str]]] = [
    ("build", {"sources", "stages"}),
    ("synth", {"task", "backend", "seeds"}),
    ("mixture", {"budget", "pools"}),
    ("classifier", {"positive_paths", "negative_paths"}),
    ("lm", {"corpus_paths"}),
]


def _validate_kind(kind: str, config: Path, data: object) -> str:
    """Validate ``config`` as ``kind``; returns a one-line summary or raises ConfigError."""
    from pipelines.core.settings import ConfigError, validate_model
    from pipelines.build.config import load_build_config

    if kind == "build":
        from pipelines.build.plan import plan_build

        import tempfile

        cfg = load_build_config(config)
        with tempfile.TemporaryDirectory(prefix="datamill-validate-") as scratch:
            cfg = _without_demo_generation(cfg, scratch)
            try:  # the build's own planner: rejects what `datamill build` would, before any work
                _check_sampled_fields(cfg)  # first: a wrong text_field hides every column
                plan = plan_build(cfg, use_checkpoints=False)
            except (ConfigError, ValueError) as err:
                raise ConfigError(f"{config}:\n{err}") from None
        n_files = sum(len(sp.files or []) for sp in plan.sources)
        skipped = [s for sp in plan.sources for s in sp.skipped]
        for s in skipped[:20]:
            console.print(f"[yellow]skipped[/] {s.path}: {s.reason}", highlight=False,
                          soft_wrap=True)  # paths are never broken across lines
        for line in plan.describe_fields():  # input fields kept, renames (pipelines/input_fields)
            console.print(line, highlight=False, markup=False, soft_wrap=True)
        stages = ", ".join(plan.labels) or "(none)"
        return (f"build config: {len(cfg.sources)} source(s), {n_files} file(s)"
                f"{f', {len(skipped)} skipped' if skipped else ''}, stages: {stages}")
    if kind == "synth":
        from pipelines.jobs.synth import load_synth_config

        cfg = load_synth_config(config)
        return f"synth config: task {cfg.task}, backend {cfg.backend.type}"
    if kind == "mixture":
        from scaling.recommend import RecommendConfigError, parse_config

        try:
            cfg = parse_config(data)
        except RecommendConfigError as err:
            raise ConfigError(f"{config}:\n{err}") from None
        return f"mixture config: {len(cfg.pools)} pool(s)"
    if kind == "classifier":
        from pipelines.cli.train_classifier import TrainClassifierConfig

        validate_model(TrainClassifierConfig, data, prefix="")
        return "classifier training config"
    from pipelines.cli.train_lm import TrainLMConfig

    validate_model(TrainLMConfig, data)
    return "language-model training config"


def _without_demo_generation(cfg, scratch: str):
    """``cfg`` with its ``demo_corpus`` sources read as the JSONL they are, so that validating
    writes nothing (planning a build generates a missing demo corpus at its path): an existing
    corpus is read where it is; a missing one is validated against a small sample generated in
    ``scratch`` (a temporary folder, removed afterwards)."""
    from pipelines.io.demo_corpus import write_corpus

    sources = []
    for i, src in enumerate(cfg.sources):
        if src.type == "demo_corpus":
            folder = src.path
            if not (Path(folder) / "corpus_info.json").is_file():
                console.print(f"note: the demo corpus {folder} does not exist yet (datamill "
                              "build generates it); validated against a sample of it",
                              highlight=False, markup=False, soft_wrap=True)
                folder = f"{scratch}/demo_{i}"
                write_corpus(folder, min(src.demo_docs, 100))
            src = src.model_copy(update={"type": "jsonl", "path": f"{folder}/*.jsonl*"})
        sources.append(src)
    return cfg.model_copy(update={"sources": sources})


def _check_sampled_fields(cfg) -> None:
    """Read a sample of each JSONL source and name the configured fields (``text_field``,
    ``id_field``, ``keep_fields``) that no sampled record has: a ``text_field`` that never
    occurs is an error (the build would dead-letter every record after reading them all), the
    others are warnings. Sources that cannot be listed are left to the planner's errors."""
    from pipelines.build.paths import resolve_build_paths
    from pipelines.core.settings import ConfigError
    from pipelines.io.input_fields import sample_jsonl
    from pipelines.io.sources import describe_inputs

    try:
        cfg = resolve_build_paths(cfg)
    except Exception:  # noqa: BLE001 - reported by plan_build
        return
    errors = []
    for i, src in enumerate(cfg.sources):
        if src.type != "jsonl":
            continue
        try:
            files = describe_inputs(src, i)[0] or []
            seen = sample_jsonl([f.path for f in files], src.max_record_bytes)
        except Exception:  # noqa: BLE001 - reported by plan_build
            continue
        if not seen.types:  # no readable record sampled: nothing to compare with
            continue
        fields = ", ".join(repr(k) for k in seen.ranked()[:12])
        where = f"sources[{i}] ({src.name})"
        if src.text_field not in seen.types:
            errors.append(f"{where}.text_field: {src.text_field!r} occurs in none of the "
                          f"sampled records (their fields: {fields}); set text_field to the "
                          "field that holds the text")
        named = [("id_field", src.id_field)] if src.id_field else []
        named += [("keep_fields", k) for k in src.keep_fields or []]
        for key, name in named:
            if name not in seen.types:
                console.print(f"warning: {where}.{key}: {name!r} occurs in none of the "
                              f"sampled records (their fields: {fields})", highlight=False,
                              markup=False, soft_wrap=True)
    if errors:
        raise ConfigError("\n".join(errors))


@app.command("validate")
def validate(
    config: Path = typer.Argument(..., help="Any datamill config (YAML)."),
    kind: Optional[str] = typer.Option(
        None, "--kind", help="build | synth | mixture | classifier | lm (default: detected "
        "from the config's top-level keys)."),
) -> None:
    """Check a config (build, synth, mixture, classifier or lm) without running anything."""
    from pipelines.core.remote import RemoteUnreachable
    from pipelines.core.settings import ConfigError, load_yaml

    try:
        data = load_yaml(config)
        kinds = [k for k, _ in CONFIG_KINDS]
        if kind is not None and kind not in kinds:
            raise ConfigError(f"--kind {kind!r}: must be one of {', '.join(kinds)}")
        kind = kind or _config_kind(data)
        if kind is None:
            raise ConfigError(
                f"{config}: cannot tell which kind of config this is from its top-level keys "
                f"{sorted(data) if isinstance(data, dict) else type(data).__name__}; pass "
                f"--kind ({', '.join(kinds)})")
        summary = _validate_kind(kind, config, data)
    except RemoteUnreachable as err:  # gs://... no answer in time / no credentials: one line
        _fail(str(err), code=err.exit_code, wrap=False)
        return
    except ConfigError as err:
        _fail(f"invalid config {err}")
        return
    except ValueError as err:  # other commands' config errors (e.g. scaling, synth)
        _fail(f"invalid {kind} config {config}:\n{err}")
        return
    console.print(f"[green]ok[/]: {summary}", soft_wrap=True)


@app.command("stages")
def stages(
    markdown: bool = typer.Option(False, "--markdown", help="Print the docs/stages.md reference."),
) -> None:
    """List the available stages and their parameters."""
    from pipelines.stages.registry import load_stages

    if markdown:
        from pipelines.stages.docs import stages_markdown

        sys.stdout.write(stages_markdown())
        return
    from pipelines.stages.docs import COMMON_FIELDS, field_default, field_type

    table = Table(title="stages (every stage also takes label and checkpoint; per-record stages "
                        "annotate_only and batch_size; datamill stages --markdown documents all)")
    table.add_column("name")
    table.add_column("description")
    table.add_column("parameters (type = default)")
    for name, cls in sorted(load_stages().items()):
        fields = [f"{k}: {field_type(f)} = {field_default(f)}"
                  for k, f in cls.Params.model_fields.items() if k not in COMMON_FIELDS]
        table.add_row(name, cls.description, "\n".join(fields))
    console.print(table)


@app.command("demo-corpus")
def demo_corpus(
    out_dir: Path = typer.Argument(Path("data/demo_corpus"), help="Where to write the corpus."),
    docs: int = typer.Option(3000, help="Number of base documents."),
) -> None:
    """Generate the demo corpus from this Python installation's docstrings."""
    from pipelines.io.demo_corpus import write_corpus

    info = write_corpus(out_dir, docs)
    console.print_json(json.dumps(info))


@app.command("report")
def report(out_dir: str = typer.Argument(..., help="A build's output directory.")) -> None:
    """Re-render report.html from a finished build's stats.json."""
    from pipelines.build.config import build_config_from_dict
    from pipelines.build.plan import plan_build
    from pipelines.report.render import render

    stats_path = Path(out_dir) / "stats.json"
    if not stats_path.is_file():
        _fail(f"{stats_path} not found: is {out_dir} a finished build?")
    from pipelines.core.settings import ConfigError

    stats = json.loads(stats_path.read_text())
    manifest = json.loads((Path(out_dir) / "manifest.json").read_text())
    from pipelines.report.redact import snippet_redactor

    missing = _missing_stage_modules(manifest)
    if missing:  # one line, never wrapped: it names the module to make importable
        console.print(f"[bold red]error:[/] cannot re-render {out_dir}: its stages come "
                      f"from plugin module(s) {', '.join(missing)}, which cannot be "
                      "imported here; install the package or add its directory to "
                      "PYTHONPATH, then rerun datamill report", highlight=False,
                      soft_wrap=True)
        raise typer.Exit(2)
    try:
        import tempfile

        cfg = build_config_from_dict(_manifest_config(manifest))
        with tempfile.TemporaryDirectory(prefix="datamill-report-") as scratch:
            plan = plan_build(_without_demo_generation(cfg, scratch), use_checkpoints=False)
        stages, redactor = plan.stages, snippet_redactor(cfg)
    except ConfigError as err:
        # the inputs or files the stages read (blocklists, models) are gone or elsewhere (a
        # copied output folder): every section comes from stats.json, the stages are made
        # from the parameters it recorded, without looking at those files
        stages, redactor = _stages_from_stats(stats, manifest, out_dir)
        console.print(f"note: the build's config cannot be planned here ({err}); the report "
                      "is rendered from stats.json alone", highlight=False, soft_wrap=True)
    page = render(stats, out_dir, stages, redactor=redactor)
    (Path(out_dir) / "report.html").write_text(page)
    console.print(f"wrote {out_dir}/report.html")


def _stages_from_stats(stats: dict, manifest: dict, out_dir: str) -> tuple[list, Any]:
    """The build's stages made from the parameters stats.json recorded, not validated (no file
    a parameter names is opened), for their report sections; a stage whose constructor needs
    what is gone is left out (its section is the generic one). And the snippet redactor the
    build's config asked for."""
    from types import SimpleNamespace

    from pipelines.report.redact import snippet_redactor
    from pipelines.report.render import ordered_stages
    from pipelines.stages.base import StageContext
    from pipelines.stages.registry import load_stages

    registry = load_stages()
    stages, params_of = [], []
    for index, (label, st) in enumerate(ordered_stages(stats)):
        cls = registry.get(st.get("stage"))
        if cls is None:
            continue
        params = cls.Params.model_construct(**(st.get("params") or {}))
        params_of.append(params)
        try:
            stages.append(cls(params, StageContext(label=label, index=index, output_dir=out_dir,
                                                   columns={})))
        except Exception:  # noqa: BLE001 - e.g. a model file that is gone: generic section
            continue
    output = (manifest.get("config") or {}).get("output") or {}
    cfg = SimpleNamespace(output=SimpleNamespace(redact_snippets=output.get("redact_snippets")),
                          stages=params_of)
    return stages, snippet_redactor(cfg)


def _manifest_config(manifest: dict) -> dict:
    """The build config a manifest recorded, without the values a stage's Params derive
    (pydantic computed fields, e.g. url_filter's ``blocklists_sha256``), which the dump holds
    but a config may not set."""
    from pipelines.stages.registry import load_stages

    cfg = dict(manifest.get("config") or {})
    registry = load_stages()
    stages = []
    for item in cfg.get("stages") or []:
        cls = registry.get(item.get("stage")) if isinstance(item, dict) else None
        if cls is not None:
            item = {k: v for k, v in item.items() if k not in cls.Params.model_computed_fields}
        stages.append(item)
    cfg["stages"] = stages
    return cfg


def _missing_stage_modules(manifest: dict) -> list[str]:
    """Modules (recorded in the manifest) that defined the build's stages and cannot be
    imported now."""
    import importlib.util

    missing = []
    for name in dict.fromkeys(manifest.get("stage_modules") or []):
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def _register_plugins() -> None:
    import pipelines.cli as pkg

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
    global VERBOSE
    VERBOSE = "--verbose" in sys.argv[1:sys.argv.index("--")] if "--" in sys.argv else (
        "--verbose" in sys.argv[1:])
    if not VERBOSE:  # Beam logs warnings while it is imported (e.g. "apitools not found")
        logging.getLogger().setLevel(logging.ERROR)
    try:
        _register_plugins()
        app(prog_name="datamill")
    except KeyboardInterrupt:  # Ctrl-C before a command took over (plugins, parsing)
        console.print("[bold red]error:[/] interrupted by SIGINT: nothing was started",
                      highlight=False, soft_wrap=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    except SystemExit as stop:
        if stop.code in (130, 143):
            # interrupted (the one line is printed, staging removed): leave now. A normal
            # interpreter exit would wait for the local runner's executor threads to finish
            # the bundle they are in (minutes of a dedup pass on a busy machine)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(stop.code)
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
