"""docs/cluster.md and the Dockerfile (issue 26 item 13), checked without network or Docker:

* every ``datamill build ... -- BEAM ARGS`` command of docs/cluster.md passes datamill's runner
  check (the one ``datamill build`` runs before any work);
* its example cluster config is a valid build config;
* its sizing table is what ``bench/scale_model.py --sizing`` prints;
* the Dockerfile: Beam SDK base image of the installed apache-beam version and of a Python that
  pyproject's ``requires-python`` allows, every file it copies exists, every package the wheel
  ships is copied, Beam's entry point is kept (Docker is not installed here: it is not built).
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import apache_beam
import pytest
import yaml
from packaging.specifiers import SpecifierSet

from pipelines.build.config import build_config_from_dict
from pipelines.core.runner import check_runner
from pipelines.core.settings import RunnerConfig

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "cluster.md"
HAS_GCP = all(importlib.util.find_spec(m) is not None for m in ("google.cloud.storage", "apitools"))
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", DOC.read_text(), flags=re.S | re.M)


def doc_build_commands() -> list[list[str]]:
    """The Beam arguments (after ``--``) of every ``datamill build`` command in bash blocks."""
    commands = []
    for block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:2] == ["datamill", "build"] and "--" in words:
                commands.append(words[words.index("--") + 1:])
    return commands


def _runner(args: list[str]) -> str:
    return args[args.index("--runner") + 1] if "--runner" in args else \
        next(a.split("=", 1)[1] for a in args if a.startswith("--runner="))


def test_docs_show_every_cluster_runner():
    runners = {_runner(a) for a in doc_build_commands()}
    assert {"DataflowRunner", "FlinkRunner", "SparkRunner", "PortableRunner"} <= runners


@pytest.mark.parametrize("args", doc_build_commands(), ids=lambda a: " ".join(a)[:60])
def test_doc_command_passes_runner_check(args, monkeypatch):
    if _runner(args) == "DataflowRunner" and not HAS_GCP:
        pytest.skip("needs the gcp extra (pip install 'datamill[gcp]')")
    monkeypatch.chdir(REPO)  # the commands run from the checkout (--setup_file ./setup.py)
    if _runner(args) == "DataflowRunner":
        # offline, Beam's option validation looks for Google credentials for ~2 minutes
        # (retries) unless the job is a dry run; every other option is checked the same
        args = [*args, "--dry_run=True"]
    assert check_runner(RunnerConfig(), args) == _runner(args)


def test_doc_cluster_config_is_valid():
    configs = [yaml.safe_load(b) for b in _blocks("yaml")]
    cfg = next(c for c in configs if isinstance(c, dict) and "sources" in c)
    built = build_config_from_dict(cfg)
    assert built.output.dir.startswith("gs://")
    assert all("://" in s.path for s in built.sources)


def test_sizing_table_is_the_models():
    text = DOC.read_text()
    table = re.search(r"<!-- sizing:[^\n]*-->\n(.*?)\n<!-- /sizing -->", text, flags=re.S)
    assert table, "docs/cluster.md: sizing table markers missing"
    out = subprocess.run([sys.executable, str(REPO / "bench" / "scale_model.py"), "--sizing"],
                         capture_output=True, text=True, check=True, timeout=120)
    assert table.group(1).strip() == out.stdout.strip(), (
        "docs/cluster.md sizing table is stale: paste `python bench/scale_model.py --sizing`")


# --------------------------------------------------------------------------- Dockerfile
def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) with continuation lines joined and comments dropped."""
    text = (REPO / "Dockerfile").read_text()
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for ln in joined.splitlines():
        if ln.strip():
            op, _, rest = ln.strip().partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def test_dockerfile_base_image_matches_beam_and_python():
    froms = [rest.split()[0] for op, rest in _dockerfile() if op == "FROM"]
    assert froms
    allowed = SpecifierSet(PYPROJECT["project"]["requires-python"])
    beam_pin = next(d for d in PYPROJECT["project"]["dependencies"] if d.startswith("apache-beam"))
    for image in froms:
        m = re.fullmatch(r"apache/beam_python(\d+)\.(\d+)_sdk:([\w.]+)", image)
        assert m, f"Dockerfile: {image} is not Beam's Python SDK image"
        py = f"{m[1]}.{m[2]}"
        assert f"{py}.0" in allowed, f"Python {py} not in requires-python {allowed}"
        assert m[3] == apache_beam.__version__, (
            f"base image Beam {m[3]} != installed apache-beam {apache_beam.__version__}")
        assert m[3] in SpecifierSet(beam_pin[len("apache-beam"):]), beam_pin
    # one Python for building the wheel and for the workers; the docs name the same image
    assert len(set(froms)) == 1
    assert froms[0] in DOC.read_text()


def test_dockerfile_copies_existing_files_and_every_package():
    copied = []
    for op, rest in _dockerfile():
        if op != "COPY" or "--from=" in rest:
            continue
        *sources, _dest = shlex.split(rest)
        copied += [s for s in sources if not s.startswith("--")]
    missing = [s for s in copied if not (REPO / s).exists()]
    assert not missing, f"Dockerfile copies files that do not exist: {missing}"
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.name for p in REPO.iterdir() if (p / "__init__.py").is_file()
                and any(re.fullmatch(pat.replace("*", ".*"), p.name) for pat in include)}
    assert packages == {"pipelines", "filters", "synth", "scaling"}
    assert packages <= set(copied), f"packages the wheel needs but not copied: {packages - set(copied)}"
    for f in ("pyproject.toml", "setup.py", "README.md", "MANIFEST.in"):
        assert f in copied  # the build's inputs (readme, sdist manifest)


def test_dockerfile_keeps_beams_entrypoint_and_downloads_nothing_by_default():
    ops = _dockerfile()
    assert not any(op in ("ENTRYPOINT", "CMD") for op, _ in ops), \
        "the runners start workers through Beam's /opt/apache/beam/boot entry point"
    args = dict(rest.partition("=")[::2] for op, rest in ops if op == "ARG")
    assert args.get("HF_MODELS", "") == "" and args.get("TORCH", "") == ""
    run = " ".join(rest for op, rest in ops if op == "RUN")
    assert "python -m build --wheel" in run and "/tmp/dist/datamill-" in run
