"""Shim for Beam runners that package the pipeline with ``--setup_file ./setup.py``
(e.g. Dataflow); all metadata lives in pyproject.toml."""

from setuptools import setup

setup()
