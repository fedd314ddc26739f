"""Runners beyond the local one: portable runner with an external SDK worker pool, option
validation for Flink / Spark / Dataflow / Dask, Dataflow job preparation offline, and the sdist
that ``--setup_file`` ships to workers.

The portable test is the same Fn API path Flink, Spark and Dataflow workers use: the job runs
in an embedded job service and every bundle is processed by SDK workers that a separate worker
pool process starts, in another working directory.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from pipelines.core.settings import ConfigError, RunnerConfig
from pipelines.build.config import build_config_from_dict
from pipelines.build.run import run_build
from pipelines.core.runner import canonical_runner, check_runner, make_options
from tests.poolutil import worker_pool

REPO = Path(__file__).resolve().parents[1]
DEMO_DOCS = 300
HAS_GCP = all(importlib.util.find_spec(m) is not None for m in ("google.cloud.storage", "apitools"))


def demo_config(corpus: Path, out: Path, **output) -> dict:
    """configs/demo.yaml with absolute paths, a small corpus and no report."""
    cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    cfg["sources"][0].update(path=str(corpus), demo_docs=DEMO_DOCS)
    cfg["output"].update(dir=str(out), shards=2, report=False, **output)
    return cfg


def output_files(out: Path) -> dict[str, object]:
    """Every data/removed/dead-letter file of a build, by relative path, as comparable content."""
    files: dict[str, object] = {}
    for sub in ("data", "removed", "dead_letter"):
        for f in sorted((out / sub).rglob("*")):
            if not f.is_file():
                continue
            rel = f.relative_to(out).as_posix()
            if f.suffix == ".parquet":
                files[rel] = pq.read_table(f).to_pylist()
            else:
                files[rel] = gzip.decompress(f.read_bytes()).decode("utf-8").splitlines()
    return files


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory, demo_corpus_300) -> Path:
    """A folder holding the generated demo corpus (``corpus/``, a copy of the session's)."""
    import shutil

    assert DEMO_DOCS == 300
    root = tmp_path_factory.mktemp("runners")
    shutil.copytree(demo_corpus_300, root / "corpus")
    return root


@pytest.fixture(scope="module")
def direct_build(demo_root):
    """The demo build on the local runner (FnApiRunner): the reference output."""
    root = demo_root
    cfg = demo_config(root / "corpus", root / "direct")
    res = run_build(build_config_from_dict(cfg))
    return root, res.stats, output_files(root / "direct")


# (runner arguments, SDK workers the pool must start). The embedded job server runs one SDK
# worker per environment (it does not apply direct_num_workers or sdk_worker_parallelism);
# the local runner with an EXTERNAL environment asks the pool for -w of them (docs/scale.md)
EXTERNAL_RUNS = {
    "portable-embed-1": (["--runner", "portable", "--job_endpoint=embed"], 1, "PortableRunner"),
    "local-external-2": (["--direct_num_workers=2"], 2, "DirectRunner"),
}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", sorted(EXTERNAL_RUNS))
def test_external_worker_pool_matches_direct(case, direct_build, tmp_path, monkeypatch):
    """Every bundle runs in SDK worker processes that a separate worker pool starts (the Fn API
    path of Flink, Spark and Dataflow workers), one or two of them; output equal to the local
    runner's. Also the relative-path case: the config names the corpus and the output relative
    to the driver's directory; planning resolves them once, so workers started elsewhere read
    and write the same files (issue 12)."""
    runner_args, workers, runner = EXTERNAL_RUNS[case]
    root, ref_stats, ref_files = direct_build
    monkeypatch.chdir(tmp_path)
    with worker_pool(tmp_path) as (port, log):
        cfg = demo_config(Path(os.path.relpath(root / "corpus", tmp_path)), Path("external"))
        args = [*runner_args, "--environment_type=EXTERNAL",
                f"--environment_config=localhost:{port}"]
        res = run_build(build_config_from_dict(cfg), extra_args=args)
    assert log.read_text().count("Starting worker with command") == workers, log.read_text()
    stats = res.stats
    assert stats["runner"] == runner
    assert stats["counts"] == ref_stats["counts"] and stats["counts"]["kept"] > 0
    assert stats["raw_counts"] == ref_stats["raw_counts"]
    files = output_files(tmp_path / "external")
    assert sorted(files) == sorted(ref_files)
    assert files == ref_files  # the same shards with the same rows in the same order
    if runner == "PortableRunner":
        # runtime per stage from user metrics (the only ones this runner reports)
        assert stats["runtime_source"] == "user"
        for label in ("normalize", "length_filter", "language_id", "gopher_repetition"):
            assert stats["stages"][label]["runtime_ms"] > 0, label
        from pipelines.report.render import _runtime

        assert "runtime per stage" in _runtime(stats)


@pytest.mark.parametrize("env_type", ["DOCKER", "PROCESS", "LOOPBACK"])
def test_local_runner_takes_only_external_environment(env_type):
    with pytest.raises(ConfigError, match="the one other environment it takes is "
                                          "--environment_type=EXTERNAL"):
        check_runner(RunnerConfig(), [f"--environment_type={env_type}"])
    with pytest.raises(ConfigError, match="EXTERNAL needs --environment_config"):
        check_runner(RunnerConfig(), ["--environment_type=external"])


def test_local_runtime_from_transform_metrics(direct_build):
    _, stats, _ = direct_build
    assert stats["runtime_source"] == "transform"
    assert {"read", "write", "minhash_dedup"} <= set(stats["runtime_ms"])


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("given,expected", [
    ("DirectRunner", "DirectRunner"), ("directrunner", "DirectRunner"), ("direct", "DirectRunner"),
    ("PORTABLE", "PortableRunner"), ("flink", "FlinkRunner"), ("SparkRunner", "SparkRunner"),
    ("dataflow", "DataflowRunner"),
    ("apache_beam.runners.portability.flink_runner.FlinkRunner", "FlinkRunner"),
])
def test_runner_names_case_insensitive(given, expected):
    assert canonical_runner(given) == expected


@pytest.mark.parametrize("name", ["DaskRunner", "dask",
                                  "apache_beam.runners.dask.dask_runner.DaskRunner"])
def test_dask_refused_naming_beam_limitation(name):
    with pytest.raises(ConfigError) as err:
        canonical_runner(name)
    msg = str(err.value)
    assert "Beam 2.77's DaskRunner" in msg and "mixed together" in msg
    assert "only the last sink" in msg and "Supported runners: DirectRunner" in msg


def test_unknown_runner_lists_supported():
    with pytest.raises(ConfigError, match=r"'Sparkle' is not a runner.*DataflowRunner"):
        canonical_runner("Sparkle")
    with pytest.raises(ConfigError, match="not a runner"):
        canonical_runner("")


def _fails_before_work(tmp_path, args, match):
    """run_build with these runner args must fail on the options, before reading or writing."""
    corpus = tmp_path / "corpus"
    cfg = demo_config(corpus, tmp_path / "out")
    with pytest.raises(ConfigError, match=match):
        run_build(build_config_from_dict(cfg), extra_args=args)
    assert not corpus.exists() and not (tmp_path / "out").exists()


def test_dask_refused_before_any_work(tmp_path):
    _fails_before_work(tmp_path, ["--runner=DaskRunner"], "Beam 2.77's DaskRunner")


@pytest.mark.parametrize("runner,option", [("FlinkRunner", "flink_job_server_jar"),
                                           ("SparkRunner", "spark_job_server_jar")])
def test_job_server_jar_validated(tmp_path, runner, option):
    missing = tmp_path / "beam-runners-job-server.jar"
    _fails_before_work(tmp_path, [f"--runner={runner}", f"--{option}={missing}",
                                  "--environment_type=LOOPBACK"], f"--{option}=.*no such file")
    not_jar = tmp_path / "server.txt"
    not_jar.write_text("x")
    with pytest.raises(ConfigError, match="expected a .jar"):
        check_runner(RunnerConfig(), [f"--runner={runner}", f"--{option}={not_jar}",
                                      "--environment_type=LOOPBACK"])
    jar = tmp_path / "beam-runners-job-server-2.77.0.jar"
    jar.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an (empty) zip: existence is what is checked
    args = [f"--runner={runner.lower()}", f"--{option}={jar}", "--environment_type=external",
            "--environment_config=localhost:50000"]
    assert check_runner(RunnerConfig(), args) == runner
    _, opts = make_options(RunnerConfig(), args)
    every = opts.get_all_options()
    assert every["runner"] == runner and every[option] == str(jar)
    assert every["environment_type"] == "external"
    # a URL is left to Beam (it downloads the jar)
    assert check_runner(RunnerConfig(options=[f"--{option}=https://repo1.maven.org/x.jar"]),
                        [f"--runner={runner}", "--environment_type=LOOPBACK"]) == runner


@pytest.mark.parametrize("runner", ["FlinkRunner", "SparkRunner"])
@pytest.mark.parametrize("env_args,match", [
    ([], "no worker environment given.*stock SDK image"),
    (["--environment_type=CONTAINER"], "unknown; expected one of DOCKER, PROCESS"),
    (["--environment_type=EXTERNAL"], "EXTERNAL needs --environment_config=HOST:PORT"),
    (["--environment_type=DOCKER"], "DOCKER needs an image with datamill"),
    (["--environment_type=PROCESS"], "PROCESS needs --environment_config"),
    (["--environment_type=PROCESS", "--environment_config={not json"], "PROCESS needs"),
])
def test_worker_environment_validated(tmp_path, runner, env_args, match):
    _fails_before_work(tmp_path, [f"--runner={runner}", *env_args], match)


@pytest.mark.parametrize("env_args", [
    ["--sdk_container_image=registry.example/datamill:0.1"],
    ["--environment_type=docker", "--sdk_container_image=registry.example/datamill:0.1"],
    ["--environment_type=DOCKER", "--environment_config=registry.example/datamill:0.1"],
    ["--environment_type=PROCESS", '--environment_config={"command": "/opt/apache/beam/boot"}'],
    ["--environment_type=PROCESS", "--environment_option=process_command=/opt/beam/boot"],
    ["--environment_type=EXTERNAL", "--environment_option=external_service_address=w:50000"],
    ["--environment_type=LOOPBACK"],
])
def test_worker_environment_accepted(env_args):
    assert check_runner(RunnerConfig(name="flink"), env_args) == "FlinkRunner"


def test_portable_runner_needs_job_endpoint(tmp_path):
    _fails_before_work(tmp_path, ["--runner=PortableRunner", "--environment_type=LOOPBACK"],
                       "needs --job_endpoint")


DATAFLOW = ["--runner=DataflowRunner", "--project=datamill-ci", "--region=us-central1",
            "--temp_location=gs://datamill-ci-bucket/tmp", "--dry_run=True"]


@pytest.mark.skipif(not HAS_GCP, reason="needs the gcp extra (pip install 'datamill[gcp]')")
def test_dataflow_options_validated(tmp_path):
    setup = f"--setup_file={REPO / 'setup.py'}"
    assert check_runner(RunnerConfig(), [*DATAFLOW, setup]) == "DataflowRunner"
    _fails_before_work(tmp_path, DATAFLOW, "workers need datamill's code.*--setup_file")
    _fails_before_work(tmp_path, [*DATAFLOW, f"--setup_file={tmp_path / 'setup.py'}"],
                       "no such file")
    _fails_before_work(tmp_path, [a for a in DATAFLOW if "project" not in a] + [setup],
                       "Missing required option: project")
    _fails_before_work(tmp_path, [a for a in DATAFLOW if "temp_location" not in a] + [setup],
                       "needs --temp_location=gs://")


@pytest.mark.skipif(not HAS_GCP, reason="needs the gcp extra (pip install 'datamill[gcp]')")
@pytest.mark.parametrize("form", [["--setup_file=setup.py"], ["--setup_file", "./setup.py"]])
def test_setup_file_made_absolute_for_beams_stager(monkeypatch, form):
    monkeypatch.chdir(REPO)  # Beam's stager chdirs to dirname(setup_file): '' would fail
    _, opts = make_options(RunnerConfig(), [*DATAFLOW, *form])
    assert opts.get_all_options()["setup_file"] == str(REPO / "setup.py")


@pytest.mark.skipif(HAS_GCP, reason="the gcp extra is installed")
def test_dataflow_without_gcp_extra_says_which_extra():
    with pytest.raises(ConfigError, match=r"datamill\[gcp\]"):
        check_runner(RunnerConfig(), DATAFLOW)


# --------------------------------------------------------------------------- Dataflow, sdist

_LOAD_DOFNS = r"""
import json, sys, tarfile, tempfile
from apache_beam.internal import pickler
from apache_beam.portability import common_urns, python_urns
from apache_beam.portability.api import beam_runner_api_pb2

proto = beam_runner_api_pb2.Pipeline.FromString(open(sys.argv[1], "rb").read())
src = tempfile.mkdtemp()
with tarfile.open(sys.argv[2]) as tf:
    tf.extractall(src, filter="data")
root = next(p for p in __import__("pathlib").Path(src).iterdir() if p.is_dir())
sys.path.insert(0, str(root))  # datamill from the staged sdist, as a worker installs it
loaded = {"dofn": 0, "combinefn": 0}
for t in proto.components.transforms.values():
    if t.spec.urn == common_urns.primitives.PAR_DO.urn:
        fn = beam_runner_api_pb2.ParDoPayload.FromString(t.spec.payload).do_fn
        if fn.urn == python_urns.PICKLED_DOFN_INFO:
            pickler.loads(fn.payload)
            loaded["dofn"] += 1
    elif t.spec.urn == common_urns.composites.COMBINE_PER_KEY.urn:
        fn = beam_runner_api_pb2.CombinePayload.FromString(t.spec.payload).combine_fn
        if fn.urn == python_urns.PICKLED_COMBINE_FN:
            pickler.loads(fn.payload)
            loaded["combinefn"] += 1
import pipelines, filters
loaded["pipelines"] = pipelines.__file__
loaded["filters"] = filters.__file__
loaded["root"] = str(root)
print(json.dumps(loaded))
"""


def _unpickled_bytes(proto) -> list[bytes]:
    """The pickle streams of every Python DoFn / CombineFn in a job graph (Beam's pickler
    base64-encodes a bz2- or zlib-compressed cloudpickle)."""
    import base64
    import bz2
    import zlib

    from apache_beam.portability import common_urns, python_urns
    from apache_beam.portability.api import beam_runner_api_pb2 as rapi

    out = []
    for t in proto.components.transforms.values():
        fn = None
        if t.spec.urn == common_urns.primitives.PAR_DO.urn:
            fn = rapi.ParDoPayload.FromString(t.spec.payload).do_fn
        elif t.spec.urn == common_urns.composites.COMBINE_PER_KEY.urn:
            fn = rapi.CombinePayload.FromString(t.spec.payload).combine_fn
        if fn is None or fn.urn not in (python_urns.PICKLED_DOFN_INFO,
                                         python_urns.PICKLED_COMBINE_FN):
            continue
        raw = base64.b64decode(fn.payload)
        try:
            out.append(bz2.decompress(raw))
        except OSError:
            out.append(zlib.decompress(raw))
    return out


@pytest.mark.skipif(not HAS_GCP, reason="needs the gcp extra (pip install 'datamill[gcp]')")
@pytest.mark.timeout(300)
def test_dataflow_dry_run_demo_with_gs_paths(demo_root, tmp_path):
    """Dataflow's whole job preparation offline: translation, pickling, sdist staging."""
    import dataclasses

    import apache_beam as beam
    from apache_beam.portability import common_urns

    from pipelines.build.graph import construct
    from pipelines.build.plan import SourcePlan, plan_build
    from pipelines.io.input_files import InputFile

    root = demo_root
    bucket = "gs://datamill-ci-bucket/demo"
    args = [*DATAFLOW, f"--setup_file={REPO / 'setup.py'}"]
    # Planning lists the inputs; GCS listing without credentials waits minutes on retries, so
    # plan with the (local, already generated) demo corpus and an explicit file list, then give
    # the job the same files under gs:// - the graph then holds only gs:// paths.
    local = demo_config(root / "corpus", tmp_path / "unused")
    local["sources"][0].update(type="jsonl", path=str(root / "corpus" / "*.jsonl*"))
    local["output"]["dir"] = f"{bucket}/out"
    cfg = build_config_from_dict(local)
    check_runner(cfg.runner, args)
    plan = plan_build(cfg, args, use_checkpoints=False)  # no gs:// reads in planning
    sources = []
    for sp in plan.sources:
        files = [InputFile(f"{bucket}/corpus/{f.rel}", f.rel, f.size, f.mtime) for f in sp.files]
        gs_cfg = sp.config.model_copy(update={"path": f"{bucket}/corpus/*.jsonl*"})
        sources.append(SourcePlan(gs_cfg, files, sp.n_rows, sp.fingerprint))
    plan = dataclasses.replace(plan, sources=sources)
    _, options = make_options(cfg.runner, args)
    p = beam.Pipeline(options=options)
    construct(plan, p)
    result = p.run()
    result.wait_until_finish()
    proto = p.runner.proto_pipeline
    text = proto.SerializeToString()
    pickled = _unpickled_bytes(proto)  # what the workers will unpickle, decompressed
    assert len(pickled) > 40
    blob = b"".join(pickled)
    assert str(root).encode() not in blob and str(tmp_path).encode() not in blob
    assert f"{bucket}/corpus/".encode() in blob and f"{bucket}/out/_staging/".encode() in blob
    # the sdist Beam built from --setup_file, staged as workflow.tar.gz
    sdist = None
    for env in proto.components.environments.values():
        for dep in env.dependencies:
            if dep.type_urn == common_urns.artifact_types.FILE.urn:
                from apache_beam.portability.api import beam_runner_api_pb2 as rapi

                role = rapi.ArtifactStagingToRolePayload.FromString(dep.role_payload)
                if role.staged_name == "workflow.tar.gz":
                    sdist = rapi.ArtifactFilePayload.FromString(dep.type_payload).path
    assert sdist and os.path.isfile(sdist), "no workflow.tar.gz staged from --setup_file"
    (tmp_path / "job.pb").write_bytes(text)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", _LOAD_DOFNS, str(tmp_path / "job.pb"), sdist],
                         cwd=fresh, env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded["dofn"] >= 40 and loaded["combinefn"] >= 1, loaded
    assert loaded["pipelines"].startswith(loaded["root"]), loaded
    assert loaded["filters"].startswith(loaded["root"]), loaded


def _tracked_package_files() -> set[str]:
    listed = subprocess.run(["git", "ls-files", "pipelines", "filters", "synth", "scaling",
                             "configs"], cwd=REPO, capture_output=True, text=True, check=True)
    return {f for f in listed.stdout.split() if f.endswith((".py", ".json", ".txt", ".yaml"))}


@pytest.mark.timeout(300)
def test_setup_file_sdist_as_beam_stager_builds_it(tmp_path):
    """``--setup_file ./setup.py``: Beam's stager runs ``python -m build --no-isolation --sdist``
    in the project directory; the sdist must hold every package, its data files and the configs."""
    import shutil

    pytest.importorskip("build", reason="install steps bring `build` (dev extra)")
    import setuptools
    from apache_beam.runners.portability.stager import Stager

    assert int(setuptools.__version__.split(".")[0]) >= 77, "PEP 639 license needs setuptools>=77"
    wanted = _tracked_package_files()
    assert "pipelines/build/graph.py" in wanted and "configs/demo.yaml" in wanted
    project = tmp_path / "project"  # a copy: the build writes egg-info next to setup.py
    def ignore(folder, names):  # build/, data/ ... only at the top: pipelines/build/ is code
        skip = {n for n in names if n in (".git", ".venv", "__pycache__", ".pytest_cache")
                or n.endswith(".egg-info")}
        if Path(folder).resolve() == REPO.resolve():
            skip |= {"out", "data", "build", "bench"} & set(names)
        return skip

    shutil.copytree(REPO, project, ignore=ignore)
    dist = tmp_path / "dist"
    dist.mkdir()
    sdist = Stager._build_setup_package(str(project / "setup.py"), str(dist))
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    missing = sorted(wanted - names)
    assert not missing, f"not in the sdist: {missing[:20]}"
    assert "setup.py" in names and "pyproject.toml" in names
