"""Build the demo corpus on the user's machine from the Python installation's own sources.

Nothing is downloaded and no third-party text is shipped: documents are the docstrings of the
standard library (read with ``ast``, without importing anything), grouped per class/module,
plus the curation cases a real crawl has, generated deterministically (seed 0):

* exact duplicates (byte-identical and whitespace-only variants),
* near duplicates (word deletions/substitutions, an added header or footer line),
* boilerplate pages (navigation/cookie/legal lines) and boilerplate appended to real text,
* very short and very long documents, code-heavy documents,
* non-English documents (short passages written for this generator, plus CJK test text from
  ``Lib/test/cjkencodings`` when the installation has it),
* malformed lines: bad JSON, invalid UTF-8, a missing or non-string text field, a JSON array.

The corpus is split over plain ``.jsonl``, ``.jsonl.gz`` and ``.jsonl.zst`` files. The same
Python version gives the same corpus; ``corpus_info.json`` records what was generated.
"""

from __future__ import annotations

import ast
import gzip
import json
import os
import random
import sys
import sysconfig
from pathlib import Path

import zstandard

from pipelines.core.fs import write_json

_SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__",
              "lib2to3", "turtledemo", "ensurepip"}

# Passages written for this generator (not copied from anywhere).
_FOREIGN = {
    "de": [
        "Die Bibliothek liest die Dateien zeilenweise ein und prüft jede Zeile, bevor sie "
        "weiterverarbeitet wird. Fehlerhafte Einträge werden gesammelt und am Ende gemeldet.",
        "Wenn der Speicher knapp wird, teilt das Programm die Eingabe in kleinere Blöcke auf "
        "und schreibt Zwischenergebnisse auf die Festplatte, damit nichts verloren geht.",
        "Unsere Wanderung begann früh am Morgen am See; gegen Mittag erreichten wir die Hütte, "
        "wo es Suppe, Brot und einen herrlichen Blick über das ganze Tal gab.",
    ],
    "fr": [
        "Le programme lit chaque fichier ligne par ligne et vérifie que les données sont "
        "valides avant de les transmettre à l'étape suivante du traitement.",
        "Pendant les vacances, nous avons visité plusieurs villages de la côte et goûté aux "
        "spécialités locales, surtout les crêpes et le cidre de la région.",
        "La fonction renvoie une liste triée des éléments uniques; si l'entrée est vide, elle "
        "renvoie simplement une liste vide sans lever d'exception.",
    ],
    "es": [
        "El sistema divide los documentos en fragmentos, calcula una firma para cada uno y "
        "descarta los que son casi idénticos a otros ya vistos.",
        "Ayer por la tarde fuimos al mercado del barrio a comprar fruta fresca, pan y un poco "
        "de queso para la cena con los vecinos.",
        "Si la configuración contiene un error, el programa indica el campo exacto, el valor "
        "recibido y los valores permitidos antes de empezar.",
    ],
    "it": [
        "Il programma controlla ogni riga del file e segnala quelle che non riesce a leggere, "
        "senza interrompere l'elaborazione delle altre.",
        "Domenica siamo andati in montagna con gli amici e abbiamo mangiato in una piccola "
        "trattoria vicino al rifugio.",
    ],
}

_BOILERPLATE = [
    "Home | About | Products | Blog | Contact | Login",
    "This website uses cookies to improve your experience. By continuing to browse you agree "
    "to our use of cookies. Accept | Decline",
    "Copyright (c) All rights reserved. Privacy Policy | Terms of Use | Sitemap",
    "Subscribe to our newsletter for the latest updates. Enter your email address below.",
    "Share this article: Facebook Twitter LinkedIn Email Print",
    "Skip to main content. Menu. Search this site. Sign in. Register.",
]


def _stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _docstring_docs(limit_files: int = 4000) -> list[tuple[str, str]]:
    """(origin, text) pairs: one per module docstring and per class (class + method docs)."""
    root = _stdlib_dir()
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for fn in sorted(filenames):
            if fn.endswith(".py"):
                files.append(Path(dirpath) / fn)
    files.sort()
    docs: list[tuple[str, str]] = []
    for path in files[:limit_files]:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
            continue
        rel = str(path.relative_to(root))
        mod = ast.get_docstring(tree)
        if mod and len(mod.split()) >= 20:
            docs.append((rel, mod))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                parts = [ast.get_docstring(node) or ""]
                for sub in node.body:
                    if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        d = ast.get_docstring(sub)
                        if d:
                            parts.append(f"{sub.name}: {d}")
                text = "\n\n".join(p for p in parts if p)
                if len(text.split()) >= 25:
                    docs.append((f"{rel}::{node.name}", text))
    return docs


def _code_docs(n: int, rng: random.Random) -> list[str]:
    root = _stdlib_dir()
    files = sorted(p for p in root.glob("*.py"))
    out = []
    for path in rng.sample(files, min(n, len(files))):
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        start = rng.randrange(0, max(1, len(lines) - 40))
        out.append("\n".join(lines[start:start + 40]))
    return out


def _cjk_docs() -> list[str]:
    d = _stdlib_dir() / "test" / "cjkencodings"
    out = []
    for name in ("gb2312-utf8.txt", "big5-utf8.txt", "euc_jp-utf8.txt", "euc_kr-utf8.txt"):
        p = d / name
        if p.is_file():
            text = p.read_text(encoding="utf-8", errors="replace").strip()
            if text:
                out.append(text)
    return out


def _near_dup(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    edit = rng.choice(["delete", "substitute", "header", "footer"])
    if edit == "delete" and len(words) > 20:
        for _ in range(max(1, len(words) // 40)):
            del words[rng.randrange(len(words))]
        return " ".join(words)
    if edit == "substitute" and len(words) > 20:
        for _ in range(max(1, len(words) // 50)):
            words[rng.randrange(len(words))] = rng.choice(["data", "value", "item", "object"])
        return " ".join(words)
    if edit == "header":
        return f"Updated documentation.\n{text}"
    return f"{text}\nSee also the module reference."


def generate(n_docs: int = 3000, seed: int = 0) -> tuple[list[bytes], dict]:
    """Return the corpus as raw JSONL lines (bytes, some deliberately malformed) and info."""
    rng = random.Random(seed)
    pool = _docstring_docs()
    rng.shuffle(pool)
    base = pool[:n_docs]
    lines: list[bytes] = []
    info: dict[str, int] = {}

    def add(kind: str, obj) -> None:
        info[kind] = info.get(kind, 0) + 1
        lines.append(obj if isinstance(obj, bytes) else json.dumps(obj, ensure_ascii=False)
                     .encode("utf-8"))

    for origin, text in base:
        add("docstring", {"text": text, "url": f"python-stdlib://{origin}"})
    for origin, text in rng.sample(base, max(1, n_docs // 12)):
        variant = text if rng.random() < 0.6 else text.replace("\n", "  \n") + "   "
        add("exact_duplicate", {"text": variant, "url": f"python-stdlib://{origin}#copy"})
    for origin, text in rng.sample(base, max(1, n_docs // 12)):
        add("near_duplicate", {"text": _near_dup(text, rng), "url": f"mirror://{origin}"})
    for _ in range(max(1, n_docs // 40)):
        page = "\n".join(rng.sample(_BOILERPLATE, k=rng.randint(3, len(_BOILERPLATE))))
        add("boilerplate", {"text": page})
    for origin, text in rng.sample(base, max(1, n_docs // 40)):
        add("with_boilerplate", {"text": f"{_BOILERPLATE[0]}\n{text}\n{_BOILERPLATE[2]}"})
    for _ in range(max(1, n_docs // 30)):
        add("very_short", {"text": rng.choice(["Click here", "OK", "Read more", "Loading...",
                                               "404 Not Found", "  ", "Next page"])})
    for _ in range(max(1, n_docs // 500)):
        chunk = rng.sample(base, min(len(base), 60))
        add("very_long", {"text": "\n\n".join(t for _, t in chunk)})
    for code in _code_docs(max(1, n_docs // 60), rng):
        add("code", {"text": code})
    foreign = [t for texts in _FOREIGN.values() for t in texts] + _cjk_docs()
    for i in range(max(len(foreign), n_docs // 30)):
        add("non_english", {"text": foreign[i % len(foreign)] if i < len(foreign) else
                            " ".join(rng.sample(foreign, 2))})
    # malformed input: each kind must end up in the dead-letter output with its reason
    for i in range(max(1, n_docs // 300)):
        add("bad_json", b'{"text": "unterminated string, ' + str(i).encode() + b"}")
        add("invalid_utf8", b'{"text": "caf\xe9 au lait \xff\xfe ' + str(i).encode() + b'"}')
        add("missing_text", {"body": f"the text is under another key {i}"})
        add("non_string_text", {"text": [1, 2, i]})
        add("not_an_object", b"[1, 2, 3]")
    order = list(range(len(lines)))
    rng.shuffle(order)
    return [lines[i] for i in order], {"python": sys.version.split()[0], "seed": seed,
                                       "lines": len(lines), "kinds": info}


def write_corpus(out_dir: str | Path, n_docs: int = 3000, seed: int = 0) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines, info = generate(n_docs, seed)
    parts = [lines[i::4] for i in range(4)]
    (out / "part-0.jsonl").write_bytes(b"\n".join(parts[0]) + b"\n")
    (out / "part-1.jsonl").write_bytes(b"\n".join(parts[1]) + b"\n")
    (out / "part-2.jsonl.gz").write_bytes(gzip.compress(b"\n".join(parts[2]) + b"\n", mtime=0))
    (out / "part-3.jsonl.zst").write_bytes(
        zstandard.ZstdCompressor(level=3).compress(b"\n".join(parts[3]) + b"\n"))
    info["n_docs"] = n_docs
    write_json(str(out / "corpus_info.json"), info)
    return info


def ensure_demo_corpus(out_dir: str | Path, n_docs: int = 3000) -> dict:
    """Generate the corpus unless ``out_dir`` already holds one made with the same settings."""
    marker = Path(out_dir) / "corpus_info.json"
    if marker.is_file():
        info = json.loads(marker.read_text())
        if info.get("n_docs") == n_docs and info.get("python") == sys.version.split()[0]:
            return info
    return write_corpus(out_dir, n_docs)
