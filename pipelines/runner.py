"""Runner selection: the config's ``runner`` block plus command-line pipeline arguments.

``DirectRunner`` (the default) runs on Beam's in-process portable runner directly
(``FnApiRunner``), skipping Beam 2.77's first attempt to start the Prism runner, which downloads
a binary and so fails offline. ``direct_num_workers``/``direct_running_mode`` pick threads or
processes. Every other runner name (DataflowRunner, FlinkRunner, SparkRunner, PrismRunner...) is
passed to Beam unchanged together with ``runner.options`` and any extra arguments, e.g.
``--project``, ``--region``, ``--temp_location gs://...``, ``--setup_file ./setup.py``.
"""

from __future__ import annotations

from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.config import RunnerConfig

LOCAL_RUNNERS = {"DirectRunner", "FnApiRunner", "BundleBasedDirectRunner"}


def _runner_from_args(args: list[str]) -> str | None:
    for i, a in enumerate(args):
        if a.startswith("--runner="):
            return a.split("=", 1)[1]
        if a == "--runner" and i + 1 < len(args):
            return args[i + 1]
    return None


def make_options(cfg: RunnerConfig, extra_args: list[str] | None = None) -> tuple[Any, PipelineOptions]:
    """Return (runner or None, options). ``extra_args`` win over the config."""
    args = list(cfg.options) + list(extra_args or [])
    name = _runner_from_args(args) or cfg.name
    args = [a for i, a in enumerate(args) if not (a.startswith("--runner") or (
        i > 0 and args[i - 1] == "--runner"))]
    if name in LOCAL_RUNNERS and name != "BundleBasedDirectRunner":
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        if not any(a.startswith("--default_sdk_harness_log_level") for a in args):
            args.append("--default_sdk_harness_log_level=WARNING")  # quiet worker processes
        opts = PipelineOptions(
            args,
            direct_num_workers=cfg.direct_num_workers,
            direct_running_mode=cfg.direct_running_mode,
        )
        return FnApiRunner(), opts
    return None, PipelineOptions(args, runner=name)


def runner_name(cfg: RunnerConfig, extra_args: list[str] | None = None) -> str:
    return _runner_from_args(list(cfg.options) + list(extra_args or [])) or cfg.name


def is_local(cfg: RunnerConfig, extra_args: list[str] | None = None) -> bool:
    return runner_name(cfg, extra_args) in LOCAL_RUNNERS
