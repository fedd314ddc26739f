"""The one JSON writer (pipelines/core/fs.py write_json): atomic on local paths, byte-exact
options, and no other module of pipelines/ writes a JSON file by itself."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest

from pipelines.core import fs

ROOT = Path(__file__).resolve().parents[1]


def _leftovers(folder: Path, target: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != target)


def test_writes_the_bytes_json_dumps_would(tmp_path):
    obj = {"b": [1, 2], "a": "é", "p": Path("x/y")}
    path = tmp_path / "x.json"
    fs.write_json(str(path), obj, default=str)
    assert path.read_bytes() == json.dumps(obj, indent=2, sort_keys=True, default=str).encode()
    fs.write_json(str(path), {"b": 1, "a": "é"}, indent=None, sort_keys=False,
                  ensure_ascii=False, newline=True)
    assert path.read_bytes() == '{"b": 1, "a": "é"}\n'.encode()
    assert _leftovers(tmp_path, "x.json") == []


def test_creates_parent_folders_with_the_usual_mode(tmp_path):
    path = tmp_path / "a" / "b" / "c.json"
    fs.write_json(str(path), [1])
    assert json.loads(path.read_text()) == [1]
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_replaces_an_existing_file(tmp_path):
    path = tmp_path / "s.json"
    path.write_text('{"old": true}')
    fs.write_json(str(path), {"new": True})
    assert json.loads(path.read_text()) == {"new": True}
    assert _leftovers(tmp_path, "s.json") == []


def test_a_crash_before_the_rename_leaves_the_old_file_and_no_partial_target(
        tmp_path, monkeypatch):
    path = tmp_path / "stats.json"
    path.write_text('{"old": 1}')
    seen: list[bytes] = []

    def crash(src, dst):  # the data is written and synced; the process dies before the rename
        seen.append(Path(src).read_bytes())
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(fs.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        fs.write_json(str(path), {"new": 2})
    assert seen == [json.dumps({"new": 2}, indent=2, sort_keys=True).encode()]
    assert path.read_text() == '{"old": 1}'
    assert _leftovers(tmp_path, "stats.json") == []


def test_a_crash_while_writing_leaves_no_target(tmp_path, monkeypatch):
    path = tmp_path / "new.json"

    def crash(fd):
        raise OSError("disk gone")

    monkeypatch.setattr(fs.os, "fsync", crash)
    with pytest.raises(OSError, match="disk gone"):
        fs.write_json(str(path), {"x": 1})
    assert not path.exists()
    assert _leftovers(tmp_path, "new.json") == []


def test_a_failing_serializer_leaves_no_file_at_all(tmp_path):
    path = tmp_path / "m.json"
    path.write_text("{}")
    with pytest.raises(TypeError):
        fs.write_json(str(path), {"x": object()})
    loop: dict = {}
    loop["self"] = loop
    with pytest.raises(ValueError, match="Circular"):
        fs.write_json(str(path), loop)
    assert path.read_text() == "{}"
    assert _leftovers(tmp_path, "m.json") == []


class _Boom:
    pass


def _raise(obj):
    raise ValueError("cannot serialize")


def test_a_failing_default_leaves_no_temporary_file(tmp_path):
    with pytest.raises(ValueError, match="cannot serialize"):
        fs.write_json(str(tmp_path / "d.json"), {"x": _Boom()}, default=_raise)
    assert list(tmp_path.iterdir()) == []


def test_urls_go_through_beam_filesystems(tmp_path, monkeypatch):
    written: dict[str, bytes] = {}

    class _Sink:
        def __init__(self, path):
            self.path = path

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def write(self, data):
            written[self.path] = data

    monkeypatch.setattr(fs.FileSystems, "create", lambda path: _Sink(path))
    fs.write_json("gs://bucket/out/stats.json", {"b": 1, "a": 2}, indent=None)
    assert written == {"gs://bucket/out/stats.json": b'{"a": 2, "b": 1}'}


# ----------------------------------------------------------------- nobody else writes JSON

WRITES = {"write", "write_text", "write_bytes", "pwrite"}
# (module, function): why it may write JSON itself
ALLOWED = {
    ("pipelines/build/output_lock.py", "_write_holder"):
        "the holder is written into the flocked lock file in place: a rename would swap the "
        "inode and drop the lock",
    ("synth/sandbox.py", "run_python"):
        "the jail's own settings, in the private temporary folder of one sandboxed run, "
        "read once by the child and removed with the folder",
}


def _is_call(node: ast.AST, module: str, name: str) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == name and isinstance(node.func.value, ast.Name)
            and node.func.value.id == module)


def _json_text(node: ast.AST, names: set[str]) -> bool:
    """``node`` is a whole JSON document: ``json.dumps(...)``, optionally ``.encode(...)``d,
    or a name bound to one. A JSONL line (``json.dumps(r) + "\\n"``) or a joined body is not."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
            and node.func.attr == "encode":
        node = node.func.value
    return _is_call(node, "json", "dumps") or (isinstance(node, ast.Name) and node.id in names)


def _scopes(node: ast.AST, name: str = "<module>"):
    """``(function name, nodes directly in it)`` for the module and every function."""
    own: list[ast.AST] = []
    inner = []
    todo = list(ast.iter_child_nodes(node))
    while todo:
        n = todo.pop()
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inner.append(n)
            continue
        own.append(n)
        todo.extend(ast.iter_child_nodes(n))
    yield name, own
    for f in inner:
        yield from _scopes(f, f.name)


def _offences(tree: ast.AST) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for where, body in _scopes(tree):
        names = {t.id for n in body if isinstance(n, ast.Assign) and _json_text(n.value, set())
                 for t in n.targets if isinstance(t, ast.Name)}
        for n in body:
            if _is_call(n, "json", "dump"):
                out.append((n.lineno, f"{where}: json.dump( to a file handle"))
            elif isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) \
                    and n.func.attr in WRITES and any(_json_text(a, names) for a in n.args):
                out.append((n.lineno, f"{where}: .{n.func.attr}(json.dumps(...))"))
    return sorted(set(out))


def test_the_offence_finder_finds_what_it_should():
    src = '''
import json
def a(fh, obj):
    json.dump(obj, fh)
def b(fh, obj):
    fh.write(json.dumps(obj).encode("utf-8"))
def c(p, obj):
    data = json.dumps(obj, indent=2).encode()
    p.write_bytes(data)
def d(fh, rows):
    for r in rows:
        fh.write((json.dumps(r) + "\\n").encode())
    fh.write("\\n".join(json.dumps(r) for r in rows))
def e(obj):
    return json.dumps(obj)
'''
    found = [msg.split(":")[0] for _, msg in _offences(ast.parse(src))]
    assert sorted(set(found)) == ["a", "b", "c"]


def test_no_module_but_core_fs_writes_a_json_file():
    """pipelines/ and the plain-Python packages: a trained model or artifact is serialized by
    its filters class and written by the CLI through ``fs.write_bytes``."""
    bad = []
    for path in sorted(p for d in ("pipelines", "filters", "synth", "scaling")
                       for p in (ROOT / d).rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel == "pipelines/core/fs.py":
            continue
        for line, msg in _offences(ast.parse(path.read_text(encoding="utf-8"))):
            if (rel, msg.split(":")[0]) not in ALLOWED:
                bad.append(f"{rel}:{line}: {msg}")
    assert not bad, "write JSON files with pipelines.core.fs.write_json:\n" + "\n".join(bad)
