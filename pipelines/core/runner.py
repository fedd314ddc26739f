"""Runner selection and validation: the config's ``runner`` block plus command-line arguments.

The runner name comes from ``--runner`` in the extra arguments, else ``runner.options``, else
``runner.name``; it is matched case-insensitively and a trailing ``Runner`` may be left out
(``dataflow``, ``flinkrunner``, ``PortableRunner`` all work). Supported: see :data:`SUPPORTED`.

``DirectRunner`` (the default) and ``FnApiRunner`` run on Beam's in-process portable runner
directly (``FnApiRunner``), skipping Beam 2.77's first attempt to start the Prism runner, which
downloads a binary and so fails offline. ``direct_num_workers``/``direct_running_mode`` pick
threads or processes. Every other supported runner is handed to Beam by name together with
``runner.options`` and the extra arguments (``--project``, ``--region``,
``--temp_location gs://...``, ``--setup_file ./setup.py``, ``--flink_job_server_jar ...``).

:func:`check_runner` validates the runner's options before any work (it is called by
:func:`make_options`, and the build calls it before planning): an unknown or refused runner name,
a missing worker environment, a job-server jar that does not exist or a Dataflow job that ships
no datamill code to its workers is a :class:`~pipelines.core.settings.ConfigError` naming the option
and the fix. The README's "Runners" section says which runners were run end to end.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions, PortableOptions

from pipelines.core.settings import ConfigError, RunnerConfig

# Runners that run in the submitting process (workers are its threads or child processes).
LOCAL_RUNNERS = {"DirectRunner", "FnApiRunner"}
# Runners whose workers are separate processes that talk the Fn API (portable runners).
PORTABLE_RUNNERS = {"PortableRunner", "FlinkRunner", "SparkRunner", "PrismRunner"}
SUPPORTED = ("DirectRunner", "FnApiRunner", "PortableRunner", "FlinkRunner", "SparkRunner",
             "PrismRunner", "DataflowRunner")

DASK_LIMITATION = (
    "Beam 2.77's DaskRunner is not supported: it delivers the tagged outputs of a multi-output "
    "ParDo (datamill's kept / removed / dead-letter records) to every consumer mixed together, "
    "and computes only the last sink of the graph, so the output would be wrong and most of it "
    "never written")
REFUSED = {
    "DaskRunner": DASK_LIMITATION,
    "BundleBasedDirectRunner": "Beam's legacy BundleBasedDirectRunner is not tested with "
    "datamill; use DirectRunner",
    "SwitchingDirectRunner": "use DirectRunner (datamill runs it on FnApiRunner directly)",
    "InteractiveRunner": "datamill builds are batch jobs; use DirectRunner",
    "TestDirectRunner": "use DirectRunner",
    "TestDataflowRunner": "use DataflowRunner",
    "KafkaStreamsRunner": "datamill builds are batch jobs",
}
ENVIRONMENT_TYPES = ("DOCKER", "PROCESS", "EXTERNAL", "LOOPBACK")


def _supported_list() -> str:
    return ", ".join(SUPPORTED)


def canonical_runner(name: str) -> str:
    """Beam's spelling of a runner name given in any case, with or without ``Runner`` or a
    module path (``apache_beam.runners.dask.dask_runner.DaskRunner``). Raises ConfigError for
    a refused or unknown runner, listing the supported ones."""
    raw = (name or "").strip()
    short = raw.rsplit(".", 1)[-1].lower()
    if short and not short.endswith("runner"):
        short += "runner"
    for known in (*SUPPORTED, *REFUSED):
        if known.lower() == short:
            if known in REFUSED:
                raise ConfigError(f"runner {raw!r}: {REFUSED[known]}. "
                                  f"Supported runners: {_supported_list()}.")
            return known
    raise ConfigError(f"runner {raw!r} is not a runner datamill supports. "
                      f"Supported runners (any case): {_supported_list()}.")


def _runner_from_args(args: list[str]) -> str | None:
    found = None
    for i, a in enumerate(args):
        if a.startswith("--runner="):
            found = a.split("=", 1)[1]
        elif a == "--runner" and i + 1 < len(args):
            found = args[i + 1]
    return found


def _without_runner(args: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
        elif a == "--runner":
            skip = True
        elif not a.startswith("--runner="):
            out.append(a)
    return out


def _all_args(cfg: RunnerConfig, extra_args: list[str] | None) -> list[str]:
    return list(cfg.options) + list(extra_args or [])


def runner_name(cfg: RunnerConfig, extra_args: list[str] | None = None) -> str:
    """The canonical name of the runner this build uses (see :func:`canonical_runner`)."""
    return canonical_runner(_runner_from_args(_all_args(cfg, extra_args)) or cfg.name)


def is_local(cfg: RunnerConfig, extra_args: list[str] | None = None) -> bool:
    """True for the in-process runners (their workers share this machine's filesystem)."""
    return runner_name(cfg, extra_args) in LOCAL_RUNNERS


def _is_url(path: str) -> bool:
    return "://" in path


def _check_jar(opts: PipelineOptions, option: str) -> None:
    jar = opts.get_all_options().get(option)
    if not jar:
        return
    if not _is_url(jar) and not os.path.isfile(jar):
        raise ConfigError(
            f"--{option}={jar}: no such file. Give the path (or an http(s) URL) of Beam's "
            f"job-server jar for this Beam version, e.g. beam-runners-flink-<flink version>-"
            f"job-server-2.77.0.jar / beam-runners-spark-3-job-server-2.77.0.jar from Maven "
            f"Central, or leave the option out to let Beam download it (needs network).")
    if not _is_url(jar) and not jar.endswith(".jar"):
        raise ConfigError(f"--{option}={jar}: expected a .jar file")


def _check_environment(name: str, opts: PipelineOptions) -> None:
    """Portable runners: the SDK workers must run Python with datamill installed."""
    po = opts.view_as(PortableOptions)
    image = opts.get_all_options().get("sdk_container_image")
    env = (po.environment_type or "").upper()
    how = ("choose where the Python SDK workers run: --environment_type=EXTERNAL "
           "--environment_config=HOST:PORT (a worker pool started with `python -m "
           "apache_beam.runners.worker.worker_pool_main --service_port=PORT` in a Python that "
           "has datamill installed), --environment_type=DOCKER --sdk_container_image=IMAGE (an "
           "image built FROM apache/beam_python3.11_sdk:2.77.0 with datamill installed), "
           "--environment_type=PROCESS --environment_config='{\"command\": \"/opt/apache/beam/"
           "boot\"}' (that boot binary and datamill on every worker), or "
           "--environment_type=LOOPBACK (workers inside this process; local job servers only)")
    if not env:
        if image:
            return  # Beam's default DOCKER environment with the user's image
        raise ConfigError(
            f"runner {name}: no worker environment given. Beam's default is a Docker container "
            f"of its stock SDK image, which does not have datamill installed, so every worker "
            f"would fail to import it. Please {how}.")
    if env.startswith("BEAM:ENV:"):
        return
    if env not in ENVIRONMENT_TYPES:
        raise ConfigError(f"--environment_type={po.environment_type}: unknown; expected one of "
                          f"{', '.join(ENVIRONMENT_TYPES)} (any case).")
    cfg = po.environment_config
    if env == "EXTERNAL" and not (cfg or po.lookup_environment_option("external_service_address")):
        raise ConfigError("--environment_type=EXTERNAL needs --environment_config=HOST:PORT of a "
                          "running SDK worker pool (or --environment_option="
                          "external_service_address=HOST:PORT)")
    if env == "DOCKER" and not (cfg or image or po.lookup_environment_option(
            "docker_container_image")):
        raise ConfigError("--environment_type=DOCKER needs an image with datamill installed: "
                          "--sdk_container_image=IMAGE (or --environment_config=IMAGE); Beam's "
                          "stock image does not have datamill")
    if env == "PROCESS":
        if po.lookup_environment_option("process_command"):
            return
        try:
            command = json.loads(cfg or "").get("command")
        except (ValueError, AttributeError):
            command = None
        if not command:
            raise ConfigError("--environment_type=PROCESS needs --environment_config="
                              "'{\"command\": \"/path/to/boot\"}' (or --environment_option="
                              "process_command=/path/to/boot)")


def _check_dataflow(opts: PipelineOptions) -> None:
    import importlib.util

    if importlib.util.find_spec("google.cloud.storage") is None or \
            importlib.util.find_spec("apitools") is None:
        raise ConfigError("runner DataflowRunner needs Beam's GCP dependencies: "
                          "pip install 'datamill[gcp]' (apache-beam[gcp])")
    every = opts.get_all_options()
    setup_file, image = every.get("setup_file"), every.get("sdk_container_image")
    if not setup_file and not image:
        raise ConfigError(
            "runner DataflowRunner: the workers need datamill's code. Pass --setup_file "
            "./setup.py (Beam builds datamill's sdist with `python -m build` and installs it on "
            "every worker; needs setuptools>=77 and build here) or --sdk_container_image=IMAGE "
            "(an image with datamill installed).")
    if setup_file:
        if not os.path.isfile(setup_file):
            raise ConfigError(f"--setup_file={setup_file}: no such file")
        if os.path.basename(setup_file) not in ("setup.py", "pyproject.toml"):
            raise ConfigError(f"--setup_file={setup_file}: must be a file named setup.py")
    from apache_beam.options.pipeline_options import GoogleCloudOptions
    from apache_beam.options.pipeline_options_validator import PipelineOptionsValidator
    from apache_beam.runners.dataflow.dataflow_runner import DataflowRunner

    validator = PipelineOptionsValidator(opts, DataflowRunner())
    gco = opts.view_as(GoogleCloudOptions)
    if all(validator.validate_gcs_path(gco, o) for o in ("temp_location", "staging_location")):
        # checked here: otherwise Beam tries to create a default bucket over the network
        raise ConfigError(f"runner DataflowRunner needs --temp_location=gs://BUCKET/tmp (a bucket "
                          f"the job may write to); got temp_location={gco.temp_location!r}, "
                          f"staging_location={gco.staging_location!r}")
    errors = validator.validate()
    if errors:
        raise ConfigError("runner DataflowRunner: " + "; ".join(e.strip() for e in errors))


def _check_local_environment(name: str, opts: PipelineOptions) -> None:
    """The local runner takes one worker environment besides its own: EXTERNAL, SDK worker
    processes started by a worker pool (``direct_num_workers`` of them; see
    :func:`external_environment`)."""
    env = (opts.view_as(PortableOptions).environment_type or "").upper()
    if not env:
        return
    if env != "EXTERNAL":
        raise ConfigError(
            f"runner {name} with --environment_type={env}: the local runner starts its own "
            f"workers (threads, or processes with -w N); the one other environment it takes is "
            f"--environment_type=EXTERNAL --environment_config=HOST:PORT (SDK workers from a "
            f"worker pool). For DOCKER or PROCESS workers use --runner PortableRunner "
            f"--job_endpoint=HOST:PORT, FlinkRunner or SparkRunner.")
    _check_environment(name, opts)


def external_environment(opts: PipelineOptions):
    """The local runner's workers from an external worker pool, or None.

    ``--environment_type=EXTERNAL --environment_config=HOST:PORT`` with a local runner: Beam's
    FnApiRunner (the engine behind Beam's embedded job server) asks the pool at HOST:PORT
    (``python -m apache_beam.runners.worker.worker_pool_main --service_port=PORT``) for
    ``direct_num_workers`` SDK worker processes and sends them bundles over the Fn API (gRPC
    control, data, state and logging), the path Flink, Spark and Dataflow workers use. The
    embedded job server itself (``--runner PortableRunner --job_endpoint=embed``) asks for
    one worker whatever ``direct_num_workers`` says."""
    po = opts.view_as(PortableOptions)
    if (po.environment_type or "").upper() != "EXTERNAL":
        return None
    from apache_beam.transforms import environments

    return environments.ExternalEnvironment.from_options(po)


def check_runner(cfg: RunnerConfig, extra_args: list[str] | None = None) -> str:
    """Validate the runner and its options before any work; return the canonical name."""
    args = _all_args(cfg, extra_args)
    name = runner_name(cfg, extra_args)
    if name in LOCAL_RUNNERS:
        _check_local_environment(name, PipelineOptions(_without_runner(args)))
        return name
    opts = PipelineOptions(_without_runner(args), runner=name)
    po = opts.view_as(PortableOptions)
    if name == "PortableRunner" and not po.job_endpoint:
        raise ConfigError("runner PortableRunner needs --job_endpoint=HOST:PORT of a Beam job "
                          "service, or --job_endpoint=embed to run one in this process; for "
                          "Flink or Spark use --runner FlinkRunner / SparkRunner")
    if name == "FlinkRunner":
        _check_jar(opts, "flink_job_server_jar")
    if name == "SparkRunner":
        _check_jar(opts, "spark_job_server_jar")
    if name in {"PortableRunner", "FlinkRunner", "SparkRunner"}:
        _check_environment(name, opts)
    if name == "DataflowRunner":
        _check_dataflow(opts)
    return name


def _absolute_setup_file(args: list[str]) -> list[str]:
    """``--setup_file setup.py`` -> an absolute path: Beam's stager does
    ``os.chdir(os.path.dirname(setup_file))``, which fails for a bare file name."""
    out = list(args)
    for i, a in enumerate(out):
        if a.startswith("--setup_file="):
            out[i] = "--setup_file=" + os.path.abspath(a.split("=", 1)[1])
        elif a == "--setup_file" and i + 1 < len(out):
            out[i + 1] = os.path.abspath(out[i + 1])
    return out


def make_options(cfg: RunnerConfig, extra_args: list[str] | None = None) -> tuple[Any, PipelineOptions]:
    """Return (runner or None, options). ``extra_args`` win over the config."""
    from pipelines.core import beam_speedups

    beam_speedups.install()  # memoized Beam introspection (graph construction, bundle setup)
    name = check_runner(cfg, extra_args)
    args = _absolute_setup_file(_without_runner(_all_args(cfg, extra_args)))
    if name in LOCAL_RUNNERS:
        if not any(a.startswith("--default_sdk_harness_log_level") for a in args):
            args.append("--default_sdk_harness_log_level=WARNING")  # quiet worker processes
        external = external_environment(PipelineOptions(args))
        given = {a.split("=", 1)[0].lstrip("-") for a in args if a.startswith("--")}
        local = {  # the config's values unless the arguments give them (arguments win)
            "direct_num_workers": cfg.direct_num_workers,
            "direct_running_mode": cfg.direct_running_mode}
        local = {k: v for k, v in local.items() if k not in given}
        if external:  # with a given environment the runner must not swap in its own workers
            local["direct_running_mode"] = "in_memory"
        opts = PipelineOptions(args, **local)
        if external is None:
            return _local_runner()(), opts
        import logging

        runner_log = logging.getLogger("apache_beam.runners.portability.fn_api_runner.fn_runner")
        if not any(isinstance(f, _QuietInMemoryWarning) for f in runner_log.filters):
            runner_log.addFilter(_QuietInMemoryWarning())
        return _local_runner()(default_environment=external,
                               provision_info=_provision_info(opts)), opts
    return None, PipelineOptions(args, runner=name)


def _provision_info(opts: PipelineOptions):
    """What the runner's provision service tells external workers: this build's pipeline
    options (as a job server would), so workers start with the same settings."""
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner.fn_runner import ExtendedProvisionInfo
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    struct = JobServiceHandle.encode_pipeline_options(
        opts.get_all_options(retain_unknown_options=True))
    return ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=struct))


class _QuietInMemoryWarning:
    """Drops FnApiRunner's advice to use ``multi_processing`` with several workers, which is
    wrong when the workers come from an external pool (``in_memory`` keeps that environment)."""

    def filter(self, record) -> bool:
        return not str(record.msg).startswith("If direct_num_workers is not equal to 1")


def _local_runner():
    """FnApiRunner whose ``multi_processing`` worker processes ignore SIGINT: a terminal's
    Ctrl-C goes to the whole process group, and the build process alone stops the run (and
    its workers) and prints one line (pipelines/build/run.py), instead of every worker
    printing a KeyboardInterrupt traceback. SIG_IGN survives exec, and Python keeps an
    ignored SIGINT ignored. The workers run Beam's SDK harness through
    ``python -m pipelines.core.beam_speedups``, which installs the same memoizations as this
    process first (each worker builds every step's DoFns again, once per step); their command
    line still names ``sdk_worker_main`` (pipelines/build/run.py finds them by it)."""
    from apache_beam.portability import python_urns
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    worker_main = "apache_beam.runners.worker.sdk_worker_main"
    beam_worker = f"{sys.executable} -m {worker_main}".encode()
    our_worker = f"{sys.executable} -m pipelines.core.beam_speedups {worker_main}".encode()

    class LocalRunner(FnApiRunner):
        def run_via_runner_api(self, pipeline_proto, options):
            for env in pipeline_proto.components.environments.values():
                if env.urn == python_urns.SUBPROCESS_SDK and not env.payload.startswith(b"trap"):
                    command = our_worker if env.payload == beam_worker else env.payload
                    env.payload = b"trap '' INT; exec " + command
            return super().run_via_runner_api(pipeline_proto, options)

    return LocalRunner


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set environment variables of this process for the block (local worker processes started
    in it inherit them) and restore each one's earlier value, or its absence, after it."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
