"""Remote storage (``gs://``, ``s3://``...) while a build plans: bounded in time, one clear line.

Planning a build (listing sources, reading a sample, looking for a checkpoint) and the steps
before its pipeline runs (the output lock) may call remote storage. Left alone, such a call
waits on Beam's and Google's retries: without credentials Beam retries google-auth's lookup
five times with backoff (~25 s; each lookup also probes the GCE metadata server, 3 s x 3
tries where it does not answer) and then connects anonymously, and every GCS request is
retried for up to 120 s, so a build with ``gs://`` paths and no credentials or no network was
silent for minutes. Here:

* :func:`call` runs one remote call under a time limit (``DATAMILL_REMOTE_TIMEOUT`` seconds,
  default 20) and turns a timeout, missing credentials or a refused access into
  :class:`RemoteUnreachable`: one line naming the path, what was tried and the likely fix
  (exit 74 on the CLI). A location found unreachable fails the next calls at once (for a
  minute) instead of waiting again;
* before the first ``gs://`` call, Google's application default credentials are looked up
  once, under the same limit and with one probe of the GCE metadata server instead of three
  (:func:`check_gcs_credentials`): no credentials is that one line at once, not minutes of
  anonymous retries;
* a dry run (``--dry_run=True``) plans offline (:func:`offline_planning`): remote sources are
  not listed and nothing remote is read or written; :func:`call` refuses any remote call then.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

TIMEOUT_ENV = "DATAMILL_REMOTE_TIMEOUT"
DEFAULT_TIMEOUT = 20.0
_DOWN_FOR = 60.0  # seconds a location found unreachable fails at once
LOGIN_FIX = "gcloud auth application-default login"

_OFFLINE: contextvars.ContextVar[bool] = contextvars.ContextVar("datamill_offline", default=False)
_lock = threading.Lock()
_down: dict[str, tuple[float, RemoteUnreachable]] = {}  # location -> (since, error)
_gcs_ok = False  # credentials found once: not looked up again


class RemoteUnreachable(RuntimeError):
    """Remote storage could not be reached in time, or refused the credentials (exit 74, the
    CLI's I/O-error code; sysexits EX_IOERR)."""

    exit_code = 74


def is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def timeout_s() -> float:
    """The time limit of one remote call while planning: ``DATAMILL_REMOTE_TIMEOUT`` (seconds,
    > 0), default 20."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if value <= 0:
        from pipelines.core.settings import ConfigError

        raise ConfigError(f"{TIMEOUT_ENV}={raw!r}: must be a number of seconds > 0 "
                          f"(default {DEFAULT_TIMEOUT:g})")
    return value


def dry_run(extra_args: list[str] | None) -> bool:
    """Whether the Beam arguments ask for a dry run (``--dry_run=True``), as Beam reads it:
    Beam 2.77 keeps the value as text, so any non-empty value (even ``False``) is a dry run."""
    args = list(extra_args or [])
    if not any(a == "--dry_run" or a.startswith("--dry_run=") for a in args):
        return False
    from apache_beam.options.pipeline_options import PipelineOptions, TestOptions

    return bool(PipelineOptions(args).view_as(TestOptions).dry_run)


def offline() -> bool:
    """True while a dry run plans: no remote call may be made."""
    return _OFFLINE.get()


@contextlib.contextmanager
def offline_planning(active: bool = True) -> Iterator[None]:
    token = _OFFLINE.set(active)
    try:
        yield
    finally:
        _OFFLINE.reset(token)


def location(path: str) -> str:
    """``scheme://bucket`` of a URL (what one failure makes unreachable)."""
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/]*)", path)
    return m.group(1) if m else path


def reset() -> None:
    """Forget cached failures and the credentials check (tests)."""
    global _gcs_ok
    with _lock:
        _down.clear()
        _gcs_ok = False


def _in_thread(fn: Callable[[], T], limit: float) -> tuple[bool, T | None, BaseException | None]:
    """``(finished, value, error)`` of ``fn()`` run in a daemon thread for at most ``limit``
    seconds. A call still running is left behind (a daemon thread: it never keeps the process
    alive); what it returns later is dropped."""
    box: dict[str, Any] = {}
    ctx = contextvars.copy_context()  # offline() and the like, as in the caller

    def target() -> None:
        try:
            box["value"] = ctx.run(fn)
        except BaseException as err:  # noqa: BLE001 - handed to the caller
            box["error"] = err

    worker = threading.Thread(target=target, name="datamill-remote-call", daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        return False, None, None
    return True, box.get("value"), box.get("error")


def _causes(err: BaseException) -> Iterator[BaseException]:
    """``err`` and what it wraps: causes, contexts and the per-path errors Beam collects in
    ``BeamIOError.exception_details``."""
    todo, seen = [err], set()
    while todo:
        cur = todo.pop(0)
        if cur is None or id(cur) in seen or not isinstance(cur, BaseException):
            continue
        seen.add(id(cur))
        yield cur
        details = getattr(cur, "exception_details", None)
        if isinstance(details, dict):
            todo.extend(v for v in details.values() if isinstance(v, BaseException))
        todo.extend([cur.__cause__, cur.__context__])


_AUTH = ("DefaultCredentialsError", "RefreshError", "Unauthorized", "Forbidden")
_NETWORK = ("RetryError", "ConnectionError", "ConnectTimeout", "ReadTimeout", "Timeout",
            "NewConnectionError", "MaxRetryError", "ServiceUnavailable", "TransportError",
            "TimeoutError", "gaierror")


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:200]}{'...' if len(text) > 200 else ''}"


def classify(err: BaseException) -> tuple[str, BaseException] | None:
    """``("auth" | "network", the innermost telling error)`` when ``err`` means the location
    cannot be reached or refused the credentials; None for other errors (not found...)."""
    found = None
    for cur in _causes(err):
        names = {k.__name__ for k in type(cur).__mro__}
        text = str(cur)
        if names & set(_AUTH) or "Anonymous caller" in text:
            return "auth", cur
        if found is None and (names & set(_NETWORK) or "RetryError" in text
                              or "Timeout of" in text):
            found = ("network", cur)
    return found


def _fail(path: str, what: str, why: str, fix: str) -> RemoteUnreachable:
    return RemoteUnreachable(f"cannot reach {path} ({what}): {why}; {fix}")


def _network_fix(limit: float) -> str:
    return ("check the network connection (or proxy) to the storage service and the bucket "
            f"name, or allow more time with {TIMEOUT_ENV}={max(60, int(limit * 3))} (a build "
            "with `-- --dry_run=True` plans without remote calls)")


def check_gcs_credentials(path: str, what: str, limit: float | None = None) -> None:
    """Google's application default credentials, looked up once per process before the first
    ``gs://`` call and within ``limit`` seconds; raises :class:`RemoteUnreachable` naming
    ``path`` when there are none (instead of Beam's retries and anonymous access)."""
    global _gcs_ok
    if _gcs_ok:
        return
    limit = timeout_s() if limit is None else limit
    try:
        import google.auth
    except ImportError:  # Beam's gs:// filesystem needs the gcp extra anyway: its error
        return

    if "google.auth.compute_engine._metadata" not in sys.modules:
        # google-auth reads this when it first probes the GCE metadata server (off GCE that
        # probe waits 3 s per try, 3 tries, and Beam repeats the lookup 5 times): one try here
        # (on GCE it answers at once; a value the user set wins)
        os.environ.setdefault("GCE_METADATA_DETECT_RETRIES", "1")
    done, _, err = _in_thread(google.auth.default, limit)
    tried = ("tried GOOGLE_APPLICATION_CREDENTIALS, gcloud's application-default credentials "
             "file and the GCE metadata server")
    fix = (f"run `{LOGIN_FIX}` (or set GOOGLE_APPLICATION_CREDENTIALS to a service-account "
           "key file); a build with `-- --dry_run=True` plans offline")
    if not done:
        raise _fail(path, what, f"looking up Google Cloud credentials took more than "
                                f"{limit:g} s ({tried}; the metadata server did not answer)",
                    fix)
    if err is not None:
        raise _fail(path, what, f"no Google Cloud credentials found ({tried})", fix)
    _gcs_ok = True


def call(fn: Callable[[], T], path: str, what: str, limit: float | None = None) -> T:
    """``fn()``, a call to remote storage about ``path`` (``what``: e.g. "listing the source
    files"), within ``limit`` seconds (default :func:`timeout_s`). Local paths run ``fn``
    directly. Raises :class:`RemoteUnreachable` (one line) on a timeout, missing or refused
    credentials, or a connection that keeps failing; other errors (not found...) propagate."""
    if not is_remote(path):
        return fn()
    if offline():
        raise RemoteUnreachable(f"internal error: {what} {path} during a dry run, which makes "
                                "no remote calls")
    limit = timeout_s() if limit is None else limit
    where = location(path)
    with _lock:
        hit = _down.get(where)
    if hit is not None and time.monotonic() - hit[0] < _DOWN_FOR:
        raise hit[1]
    try:
        if path.startswith("gs://"):
            check_gcs_credentials(path, what, limit)
        done, value, err = _in_thread(fn, limit)
        if not done:
            raise _fail(path, what, f"no answer within {limit:g} s", _network_fix(limit))
        if err is not None:
            kind = classify(err)
            if kind is None:
                raise err
            cause = _short(kind[1])
            if kind[0] == "auth":
                raise _fail(path, what, f"access refused ({cause})",
                            f"check that your credentials (`{LOGIN_FIX}`) may use this "
                            "bucket") from None
            raise _fail(path, what, f"connection failed ({cause})", _network_fix(limit)) \
                from None
        return value  # type: ignore[return-value]
    except RemoteUnreachable as err:
        with _lock:
            _down[where] = (time.monotonic(), err)
        raise
