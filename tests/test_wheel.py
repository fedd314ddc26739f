"""The wheel that workers install instead of the checkout (issue 26 item 13, docs/cluster.md).

``python -m build --wheel --no-isolation`` (the dev extra brings ``build``) builds datamill's wheel
from a copy of the checkout, offline; ``pip install --no-deps --target`` installs it into a
folder; then, from a directory outside the checkout with only that folder (plus this venv's
third-party packages) importable, the console script answers ``--help`` and the demo config
builds on the portable runner, every bundle in an SDK worker that a worker pool started in yet
another directory. The editable install of the checkout is hidden from every one of those
processes (a ``sitecustomize`` drops its import finder), so a module or data file missing from
the wheel fails here instead of being read from the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.poolutil import sdk_worker_pool

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pipelines", "filters", "synth", "scaling")

# Imported first by every Python started with the isolation folder on PYTHONPATH (the CLI, the
# worker pool and the SDK workers it starts): removes the editable install's finder and the
# checkout from sys.path, so that datamill can only come from the installed wheel.
_SITECUSTOMIZE = '''
import os, sys
_hidden = os.path.realpath(os.environ["DATAMILL_HIDE_CHECKOUT"])
sys.meta_path[:] = [f for f in sys.meta_path
                    if not getattr(f, "__module__", "").startswith("__editable__")]
sys.path_hooks[:] = [h for h in sys.path_hooks
                     if not getattr(h, "__module__", "").startswith("__editable__")]
sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.getcwd()) != _hidden]
'''

# Runs the CLI in-process, then reports where datamill and its default data came from.
_DRIVER = '''
import json, sys
from pipelines.cli.main import main
sys.argv = ["datamill", *sys.argv[1:]]
try:
    main()
    code = 0
except SystemExit as e:
    code = e.code or 0
import pipelines, filters.langid
ours = sorted({getattr(m, "__file__", None) or "?" for n, m in list(sys.modules.items())
               if n.split(".")[0] in ("pipelines", "filters", "synth", "scaling")})
print("DRIVER " + json.dumps({
    "code": code,
    "pipelines": pipelines.__file__,
    "langid_model": str(filters.langid.bundled_model_path()),
    "datamill_modules": ours,
}))
'''


def _copy_checkout(dest: Path) -> None:
    """The files a wheel is built from (the build writes build/ and egg-info beside them)."""
    def ignore(folder, names):
        skip = {n for n in names if n in (".git", ".venv", "__pycache__", ".pytest_cache",
                                          ".hypothesis") or n.endswith(".egg-info")}
        if Path(folder).resolve() == REPO.resolve():
            skip |= {"out", "data", "build", "dist", "bench", "tests", "docs"} & set(names)
        return skip

    shutil.copytree(REPO, dest, ignore=ignore)


def _package_files(root: Path) -> set[str]:
    """Every module and data file of the packages, as the wheel must hold them."""
    found = set()
    for pkg in PACKAGES:
        for f in (root / pkg).rglob("*"):
            if f.is_file() and "__pycache__" not in f.parts and f.suffix not in (".pyc", ".pyo"):
                found.add(f.relative_to(root).as_posix())
    return found


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(wheel, target folder, environment for a process that sees only the wheel)."""
    pytest.importorskip("build", reason="`python -m build` comes with the dev extra")
    import setuptools

    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip("pyproject's PEP 639 license string needs setuptools>=77 (bootstrap.sh)")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    _copy_checkout(src)
    dist = tmp / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist),
         str(src)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    wheels = list(dist.glob("datamill-*.whl"))
    assert len(wheels) == 1, wheels
    target = tmp / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
                          "--disable-pip-version-check", "--target", str(target), str(wheels[0])],
                         capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]
    iso = tmp / "isolate"
    iso.mkdir()
    (iso / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    env = dict(os.environ, PYTHONPATH=f"{target}{os.pathsep}{iso}",
               DATAMILL_HIDE_CHECKOUT=str(REPO), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               # worker pools start SDK workers as `python -c ...`: this interpreter first
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return wheels[0], src, target, env


def test_wheel_holds_every_package_and_data_file(installed):
    wheel, src, _, _ = installed
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        meta = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry = zf.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt")))
    wanted = _package_files(src)
    assert "pipelines/stages/dedup/minhash_passes.py" in wanted
    missing = sorted(wanted - names)
    assert not missing, f"not in the wheel: {missing[:20]}"
    stray = sorted(n for n in names if not n.startswith((*PACKAGES, "datamill-")))
    assert not stray, f"wheel installs files outside datamill's packages: {stray[:10]}"
    assert "datamill = pipelines.cli.main:main" in entry.decode()
    assert "Requires-Dist: apache-beam<2.78,>=2.77" in meta


def test_installed_wheel_cli_help_outside_checkout(installed, tmp_path):
    _, _, target, env = installed
    script = target / "bin" / "datamill"
    assert script.is_file()
    for cmd in ([sys.executable, str(script), "--help"],
                [sys.executable, "-m", "pipelines.cli.main", "build", "--help"]):
        out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        assert "build" in out.stdout
    where = subprocess.run([sys.executable, "-c", "import pipelines.cli.main as m; print(m.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert where.stdout.strip().startswith(str(target)), where.stdout + where.stderr


@pytest.mark.timeout(300)
def test_demo_build_from_wheel_on_worker_pool(installed, tmp_path):
    """The demo config, from a directory outside the checkout, on the portable runner with an
    EXTERNAL worker pool: submitter and SDK workers import datamill only from the wheel; the
    demo corpus is generated in the working directory, lid.176 comes from site-packages."""
    _, _, target, env = installed
    cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    cfg["sources"][0]["demo_docs"] = 50  # the smallest demo corpus: this is about imports
    cfg["output"].update(shards=1, report=False)
    submit = tmp_path / "submit"
    submit.mkdir()
    (submit / "demo.yaml").write_text(yaml.safe_dump(cfg))
    (submit / "driver.py").write_text(_DRIVER)
    pool_dir = tmp_path / "pool"
    pool_dir.mkdir()
    log = tmp_path / "pool.log"
    with sdk_worker_pool(pool_dir, env, log) as port:
        run = subprocess.run(
            [sys.executable, "driver.py", "build", "demo.yaml", "--progress-every", "0", "--",
             "--runner", "PortableRunner", "--job_endpoint=embed", "--environment_type=EXTERNAL",
             f"--environment_config=localhost:{port}"],
            cwd=submit, env=env, capture_output=True, text=True, timeout=280)
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith("DRIVER ")]
    assert lines, run.stdout[-3000:] + run.stderr[-3000:]
    got = json.loads(lines[-1][len("DRIVER "):])
    assert got["code"] == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert got["pipelines"].startswith(str(target))
    assert got["datamill_modules"] and all(f.startswith(str(target))
                                           for f in got["datamill_modules"]), got
    site = Path(sysconfig.get_paths()["purelib"])  # the venv's third-party packages
    assert Path(got["langid_model"]).is_relative_to(site) and Path(got["langid_model"]).is_file()
    # the demo corpus (the config's default source) was generated where the build ran
    assert (submit / "data" / "demo_corpus" / "corpus_info.json").is_file()
    assert list((submit / "out" / "demo" / "data").glob("*.parquet"))
    assert "Starting worker" in log.read_text(), "no SDK worker was started by the pool"
    stats = json.loads((submit / "out" / "demo" / "stats.json").read_text())
    assert stats["conservation_ok"] and stats["counts"]["kept"] > 0, stats["counts"]
