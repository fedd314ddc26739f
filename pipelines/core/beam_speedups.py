"""Memoization of two Beam 2.77 introspection helpers that dominate the fixed cost of a build.

Measured on a one-stage build (``exact_dedup`` on 20k documents, 1 worker, cProfile):

* ``userstate.get_dofn_specs(dofn)`` walks ``dir(dofn)`` and builds an ``inspect.signature``
  for every bound method, to find state and timer parameters. Beam calls it 4-8 times per
  ParDo (graph construction, ``to_runner_api``, every bundle processor): ~1,100 calls and
  ~25,000 signatures for the ~140 ParDos of a build, 1.7 s of CPU (12% of the build).
  The answer depends only on the DoFn's class (state/timer specs are defaults of its
  methods), unless the instance carries bound methods of its own; those instances are not
  memoized.
* ``PipelineOptions.view_as(cls)`` builds a new ``argparse`` parser for ``cls`` and re-parses
  the flags on every call; Beam's type checks call it for every transform applied (~1,100
  calls per build). A view of the same options object for the same class is equivalent to
  the first one made (views share ``_all_options``; the flags never change after
  construction), so the first view is reused.

Both are pure caches: results are the same objects Beam would compute (copies of the spec
sets). :func:`install` is idempotent and is called by :func:`pipelines.core.runner.make_options`.

``python -m pipelines.core.beam_speedups MODULE`` runs ``python -m MODULE`` with both
memoizations installed: the local runner's ``multi_processing`` SDK workers are started so
(``apache_beam.runners.worker.sdk_worker_main``, :func:`pipelines.core.runner._local_runner`).
A worker builds the DoFns of every step it runs, once per step (~130 steps in a five-stage
build), and unmemoized that cost each worker ~1 s of CPU on a 2,000-document build.
"""

from __future__ import annotations

import types
import weakref
from typing import Any

_installed = False


def _memo_dofn_specs(original):
    cache: dict[type, tuple[frozenset, frozenset]] = {}

    def get_dofn_specs(dofn: Any):
        own = getattr(dofn, "__dict__", None)
        if own is None or any(isinstance(v, types.MethodType) for v in own.values()):
            return original(dofn)  # bound methods stored on the instance are inspected too
        cls = type(dofn)
        hit = cache.get(cls)
        if hit is None:
            state, timers = original(dofn)
            hit = cache[cls] = (frozenset(state), frozenset(timers))
        return set(hit[0]), set(hit[1])

    get_dofn_specs.__wrapped__ = original  # type: ignore[attr-defined]
    return get_dofn_specs


def _memo_view_as(original):
    views: "weakref.WeakKeyDictionary[Any, dict[type, Any]]" = weakref.WeakKeyDictionary()

    def view_as(self, cls):
        try:
            per = views.setdefault(self, {})
        except TypeError:  # not weak-referenceable: no cache
            return original(self, cls)
        view = per.get(cls)
        if view is None or view._all_options is not self._all_options:
            view = per[cls] = original(self, cls)
        return view

    view_as.__wrapped__ = original  # type: ignore[attr-defined]
    return view_as


def install() -> None:
    """Install both memoizations (once per process)."""
    global _installed
    if _installed:
        return
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.transforms import userstate

    userstate.get_dofn_specs = _memo_dofn_specs(userstate.get_dofn_specs)
    PipelineOptions.view_as = _memo_view_as(PipelineOptions.view_as)
    _installed = True


QUIET_WORKERS = "DATAMILL_QUIET_WORKERS"  # set by the CLI unless --verbose

if __name__ == "__main__":
    import os
    import runpy
    import sys

    install()
    if os.environ.get(QUIET_WORKERS) == "1":
        # Beam's harness prints a failing step's traceback to stderr whatever the log level,
        # and sends it to the build process in its reply, which shows it unless datamill
        # explains the failure in one line: Python-level output of the worker goes nowhere
        # (a crash of the interpreter itself still reaches the terminal)
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    runpy.run_module(sys.argv.pop(1), run_name="__main__", alter_sys=True)
