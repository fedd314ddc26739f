"""Which files a source reads: path/glob/directory expansion, with every skipped file recorded.

Rules (documented in README, "Bad input never crashes a build"):

* a **directory** source reads, recursively, every regular file whose name (case-insensitive)
  ends in ``.jsonl``, ``.json`` or ``.ndjson``, optionally followed by one compression suffix
  ``.gz``, ``.bz2``, ``.zst`` or ``.zstd`` (``type: jsonl``), in ``.parquet``
  (``type: parquet``), ``.warc``/``.warc.gz`` (``type: warc``) or ``.html``/``.htm``/``.xhtml``
  (``type: html``). Names starting with ``.`` (hidden files and directories) are not read.
  Symlinked directories are followed once (loops are cut);
* a **glob** reads every regular file it matches, whatever its name (the pattern is the user's
  choice of names); directories it matches are not read;
* a **plain path** must be a regular file.

Everything found but not read (wrong suffix, hidden, broken symlink, FIFO/socket/device, not
readable) becomes a :class:`SkippedFile` with a reason: the build reports them in
``stats.json`` (``skipped_files``) and in its log. Special files are never opened (a FIFO
would block the build forever). Remote URLs (``gs://``...) are listed with Beam's
``FileSystems.match`` under a time limit (:mod:`pipelines.core.remote`); object stores have no
special files.
"""

from __future__ import annotations

import glob as globlib
import os
import stat
from dataclasses import dataclass

from apache_beam.io.filesystems import FileSystems

from pipelines.core import remote

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
COMPRESSION_SUFFIXES = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".zstd": "zstd"}
PARQUET_SUFFIXES = (".parquet",)
WARC_SUFFIXES = (".warc", ".warc.gz")  # type: warc (pipelines/io/web_sources.py)
HTML_SUFFIXES = (".html", ".htm", ".xhtml")  # type: html
# what a directory source of each type reads, as shown in "skipped" reasons
ALLOWED_NAMES = {"parquet": ".parquet", "warc": ".warc[.gz]", "html": ".html|.htm|.xhtml",
                 "jsonl": "(.jsonl|.json|.ndjson)[.gz|.bz2|.zst|.zstd]"}
_GLOB_CHARS = set("*?[")


def printable(path: str) -> str:
    """A path as valid UTF-8 text: undecodable bytes of a POSIX file name (which Python keeps
    as lone surrogates) are written as ``\\xNN``. Used in ids, locations and stats."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        try:
            raw = path.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return path.encode("utf-8", "backslashreplace").decode("utf-8")
        return raw.decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class InputFile:
    path: str  # as the OS names it (may hold surrogate-escaped bytes); used to open the file
    rel: str  # printable path relative to the glob's base directory (used in ids)
    size: int  # bytes, at planning time
    mtime: float  # seconds, at planning time

    @property
    def display(self) -> str:
        return printable(self.path)


@dataclass(frozen=True)
class SkippedFile:
    path: str  # printable
    reason: str


def compression_of(path: str) -> str | None:
    """``gzip``, ``bz2``, ``zstd`` or None, from the (case-insensitive) name."""
    lower = path.lower()
    for suffix, kind in COMPRESSION_SUFFIXES.items():
        if lower.endswith(suffix):
            return kind
    return None


def name_is_read(source_type: str, name: str) -> bool:
    """Whether a directory source of ``source_type`` reads a file called ``name``."""
    lower = name.lower()
    if source_type == "parquet":
        return lower.endswith(PARQUET_SUFFIXES)
    if source_type == "warc":
        return lower.endswith(WARC_SUFFIXES)
    if source_type == "html":
        return lower.endswith(HTML_SUFFIXES)
    for suffix in COMPRESSION_SUFFIXES:
        if lower.endswith(suffix):
            lower = lower[: -len(suffix)]
            break
    return lower.endswith(JSONL_SUFFIXES)


_SPECIAL = ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
            (stat.S_ISBLK, "block device"))


def not_readable_reason(path: str) -> str | None:
    """Why ``path`` cannot be read as a data file (None: it is a readable regular file).

    Uses ``stat`` only: nothing is opened."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "broken symlink" if os.path.islink(path) else "vanished while listing"
    except OSError as err:
        return f"cannot stat: {err.strerror or err}"
    if stat.S_ISDIR(st.st_mode):
        return "directory"
    if not stat.S_ISREG(st.st_mode):
        kind = next((k for test, k in _SPECIAL if test(st.st_mode)), "special file")
        return f"special file ({kind}), never opened"
    if not os.access(path, os.R_OK):
        return "not readable (permission denied)"
    return None


def glob_base(pattern: str) -> str:
    parts = pattern.replace("\\", "/").split("/")
    base: list[str] = []
    for part in parts:
        if _GLOB_CHARS & set(part):
            break
        base.append(part)
    else:
        base = base[:-1]  # a plain file: its directory is the base
    return "/".join(base) or "."


def _local_file(path: str, rel: str) -> InputFile:
    st = os.stat(path)
    return InputFile(path, printable(rel), st.st_size, st.st_mtime)


def _walk_directory(top: str, source_type: str) -> tuple[list[InputFile], list[SkippedFile]]:
    files: list[InputFile] = []
    skipped: list[SkippedFile] = []
    seen_dirs: set[str] = set()

    def onerror(err: OSError) -> None:
        skipped.append(SkippedFile(printable(str(err.filename)),
                                   f"cannot list directory: {err.strerror or err}"))

    for dirpath, dirnames, filenames in os.walk(top, followlinks=True, onerror=onerror):
        real = os.path.realpath(dirpath)
        if real in seen_dirs:  # a symlink loop or a second link to the same directory
            skipped.append(SkippedFile(printable(dirpath), "directory already read (symlink)"))
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        for d in sorted(dirnames):
            if d.startswith("."):
                skipped.append(SkippedFile(printable(os.path.join(dirpath, d)),
                                           "hidden directory, not read"))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if name.startswith("."):
                skipped.append(SkippedFile(printable(path), "hidden file, not read"))
                continue
            why = not_readable_reason(path)
            if why is None and not name_is_read(source_type, name):
                allowed = ALLOWED_NAMES.get(source_type, ALLOWED_NAMES["jsonl"])
                why = f"name does not end in {allowed}"
            if why is not None:
                skipped.append(SkippedFile(printable(path), why))
                continue
            try:
                files.append(_local_file(path, os.path.relpath(path, top)))
            except OSError as err:
                skipped.append(SkippedFile(printable(path), f"cannot stat: {err.strerror}"))
    return files, skipped


def _local_glob(pattern: str) -> tuple[list[InputFile], list[SkippedFile]]:
    base = glob_base(pattern)
    files: list[InputFile] = []
    skipped: list[SkippedFile] = []
    for path in sorted(globlib.glob(pattern, recursive=True)):
        why = not_readable_reason(path)
        if why == "directory":
            continue  # a glob's directories are not data files (and `**` matches many)
        if why is not None:
            skipped.append(SkippedFile(printable(path), why))
            continue
        rel = os.path.relpath(path, base) if base != "." or not os.path.isabs(pattern) else path
        try:
            files.append(_local_file(path, rel))
        except OSError as err:
            skipped.append(SkippedFile(printable(path), f"cannot stat: {err.strerror}"))
    return files, skipped


def _remote(pattern: str) -> list[InputFile]:
    base = glob_base(pattern)
    files = []
    for m in FileSystems.match([pattern])[0].metadata_list:
        rel = m.path[len(base):].lstrip("/") if m.path.startswith(base) else m.path
        files.append(InputFile(m.path, printable(rel), m.size_in_bytes,
                               float(m.last_updated_in_seconds)))
    return files


def list_input_files(pattern: str, source_type: str) -> tuple[list[InputFile], list[SkippedFile]]:
    """Files a source reads, sorted by path, and the files it found but does not read.

    Raises OSError (or Beam's errors for remote URLs) when the location cannot be listed."""
    if "://" in pattern:  # within DATAMILL_REMOTE_TIMEOUT, or one line (pipelines/core/remote.py)
        files = remote.call(lambda: _remote(pattern), pattern, "listing the source files")
        skipped = []
    elif os.path.isdir(pattern):
        files, skipped = _walk_directory(pattern, source_type)
    elif os.path.lexists(pattern):  # a literal name first, even with [ ] * ? in it
        why = not_readable_reason(pattern)
        if why is None:
            files, skipped = [_local_file(pattern, os.path.basename(pattern))], []
        else:
            files, skipped = [], [SkippedFile(printable(pattern), why)]
    elif _GLOB_CHARS & set(pattern):
        files, skipped = _local_glob(pattern)
    else:
        files, skipped = [], []
    files.sort(key=lambda f: f.path)
    return files, skipped
