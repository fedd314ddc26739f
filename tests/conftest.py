import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the checkout (data for tests); tests using it skip when absent."""
    if not (SHARED / "data").is_dir():
        pytest.skip("../shared is not present beside the checkout")
    return SHARED


@pytest.fixture(scope="session")
def demo_corpus_300(tmp_path_factory) -> Path:
    """The generated demo corpus with 300 documents, made once per test process (generating it
    costs about as much CPU as a small build). Tests only read it; copy it to change it."""
    from pipelines.io.demo_corpus import ensure_demo_corpus

    path = tmp_path_factory.mktemp("demo-corpus-300") / "corpus"
    ensure_demo_corpus(path, n_docs=300)
    return path
