"""Remote storage while planning (issue 26 item 5): a dry run touches nothing remote, and every
remote call before the pipeline runs ends within DATAMILL_REMOTE_TIMEOUT with one line.

No network is needed: remote access is spied on (Beam's FileSystems), faked (a Beam FileSystem
for the scheme ``hang://`` whose calls block) or refused (google-auth without credentials)."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from pathlib import Path

import pytest
from apache_beam.io.filesystem import FileSystem
from apache_beam.io.filesystems import FileSystems

from pipelines.build.config import build_config_from_dict
from pipelines.build.plan import plan_build
from pipelines.build.run import run_build
from pipelines.core import remote

REPO = Path(__file__).resolve().parents[1]
HAS_GCP = all(importlib.util.find_spec(m) is not None for m in ("google.cloud.storage", "apitools"))
DATAFLOW = ["--runner=DataflowRunner", "--project=datamill-ci", "--region=us-central1",
            "--temp_location=gs://datamill-ci-bucket/tmp", f"--setup_file={REPO / 'setup.py'}"]
_RELEASE = threading.Event()  # lets the hanging filesystem's calls end after the test


@pytest.fixture(autouse=True)
def _fresh_remote_state(monkeypatch):
    remote.reset()
    yield
    remote.reset()
    _RELEASE.set()
    _RELEASE.clear()


class _HangingFileSystem(FileSystem):
    """``hang://``: a remote store that never answers (each call blocks for a minute)."""

    @classmethod
    def scheme(cls):
        return "hang"

    def _hang(self, *_a, **_k):
        _RELEASE.wait(60)
        raise OSError("hang:// never answers")

    join = staticmethod(lambda base, *parts: "/".join([base.rstrip("/"), *parts]))
    split = staticmethod(lambda path: tuple(path.rsplit("/", 1)))
    match = mkdirs = has_dirs = _list = create = open = copy = rename = exists = _hang
    size = last_updated = checksum = delete = metadata = _hang


@pytest.fixture
def hang_scheme(monkeypatch):
    from pipelines.build import paths

    monkeypatch.setattr(paths, "REMOTE_SCHEMES", (*paths.REMOTE_SCHEMES, "hang"))
    monkeypatch.setenv(remote.TIMEOUT_ENV, "1.5")


def _write_jsonl(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": f"document number {i} with some words"}) + "\n"
                            for i in range(5)))


def _config(source: str, out: str, stages=None) -> dict:
    return {"sources": [{"name": "s", "type": "jsonl", "path": source}],
            "stages": stages or [{"stage": "normalize"}],
            "output": {"dir": out, "shards": 2, "report": False}}


@pytest.fixture
def remote_spy(monkeypatch):
    """Every FileSystems call on a URL, recorded (and refused: a dry run must make none);
    google-auth refuses too, so a credentials lookup shows up as a failure."""
    calls: list[tuple[str, str]] = []

    def spy(name, orig):
        def wrapped(*args, **kwargs):
            paths = args[0] if args else kwargs.get("path") or kwargs.get("patterns") or []
            for p in [paths] if isinstance(paths, str) else list(paths):
                if isinstance(p, str) and "://" in p:
                    calls.append((name, p))
                    raise AssertionError(f"remote call FileSystems.{name}({p!r})")
            return orig(*args, **kwargs)
        return staticmethod(wrapped)

    for name in ("match", "exists", "create", "open", "mkdirs", "delete", "rename", "copy"):
        monkeypatch.setattr(FileSystems, name, spy(name, getattr(FileSystems, name)))
    if HAS_GCP:
        import google.auth

        def no_auth(*_a, **_k):
            calls.append(("google.auth.default", ""))
            raise AssertionError("credentials looked up during a dry run")

        monkeypatch.setattr(google.auth, "default", no_auth)
    return calls


@pytest.mark.skipif(not HAS_GCP, reason="needs the gcp extra (pip install 'datamill[gcp]')")
@pytest.mark.timeout(120)
def test_dataflow_dry_run_with_gs_source_and_output_touches_nothing_remote(
        tmp_path, remote_spy, monkeypatch):
    """`datamill build CONFIG -- --runner dataflow ... --dry_run=True` with gs:// paths and no
    credentials: seconds, exit 0, what a real run would write, and not one remote call (no
    listing, no lock, no staging, no stats)."""
    from typer.testing import CliRunner

    from pipelines.cli.main import app

    stages = [{"stage": "normalize"}, {"stage": "exact_dedup", "checkpoint": True},
              {"stage": "minhash_dedup"}]
    cfg = tmp_path / "gs.yaml"
    cfg.write_text(json.dumps(_config("gs://datamill-ci-bucket/in/*.jsonl",
                                      "gs://datamill-ci-bucket/out", stages)))
    monkeypatch.chdir(tmp_path)
    t0 = time.monotonic()
    res = CliRunner().invoke(app, ["build", str(cfg), "--progress-every", "0", "--",
                                   *DATAFLOW, "--dry_run=True"])
    elapsed = time.monotonic() - t0
    text = " ".join(res.output.split())
    assert res.exit_code == 0, res.output[-3000:]
    assert elapsed < 40, elapsed
    assert remote_spy == []
    assert "nothing was submitted, run or written" in text
    assert "gs://datamill-ci-bucket/out/_lock.json" in text
    assert "gs://datamill-ci-bucket/out/_staging/" in text
    assert "gs://datamill-ci-bucket/out/checkpoints/01-exact_dedup/" in text
    assert "gs://datamill-ci-bucket/in/*.jsonl was not listed" in text
    from pipelines.stages.dedup.minhash_passes import UNSIZED_SHARDS

    assert f"minhash_dedup: {UNSIZED_SHARDS} candidate shard(s) planned" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gs.yaml"]  # nothing local either


def test_dry_run_on_the_local_runner_runs_and_writes_nothing(tmp_path, remote_spy):
    """Beam's local runner ignores --dry_run and would run the job: datamill only translates."""
    _write_jsonl(tmp_path / "in" / "a.jsonl")
    cfg = build_config_from_dict(_config(str(tmp_path / "in" / "*.jsonl"),
                                         str(tmp_path / "out")))
    res = run_build(cfg, extra_args=["--dry_run=True"])
    assert res.dry_run and res.stats["runner"] in ("DirectRunner", "FnApiRunner")
    assert any(".datamill.lock" in line for line in res.stats["would_write"])
    assert not (tmp_path / "out").exists()
    assert remote_spy == []


def test_listing_an_unreachable_remote_fails_in_seconds_with_one_line(tmp_path, hang_scheme):
    """A source on a store that never answers: planning stops after DATAMILL_REMOTE_TIMEOUT
    (1.5 s here) with one line naming the path, what was tried and the fix; the CLI exits 74."""
    from typer.testing import CliRunner

    from pipelines.cli.main import app

    cfg = _config("hang://bucket/in/*.jsonl", str(tmp_path / "out"))
    t0 = time.monotonic()
    with pytest.raises(remote.RemoteUnreachable) as err:
        plan_build(build_config_from_dict(cfg), use_checkpoints=False)
    assert time.monotonic() - t0 < 8
    msg = str(err.value)
    assert "hang://bucket/in/*.jsonl" in msg and "listing the source files" in msg
    assert "no answer within 1.5 s" in msg and "DATAMILL_REMOTE_TIMEOUT" in msg
    remote.reset()
    (tmp_path / "c.yaml").write_text(json.dumps(cfg))
    t0 = time.monotonic()
    res = CliRunner().invoke(app, ["build", str(tmp_path / "c.yaml"), "--progress-every", "0"])
    assert time.monotonic() - t0 < 15
    assert res.exit_code == 74, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach hang://bucket/in/"), \
        res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "out").exists()


def test_output_lock_on_an_unreachable_remote_fails_in_seconds(tmp_path, hang_scheme):
    _write_jsonl(tmp_path / "in" / "a.jsonl")
    cfg = build_config_from_dict(_config(str(tmp_path / "in" / "*.jsonl"), "hang://bucket/out"))
    t0 = time.monotonic()
    with pytest.raises(remote.RemoteUnreachable, match=r"cannot reach hang://bucket/out/"
                       r"_lock\.json \(taking the output lock\): no answer within 1\.5 s"):
        run_build(cfg)
    assert time.monotonic() - t0 < 8


@pytest.mark.skipif(not HAS_GCP, reason="needs the gcp extra (pip install 'datamill[gcp]')")
@pytest.mark.parametrize("lookup", ["missing", "hangs"])
def test_gs_without_credentials_is_one_line_at_once(tmp_path, monkeypatch, lookup):
    """No credentials (or a credentials lookup stuck on the GCE metadata server): one line
    naming the path and `gcloud auth application-default login`, not Beam's retries."""
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    def default(*_a, **_k):
        if lookup == "hangs":
            _RELEASE.wait(60)
        raise DefaultCredentialsError("Your default credentials were not found.")

    monkeypatch.setattr(google.auth, "default", default)
    monkeypatch.setenv(remote.TIMEOUT_ENV, "1.5")
    listed = []
    monkeypatch.setattr(FileSystems, "match", staticmethod(lambda *a, **k: listed.append(a)))
    cfg = build_config_from_dict(_config("gs://datamill-ci-bucket/in/*.jsonl",
                                         str(tmp_path / "out")))
    t0 = time.monotonic()
    with pytest.raises(remote.RemoteUnreachable) as err:
        plan_build(cfg, use_checkpoints=False)
    assert time.monotonic() - t0 < 8
    msg = str(err.value)
    assert msg.startswith("cannot reach gs://datamill-ci-bucket/in/*.jsonl (listing the "
                          "source files): ")
    assert "gcloud auth application-default login" in msg and "\n" not in msg
    assert ("more than 1.5 s" in msg) == (lookup == "hangs")
    assert listed == []  # nothing was sent anonymously


def test_remote_timeout_is_configurable_and_checked(monkeypatch):
    from pipelines.core.settings import ConfigError

    monkeypatch.delenv(remote.TIMEOUT_ENV, raising=False)
    assert remote.timeout_s() == remote.DEFAULT_TIMEOUT == 20
    monkeypatch.setenv(remote.TIMEOUT_ENV, "3.5")
    assert remote.timeout_s() == 3.5
    monkeypatch.setenv(remote.TIMEOUT_ENV, "soon")
    with pytest.raises(ConfigError, match="DATAMILL_REMOTE_TIMEOUT"):
        remote.timeout_s()
    assert remote.dry_run(["--dry_run=True"]) and not remote.dry_run(["--project=p"])


@pytest.mark.skipif(not HAS_GCP, reason="needs the gcp extra (pip install 'datamill[gcp]')")
def test_dataflow_run_without_credentials_is_one_line_before_any_remote_call(
        tmp_path, monkeypatch):
    """A real Dataflow run (no --dry_run): Beam's option check would read the temp bucket with
    minutes of retries; the options are checked offline and the missing credentials are one
    line at once. A wrong option is still reported first."""
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    from pipelines.core.settings import ConfigError

    def default(*_a, **_k):
        raise DefaultCredentialsError("Your default credentials were not found.")

    monkeypatch.setattr(google.auth, "default", default)
    touched = []
    for name in ("match", "exists", "create", "open"):
        monkeypatch.setattr(FileSystems, name,
                            staticmethod(lambda *a, _n=name, **k: touched.append(_n)))
    _write_jsonl(tmp_path / "in" / "a.jsonl")
    cfg = build_config_from_dict(_config(str(tmp_path / "in" / "*.jsonl"),
                                         "gs://datamill-ci-bucket/out"))
    with pytest.raises(ConfigError, match="--setup_file"):
        run_build(cfg, extra_args=[a for a in DATAFLOW if "setup_file" not in a])
    t0 = time.monotonic()
    with pytest.raises(remote.RemoteUnreachable,
                       match=r"^cannot reach gs://datamill-ci-bucket/tmp \(looking up the "
                             r"credentials .*gcloud auth application-default login"):
        run_build(cfg, extra_args=DATAFLOW)
    assert time.monotonic() - t0 < 8
    assert touched == []
