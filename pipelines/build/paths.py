"""Resolving and checking a build's paths at planning time, before any work.

* On the local runners (:data:`pipelines.core.runner.LOCAL_RUNNERS`) and on Beam's portable runners
  (``PortableRunner``, ``PrismRunner``: their SDK workers run on this machine but possibly in
  another working directory) every relative source path and ``output.dir`` is made absolute
  once, here, against the current directory; the plan, the manifest and every worker see only
  absolute paths.
* On every other runner (Dataflow, Flink, Spark...) a relative path is an error: each source
  path and ``output.dir`` must be absolute (on a filesystem the workers mount) or a URL they can
  reach (``gs://``, ``s3://``, ``hdfs://``, ``azfs://``).
* ``output.dir`` may not be empty, a filesystem root, a bucket root or the home directory, and
  may not contain a source, lie inside a directory source, or hold files a source glob would
  match (the build's own dead-letter or output shards would be read back on the next run).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from apache_beam.io.filesystem import FileSystem

from pipelines.core.fs import is_url, within
from pipelines.build.config import BuildConfig
from pipelines.core.settings import ConfigError
from pipelines.io.source_config import SourceConfig
from pipelines.core.runner import is_local, runner_name

REMOTE_SCHEMES = ("gs", "s3", "hdfs", "azfs")
PORTABLE_LOCAL_RUNNERS = {"PortableRunner", "PrismRunner"}
GLOB_CHARS = set("*?[")
# what a build writes below output.dir, for checking source globs against it
_SAMPLE_OUTPUTS = [
    f"{top}{sub}/{part}part-00000-of-00004{ext}"
    for top in ("", "current/", "_builds/r/", "_staging/r/", "checkpoints/00-s/")
    for sub in ("data", "jsonl", "removed", "dead_letter")
    for part in ("", "language=en/")
    for ext in (".parquet", ".jsonl.gz")
] + [f"{top}{name}" for top in ("", "_builds/r/", "_staging/r/", "checkpoints/00-s/")
     for name in ("stats.json", "manifest.json", "report.html", "_stats/counts.json")]


def _scheme(path: str) -> str | None:
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", path)
    return m.group(1).lower() if m else None


def _local_path(src: SourceConfig) -> bool:
    """Whether a source's ``path`` names something on a filesystem (not an hf hub name)."""
    if is_url(src.path):
        return False
    if src.type == "hf":
        return os.path.exists(src.path)
    return True


def resolves_locally(cfg: BuildConfig, extra_args: list[str] | None = None) -> bool:
    return is_local(cfg.runner, extra_args) or \
        runner_name(cfg.runner, extra_args) in PORTABLE_LOCAL_RUNNERS


def resolve_build_paths(cfg: BuildConfig, extra_args: list[str] | None = None) -> BuildConfig:
    """Return ``cfg`` with absolute local paths (local runners) or raise ConfigError."""
    out = cfg.output.dir
    if not out.strip():
        raise ConfigError("output.dir: is empty; set it to a directory for this build's "
                          "outputs, e.g. out/my-build")
    for where, path in [("output.dir", out)] + [
            (f"sources[{i}].path", s.path) for i, s in enumerate(cfg.sources)]:
        scheme = _scheme(path)
        if scheme and scheme != "file" and scheme not in REMOTE_SCHEMES:
            raise ConfigError(f"{where}: {path!r} uses the unknown filesystem scheme "
                              f"{scheme!r}; use a local path or one of "
                              f"{', '.join(s + '://' for s in REMOTE_SCHEMES)}")
    if resolves_locally(cfg, extra_args):
        sources = [s.model_copy(update={"path": os.path.abspath(s.path)})
                   if _local_path(s) and not os.path.isabs(s.path) else s for s in cfg.sources]
        output = cfg.output if is_url(out) else cfg.output.model_copy(
            update={"dir": os.path.abspath(out)})
        return cfg.model_copy(update={"sources": sources, "output": output})
    runner = runner_name(cfg.runner, extra_args)
    for where, path in [("output.dir", out)] + [
            (f"sources[{i}].path", s.path) for i, s in enumerate(cfg.sources) if _local_path(s)]:
        if not is_url(path) and not os.path.isabs(path):
            raise ConfigError(
                f"{where}: {path!r} is a relative path, but the workers of {runner} do not run "
                "in this directory; use a URL they can reach (gs://, s3://, hdfs://...) or an "
                "absolute path on a filesystem every worker mounts")
    return cfg


def _is_root(path: str) -> bool:
    if is_url(path):
        rest = path.split("://", 1)[1].strip("/")
        return "/" not in rest  # scheme://bucket
    p = Path(os.path.realpath(path))
    return p == p.parent


def check_output_dir(cfg: BuildConfig) -> None:
    """Refuse an output directory that could destroy or re-ingest data (see module doc)."""
    out = cfg.output.dir.rstrip("/") or cfg.output.dir
    fix = "choose a new, dedicated directory for this build's outputs"
    if _is_root(out):
        raise ConfigError(f"output.dir: {out!r} is a filesystem or bucket root; {fix}")
    if not is_url(out) and os.path.realpath(out) == os.path.realpath(os.path.expanduser("~")):
        raise ConfigError(f"output.dir: {out!r} is the home directory; {fix}")
    if is_url(out) and GLOB_CHARS & set(out):
        raise ConfigError(f"output.dir: {out!r} contains glob characters (*, ?, [), which "
                          "remote filesystems cannot list literally; rename the directory")
    for i, src in enumerate(cfg.sources):
        if not _local_path(src) and not is_url(src.path):
            continue  # hf hub dataset name
        where = f"sources[{i}].path"
        path = src.path
        if GLOB_CHARS & set(path):
            regex = re.compile(FileSystem.translate_pattern(path))
            hit = next((s for s in _SAMPLE_OUTPUTS if regex.match(f"{out}/{s}")), None)
            if hit is None:
                hit = next((m for m in _matches(path) if within(m, out)), None)
            if hit is not None:
                raise ConfigError(
                    f"{where}: the glob {path!r} matches files this build writes below "
                    f"output.dir {out!r} (e.g. {hit!r}), so its own outputs would be read back "
                    f"as input; narrow the glob or {fix}")
            continue
        if within(path, out):
            raise ConfigError(
                f"output.dir: {out!r} contains {where} {path!r}; a build must never write "
                f"where its inputs live; {fix}")
        is_dir = src.type == "demo_corpus" or (not is_url(path) and os.path.isdir(path))
        if is_dir and within(out, path):
            raise ConfigError(
                f"output.dir: {out!r} lies inside the directory read by {where} {path!r}, so "
                f"its own outputs would be read back as input; {fix}")
    if not is_url(out):
        _check_local_output(out, fix)


def _check_local_output(out: str, fix: str) -> None:
    """A local output directory must be creatable: not an existing file, not below a file,
    on a writable filesystem, and not a literal ``~`` (which no shell expanded)."""
    tilde = next((part for part in Path(out).parts if part.startswith("~")), None)
    if tilde is not None:
        raise ConfigError(f"output.dir: {out!r} has a path component {tilde!r}: '~' is not "
                          "expanded in configs; write the full path (e.g. "
                          f"{os.path.expanduser('~')}/...)")
    if os.path.lexists(out) and not os.path.isdir(out):
        raise ConfigError(f"output.dir: {out!r} is an existing file, not a directory; {fix}")
    parent = Path(out)
    while not os.path.lexists(parent) and parent != parent.parent:
        parent = parent.parent
    if not os.path.isdir(parent):
        raise ConfigError(f"output.dir: {out!r} lies below {str(parent)!r}, which is a file, "
                          f"not a directory; {fix}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"output.dir: {out!r} cannot be created or written: {str(parent)!r} "
                          f"is not writable (read-only filesystem or permissions); {fix}")


def _matches(pattern: str) -> list[str]:
    from apache_beam.io.filesystems import FileSystems

    from pipelines.core import remote

    if remote.offline() and remote.is_remote(pattern):  # a dry run lists nothing remote
        return []
    try:
        return remote.call(  # within DATAMILL_REMOTE_TIMEOUT, or one line
            lambda: [m.path for m in FileSystems.match([pattern])[0].metadata_list],
            pattern, "listing the source files")
    except remote.RemoteUnreachable:
        raise
    except Exception:  # noqa: BLE001 - listing errors are reported by the source itself
        return []
