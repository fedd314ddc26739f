"""Small real-text corpus for the embedding/pruning tests (stdlib docstrings + constructed
paraphrases), embedded once per test process. Imported by test_semdedup/test_d4/test_kmeans."""

from __future__ import annotations

import functools
import importlib
import inspect

import pytest

MODULES = [
    "os", "json", "re", "collections", "itertools", "functools", "string", "textwrap",
    "shutil", "pathlib", "heapq", "bisect", "random", "statistics", "fractions", "decimal",
    "csv", "argparse", "logging", "threading", "queue", "socket", "subprocess", "tempfile",
    "zipfile", "gzip", "hashlib", "base64", "datetime", "calendar", "copy", "pickle",
]

# Hand-written paraphrase pairs (same meaning, different wording).
PARAPHRASES = [
    ("The quick brown fox jumps over the lazy dog near the river bank.",
     "A quick brown fox leaps over a lazy dog by the riverbank."),
    ("Remove and return an arbitrary element from the set; raises KeyError if empty.",
     "Removes and returns an arbitrary set element. Raises KeyError if the set is empty."),
    ("Return a new list containing all items from the iterable in ascending order.",
     "Returns a new list with every item of the iterable sorted in ascending order."),
]

DISTINCT_MAX_COS = 0.8  # "distinct" documents: cosine below this to every other one


def stdlib_paragraphs(limit: int = 400) -> list[tuple[str, str]]:
    """(id, first docstring paragraph) of public callables, in a fixed order."""
    out, seen = [], set()
    for m in MODULES:
        mod = importlib.import_module(m)
        for name, obj in sorted(vars(mod).items()):
            if name.startswith("_") or not callable(obj):
                continue
            doc = inspect.getdoc(obj)
            if not doc:
                continue
            para = " ".join(doc.strip().split("\n\n")[0].split())
            if len(para.split()) < 8 or para in seen:
                continue
            seen.add(para)
            out.append((f"{m}.{name}", para))
    return out[:limit]


def mutate(text: str) -> str:
    """A paraphrase-level edit: verb form, case and punctuation changes."""
    t = text.replace("Return ", "Returns ").replace("return ", "returns ")
    return t.lower().rstrip(".") + " ."


@functools.lru_cache(maxsize=1)
def corpus():
    """Returns (records, embeddings by id, distinct ids, {duplicate id: original id})."""
    pytest.importorskip("sentence_transformers")
    import numpy as np

    from filters.embedding import Embedder

    emb = Embedder()
    cands = stdlib_paragraphs(140)
    vecs = emb.encode([t for _, t in cands])
    chosen: list[int] = []
    for i in range(len(cands)):
        if all(float(vecs[i] @ vecs[j]) < DISTINCT_MAX_COS for j in chosen):
            chosen.append(i)
        if len(chosen) == 60:
            break
    records = [{"id": f"doc-{cands[i][0]}", "text": cands[i][1], "source": "stdlib"}
               for i in chosen]
    dups: dict[str, str] = {}
    for r in records[:10]:
        dups[r["id"] + "~dup"] = r["id"]
    records += [{"id": d, "text": mutate(next(x["text"] for x in records if x["id"] == o)),
                 "source": "stdlib"} for d, o in dups.items()]
    for k, (a, b) in enumerate(PARAPHRASES):
        records.append({"id": f"para-{k}-a", "text": a, "source": "hand"})
        records.append({"id": f"para-{k}-b", "text": b, "source": "hand"})
        dups[f"para-{k}-b"] = f"para-{k}-a"
    vec = emb.encode([r["text"] for r in records])
    by_id = {r["id"]: np.asarray(v) for r, v in zip(records, vec)}
    distinct = [r["id"] for r in records if r["id"] not in dups]
    return records, by_id, distinct, dups


def embedded_records():
    records, by_id, _, _ = corpus()
    return [dict(r, embedding=by_id[r["id"]].tolist()) for r in records]


@pytest.mark.embed
def test_corpus_is_what_the_other_tests_assume():
    records, by_id, distinct, dups = corpus()
    assert len(distinct) >= 50
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids))
    for d, o in dups.items():  # constructed duplicates really are close
        assert float(by_id[d] @ by_id[o]) >= 0.9, (d, o)
    for i, a in enumerate(distinct):  # and the distinct documents are not
        for b in distinct[i + 1:]:
            assert float(by_id[a] @ by_id[b]) < 0.9
