# datamill worker image: Beam's Python SDK container plus datamill, installed from a wheel built
# from this checkout, so that Dataflow, Flink and Spark workers need neither the checkout nor
# network access at start-up. Runbook: docs/cluster.md.
#
#   docker build -t REGISTRY/datamill-worker:0.1.0 .
#   docker build -t REGISTRY/datamill-worker:0.1.0-embed \
#       --build-arg EXTRAS=embed,web --build-arg TORCH=2.13.0 .
#   docker push REGISTRY/datamill-worker:0.1.0
#
# Build arguments:
#   EXTRAS     datamill extras installed on the workers (default "web"; "" for the core stages
#              only; add "embed" for the embedding stages, then also set TORCH)
#   TORCH      a torch version installed first from PyTorch's CPU index (default: none), so
#              that the embed extra does not pull a multi-GB CUDA build
#   HF_MODELS  Hugging Face model ids to download into the image's HF cache (default: none,
#              nothing is downloaded); the embed stages then load them by name, offline
# Model files of your own (a quality classifier, a fastText model...): see "Model files" in
# docs/cluster.md (a two-line image FROM this one that COPYs them; configs name their paths).
#
# The base image's Python minor version and Beam version must match datamill's pins
# (pyproject.toml: apache-beam 2.77, requires-python); tests/test_cluster.py checks this file.

# ---- 1. the wheel, built from the checkout (same Python as the workers)
FROM apache/beam_python3.11_sdk:2.77.0 AS wheel
WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY pipelines ./pipelines
COPY filters ./filters
COPY synth ./synth
COPY scaling ./scaling
COPY configs ./configs
RUN pip install --no-cache-dir "setuptools>=77" "build>=1.2,<2" \
    && python -m build --wheel --no-isolation --outdir /dist .

# ---- 2. the worker image
FROM apache/beam_python3.11_sdk:2.77.0
ARG EXTRAS=web
ARG TORCH=
ARG HF_MODELS=
ENV HF_HOME=/opt/datamill/hf \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=wheel /dist/ /tmp/dist/
RUN set -eux; \
    if [ -n "$TORCH" ]; then \
        pip install --no-cache-dir "torch==$TORCH" --index-url https://download.pytorch.org/whl/cpu; \
    fi; \
    wheel="$(ls /tmp/dist/datamill-*.whl)"; \
    if [ -n "$EXTRAS" ]; then spec="datamill[$EXTRAS] @ file://$wheel"; else spec="$wheel"; fi; \
    pip install --no-cache-dir "$spec"; \
    rm -rf /tmp/dist; \
    python -c "import apache_beam, pipelines.cli.main, pipelines.stages.registry as r; r.load_stages(); print('datamill', apache_beam.__version__)"
# Optional, and only when asked for: models fetched at build time, so that workers never download.
RUN set -eux; mkdir -p "$HF_HOME"; \
    for m in $HF_MODELS; do \
        python -c "import sys; from huggingface_hub import snapshot_download; snapshot_download(sys.argv[1])" "$m"; \
    done
# Beam's boot program stays the entry point (the runners start workers with it; `--worker_pool`
# runs an SDK worker pool for --environment_type=EXTERNAL).
