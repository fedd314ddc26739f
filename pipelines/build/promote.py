"""Finalizing a build: put the staged outputs in place so that a reader always sees one
complete build (the old one or the new one, never a mix), and recover from a promotion that
was interrupted.

Local output directories (atomic swap)::

    <out>/current -> _builds/<run id>          one symlink: which build is visible
    <out>/data -> current/data                 (also jsonl, removed, dead_letter, stats.json,
                                                report.html, manifest.json)
    <out>/_builds/<run id>/...                 each build's files, written once
    <out>/_staging/<run id>/...                the running build (Beam writes here)

A run stages *everything* (shards, stats.json, report.html, manifest.json) in
``_staging/<run>``, renames it to ``_builds/<run>`` and then replaces the ``current`` symlink
with ``rename(2)``, which is atomic: every path below ``<out>`` resolves either into the old
build or into the new one. A process killed at any point leaves either the old build visible
(the next run deletes the unpublished one) or the new one (the next run finishes the links and
the clean-up). The previous build is kept until the next run so that a reader in the middle of
a file list finishes on consistent files; to read several files of one build, resolve
``<out>/current`` once (``os.path.realpath``).

Remote output directories (``gs://``, ``s3://``...: no atomic multi-object rename, no
symlinks) are promoted in place under a journal ``<out>/_promotion.json``: the manifest is
first rewritten with ``"status": "promoting"``, recorded old outputs are deleted, staged files
are moved, and the new manifest is moved last. A reader that checks ``manifest.json``'s status
never takes a half-promoted directory for a complete build; an interrupted promotion is rolled
forward by the next run before it does anything else.

In both layouts promotion only ever deletes files that a previous manifest recorded as that
build's own output (``outputs``: paths relative to the output directory as a reader sees them,
``data/part-...``; physically below ``<out>/<build>`` where the manifest's ``build`` is
``_builds/<run id>`` in the swap layout and empty in place); files it did not write are left
where they are and reported.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

from apache_beam.io.filesystems import FileSystems

from pipelines.core.fs import exists, fsync_dir, is_url, list_files, read_json, write_json
from pipelines.build.checkpoint import MANIFEST_VERSION, chain, file_size, files_valid
from pipelines.core.settings import ConfigError
from pipelines.core.spill import LEGACY_SPILL_ROOT, SPILL_SUFFIX
from pipelines.build.output_lock import OutputLock
from pipelines.build.plan import BuildPlan, Target, new_run_id

ENTRIES = ("data", "jsonl", "removed", "dead_letter", "stats.json", "report.html",
           "README.md", "manifest.json")  # README.md: the dataset card, where one is written
RUN_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")
JOURNAL = "_promotion.json"
Log = Callable[[str], None]


def _step(name: str) -> None:
    """Fault-injection point between promotion steps (tests replace it to fail there)."""


def target_of(plan: BuildPlan) -> Target:
    return Target(plan.out, plan.run_id, ENTRIES)


@contextmanager
def staged_run(out: str, entries: tuple[str, ...], log: Log = lambda s: None
               ) -> Iterator[Target]:
    """A job's run with a build's guarantees: lock ``out`` (one run at a time), finish or
    undo what an interrupted run left, refuse files datamill did not write at ``entries``,
    and yield the run's :class:`Target`; the job writes into ``target.staging`` and calls
    :func:`publish` inside the block. When the block raises (Ctrl-C included) the staging
    directory is removed and the previous output stays the visible one."""
    target = Target(out.rstrip("/"), new_run_id(), tuple(entries))
    with OutputLock(target.out, target.run_id):
        recover(target.out, log)
        check_promotable(target.out, target.entries)
        try:
            yield target
        except BaseException:
            cleanup_staging(target)
            raise


# --------------------------------------------------------------------------- small helpers


def _safe_rel(rel: str) -> bool:
    parts = rel.split("/")
    return bool(rel) and not rel.startswith("/") and "\\" not in rel and \
        all(p not in ("", ".", "..") for p in parts)


def _rel_files(root: str) -> list[str]:
    return [p[len(root):].lstrip("/") for p in list_files(root)]


def _move_tree(src_dir: str, dst_dir: str, copy: bool = False, prefix: str = "") -> None:
    src = list_files(src_dir)
    if not src:
        return
    dst = []
    for path in src:
        rel = path[len(src_dir):].lstrip("/")
        head, _, name = rel.rpartition("/")
        dst.append(f"{dst_dir}/{head + '/' if head else ''}{prefix}{name}")
    if not is_url(dst_dir):
        for d in dst:
            Path(d).parent.mkdir(parents=True, exist_ok=True)
    (FileSystems.copy if copy else FileSystems.rename)(src, dst)


def read_manifest(out: str) -> dict | None:
    path = f"{out}/manifest.json"
    if not exists(path):
        return None
    try:
        return read_json(path)
    except Exception:  # noqa: BLE001 - unreadable: treated as no complete build
        return None


def _recorded(manifest: dict | None) -> list[str]:
    """Paths (relative to the output dir) a manifest records as its build's own outputs."""
    if not manifest:
        return []
    return [o["path"] for o in manifest.get("outputs", []) if _safe_rel(o.get("path", ""))]


# --------------------------------------------------------------------------- staging


def staged_data_files(plan: BuildPlan) -> list[dict]:
    """``{"path": <public path>, "rows"}`` of every Parquet shard in the staging directory."""
    import pyarrow.parquet as pq

    files = []
    root = f"{plan.staging}/data"
    for path in list_files(root):
        if path.endswith(".parquet"):
            with FileSystems.open(path) as fh:
                rows = pq.ParquetFile(fh).metadata.num_rows
            files.append({"path": f"{plan.out}/data/{path[len(root):].lstrip('/')}",
                          "rows": rows})
    return files


def _stage_final_files(plan: BuildPlan, stats: dict, files: list[dict], layout: str,
                       previous: str | None, write_extra: Callable[[str], None] | None) -> dict:
    """Complete the staging dir: resumed side outputs, stats.json, report, extra files
    (``write_extra(staging_dir)``, e.g. the dataset card), and last the manifest."""
    staging = plan.staging
    for depth, ck in enumerate(chain(plan.resume)):
        for sub in ("removed", "dead_letter"):
            _move_tree(f"{ck}/{sub}", f"{staging}/{sub}", copy=True, prefix=f"resumed{depth}-")
    stats["output_files"] = files
    write_json(f"{staging}/stats.json", stats, default=str)
    if plan.cfg.output.report:
        from pipelines.report.render import write_report

        write_report(plan, stats, folder=staging)
    if write_extra is not None:
        write_extra(staging)
    fields = {
        "fingerprint": plan.full_fingerprint(),
        "config": plan.cfg.model_dump(mode="json"),
        # the module defining each stage: `datamill report` names a plugin it cannot import
        "stage_modules": [type(st).__module__ for st in plan.stages],
        "sources": [s.fingerprint for s in plan.sources],
        "files": files,
        "rows": sum(f["rows"] for f in files),
    }
    return write_manifest(target_of(plan), layout, previous, fields)


def write_manifest(target: Target, layout: str, previous: str | None,
                   fields: dict[str, Any]) -> dict:
    """The staged run's ``manifest.json``, written last: the promotion fields, the job's own
    ``fields`` and ``outputs`` (every staged file under one of ``target.entries``; its size,
    except report.html, which `datamill report` may re-render in place)."""
    staging = target.staging
    outputs = [{"path": rel, **({} if rel == "report.html" else
                                {"bytes": file_size(f"{staging}/{rel}")})}
               for rel in _rel_files(staging)
               if rel.split("/")[0] in (*target.entries, "_stats") and rel != "manifest.json"]
    outputs.append({"path": "manifest.json"})
    manifest = {
        "version": MANIFEST_VERSION,
        "status": "complete",
        "layout": layout,
        "build": f"_builds/{target.run_id}" if layout == "swap" else "",
        "previous": previous,
        "run_id": target.run_id,
        **fields,
        "outputs": sorted(outputs, key=lambda o: o["path"]),
    }
    write_json(f"{staging}/manifest.json", manifest, default=str)
    return manifest


def remove_spill(plan: BuildPlan | Target) -> None:
    """Remove this run's spill folder (its files are deleted as they are consumed; what a
    failed step left, and the empty folders, go here)."""
    if not is_url(plan.out):
        shutil.rmtree(plan.spill_root, ignore_errors=True)
    else:
        stale = list_files(plan.spill_root)
        if stale:
            FileSystems.delete(stale)


def cleanup_staging(plan: BuildPlan | Target) -> None:
    remove_spill(plan)
    if not is_url(plan.out):
        shutil.rmtree(plan.staging, ignore_errors=True)
        root = Path(plan.out) / "_staging"
        if root.is_dir() and not any(root.iterdir()):
            root.rmdir()
    elif exists(plan.staging):
        FileSystems.delete([plan.staging])


# --------------------------------------------------------------------------- checks


def check_promotable(out: str, entries: tuple[str, ...] = ENTRIES) -> None:
    """Before any work: the top-level ``entries`` of a local output dir must be absent or this
    layout's own symlinks; anything else was not written by datamill and is never replaced."""
    if layout_for(out) != "swap":
        return
    for name in (*entries, "current"):
        path = os.path.join(out, name)
        if not os.path.lexists(path):
            continue
        target = os.readlink(path) if os.path.islink(path) else None
        ok = (target == f"current/{name}") if name != "current" else (
            target is not None and target.startswith("_builds/")
            and RUN_ID.match(target[len("_builds/"):]) is not None)
        if not ok:
            raise ConfigError(
                f"output.dir: {path} already exists and was not written by a datamill build "
                "(or by an older datamill version); datamill never deletes or moves files it "
                "did not write: move it away, or choose a new output directory")


def existing_complete(plan: BuildPlan) -> dict | None:
    """The manifest of a complete build of this exact config (its ``name`` included) and inputs,
    if every output it records is still there with its recorded size (and Parquet row count)."""
    manifest = read_manifest(plan.out)
    if manifest is None or manifest.get("status") != "complete" \
            or manifest.get("fingerprint") != plan.full_fingerprint() or "outputs" not in manifest:
        return None
    if (manifest.get("config") or {}).get("name") != plan.cfg.name:
        return None  # same data, another build's name: its card and report would say the old one
    build = manifest.get("build") or ""
    if build and not (_safe_rel(build) and build.startswith("_builds/")):
        return None
    for o in manifest["outputs"]:
        path = "/".join(x for x in (plan.out, build, o["path"]) if x)
        if not _safe_rel(o["path"]) or not exists(path):
            return None
        if "bytes" in o and file_size(path) != o["bytes"]:
            return None
    if not files_valid(manifest.get("files", [])):
        return None
    return manifest


def replacing_other_build(plan: BuildPlan) -> str | None:
    """One line for the log when the output directory holds a complete build of another
    ``name`` (a second config pointed at the same directory by mistake), else None."""
    manifest = read_manifest(plan.out)
    old = ((manifest or {}).get("config") or {}).get("name")
    if manifest is None or manifest.get("status") != "complete" or old in (None, plan.cfg.name):
        return None
    return (f"{plan.out} holds build {old!r} (run {manifest.get('run_id')}); this build "
            f"{plan.cfg.name!r} replaces it when it finishes (use another output.dir to keep "
            "both)")


# --------------------------------------------------------------------------- promotion


def layout_for(out: str) -> str:
    """``swap`` (symlink swap) for local output dirs, ``in_place`` (journal) for URLs."""
    return "in_place" if is_url(out) else "swap"


def promote(plan: BuildPlan, stats: dict, files: list[dict], log: Log = lambda s: None,
            write_extra: Callable[[str], None] | None = None) -> dict:
    """Publish the staged build (see the module docstring). Returns the new manifest.
    ``write_extra(folder)`` may add files (top-level names in :data:`ENTRIES`) to the build."""
    layout = layout_for(plan.out)
    manifest = _stage_final_files(plan, stats, files, layout, _previous(plan.out, layout),
                                  write_extra)
    _publish_staged(target_of(plan), manifest, log)
    return manifest


def publish(target: Target, fields: dict[str, Any], log: Log = lambda s: None) -> dict:
    """Publish a staged run of any job (its files are in ``target.staging``): write its
    manifest (``fields`` + the promotion fields) and promote it as a build is promoted.
    Returns the manifest."""
    layout = layout_for(target.out)
    manifest = write_manifest(target, layout, _previous(target.out, layout), fields)
    _publish_staged(target, manifest, log)
    return manifest


def _previous(out: str, layout: str) -> str | None:
    """The run id of the build visible now (recorded as the new manifest's ``previous``)."""
    return _current(out) if layout == "swap" else (read_manifest(out) or {}).get("run_id")


def _publish_staged(target: Target, manifest: dict, log: Log) -> None:
    if manifest["layout"] == "in_place":
        _promote_in_place(target, manifest, log)
    else:
        _promote_swap(target, log)


def _current(out: str) -> str | None:
    link = os.path.join(out, "current")
    if not os.path.islink(link):
        return None
    target = os.readlink(link)
    run = target[len("_builds/"):] if target.startswith("_builds/") else ""
    return run if RUN_ID.match(run) else None


def _promote_swap(target: Target, log: Log) -> None:
    out, run = target.out, target.run_id
    _step("staged")
    builds = os.path.join(out, "_builds")
    os.makedirs(builds, exist_ok=True)
    os.rename(target.staging, os.path.join(builds, run))
    fsync_dir(builds)
    try:
        os.rmdir(os.path.join(out, "_staging"))  # when no other staging is left in it
    except OSError:
        pass
    _step("moved")
    tmp = os.path.join(out, f".current-{run}.tmp")  # run ids are unique: never pre-exists
    os.symlink(f"_builds/{run}", tmp)
    os.replace(tmp, os.path.join(out, "current"))  # the commit point
    fsync_dir(out)
    _step("swapped")
    _link_current(out)
    _step("linked")
    _drop_old_builds(out, log)


def _link_current(out: str) -> None:
    """Top-level links for the current build's entries: the top-level names its manifest
    records, except ``_``-prefixed ones (idempotent; creates them on the first build and after
    a run killed right after the swap). Our own links to entries the current build does not
    have are removed."""
    run = _current(out)
    if run is None:
        return
    build = os.path.join(out, "_builds", run)
    names = {rel.split("/")[0] for rel in _recorded(read_manifest(build))} or set(ENTRIES)
    names = {n for n in names if not n.startswith("_")}
    for name in sorted(names):
        link = os.path.join(out, name)
        if os.path.lexists(os.path.join(build, name)) and not os.path.lexists(link):
            os.symlink(f"current/{name}", link)  # never replaces anything (check_promotable)
    for name in sorted(os.listdir(out)):
        link = os.path.join(out, name)
        if name not in names and os.path.islink(link) and os.readlink(link) == f"current/{name}":
            os.unlink(link)  # our own link to an entry the current build does not have


def _drop_old_builds(out: str, log: Log) -> None:
    """Delete unpublished and superseded builds, keeping the current one and the one before
    it (a reader may still be reading it)."""
    run = _current(out)
    if run is None:
        return
    try:
        previous = read_json(os.path.join(out, "_builds", run, "manifest.json")).get("previous")
    except Exception:  # noqa: BLE001
        previous = None
    builds = os.path.join(out, "_builds")
    for name in sorted(os.listdir(builds)) if os.path.isdir(builds) else []:
        if RUN_ID.match(name) and name not in (run, previous):
            remove_build(out, os.path.join(builds, name), log)


def remove_build(out: str, build: str, log: Log) -> None:
    """Delete the files a build directory's manifest records as its own; keep anything else."""
    try:
        manifest = read_json(os.path.join(build, "manifest.json"))
    except Exception:  # noqa: BLE001 - unreadable manifest: nothing is provably ours
        manifest = None
    for rel in _recorded(manifest):  # no manifest: nothing is provably ours, keep it all
        path = os.path.join(build, rel)
        if os.path.isfile(path) and not os.path.islink(path):
            os.unlink(path)
    for root, _dirs, _files in os.walk(build, topdown=False):
        try:
            os.rmdir(root)  # only empty folders go
        except OSError:
            pass
    if os.path.exists(build):
        left = _rel_files(build)
        log(f"kept {len(left)} file(s) in {build} that no datamill manifest records "
            f"(e.g. {left[0]!r}); they are not part of any build")


def _promote_in_place(target: Target, manifest: dict, log: Log) -> None:
    out = target.out
    old = read_manifest(out)
    new = {o["path"] for o in manifest["outputs"]}
    journal = {"run_id": target.run_id, "staging": f"_staging/{target.run_id}",
               "remove": [r for r in _recorded(old) if r not in new and r != "manifest.json"]}
    write_json(f"{out}/{JOURNAL}", journal, default=str)
    _step("journal")
    _roll_forward(out, journal, log)


def _roll_forward(out: str, journal: dict, log: Log) -> None:
    staging = f"{out}/{journal['staging']}"
    if exists(f"{staging}/manifest.json"):
        current = read_manifest(out)
        if current is not None and current.get("run_id") != journal["run_id"]:
            write_json(f"{out}/manifest.json",
                       {"status": "promoting", "run_id": journal["run_id"],
                        "replacing": current.get("run_id")}, default=str)
        _step("marked")
        gone = [f"{out}/{r}" for r in journal["remove"] if _safe_rel(r) and exists(f"{out}/{r}")]
        if gone:
            FileSystems.delete(gone)
        _step("removed_old")
        staged = set(_rel_files(staging))
        rels = [r for r in _recorded(read_json(f"{staging}/manifest.json"))
                if r != "manifest.json" and r in staged]
        if rels:
            if not is_url(out):
                for r in rels:
                    Path(f"{out}/{r}").parent.mkdir(parents=True, exist_ok=True)
            FileSystems.rename([f"{staging}/{r}" for r in rels], [f"{out}/{r}" for r in rels])
        _step("moved")
        if not is_url(out):
            os.replace(f"{staging}/manifest.json", f"{out}/manifest.json")
        else:
            FileSystems.rename([f"{staging}/manifest.json"], [f"{out}/manifest.json"])
    FileSystems.delete([f"{out}/{JOURNAL}"])
    if exists(staging):
        FileSystems.delete([staging])


# --------------------------------------------------------------------------- recovery


def recover(out: str, log: Log = lambda s: None, keep_run: str | None = None) -> None:
    """Run first, under the output lock: finish or undo an interrupted promotion and delete
    what killed runs left in ``_staging/`` (a full disk does not stay full)."""
    if exists(f"{out}/{JOURNAL}"):
        journal = read_json(f"{out}/{JOURNAL}")
        log(f"finishing the interrupted promotion of run {journal.get('run_id')}")
        _roll_forward(out, journal, log)
    if layout_for(out) != "swap":
        stale = list_files(f"{out}/_staging")
        if stale:
            log(f"removing {len(stale)} file(s) left in {out}/_staging by interrupted runs")
            FileSystems.delete(stale)
        if not is_url(out):
            shutil.rmtree(os.path.join(out, "_staging"), ignore_errors=True)
        return
    for name in os.listdir(out) if os.path.isdir(out) else []:
        path = os.path.join(out, name)
        if name.startswith(".current-") and name.endswith(".tmp") and os.path.islink(path):
            os.unlink(path)  # a swap link a killed run made but did not publish
    staging = os.path.join(out, "_staging")
    if os.path.isdir(staging):
        for name in sorted(os.listdir(staging)):
            run = name[:-len(SPILL_SUFFIX)] if name.endswith(SPILL_SUFFIX) else name
            # <run>/ and <run>.spill/ of interrupted runs; spill/ of versions before 0.2
            if (RUN_ID.match(run) and run != keep_run) or name == LEGACY_SPILL_ROOT:
                log(f"removing {staging}/{name}, left by an interrupted run")
                shutil.rmtree(os.path.join(staging, name), ignore_errors=True)
        if not os.listdir(staging):
            os.rmdir(staging)
    _link_current(out)
    _drop_old_builds(out, log)
