"""``run_build``: plan, lock the output directory, run the Beam graph, check the accounting
and promote the outputs.

Order of work (each step only after the previous one succeeded):

1. plan (paths resolved and checked, inputs listed; no data work, nothing written to ``out``;
   remote calls bounded by ``DATAMILL_REMOTE_TIMEOUT``, :mod:`pipelines.core.remote`). A dry
   run (``--dry_run=True``) stops here: the job is translated and prepared offline and nothing
   is written (:mod:`pipelines.build.dry_run`);
2. take the output directory's lock (:mod:`pipelines.build.output_lock`);
3. recover: finish/undo an interrupted promotion, delete ``_staging/`` left by killed runs;
4. refuse an output directory holding entries datamill did not write; skip an up-to-date build;
5. run the pipeline into ``<out>/_staging/<run id>/``;
6. gather stats, check ``input == kept + removed + dead_letter`` and that the staged data
   files hold exactly the kept records;
7. promote atomically (:mod:`pipelines.build.promote`).

A failure or Ctrl-C/SIGTERM before step 7 deletes the staging directory and leaves the
previous build untouched; signals arriving during step 7 are held until it finished. A full
disk is reported as :class:`DiskFull` (one line on the CLI).

Resumability is per checkpoint: a rerun whose sources (paths, sizes, mtimes) and stage configs
up to checkpoint NN are unchanged reads the records from the newest such valid checkpoint and
runs only the later stages; a rerun of an unchanged, complete build does nothing (``--force``
rebuilds). A checkpoint is complete (manifest written) before the stages after it start
(:mod:`pipelines.build.graph`), and neither a failure nor a signal removes it: a build killed
after a checkpoint resumes from it on the next run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipelines.build import accounting as acc
from pipelines.build import promote as prom
from pipelines.build.checkpoint import MANIFEST_KEYS
from pipelines.build.errors import BuildInterrupted, DiskFull, disk_full_cause
from pipelines.core import progress, remote
from pipelines.build.stats import gather_stats
from pipelines.core.fs import exists, is_url, list_files, read_json, within
from pipelines.build.config import BuildConfig
from pipelines.stages.record_stage import RecordStage
from pipelines.build.graph import construct
from pipelines.build.output_lock import OutputLock
from pipelines.build.plan import BuildPlan, plan_build
from pipelines.core.metrics import stage_runtime
from pipelines.core.runner import check_runner, environment, make_options, runner_name
from pipelines.core.spill import RUN_PATH_PATTERN


@dataclass
class BuildResult:
    out: str
    stats: dict[str, Any]
    skipped: bool = False
    dry_run: bool = False  # --dry_run=True: stats is pipelines.build.dry_run's summary


class _Signals:
    """SIGINT/SIGTERM -> BuildInterrupted; held back while ``hold`` is set (promotion).

    The handler records the signal and raises KeyboardInterrupt in the main thread: it is no
    ``Exception``, so Beam's code neither swallows it nor wraps it in a RuntimeError
    (``... while running 'stage/...'``), and it stops the local runner, which runs bundles
    (``-w 1``) or waits for its workers (``-w 2``) in this thread. Whatever error the run then
    ends with, :meth:`interrupted` turns it into one BuildInterrupted (exit 130 / 143)."""

    def __init__(self):
        self.hold = False
        self.pending: int | None = None
        self.received: int | None = None
        self.muted: int | None = None  # logging.disable level before the signal
        self.excepthook = None  # threading.excepthook before the signal
        self.done = threading.Event()

    def _reap(self) -> None:
        """Stop the local runner's worker processes (``-w 2``) until the run has unwound:
        they ignore SIGINT (pipelines/core/runner.py), and the runner waits for them."""
        while True:
            _stop_local_workers()
            if self.done.wait(0.5):
                return

    def handler(self, signum, _frame):
        if self.hold:
            self.pending = signum
            return
        if self.received is None:
            self.received = signum
            # Beam logs the interrupted bundle (with a traceback) while it unwinds: the CLI
            # prints one line instead. Restored when the handler is uninstalled.
            self.muted, _ = logging.root.manager.disable, logging.disable(logging.CRITICAL)
            self.excepthook, threading.excepthook = threading.excepthook, lambda args: None
            threading.Thread(target=self._reap, name="datamill-interrupt", daemon=True).start()
        raise KeyboardInterrupt(signal.Signals(signum).name)

    def interrupted(self) -> BuildInterrupted | None:
        """The BuildInterrupted for a signal received so far, or None."""
        if self.received is None:
            return None
        name = signal.Signals(self.received).name
        return BuildInterrupted(f"interrupted by {name}: the build stopped, nothing was "
                                "promoted and the previous build is unchanged (finished "
                                "checkpoints are kept: a rerun resumes from them)", self.received)

    @contextlib.contextmanager
    def installed(self) -> Iterator[_Signals]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        old = {s: signal.signal(s, self.handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            self.done.set()
            if self.muted is not None:
                logging.disable(self.muted)
            if self.excepthook is not None:
                threading.excepthook = self.excepthook

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Signals during the block (cleanup) are recorded, not raised."""
        hold, self.hold = self.hold, True
        try:
            yield
        finally:
            self.hold = hold
            signum, self.pending = self.pending, None
            if signum is not None and self.received is None:
                self.received = signum

    @contextlib.contextmanager
    def held(self, log: Callable[[str], None]) -> Iterator[None]:
        """Signals wait until the block (promotion) is done. A promotion that finished is a
        published build, so the build then succeeds (exit 0) and says what happened: a
        non-zero exit always means nothing new was published."""
        self.hold = True
        try:
            yield
        except BaseException:
            self.hold = False
            raise
        # published: a signal from here on (releasing the lock, returning) is only recorded
        signum, self.pending = self.pending, None
        if signum is not None:
            log(f"{signal.Signals(signum).name} arrived during the final promotion, which was "
                "finished first: the new build is complete and published")


def _stop_local_workers() -> None:
    """SIGTERM this process's Beam SDK worker processes (Linux: found through /proc; elsewhere
    the runner's own shutdown stops them)."""
    me = os.getpid()
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                if int(fh.read().rsplit(b")", 1)[1].split()[1]) != me:
                    continue
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if b"sdk_worker_main" not in fh.read():
                    continue
            os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError, IndexError):
            continue


# what a checkpoint writer names its files (also when a crash left no manifest to list them)
_CHECKPOINT_FILE = re.compile(
    r"^(manifest\.json|_stats/[^/]+\.json|(data|removed|dead_letter)/"
    r"part-\d{5}-of-\d{5}\.(parquet|jsonl\.gz)"
    # a writer's sorted runs, left when the run was interrupted before they were merged
    r"|(data|removed|dead_letter)" + RUN_PATH_PATTERN + ")$")


def _checkpoint_files(path: str) -> tuple[list[str], list[str]]:
    """(files datamill wrote, other files) below one checkpoint directory: the files its
    manifest records, and files named as a checkpoint writer names them."""
    recorded: set[str] = set()
    if exists(f"{path}/manifest.json"):
        try:
            manifest = read_json(f"{path}/manifest.json")
            recorded = {f["path"] for key in MANIFEST_KEYS
                        for f in manifest.get(key, []) if isinstance(f, dict) and "path" in f}
        except Exception:  # noqa: BLE001 - an unreadable manifest records nothing
            recorded = set()
    ours, others = [], []
    for f in list_files(path):
        rel = f[len(path):].lstrip("/")
        (ours if f in recorded or _CHECKPOINT_FILE.match(rel) else others).append(f)
    return ours, others


def _remove_stale_checkpoints(plan: BuildPlan, log: Callable[[str], None]) -> None:
    """Remove the checkpoints this run rewrites: only files datamill wrote there; files a
    user put beside them are left and logged (README, "Nothing deleted that datamill did not
    write")."""
    for i in range(len(plan.stages)):
        if plan.cfg.stages[i].checkpoint and (plan.resume is None or i > plan.resume.index):
            stale = plan.checkpoint_dir(i)  # confined below <out>/checkpoints (C2)
            if not is_url(stale):
                if not os.path.lexists(stale) or not within(stale, plan.out):  # no escape
                    continue
                if not os.path.isdir(stale) or os.path.islink(stale):
                    log(f"left {stale}: not a checkpoint directory written by datamill")
                    continue
            elif not exists(stale):
                continue
            ours, others = _checkpoint_files(stale)
            if ours:
                FileSystems.delete(ours)
            if others:
                log(f"kept {len(others)} file(s) in {stale} that datamill did not write "
                    f"(e.g. {others[0]!r}); the checkpoint is rewritten beside them")
            if not is_url(stale):  # empty folders left by the removed files
                for folder, _, _ in sorted(os.walk(stale), key=lambda w: -len(w[0])):
                    with contextlib.suppress(OSError):
                        os.rmdir(folder)


def _dead_letter_checkpoints(plan: BuildPlan, err: acc.DeadLetterError,
                             log: Callable[[str], None]) -> None:
    """After a build failed on dead_letter (exit 4): the checkpoints this run wrote. When every
    input record was dead-lettered they hold no record and no rerun can use them (the same
    sources and stages dead-letter everything again; changed ones do not match them), so they
    are removed. Otherwise a rerun resumes from them (e.g. with a higher
    output.max_dead_letter_fraction): they are kept, and one line says so."""
    mine = []
    for i in range(len(plan.stages)):
        path = plan.checkpoint_dir(i)
        if not plan.cfg.stages[i].checkpoint or not exists(f"{path}/manifest.json"):
            continue
        try:
            if read_json(f"{path}/manifest.json").get("run_id") == plan.run_id:
                mine.append(path)
        except Exception:  # noqa: BLE001 - unreadable: not provably this run's
            continue
    if not mine:
        return
    if err.every_record:
        for path in mine:
            ours, _others = _checkpoint_files(path)
            if ours:
                FileSystems.delete(ours)
            if not is_url(path):  # empty folders left by the removed files
                for folder, _, _ in sorted(os.walk(path), key=lambda w: -len(w[0])):
                    with contextlib.suppress(OSError):
                        os.rmdir(folder)
        if not is_url(plan.out):
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(plan.out, "checkpoints"))
        log(f"removed the {len(mine)} checkpoint(s) this run wrote: every input record was "
            "dead-lettered, so they hold no record a rerun could resume from")
    else:
        size = sum(prom.file_size(f) for path in mine for f in _checkpoint_files(path)[0])
        log(f"kept the {len(mine)} checkpoint(s) this run wrote ({size / 1e6:.1f} MB in "
            f"{plan.out}/checkpoints): a rerun with the same sources and stages resumes from "
            "them (e.g. with a higher output.max_dead_letter_fraction); one with changed "
            "sources or stages replaces them")


def stage_kinds(stages: list, labels: list[str]) -> dict[str, Any]:
    """Per label: ``"record"`` (a record stage: counts what goes in), the stage's list of
    :class:`pipelines.core.progress.Pass` (a global stage with ``progress_passes()``), or ``None`` (only what it removes
    is counted while it runs)."""
    out: dict[str, Any] = {}
    for stage, label in zip(stages, labels):
        passes = getattr(stage, "progress_passes", None)
        if isinstance(stage, RecordStage):
            out[label] = "record"
        elif callable(passes) and passes():
            out[label] = list(passes())
        else:
            out[label] = None
    return out


def _check_outputs(plan: BuildPlan, stats: dict, files: list[dict]) -> None:
    """The staged data files must hold exactly the kept records (never a "complete" build
    with missing shards, e.g. when workers wrote somewhere else)."""
    kept = stats["counts"]["kept"]
    rows = sum(f["rows"] for f in files)
    n = plan.cfg.output.shards
    # shards no record falls into are not written: between 1 and n files when unpartitioned
    if rows != kept or (plan.partition_by is None and not 1 <= len(files) <= n):
        raise acc.ConservationError(
            f"the staged output holds {len(files)} data file(s) with {rows} records, but the "
            f"accounting counted {kept} kept records"
            + ("" if plan.partition_by else f" in at most {n} shard(s)")
            + f" (staging: {plan.staging}); nothing was promoted")


def run_build(
    cfg: BuildConfig,
    *,
    extra_args: list[str] | None = None,
    force: bool = False,
    log: Callable[[str], None] = lambda s: None,
    command: str | None = None,
    on_progress: Callable[[dict], None] | None = None,
    progress_interval: float = 10.0,
) -> BuildResult:
    """Plan, run and finalize a build. Raises ConservationError if records went missing,
    OutputLocked, DiskFull or BuildInterrupted (see :mod:`pipelines.build.errors`).

    ``command``: the command line, for the dataset card. ``on_progress(summary)`` is called
    every ``progress_interval`` seconds while the pipeline runs (:mod:`pipelines.core.progress`)."""
    sig = _Signals()
    try:
        with sig.installed():  # from the start: Ctrl-C while planning is one line too
            return _run_build(sig, cfg, extra_args, force, log, command, on_progress,
                              progress_interval)
    except BuildInterrupted:
        raise
    except BaseException as err:
        stop = sig.interrupted()
        if stop is None and isinstance(err, KeyboardInterrupt):
            stop = BuildInterrupted("interrupted by SIGINT: the build stopped, nothing was "
                                    "promoted and the previous build is unchanged (finished "
                                    "checkpoints are kept: a rerun resumes from them)",
                                    signal.SIGINT)
        if stop is not None:
            raise stop from None
        raise


def _check_runner(cfg: BuildConfig, extra_args, dry: bool) -> None:
    """:func:`check_runner` (pipelines/core/runner.py), offline. For a real Dataflow run Beam's
    option validation would also read the ``--temp_location`` bucket (its soft-delete policy, a
    billing warning) with minutes of retries when there are no credentials or no network: the
    options are checked as for a dry run (Beam skips that read then; it reads it again when it
    submits), and the credentials are looked up once, within ``DATAMILL_REMOTE_TIMEOUT``
    (pipelines/core/remote.py), so that no credentials is one line in seconds."""
    if dry or runner_name(cfg.runner, extra_args) != "DataflowRunner":
        check_runner(cfg.runner, extra_args)
        return
    check_runner(cfg.runner, [*(extra_args or []), "--dry_run=True"])
    from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

    gco = PipelineOptions([*cfg.runner.options, *(extra_args or [])]).view_as(
        GoogleCloudOptions)
    remote.check_gcs_credentials(gco.temp_location or gco.staging_location,
                                 "looking up the credentials the Dataflow job is submitted with")


def _run_build(sig: _Signals, cfg: BuildConfig, extra_args, force, log, command, on_progress,
               progress_interval) -> BuildResult:
    dry = remote.dry_run([*cfg.runner.options, *(extra_args or [])])
    _check_runner(cfg, extra_args, dry)  # runner options fail before any work
    plan = plan_build(cfg, extra_args, use_checkpoints=not force)
    if dry:  # no lock, no staging, nothing written (build/dry_run.py)
        from pipelines.build.dry_run import dry_run_build

        return BuildResult(plan.out, dry_run_build(plan, cfg, extra_args, log), dry_run=True)
    with OutputLock(plan.out, plan.run_id):
        prom.recover(plan.out, log)
        prom.check_promotable(plan.out)
        if not force and prom.existing_complete(plan) is not None:
            log(f"{plan.out} is up to date with this config and these inputs "
                "(use --force to rebuild)")
            return BuildResult(plan.out, read_json(f"{plan.out}/stats.json"), skipped=True)
        replacing = prom.replacing_other_build(plan)
        if replacing:
            log(replacing)
        if plan.resume is not None:
            log(f"resuming from checkpoint {plan.resume.path} "
                f"({plan.resume.manifest['rows']} records after stage {plan.resume.label!r})")
        skipped = [(sp.config.name, s) for sp in plan.sources for s in sp.skipped]
        if skipped:
            log(f"skipping {len(skipped)} file(s) found but not read (listed in stats.json "
                "skipped_files):")
            for name, s in skipped[:20]:
                log(f"  [{name}] {s.path}: {s.reason}")
            if len(skipped) > 20:
                log(f"  ... and {len(skipped) - 20} more")
        try:
            _remove_stale_checkpoints(plan, log)
            stats, files = _run(plan, cfg, extra_args, log, on_progress, progress_interval)
            prom.remove_spill(plan)  # what the finished steps did not delete
            if sig.received is not None:  # a signal some code swallowed: promote nothing
                raise KeyboardInterrupt
        except BaseException as err:
            with sig.deferred():  # a second Ctrl-C does not stop the cleanup half-way
                prom.cleanup_staging(plan)
            if isinstance(err, KeyboardInterrupt) or sig.received is not None:
                raise sig.interrupted() or BuildInterrupted(
                    "interrupted by SIGINT: the build stopped, nothing was promoted and the "
                    "previous build is unchanged", signal.SIGINT) from None
            cause = disk_full_cause(err) if isinstance(err, Exception) else None
            if cause is not None:
                raise DiskFull(
                    f"disk full (No space left on device) while building {plan.out}: run "
                    f"{plan.run_id} stopped, its staging directory was removed and the previous "
                    "build is unchanged; free space there and rerun") from err
            if isinstance(err, acc.DeadLetterError):
                _dead_letter_checkpoints(plan, err, log)
            raise
        with sig.held(log):
            try:
                prom.promote(plan, stats, files, log,
                             write_extra=_card_writer(plan, stats, command))
            except Exception as err:
                if disk_full_cause(err) is not None:
                    raise DiskFull(
                        f"disk full (No space left on device) while promoting run "
                        f"{plan.run_id} in {plan.out}; the previous build is still the visible "
                        "one; free space and rerun") from err
                raise
    return BuildResult(plan.out, stats)


def _card_writer(plan: BuildPlan, stats: dict, command: str | None):
    """``write_extra`` for promotion: the dataset card (README.md) in the staged build."""
    if not plan.cfg.output.card:
        return None

    def write(folder: str) -> None:
        from pipelines.report.card import render_card

        glob = "data/**/*.parquet" if plan.partition_by else "data/*.parquet"
        with FileSystems.create(f"{folder}/README.md") as fh:
            fh.write(render_card(plan.cfg, stats, glob, command=command).encode("utf-8"))

    return write


def _run(plan: BuildPlan, cfg: BuildConfig, extra_args, log, on_progress=None,
         progress_interval: float = 10.0) -> tuple[dict, list[dict]]:
    with _run_temp_files(plan):
        return _run_in(plan, cfg, extra_args, log, on_progress, progress_interval)


@contextlib.contextmanager
def _run_temp_files(plan: BuildPlan):
    """Temporary files of this run (Beam's pipeline folder, the progress snapshots, whatever
    the local worker processes create: they inherit ``TMPDIR``) go in ``tmp/`` of the run's
    spill folder when the output is local, so that they go with it: removed after the run, on
    failure, and by the next run's recovery after a kill -9 (a system temporary folder would
    keep them)."""
    if is_url(plan.out):
        yield
        return
    import tempfile

    folder = f"{plan.spill_root}/tmp"
    os.makedirs(folder, exist_ok=True)
    before = tempfile.tempdir
    tempfile.tempdir = folder
    try:
        with environment(TMPDIR=folder):
            yield
    finally:
        tempfile.tempdir = before


def _run_in(plan: BuildPlan, cfg: BuildConfig, extra_args, log, on_progress,
            progress_interval: float) -> tuple[dict, list[dict]]:
    runner, options = make_options(cfg.runner, extra_args)
    t0 = time.perf_counter()
    p = beam.Pipeline(runner=runner, options=options)
    construct(plan, p)
    log(f"running {len(plan.stages)} stages on {runner_name(cfg.runner, extra_args)}")
    no_live = None
    if on_progress is not None:
        from apache_beam.options.pipeline_options import PortableOptions

        no_live = progress.live_unavailable(runner_name(cfg.runner, extra_args),
                                            options.view_as(PortableOptions).environment_type)
        if no_live:  # one line instead of a bar that would stay at 0 (pipelines/core/progress.py)
            log(progress.NO_LIVE_NOTE.format(why=no_live))
    if on_progress is not None and not no_live:
        import tempfile

        total_bytes = sum(f.size for sp in plan.sources for f in (sp.files or []))
        kinds = stage_kinds(plan.stages, list(plan.labels))
        if plan.resume is not None:  # stages up to the checkpoint do not run: nothing to show
            kinds.update({lab: "record" for lab in plan.labels[:plan.resume.index + 1]})
        with tempfile.TemporaryDirectory(prefix="datamill-progress-") as folder, \
                progress.Watcher(folder, list(plan.labels), total_bytes, on_progress,
                                 progress_interval, kinds):
            result = p.run()
            result.wait_until_finish()
    else:
        result = p.run()
        result.wait_until_finish()
    wall = time.perf_counter() - t0
    runtime, runtime_source = stage_runtime(result, plan.labels)  # pipelines/core/metrics.py
    stats = gather_stats(plan, wall, runtime)
    stats["runtime_source"] = runtime_source
    for warn in stats["breakdown"].get("language_warnings") or []:  # build/breakdown.py
        log(f"warning: {warn['message']}")
    # changed inputs, imbalance, dead-letter share (nothing is promoted on any of them)
    acc.check_build(stats, cfg.output.max_dead_letter_fraction)
    files = prom.staged_data_files(plan)
    _check_outputs(plan, stats, files)
    return stats, files
