"""Errors a build raises after its config was accepted, each with its CLI exit code.

Exit codes of ``datamill build`` (documented in README "Output directory safety"):
0 ok, 2 config error, 3 accounting error (records or counting stats missing), 4 too many
records dead-lettered, 5 an input file changed during the build (pipelines/build/accounting.py),
74 disk full / I/O error (sysexits EX_IOERR; also remote storage not reachable while
planning: :class:`pipelines.core.remote.RemoteUnreachable`), 75 output directory locked by
another build (sysexits EX_TEMPFAIL: retry later), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import errno


class BuildError(RuntimeError):
    """A build failed for a reason the user can act on; ``exit_code`` is the CLI's code."""

    exit_code = 1


class OutputLocked(BuildError):
    exit_code = 75


class DiskFull(BuildError):
    exit_code = 74


class BuildInterrupted(BuildError):
    def __init__(self, msg: str, signum: int):
        super().__init__(msg)
        self.exit_code = 128 + signum


def disk_full_cause(err: BaseException) -> BaseException | None:
    """The ENOSPC error behind ``err`` (following causes/contexts), or None.

    Beam re-raises worker exceptions wrapped (on multi-process runners only as text), so the
    text ``[Errno 28]`` / ``No space left on device`` is recognised too.
    """
    seen: set[int] = set()
    cur: BaseException | None = err
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno == errno.ENOSPC:
            return cur
        text = str(cur)
        if "No space left on device" in text or f"[Errno {errno.ENOSPC}]" in text:
            return cur
        cur = cur.__cause__ or cur.__context__
    return None
