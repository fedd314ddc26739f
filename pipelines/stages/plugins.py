"""Stages from the user's own code: ``plugins:`` modules in a config and the ``datamill.stages``
entry-point group.

A plugin is an importable Python module that defines stages with
:func:`pipelines.stages.base.register_stage` (importing it registers them). Two ways to load one:

* list it in the build config: ``plugins: [my_package.my_stages]`` (imported before the stages
  are validated, so a typo in a stage name of a plugin is reported like any other);
* declare it in the package's metadata, so that installing the package is enough::

      [project.entry-points."datamill.stages"]
      my_stages = "my_package.my_stages"

Workers import the plugin module by name when they unpickle a stage, so on a distributed runner
the package must be installed in the worker environment (the same as for any Beam DoFn).
"""

from __future__ import annotations

import importlib
import re
from importlib import metadata

ENTRY_POINT_GROUP = "datamill.stages"
_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

# entry point / module name -> "ExcType: message" for plugins that failed to import
PLUGIN_ERRORS: dict[str, str] = {}


class PluginError(ValueError):
    """A ``plugins:`` entry that cannot be imported (a configuration mistake)."""


def import_plugins(modules: list[str], where: str = "plugins") -> None:
    """Import each listed module (registering its stages); errors name the entry and the fix."""
    problems = []
    for i, name in enumerate(modules):
        if not isinstance(name, str) or not _MODULE_RE.match(name):
            problems.append(f"{where}[{i}]: {name!r} is not a dotted Python module name "
                            "(e.g. my_package.my_stages)")
            continue
        try:
            importlib.import_module(name)
        except ImportError as err:
            problems.append(f"{where}[{i}]: cannot import {name!r}: {err} (install the package "
                            "or add its directory to PYTHONPATH)")
        except Exception as err:  # noqa: BLE001 - a broken plugin is the user's config problem
            problems.append(f"{where}[{i}]: importing {name!r} failed: "
                            f"{type(err).__name__}: {err}")
    if problems:
        raise PluginError("\n".join(problems))


def load_entry_points() -> None:
    """Import every module declared in the ``datamill.stages`` entry-point group.

    A broken installed plugin must not take the core stages down: its error is kept in
    :data:`PLUGIN_ERRORS` and shown when a config names a stage that is not registered.
    """
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            ep.load()
        except Exception as err:  # noqa: BLE001
            PLUGIN_ERRORS[f"entry point {ep.name} ({ep.value})"] = f"{type(err).__name__}: {err}"
